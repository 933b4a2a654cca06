#!/usr/bin/env python3
"""bench_tokenize_peer.py — the Hugging Face `tokenizers` side of bench/bench_tokenize.c.

Encodes the corpus that bench_tokenize wrote with --dump-corpus PATH, cut into the same pieces
(--mode block: whole lines gathered up to 64 KiB a piece; --mode line: one piece per line, each
ending after its '\\n'), with Tokenizer.encode(piece, add_special_tokens=False) called once per
piece on one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false; encode_batch is not
used). Timing: one warm-up pass, then --runs passes; MB/s (1e6 bytes of UTF-8 input per second)
of the best pass, with the median and worst. Prints one JSON document.

Tokenizers (name = bench_tokenize's result it is compared with):
  bert_json     models/all-minilm-l6-v2/tokenizer.json (truncation and padding off, as
                tools/gen_tokenizer_goldens.py does)
  smollm2_json  tests/data/tokenizer/smollm2/tokenizer.json
  smollm2_gguf  the same file: it is the GGUF vocabulary's Hugging Face equivalent
  gemma3_gguf   only with --gemma: the GGUF's SentencePiece vocabulary rebuilt as a Hugging Face
                BPE by tools/gen_tokenizer_goldens.py (needs the `gguf` package; ~20 s to build)

With --ids DIR (bench_tokenize --dump-ids DIR), the ids of every piece are compared with
DIR/<name>.ids; "mismatched_pieces" must be 0 for the comparison to be fair.

Usage: python3 tools/bench_tokenize_peer.py --corpus PATH [--mode block|line] [--runs 3]
                                            [--ids DIR] [--gemma] [--only NAME]
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_BYTES = 65536
SMOL = "tests/data/tokenizer/smollm2/tokenizer.json"
BERT = "models/all-minilm-l6-v2/tokenizer.json"


def cut_pieces(data, block):
    """The same cut as bench_tokenize.c's cut_pieces: a list of (offset, length)."""
    out, start, i, n = [], 0, 0, len(data)
    while i < n:
        nl = data.find(b"\n", i)
        end = n if nl < 0 else nl + 1
        if block and i > start and end - start > BLOCK_BYTES:
            pass  # the line does not fit: the piece ends before it
        else:
            i = end
            if block and i < n:
                continue
        out.append((start, i - start))
        start = i
    return out


def read_ids(path, n_pieces):
    with open(path, "rb") as f:
        raw = f.read()
    res, pos = [], 0
    for _ in range(n_pieces):
        if pos + 4 > len(raw):
            return None
        (c,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        res.append(list(struct.unpack_from("<%di" % c, raw, pos)))
        pos += 4 * c
    return res if pos == len(raw) else None


def load(name, gemma):
    if name == "bert_json":
        if not os.path.exists(os.path.join(ROOT, BERT)):
            return None, BERT, "not installed (make models)"
        tok = Tokenizer.from_file(os.path.join(ROOT, BERT))
        tok.no_truncation()
        tok.no_padding()
        return tok, BERT, None
    if name in ("smollm2_json", "smollm2_gguf"):
        return Tokenizer.from_file(os.path.join(ROOT, SMOL)), SMOL, None
    if name == "gemma3_gguf":
        if not gemma:
            return None, None, "no tokenizer.json ships with it (run with --gemma to rebuild one)"
        if not os.path.exists(os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")):
            return None, None, "not installed (make models)"
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        try:
            import gen_tokenizer_goldens as g  # noqa: E402
            return g.gemma3_tokenizer(), "rebuilt from models/gemma-3-270m-q4_k_m.gguf", None
        except ImportError as ex:  # the gguf package is missing
            return None, None, "cannot rebuild the Hugging Face equivalent: %s" % ex
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--mode", choices=["block", "line"], default="block")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ids")
    ap.add_argument("--gemma", action="store_true")
    ap.add_argument("--only")
    a = ap.parse_args()
    os.chdir(ROOT)

    with open(a.corpus, "rb") as f:
        data = f.read()
    cuts = cut_pieces(data, a.mode == "block")
    pieces = [data[o:o + n].decode("utf-8") for o, n in cuts]
    mb = len(data) / 1e6

    results = []
    for name in ("smollm2_gguf", "gemma3_gguf", "bert_json", "smollm2_json"):
        if a.only and a.only != name:
            continue
        r = {"name": name}
        tok, src, note = load(name, a.gemma)
        r["file"] = src
        if tok is None:
            r.update(status="skipped", note=note)
            results.append(r)
            continue
        enc = tok.encode
        ids = [enc(p, add_special_tokens=False).ids for p in pieces]  # warm-up
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            for p in pieces:
                enc(p, add_special_tokens=False)
            times.append(time.perf_counter() - t0)
        times.sort()
        ntok = sum(len(x) for x in ids)
        r.update(status="ok", tokens=ntok, best_s=round(times[0], 4),
                 mb_s=round(mb / times[0], 2), mb_s_median=round(mb / times[len(times) // 2], 2),
                 mb_s_worst=round(mb / times[-1], 2), tokens_s=round(ntok / times[0]))
        if a.ids:
            path = os.path.join(a.ids, name + ".ids")
            theirs = read_ids(path, len(pieces)) if os.path.exists(path) else None
            if theirs is None:
                r["ids_check"] = "no or malformed " + path
            else:
                bad = [i for i, (x, y) in enumerate(zip(ids, theirs)) if x != y]
                r["mismatched_pieces"] = len(bad)
                if bad:
                    i = bad[0]
                    x, y = ids[i], theirs[i]
                    k = next((j for j in range(min(len(x), len(y))) if x[j] != y[j]),
                             min(len(x), len(y)))
                    r["first_mismatch"] = {"piece": i, "position": k, "hf": x[k:k + 5],
                                           "lemma": y[k:k + 5]}
        results.append(r)

    doc = {
        "benchmark": "tokenize_peer",
        "library": "tokenizers " + tokenizers.__version__,
        "python": sys.version.split()[0],
        "corpus": {"source": a.corpus, "bytes": len(data), "pieces": len(pieces),
                   "piece_mode": a.mode},
        "encode": "Tokenizer.encode per piece, add_special_tokens=False, 1 thread",
        "runs": a.runs,
        "results": results,
    }
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
