#!/usr/bin/env python3
"""llamacpp_perplexity.py — llama.cpp's perplexity of a model on a fixed text, computed exactly
as `lemma perplexity` (src/cli/perplexity.c) and llama.cpp's llama-perplexity compute it, for
tests/test_perplexity.c.

How tests/data/engine/perplexity.expected.json was made (2026-11-26, on the 2-core dev
machine, CPU only):

    python3 -m venv /tmp/lcp
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_OPENMP=OFF" \
        /tmp/lcp/bin/pip install llama-cpp-python==0.3.36
    /tmp/lcp/bin/python tools/llamacpp_perplexity.py --lemma build/lemma --dump /tmp/pplnll \
        tests/data/engine/perplexity.expected.json \
        models/smollm2-135m-instruct-q4_1.gguf models/gemma-3-270m-q4_k_m.gguf

llama-cpp-python (PyPI; no prebuilt wheel there, pip builds the llama.cpp it vendors from
source with cmake, ~20 min on the busy 2-core machine; llama.cpp's own perplexity tool is not
built by the wheel) gives the logits of every position of a batch
(logits_all=True), which the llama.cpp server (xllamacpp, tools/gen_llamacpp_expected.py) does
not expose for prompt tokens.

The method, llama-perplexity's (tools/perplexity/perplexity.cpp, perplexity()) with one chunk
per sequence (as `llama-perplexity -c CTX -b CTX`):
  * the whole text is tokenized once with the model's special tokens added (BOS when the
    vocabulary adds one) and special-token text not parsed (common_tokenize(ctx, text, true));
  * it is cut into n = len(tokens) // CTX chunks of CTX tokens (a partial last chunk is
    dropped); each chunk is evaluated in an emptied KV cache with its first token replaced by
    BOS when the vocabulary adds BOS;
  * for positions j in [CTX/2, CTX-1) the negative log-likelihood of token j+1 under the
    log-softmax of the logits at j (in double) is accumulated;
  * PPL = exp(mean NLL), its error PPL * sqrt(var(NLL) / (count-1)), the running PPL after
    each chunk as llama-perplexity prints it ("[1]...,[2]...").
Settings: f16 K/V, flash attention off (the classic attention path, the more exact
reference: llama.cpp's CPU flash-attention kernel accumulates in f16; the value with flash
attention on is recorded too, as "ppl_flash_attn"), n_batch = n_ubatch = CTX, 2 threads.

With --lemma BIN, `BIN tokenize -m MODEL --bos --json --file TEXT` must give the same ids as
llama.cpp's tokenizer (the script stops otherwise), so that both runtimes score the same
tokens. --dump DIR writes llama.cpp's per-position NLLs (DIR/<model>.nll.json) for a
position-by-position comparison.
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys

import numpy as np

import llama_cpp
from llama_cpp import Llama

TEXT = "tests/data/engine/perplexity.txt"
CTX = 512


def nll_rows(scores, targets):
    """-log softmax(scores[i])[targets[i]] for each row, in double."""
    s = scores.astype(np.float64)
    mx = s.max(axis=1, keepdims=True)
    lse = np.log(np.exp(s - mx).sum(axis=1)) + mx[:, 0]
    return lse - s[np.arange(len(targets)), targets]


def perplexity(path, tokens, add_bos, bos, ctx, flash_attn):
    llm = Llama(model_path=path, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, n_threads=2,
                n_threads_batch=2, logits_all=True, flash_attn=flash_attn, verbose=False)
    n_chunks = len(tokens) // ctx
    first = ctx // 2
    nll = nll2 = 0.0
    count = 0
    running, per_pos = [], []
    for c in range(n_chunks):
        chunk = list(tokens[c * ctx:(c + 1) * ctx])
        if add_bos:
            chunk[0] = bos
        llm.reset()  # n_tokens = 0: eval() then drops every cached position first
        llm.eval(chunk)
        scores = np.array(llm.scores[first:ctx - 1, :], dtype=np.float32)
        x = nll_rows(scores, np.array(chunk[first + 1:ctx]))
        nll += float(x.sum())
        nll2 += float((x * x).sum())
        count += len(x)
        running.append(round(math.exp(nll / count), 4))
        per_pos.append([round(float(v), 5) for v in x])
    del llm
    mean = nll / count
    var = nll2 / count - mean * mean
    ppl = math.exp(mean)
    se = math.sqrt(var / (count - 1)) if count > 1 and var > 0 else 0.0
    return {"n_chunks": n_chunks, "count": count, "ppl": ppl, "ppl_stderr": se * ppl,
            "mean_nll": mean, "running_ppl": running}, per_pos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("-c", "--ctx", type=int, default=CTX)
    ap.add_argument("--lemma", help="lemma binary: check its tokenization against llama.cpp's")
    ap.add_argument("--dump", help="folder for per-position NLLs")
    a = ap.parse_args()
    with open(a.text, "rb") as f:
        text = f.read()
    results = []
    for path in a.models:
        vocab_llm = Llama(model_path=path, n_ctx=8, vocab_only=True, verbose=False)
        tokens = vocab_llm.tokenize(text, add_bos=True, special=False)
        bos = vocab_llm.token_bos()
        add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab_llm._model.vocab))
        assert not add_bos or tokens[0] == bos
        del vocab_llm
        if a.lemma:
            out = subprocess.run([a.lemma, "tokenize", "-m", path, "--bos", "--json", "--file",
                                  a.text], check=True, capture_output=True, text=True).stdout
            mine = json.loads(out)
            if mine != tokens:
                k = next((i for i, (x, y) in enumerate(zip(mine, tokens)) if x != y),
                         min(len(mine), len(tokens)))
                sys.exit(f"{path}: lemma's tokens differ from llama.cpp's at {k}: "
                         f"{mine[k:k + 8]} vs {tokens[k:k + 8]} ({len(mine)} vs {len(tokens)})")
        r, per_pos = perplexity(path, tokens, add_bos, bos, a.ctx, False)
        r_fa, _ = perplexity(path, tokens, add_bos, bos, a.ctx, True)
        entry = {"model": path, "n_tokens": len(tokens), "add_bos": add_bos,
                 "tokens_match_lemma": bool(a.lemma), **r,
                 "ppl_flash_attn": r_fa["ppl"]}
        results.append(entry)
        print(f"{path}: {len(tokens)} tokens, {r['n_chunks']} chunks, PPL {r['ppl']:.4f} "
              f"+/- {r['ppl_stderr']:.5f} (flash attn: {r_fa['ppl']:.4f}) "
              f"running {r['running_ppl']}", file=sys.stderr)
        if a.dump:
            os.makedirs(a.dump, exist_ok=True)
            name = os.path.basename(path).rsplit(".", 1)[0]
            with open(os.path.join(a.dump, name + ".nll.json"), "w") as f:
                json.dump(per_pos, f)
    doc = {
        "source": f"llama-cpp-python {llama_cpp.__version__} (PyPI, built from source)",
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "method": "llama-perplexity's: chunks of ctx tokens (partial last dropped), BOS as "
                  "each chunk's first token when the vocabulary adds BOS, NLL of token j+1 "
                  "at positions j in [ctx/2, ctx-1); f16 K/V, flash attention off, "
                  "n_batch = ctx, 2 threads",
        "text": a.text,
        "ctx": a.ctx,
        "models": results,
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
