#!/usr/bin/env bash
# Runs every benchmark program of a build folder (build/bench/bench_*); each prints JSON.
set -euo pipefail
dir="${1:-build}"
for b in "$dir"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $b" >&2
  "$b"
done
