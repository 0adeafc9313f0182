#!/usr/bin/env bash
# Runs every libFuzzer target of test/fuzz for SECONDS each (default 20),
# one after the other, from its committed seeds (test/fuzz/corpus/<target>)
# and the corpus it grew in earlier runs (build-fuzz/corpus/<target>).
# Configures and builds build-fuzz/ (clang, -DUV_PPROF_FUZZ=ON) when needed.
# A crash, leak or timeout leaves its input in build-fuzz/fuzz-artifacts/,
# prints how to replay it, and makes the exit status 1.
#
#   bash scripts/fuzz.sh            # 20 s each, as scripts/test.sh does
#   bash scripts/fuzz.sh 3600       # an hour each
#   bash scripts/fuzz.sh 600 fuzz_http fuzz_heap   # only these
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
dir=build-fuzz
jobs=$(nproc 2>/dev/null || echo 2)

CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DUV_PPROF_FUZZ=ON -DUV_PPROF_WERROR=ON >/dev/null &&
  cmake --build "$dir" -j"$jobs" --target fuzzers >/dev/null || {
  echo "fuzz.sh: could not build the fuzzers in $dir" >&2
  exit 1
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in test/fuzz/fuzz_*.c; do
    targets+=("$(basename "$f" .c)")
  done
fi

# Freed memory filled: a use after free in a library that is not
# instrumented (libdw) then shows as garbage instead of passing unseen.
export ASAN_OPTIONS=${ASAN_OPTIONS:-max_free_fill_size=4096:free_fill_byte=165}
failed=0
mkdir -p "$dir/fuzz-artifacts"
for t in "${targets[@]}"; do
  corpus=$dir/corpus/$t
  mkdir -p "$corpus"
  log=$dir/fuzz-artifacts/$t.log
  start=$SECONDS
  "$dir/test/fuzz/$t" -max_total_time="$seconds" -timeout=25 \
    -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$dir/fuzz-artifacts/$t-" \
    "$corpus" "test/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [[ $rc -eq 0 ]]; then
    printf '  %-14s ok      %4ds  %s runs\n' "$t" $((SECONDS - start)) "${runs:-?}"
  else
    failed=1
    printf '  %-14s FAILED  %4ds\n' "$t" $((SECONDS - start))
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /'
    echo "    full log: $log"
    echo "    replay:   $dir/test/fuzz/$t <the artifact above>"
  fi
done
exit $failed
