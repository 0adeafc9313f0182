#!/usr/bin/env bash
# bindings/node/test/symbols.sh ADDON: the addon uses node's libuv and
# exports nothing but its Node-API entry points.
#
# No libuv (nor zlib, protobuf-c: node exports its own zlib) among its
# NEEDED libraries, only glibc's; its libuv calls are undefined symbols, left
# for node's exported libuv; its dynamic symbol table defines only
# napi_register_module_v1 and node_api_module_get_api_version_v1 (both made
# by NAPI_MODULE_INIT) and holds no llhttp, zlib or protobuf-c name at all.
set -euo pipefail

addon=${1:?usage: symbols.sh ADDON}
failed=0

fail() {
  echo "symbols.sh: FAIL: $*" >&2
  failed=1
}

# Reads names on stdin; prints those that are not the Node-API entry points.
foreign() {
  grep -Evx 'napi_register_module_v1|node_api_module_get_api_version_v1' |
    grep -v '^$' || true
}
# Reads names on stdin; prints those of a library node has its own copy of.
private() {
  grep -E '^(llhttp_|deflate|inflate|crc32|adler32|zError|protobuf_c_)' || true
}

# The filters themselves must catch what they are there to catch.
[[ $(printf 'napi_register_module_v1\nuv_pprof_start\n' | foreign) == uv_pprof_start ]] ||
  fail "self-check: foreign() does not flag uv_pprof_start"
[[ $(printf 'uv_idle_init\nllhttp_init\ndeflate\n' | private | tr '\n' ' ') == "llhttp_init deflate " ]] ||
  fail "self-check: private() does not flag llhttp_init and deflate"

[[ -f $addon ]] || { fail "$addon not built"; exit 1; }

needed=$(readelf -d "$addon" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad=$(grep -Evx 'libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0' <<<"$needed" || true)
[[ -z $bad ]] || fail "NEEDED beyond glibc:" $bad

defined=$(nm -D --defined-only "$addon" | awk 'NF >= 3 { print $3 }' | sort -u)
bad=$(foreign <<<"$defined")
[[ -z $bad ]] || fail "exports more than the Node-API entry points:" $bad
grep -qx napi_register_module_v1 <<<"$defined" ||
  fail "napi_register_module_v1 is not exported"

undefined=$(nm -D --undefined-only "$addon" | awk '{ print $2 }' | sed 's/@.*//' | sort -u)
for f in uv_idle_init uv_tcp_init uv_poll_init; do
  grep -qx "$f" <<<"$undefined" || fail "$f is not left for node's libuv"
done
bad=$(private <<<"$defined
$undefined")
[[ -z $bad ]] || fail "names of node's own libraries in the dynamic table:" $bad

[[ $failed -eq 0 ]] || exit 1
echo "symbols.sh: ok: NEEDED" $needed "; exports" $defined
