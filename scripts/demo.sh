#!/usr/bin/env bash
# Runs the demo host with pprof on: installs missing Debian packages, builds
# in build/ (RelWithDebInfo, as scripts/test.sh: optimized, with the debug
# info that gives profiles file:line) and starts build/uv-pprof-demo with
# UV_PPROF=1 (or the UV_PPROF you set). Arguments go to the demo: try --help, --leak-heap 1m,
# --leak-timers 5, --leak-conns 2.
#
# Heap profiles need jemalloc with profiling on: unless LD_PRELOAD or
# MALLOC_CONF is already set, the demo runs with jemalloc preloaded and
# MALLOC_CONF=prof:true,prof_accum:true so that its heap leak shows up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "demo.sh: building uv-pprof-demo in build/" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build build --target uv-pprof-demo -j"$(nproc)"; } >"$log" 2>&1
then
  cat "$log" >&2
  echo "demo.sh: the build failed" >&2
  exit 1
fi
rm -f "$log"
trap - EXIT

preload=()
jemalloc=/usr/lib/$(gcc -print-multiarch)/libjemalloc.so.2
if [[ -z ${LD_PRELOAD:-} && -z ${MALLOC_CONF:-} && -r $jemalloc ]]; then
  preload=(LD_PRELOAD="$jemalloc" MALLOC_CONF=prof:true,prof_accum:true)
fi
exec env UV_PPROF="${UV_PPROF:-1}" "${preload[@]}" build/uv-pprof-demo "$@"
