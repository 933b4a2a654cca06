#!/usr/bin/env python3
"""llamacpp_self_consistency.py — how far llama.cpp's own two evaluation paths are apart on a
GGUF file: the same tokens evaluated as one batch (the prompt path, n_ubatch 512) and one token
per batch (the decode path, n_ubatch 1), teacher-forced on the prompts and greedy continuations
of an expected file (tests/data/engine/*.json). Prints, over all continuation positions, the
largest and mean-of-largest logit difference and how often the two paths' argmax agree.

This is the noise floor any other runtime is compared against (docs/engine.md, "Exactness"):
on the quantized real models the two paths of the same llama.cpp build differ by whole
tenths of a logit, so token-identical greedy text over 64 tokens is a property of one build's
summation order, not of the model; on F32 conversions they agree to a few hundredths.

    /tmp/lcp/bin/python tools/llamacpp_self_consistency.py MODEL.gguf EXPECTED.json
(llama-cpp-python as in tools/llamacpp_perplexity.py; 2 threads, f16 K/V, flash attention off)
"""
import json
import sys

import numpy as np

from llama_cpp import Llama


def logits(path, toks, ubatch):
    llm = Llama(model_path=path, n_ctx=512, n_batch=512, n_ubatch=ubatch, n_threads=2,
                n_threads_batch=2, logits_all=True, flash_attn=False, verbose=False)
    out = []
    for t in toks:
        llm.reset()
        llm.eval(t)
        out.append(np.array(llm.scores[:len(t)], dtype=np.float32))
    return out


def main():
    if len(sys.argv) != 3:
        print("usage: llamacpp_self_consistency.py MODEL.gguf EXPECTED.json", file=sys.stderr)
        return 2
    path, exp = sys.argv[1], sys.argv[2]
    cases = json.load(open(exp))["cases"]
    toks = [c["prompt_ids"] + c["generated_ids"] for c in cases]
    a, b = logits(path, toks, 512), logits(path, toks, 1)
    worst, maxes, agree, steps = 0.0, [], 0, 0
    for c, la, lb in zip(cases, a, b):
        s = slice(len(c["prompt_ids"]) - 1, la.shape[0] - 1)
        d = np.abs(la[s] - lb[s]).max(axis=1)
        worst = max(worst, float(d.max()))
        maxes.extend(d.tolist())
        agree += int((la[s].argmax(1) == lb[s].argmax(1)).sum())
        steps += d.size
    print(json.dumps({"model": path.split("/")[-1], "positions": steps,
                      "max_abs_logit_diff": round(worst, 4),
                      "mean_of_row_max_diff": round(float(np.mean(maxes)), 4),
                      "argmax_agreement": round(agree / steps, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
