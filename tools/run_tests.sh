#!/usr/bin/env bash
# Runs every test program of the given build folders (build/tests/test_*) and prints the
# closing line "N passed, N failed[, N skipped]". Exit status: 0 iff nothing failed.
set -u
passed=0 failed=0 skipped=0 broken=()
for dir in "$@"; do
  for t in "$dir"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    out=$(LM_TEST_BUILD="$dir" "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    res=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -z "$res" ]; then
      echo "  (no RESULT line: exit $rc — counted as one failure)"
      failed=$((failed + 1)); broken+=("$t"); continue
    fi
    read -r _ p f s <<< "$res"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then failed=$((failed + 1)); broken+=("$t"); fi
  done
done
[ ${#broken[@]} -gt 0 ] && echo "broken: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
