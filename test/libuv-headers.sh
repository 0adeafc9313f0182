#!/usr/bin/env bash
# Compiles every source of the library against another libuv's headers
# (default: the 1.46+ headers Node ships in /usr/include/node), so that the
# private-layout code of src/libuv_internals.c is checked against both
# layouts of the handle queue (void*[2] before 1.46, struct uv__queue since).
#   libuv-headers.sh CC SOURCE_DIR BUILD_DIR LLHTTP_INCLUDE_DIR [UV_INCLUDE]
set -euo pipefail
cc=$1 src=$2 build=$3 llhttp=$4 uv=${5:-/usr/include/node}
[[ -f $uv/uv.h ]] || { echo "no uv.h in $uv" >&2; exit 1; }
version=$(awk '/define UV_VERSION_(MAJOR|MINOR)/ {printf "%s%s", sep, $3; sep="."}' \
  "$uv/uv/version.h")
mapfile -t files < <(cd "$src" && ls src/*.c src/*/*.c)
for f in "${files[@]}"; do
  "$cc" -std=c11 -D_GNU_SOURCE -fsyntax-only -Wall -Wextra -Werror \
    -Wno-unused-parameter -I"$uv" -I"$src/include" -I"$src/src" \
    -DUV_PPROF_LIBDIR='"lib"' -DUV_PPROF_ATTACH_SONAME='"a.so"' \
    -DUV_PPROF_TRACK_SONAME='"t.so"' \
    -I"$build/proto" -I"$llhttp" $(pkg-config --cflags libdw) "$src/$f"
done
echo "${#files[@]} sources compile against libuv $version's headers ($uv)"
