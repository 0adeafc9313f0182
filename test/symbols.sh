#!/usr/bin/env bash
# test/symbols.sh BUILD_DIR: uv_pprof exports only its public API.
#
# The dynamic symbol table of libuv_pprof.so and the global symbols defined
# by libuv_pprof.a must all be uv_pprof_* (and not uv_pprof__* internals):
# Node exports its own llhttp, zlib and more, and a host would silently call
# its copy instead of ours (docs/INTERNALS.md). Every function declared in
# include/uv_pprof.h must be there, in both libraries.
set -euo pipefail

build=${1:?usage: symbols.sh BUILD_DIR}
header=$(dirname "$0")/../include/uv_pprof.h
so=$build/libuv_pprof.so
ar=$build/libuv_pprof.a
failed=0

fail() {
  echo "symbols.sh: FAIL: $*" >&2
  failed=1
}

# Reads symbol names on stdin; prints those outside the public namespace.
foreign() {
  grep -Ev '^uv_pprof_[a-z0-9]' | grep -v '^$' || true
  # (uv_pprof__x fails the first class: "_" is not [a-z0-9].)
}

# The filter itself must catch what it is there to catch.
[[ $(printf 'uv_pprof_start\nllhttp_init\nuv_pprof__buf_init\n' | foreign |
     tr '\n' ' ') == "llhttp_init uv_pprof__buf_init " ]] ||
  fail "self-check: the symbol filter does not flag llhttp_init"

[[ -f $so ]] || fail "$so not built"
[[ -f $ar ]] || fail "$ar not built"
[[ $failed -eq 0 ]] || exit 1

dynamic=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sort -u)
static=$(nm -g --defined-only -P "$ar" |
  awk 'NF >= 2 && $1 !~ /:$/ && $1 !~ /\]$/ { print $1 }' | sort -u)

bad=$(foreign <<<"$dynamic")
[[ -z $bad ]] || fail "libuv_pprof.so exports non-public symbols:" $bad
bad=$(foreign <<<"$static")
[[ -z $bad ]] || fail "libuv_pprof.a defines non-public global symbols:" $bad

# Every function of the public header is defined in both.
api=$(grep -oE 'UV_PPROF_EXTERN[^(]*\buv_pprof_[a-z0-9_]+ *\(' "$header" |
  grep -oE 'uv_pprof_[a-z0-9_]+' | sort -u)
[[ -n $api ]] || fail "no UV_PPROF_EXTERN functions found in $header"
for f in $api; do
  grep -qx "$f" <<<"$dynamic" || fail "libuv_pprof.so lacks $f"
  grep -qx "$f" <<<"$static" || fail "libuv_pprof.a lacks $f"
done

# Nothing beyond the header either: an export the header does not declare is
# an accident waiting to become API. The one exception is the versioned hook
# that src/track/track.h names for the libraries interposing uv_loop_close.
hooks=$(grep -oE '"uv_pprof_release_loop_v[0-9]+"' \
  "$(dirname "$0")/../src/track/track.h" | tr -d '"')
[[ -n $hooks ]] || fail "no uv_loop_close hook named in src/track/track.h"
for h in $hooks; do
  grep -qx "$h" <<<"$dynamic" || fail "libuv_pprof.so lacks $h"
done
for s in $dynamic; do
  grep -qx "$s" <<<"$api"$'\n'"$hooks" ||
    fail "libuv_pprof.so exports $s, not in the header"
done

[[ $failed -eq 0 ]] || exit 1
echo "symbols.sh: ok:" $api
