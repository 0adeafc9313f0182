#!/usr/bin/env bash
# bindings/node/test/install.sh BUILD_DIR: the installed uv-pprof package
# works. Installs BUILD_DIR into a temporary prefix; the package must be in
# <prefix>/lib/node_modules/uv-pprof with its addon, and node, finding it
# through NODE_PATH, must serve from it with start() and from UV_PPROF with
# -r uv-pprof/register, then exit by itself.
set -euo pipefail

build=$(cd "${1:?usage: install.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uv_pprof_node_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "install.sh: FAIL: $*" >&2
  exit 1
}

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }
pkg=$tmp/prefix/lib/node_modules/uv-pprof
for f in package.json index.js index.d.ts register.js uv_pprof.node; do
  [[ -f $pkg/$f ]] || fail "not installed: lib/node_modules/uv-pprof/$f"
done

export NODE_PATH=$tmp/prefix/lib/node_modules
cd "$tmp"
# Each script fetches /debug/pprof/cmdline from itself and prints its status.
fetch='const http = require("http");
function fetch(url) {
  http.get(url.replace("localhost", "127.0.0.1") + "cmdline", { agent: false },
           (res) => { res.resume(); console.log("status=" + res.statusCode); });
}'
out=$(timeout 60 node -e "$fetch
const pprof = require('uv-pprof');
if (require.resolve('uv-pprof') !== '$pkg/index.js') throw new Error(require.resolve('uv-pprof'));
fetch(pprof.start({ port: 0, quiet: true }));") || fail "start(): node exited $?"
[[ $out == status=200 ]] || fail "start(): $out"
out=$(UV_PPROF=127.0.0.1:0 timeout 60 node -r uv-pprof/register -e "$fetch
fetch(require('uv-pprof').url());" 2>/dev/null) || fail "-r register: node exited $?"
[[ $out == status=200 ]] || fail "-r register: $out"
echo "install.sh: ok: $pkg"
