#!/usr/bin/env python3
"""gen_llamacpp_greedy.py — llama.cpp's free-running greedy continuations on F32 conversions of
the real models, for lemma's token-identity test (tests/test_exact.c).

Why F32 conversions: with quantized weights both llama.cpp and lemma quantize every activation
vector to 8 bits before each matmul (Q8_0/Q8_1/Q8_K). A change in the last bit of one input
can move one 8-bit code, and those steps cascade through the layers: llama.cpp's own decode
path (one token per batch) and its prompt path (many tokens per batch) give logits that differ
by up to 1.3 on SmolLM2 Q4_1 (docs/engine.md, "Exactness"). Greedy text then depends on the
float summation order of a particular build, and no two engines (nor two llama.cpp paths) are
token-identical over 64 tokens. With F32 weights there is no activation quantization; the
remaining differences are float rounding (max 0.055 logits between lemma and llama.cpp on
SmolLM2), and greedy text is a well-defined function of the model.

The F32 files are the exact dequantization of the installed GGUF files, made by lemma itself:
    build/lemma quantize models/smollm2-135m-instruct-q4_1.gguf models/.f32/smollm2-135m-instruct-f32.gguf f32
tests/test_exact.c makes the same files and checks their SHA-256 against the one recorded here,
so the reference is known to describe the very weights the test runs.

How tests/data/engine/*.f32-greedy.json were made (2026-11-26, 2-core dev machine, CPU only):
    python3 -m venv /tmp/lcp
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_OPENMP=OFF" \\
        /tmp/lcp/bin/pip install llama-cpp-python==0.3.36
    /tmp/lcp/bin/python tools/gen_llamacpp_greedy.py models/.f32/smollm2-135m-instruct-f32.gguf \\
        tests/data/engine/smollm2-135m-instruct.f32-greedy.json
    /tmp/lcp/bin/python tools/gen_llamacpp_greedy.py models/.f32/gemma-3-270m-f32.gguf \\
        tests/data/engine/gemma-3-270m.f32-greedy.json

Method, as llama.cpp's tools generate greedily: the prompt is tokenized with the model's special
tokens added and control-token text parsed (llama_tokenize add_special/parse_special, the same
ids as tools/gen_llamacpp_expected.py), evaluated as one batch; then, up to 64 times, the argmax
of the last logits is taken (llama.cpp's greedy sampler), stopping at an end-of-generation token,
and evaluated alone. n_ctx 512, f16 K/V, flash attention off (the classic attention path; its
CPU flash-attention kernel accumulates V in f16), 2 threads. Every step's margin (best minus
second-best logit) is recorded.
"""
import argparse
import datetime
import hashlib
import json
import sys

import numpy as np

import llama_cpp
from llama_cpp import Llama

from llamacpp_prompts import PROMPTS

N_GEN = 64


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                return h.hexdigest()
            h.update(b)


def last_logits(llm):
    p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(p, shape=(llm.n_vocab(),)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                n_threads_batch=2, logits_all=False, flash_attn=False, verbose=False)
    vocab = llm._model.vocab
    cases = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(N_GEN):
            lg = last_logits(llm)
            t = int(lg.argmax())
            top2 = np.partition(lg, -2)[-2:]
            gen.append(t)
            margins.append(round(float(abs(top2[1] - top2[0])), 5))
            if llama_cpp.llama_vocab_is_eog(vocab, t):
                break
            llm.eval([t])
        text = llm.detokenize(gen).decode("utf-8", errors="replace")
        cases.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": gen,
                      "margins": margins, "text": text})
        print(f"{len(ids):3d} prompt tokens, {len(gen)} generated, smallest margin "
              f"{min(margins):.4f}: {text[:60]!r}", file=sys.stderr)
    doc = {
        "generator": "tools/gen_llamacpp_greedy.py",
        "reference": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp built from its PyPI "
                     "sdist with GGML_NATIVE), greedy, flash attention off, f16 K/V",
        "date": datetime.date.today().isoformat(),
        "model": a.model.split("/")[-1],
        "model_sha256": sha256_file(a.model),
        "n_gen": N_GEN,
        "cases": cases,
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
