#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, builds in build/
# (RelWithDebInfo, warnings as errors) and runs the whole ctest suite, then
# builds again in build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
# (leak checking on) and runs the suite again (a sanitized build registers
# neither the source checks nor the tests of the uninstrumented demo,
# test/CMakeLists.txt; suppressions in test/lsan.supp), then the multi-threaded
# tests in a ThreadSanitizer build (build-tsan/), then every libFuzzer target
# for 20 s (scripts/fuzz.sh, build-fuzz/). Prints a summary; exits non-zero if
# any step failed. This is what CI runs (.ci/run). Tests labelled "soak"
# (minutes to an hour) are left out: `ctest --test-dir build -L soak` runs them.
#
#   UV_PPROF_TEST_JOBS=N      tests run in parallel (default 1)
#   UV_PPROF_TEST_ARGS=...    extra ctest arguments, e.g. "-R goroutine"
#   UV_PPROF_FUZZ_SECONDS=N   each fuzzer's run (default 20)
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=${UV_PPROF_TEST_JOBS:-1}
fuzz_seconds=${UV_PPROF_FUZZ_SECONDS:-20}
read -r -a extra <<<"${UV_PPROF_TEST_ARGS:-}"
build_jobs=$(nproc 2>/dev/null || echo 2)
summary=()
failed=0
start_all=$SECONDS

# step NAME COMMAND...: runs COMMAND, records its outcome and time.
step() {
  local name=$1 start=$SECONDS rc
  shift
  echo
  echo "=== $name"
  "$@"
  rc=$?
  if [[ $rc -eq 0 ]]; then
    summary+=("$(printf '  %-34s ok      %4ds' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '  %-34s FAILED  %4ds%s' "$name" \
      $((SECONDS - start)) "${step_detail:-}")")
    failed=1
  fi
  step_detail=
  return $rc
}

build() { # DIR CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DUV_PPROF_WERROR=ON "$@" &&
    cmake --build "$dir" -j"$build_jobs"
}

build_target() { # DIR TARGET CMAKE-ARGS...
  local dir=$1 target=$2
  shift 2
  cmake -S . -B "$dir" -DUV_PPROF_WERROR=ON "$@" &&
    cmake --build "$dir" -j"$build_jobs" --target "$target"
}

run_suite() { # DIR
  local dir=$1 rc list
  ctest --test-dir "$dir" --output-on-failure --timeout 600 -j"$jobs" -LE soak \
    "${extra[@]}"
  rc=$?
  list=$dir/Testing/Temporary/LastTestsFailed.log
  if [[ $rc -ne 0 && -s $list ]]; then
    step_detail=" ($(wc -l <"$list") failed: $(cut -d: -f2 "$list" |
      tr '\n' ' ' | sed 's/ $//'))"
  fi
  return $rc
}

run_sanitized_suite() { # DIR
  local ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  local UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  local LSAN_OPTIONS=suppressions=$PWD/test/lsan.supp
  export ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
  run_suite "$1"
}

run_tsan_suite() { # DIR
  local TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  TSAN_OPTIONS+=:suppressions=$PWD/test/tsan.supp
  export TSAN_OPTIONS
  local extra=(-L tsan)
  ctest --test-dir "$1" --output-on-failure --timeout 600 -j"$jobs" \
    "${extra[@]}"
}

skip() { # NAME WHY
  summary+=("$(printf '  %-34s SKIPPED (%s)' "$1" "$2")")
  failed=1
}

step "setup (Debian packages)" bash scripts/setup.sh || {
  printf '%s\n' "${summary[@]}"
  exit 1
}

if step "build (RelWithDebInfo)" build build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DUV_PPROF_SANITIZE=OFF; then
  step "tests (RelWithDebInfo)" run_suite build
else
  skip "tests (RelWithDebInfo)" "build failed"
fi

if step "build (ASan + UBSan)" build build-asan \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUV_PPROF_SANITIZE=ON; then
  step "tests (ASan + UBSan)" run_sanitized_suite build-asan
else
  skip "tests (ASan + UBSan)" "build failed"
fi

# ThreadSanitizer: the multi-threaded tests (ctest label "tsan"), in a tree
# that builds only the test binary.
if step "build (TSan)" build_target build-tsan uv_pprof_tests \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUV_PPROF_TSAN=ON -DUV_PPROF_NODE=OFF; then
  step "tests (TSan)" run_tsan_suite build-tsan
else
  skip "tests (TSan)" "build failed"
fi

# libFuzzer targets, each for UV_PPROF_FUZZ_SECONDS (20 by default; it
# builds build-fuzz/ with clang itself).
step "fuzzers (${fuzz_seconds} s each)" bash scripts/fuzz.sh "$fuzz_seconds"

echo
echo "=== summary ($((SECONDS - start_all)) s)"
printf '%s\n' "${summary[@]}"
if [[ $failed -ne 0 ]]; then
  echo "FAILED"
  exit 1
fi
echo "all passed"
