#!/usr/bin/env bash
# Installs the Debian 12 packages that building uv_pprof, its demo and its
# tests need, and only those that are missing. Quiet and quick when nothing is
# missing; uses sudo only when not run as root. Run by scripts/demo.sh and
# scripts/test.sh; safe to run any number of times.
set -euo pipefail

packages=(
  build-essential cmake pkg-config  # compiler, build
  clang-format                      # the house format (test/format.sh)
  clang libclang-rt-14-dev          # libFuzzer targets (scripts/fuzz.sh)
  libuv1-dev                        # the event loop we serve on
  libprotobuf-c-dev protobuf-c-compiler  # profile.proto -> C
  node-llhttp                       # llhttp sources, compiled into uv_pprof
  zlib1g-dev                        # gzip of profiles
  libjemalloc-dev libjemalloc2      # heap profiles
  libdw-dev libelf-dev              # symbolization, CPU stack unwinding
  libgoogle-perftools-dev           # gperftools' profiler: bench_cpu's baseline
  golang-go                         # go tool pprof, the client we must satisfy
  curl                              # the other client
  netcat-openbsd                    # nc -N: a client that half-closes
  graphviz                          # go tool pprof's graph view
  binutils                          # nm, objcopy (symbol checks, stripped copies)
  xz-utils                          # MiniDebugInfo made by the debug-file tests
  libdebuginfod1                    # debuginfod client: the tests show libdw would call it
  procps                            # ps, pgrep in the tests
  nodejs                            # the Node.js addon's tests (bindings/node)
  prometheus                        # /metrics scraped by a real Prometheus; promtool
  chromium                          # headless screenshots: index, timeline, pprof web UI, our UI
  firefox-esr                       # the built-in UI in a second browser (test/ui/)
  python3                           # the workflow tests (test/*.py)
  bsdextrautils                     # column, in docs/memory-profiling.md
  python3-uvloop                    # real libuv programs attached by uv-pprof
  lua5.1 lua-luv                    #   (test/attach.py): an asyncio service,
  neovim                            #   a luv script, nvim --headless
)
# Node's headers: Debian's nodejs has them in libnode-dev; a nodejs that
# ships them itself (NodeSource's) conflicts with that package.
[[ -f /usr/include/node/node_api.h ]] || packages+=(libnode-dev)
# npm installs the UI tests' pinned browser driver (test/ui/package-lock.json):
# Debian packages it apart from nodejs; a nodejs that ships it conflicts.
command -v npm >/dev/null || packages+=(npm)

# A package counts as present only when dpkg says "install ok installed".
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || {
    echo "setup.sh: missing packages (${missing[*]}) and not root; no sudo" >&2
    exit 1
  }
  sudo=(sudo)
fi

echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "setup.sh: done" >&2
