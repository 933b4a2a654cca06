#!/usr/bin/env bash
# Tokenizer encoding throughput, lemma beside Hugging Face `tokenizers`, in one invocation.
#
#   bench/run_tokenize.sh [BUILD_DIR] [bench_tokenize options...]
#
# BUILD_DIR (default build) holds bench/bench_tokenize (make BUILD_DIR/bench/bench_tokenize).
# Options go to both sides where they apply: --mode block|line, --runs N, --corpus FILE,
# --size-mb N (C side only; the peer encodes the corpus the C side dumps). Set NO_GEMMA=1 to
# skip rebuilding Gemma 3's Hugging Face equivalent (needs the `gguf` package, ~20 s).
# Runs from the repository root. Prints one JSON document: per tokenizer lemma MB/s, HF MB/s,
# ratio (lemma / HF) and the count of pieces whose ids differ (must be 0).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
bin="$build/bench/bench_tokenize"
[ -x "$bin" ] || { echo "no $bin (make BUILD=$build $bin)" >&2; exit 1; }
mode=block runs=3
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --mode) mode=${args[i+1]} ;;
    --runs) runs=${args[i+1]} ;;
  esac
done
tmp=$(mktemp -d /tmp/run_tokenize.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
gemma=(--gemma)
[ "${NO_GEMMA:-0}" = 1 ] && gemma=()
echo "== lemma: $bin $*" >&2
"$bin" "$@" --dump-corpus "$tmp/corpus.txt" --dump-ids "$tmp" > "$tmp/lemma.json"
echo "== Hugging Face tokenizers" >&2
python3 tools/bench_tokenize_peer.py --corpus "$tmp/corpus.txt" --mode "$mode" --runs "$runs" \
  --ids "$tmp" "${gemma[@]}" > "$tmp/hf.json"
python3 - "$tmp/lemma.json" "$tmp/hf.json" <<'PY'
import json, sys
lm, hf = (json.load(open(p)) for p in sys.argv[1:3])
peer = {r["name"]: r for r in hf["results"]}
rows = []
for r in lm["results"]:
    p = peer.get(r["name"], {})
    row = {"name": r["name"], "model": r.get("model"), "lemma_file": r.get("file"),
           "hf_file": p.get("file")}
    if r.get("status") == "ok":
        row.update(lemma_mb_s=r["mb_s"], lemma_mb_s_median=r["mb_s_median"],
                   lemma_tokens_s=r["tokens_s"], tokens=r["tokens"])
    else:
        row["lemma_note"] = r.get("note")
    if p.get("status") == "ok":
        row.update(hf_mb_s=p["mb_s"], hf_mb_s_median=p["mb_s_median"], hf_tokens_s=p["tokens_s"],
                   mismatched_pieces=p.get("mismatched_pieces", p.get("ids_check")))
    else:
        row["hf_note"] = p.get("note", "no Hugging Face equivalent")
    if "lemma_mb_s" in row and "hf_mb_s" in row:
        row["ratio"] = round(row["lemma_mb_s"] / row["hf_mb_s"], 2)
    rows.append(row)
doc = {"benchmark": "tokenize_side_by_side", "corpus": lm["corpus"], "runs": lm["runs"],
       "lemma": lm["encode"], "hf": hf["encode"] + " (" + hf["library"] + ", Python " +
       hf["python"] + ")", "results": rows}
json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
print()
PY
