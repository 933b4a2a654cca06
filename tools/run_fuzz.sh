#!/usr/bin/env bash
# Builds every fuzz/fuzz_<name>.c as a libFuzzer target (clang, ASan+UBSan) and runs each for
# FUZZ_SECONDS, starting from the committed seeds in fuzz/corpus/<name>/ (new inputs go to
# fuzz/corpus-run/<name>/, git-ignored). A crash, leak, timeout or OOM fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-clang}"
SECS="${FUZZ_SECONDS:-60}"
# the tokenizer target encodes with a real vocabulary when it can find one
export LM_FUZZ_VOCAB="${LM_FUZZ_VOCAB:-${LM_SHARED:-../shared}/testdata/vocab/ggml-vocab-gpt-2.gguf.gz}"
SAN='-fsanitize=address,undefined -fno-sanitize-recover=all'
make --no-print-directory BUILD=build-fuzz CC="$CLANG" OPT=-O1 \
  SAN="$SAN -fsanitize=fuzzer-no-link -DLM_FUZZING" lib >/dev/null
status=0
for src in fuzz/fuzz_*.c; do
  [ -f "$src" ] || continue
  name=$(basename "$src" .c)
  bin=build-fuzz/fuzz/$name
  mkdir -p build-fuzz/fuzz "fuzz/corpus-run/$name" "fuzz/corpus/$name"
  $CLANG -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc $SAN -fsanitize=fuzzer "$src" \
    build-fuzz/liblemma.a -o "$bin" -ljansson -lpcre2-8 -lutf8proc -lcrypto -lsqlite3 -lxxhash -lm -lpthread
  dict=""; [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
  echo "== $name: ${SECS}s"
  if ! "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
       $dict "fuzz/corpus-run/$name" "fuzz/corpus/$name" > "build-fuzz/$name.log" 2>&1; then
    echo "FAIL $name (see build-fuzz/$name.log)"; tail -n 40 "build-fuzz/$name.log"; status=1
  else
    echo "ok   $name ($(grep -c . <(ls "fuzz/corpus-run/$name")) corpus entries)"
  fi
done
exit $status
