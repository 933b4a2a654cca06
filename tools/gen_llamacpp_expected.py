#!/usr/bin/env python3
"""gen_llamacpp_expected.py — greedy reference continuations from llama.cpp for lemma's
real-model tests (tests/test_engine.c).

How the committed files were made (2026-11-26, on the 2-core dev machine, CPU only):

    python3 -m venv /tmp/xl && /tmp/xl/bin/pip install xllamacpp==2026.10.11549
    /tmp/xl/bin/python tools/gen_llamacpp_expected.py models/smollm2-135m-instruct-q4_1.gguf \
        tests/data/engine/smollm2-135m-instruct-q4_1.expected.json
    /tmp/xl/bin/python tools/gen_llamacpp_expected.py models/gemma-3-270m-q4_k_m.gguf \
        tests/data/engine/gemma-3-270m-q4_k_m.expected.json

xllamacpp 2026.10.11549 (PyPI) embeds llama.cpp's server (prebuilt manylinux CPU wheel).
(llama-cpp-py-sync 0.11739 was tried first: its libraries need glibc 2.38, this machine has
2.36.) For each prompt: the server's /tokenize endpoint gives llama.cpp's prompt ids
(add_special and parse_special on, as llama.cpp's tools tokenize a raw prompt); the ids are
then sent as the prompt of a completion with temperature 0 (llama.cpp's greedy sampler: the
argmax), n_predict 64, no prompt cache, n_probs 2. Generation stops early only at an
end-of-generation token (the server's default). For every step we record the margin between
the best and second-best logit (the difference of their log-probabilities), so that a
divergence in lemma can be judged: a flip at a margin of 1e-3 is float noise, at 1.0 a bug.
n_ctx 512, f16 K/V, flash attention disabled (see below), 2 threads.
"""
import json
import sys

import urllib.request

import xllamacpp as xlc

from llamacpp_prompts import PROMPTS

N_GEN = 64


def post(addr, path, body):
    req = urllib.request.Request(addr + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    if len(sys.argv) != 3:
        print("usage: gen_llamacpp_expected.py MODEL.gguf OUT.json", file=sys.stderr)
        return 2
    path, out = sys.argv[1], sys.argv[2]
    p = xlc.CommonParams()
    p.model.path = path
    p.n_ctx = 512
    p.cpuparams.n_threads = 2
    p.cpuparams_batch.n_threads = 2
    # Flash attention off: llama.cpp's CPU flash-attention kernel accumulates V in f16, which
    # adds noise of its own; the classic path (f16 K/V, f32 softmax, f32 accumulation) is the
    # more exact reference, and the one lemma's attention follows.
    p.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    server = xlc.Server(p)
    addr = server.listening_address
    if not addr.startswith("http"):
        addr = "http://" + addr
    cases = []
    for prompt in PROMPTS:
        ids = post(addr, "/tokenize", {"content": prompt, "add_special": True,
                                       "parse_special": True})["tokens"]
        r = server.handle_completions({
            "prompt": ids, "n_predict": N_GEN, "temperature": 0.0, "top_k": 1,
            "cache_prompt": False, "n_probs": 2, "return_tokens": True, "verbose": True,
        })
        probs = r["choices"][0]["logprobs"]["content"]
        gen = [t["id"] for t in probs]
        margins = []
        for t in probs:
            top = t["top_logprobs"]
            margins.append(round(top[0]["logprob"] - top[1]["logprob"], 5) if len(top) > 1
                           else None)
        v = r["__verbose"]
        cases.append({
            "prompt": prompt,
            "prompt_ids": ids,
            "generated_ids": gen,
            "stop_type": v.get("stop_type"),
            "text": r["choices"][0]["text"],
            "margins": margins,
        })
        print(f"{len(ids):3d} prompt tokens, {len(gen)} generated ({v.get('stop_type')}): "
              f"{r['choices'][0]['text'][:60]!r}", file=sys.stderr)
    doc = {
        "generator": "tools/gen_llamacpp_expected.py",
        "reference": "xllamacpp 2026.10.11549 (llama.cpp server, prebuilt CPU wheel), "
                     "greedy, flash attention off",
        "model": path.split("/")[-1],
        "n_gen": N_GEN,
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
