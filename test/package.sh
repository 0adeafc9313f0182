#!/usr/bin/env bash
# test/package.sh SRC_DIR BUILD_DIR: the installed package works for users.
#
# Installs BUILD_DIR into a temporary prefix and checks the files a user gets
# (header, libuv_pprof.so and .a, uv_pprof.pc, the CMake package). Then
# builds test/consumer/consumer.c against that install four ways — CMake with
# uv_pprof::uv_pprof and uv_pprof::uv_pprof_static, pkg-config shared and
# static — and runs each: it serves /debug/pprof/cmdline on port 0, fetches
# it from itself, stops, and checks uv_loop_close() == 0.
# With UV_PPROF_SANITIZE=ON (a sanitizer build) consumers are built with ASan
# and UBSan too, as an instrumented library requires.
set -euo pipefail

src=$(cd "${1:?usage: package.sh SRC_DIR BUILD_DIR}" && pwd)
build=$(cd "${2:?usage: package.sh SRC_DIR BUILD_DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uv_pprof_package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cc=${CC:-cc}

fail() {
  echo "package.sh: FAIL: $*" >&2
  exit 1
}

# run LOG CMD...: runs CMD quietly; on failure shows its output and fails.
run() {
  local log=$tmp/$1
  shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$*"; }
}

cache() { # the value of a variable in BUILD_DIR's CMake cache
  sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"
}

sanitize=()
[[ ${UV_PPROF_SANITIZE:-OFF} =~ ^(ON|1|TRUE|YES)$ ]] &&
  sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer)
cflags=(-std=gnu11 -Wall -Wextra -Werror "${sanitize[@]}")

# ---- install and the files it must produce ---------------------------------

run install.log cmake --install "$build" --prefix "$prefix"

libdir_rel=$(cache CMAKE_INSTALL_LIBDIR)
includedir_rel=$(cache CMAKE_INSTALL_INCLUDEDIR)
version=$(cache CMAKE_PROJECT_VERSION)
[[ -n $libdir_rel && -n $includedir_rel && -n $version ]] ||
  fail "cannot read install dirs / version from $build/CMakeCache.txt"
libdir=$prefix/$libdir_rel     # lib or lib/<multiarch>, per GNUInstallDirs
includedir=$prefix/$includedir_rel

for f in "$includedir/uv_pprof.h" "$libdir/libuv_pprof.a" \
         "$libdir/pkgconfig/uv_pprof.pc" \
         "$libdir/cmake/uv_pprof/uv_pprofConfig.cmake" \
         "$libdir/cmake/uv_pprof/uv_pprofConfigVersion.cmake"; do
  [[ -f $f ]] || fail "not installed: ${f#"$prefix"/}"
done
[[ -e $libdir/libuv_pprof.so ]] || fail "not installed: $libdir_rel/libuv_pprof.so"
soname=$(readelf -d "$libdir/libuv_pprof.so" |
  sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libuv_pprof.so.${version%%.*}" ]] ||
  fail "SONAME is '$soname', expected libuv_pprof.so.${version%%.*}"
[[ -e $libdir/$soname ]] || fail "not installed: $libdir_rel/$soname"

# The launcher and the library it preloads; run from the install, it finds
# that library beside itself and attaches it to a program.
[[ -x $prefix/bin/uv-pprof ]] || fail "not installed: bin/uv-pprof"
[[ -e $libdir/libuv_pprof_attach.so.${version%%.*} ]] ||
  fail "not installed: $libdir_rel/libuv_pprof_attach.so.${version%%.*}"
if [[ ${UV_PPROF_SANITIZE:-OFF} =~ ^(ON|1|TRUE|YES)$ ]]; then
  echo "package.sh: uv-pprof not run (sanitized: it preloads ASan code)"
else
  out=$("$prefix/bin/uv-pprof" --quiet --listen 127.0.0.1:0 -- /usr/bin/env)
  grep -q "^LD_PRELOAD=$libdir/libuv_pprof_attach.so" <<<"$out" ||
    fail "the installed uv-pprof does not preload the installed library: $out"
fi

# The package must not point back into the build or source tree, nor to the
# configured prefix: it has to work wherever it was installed.
if grep -rlF -e "$build" -e "$src" "$libdir/pkgconfig" "$libdir/cmake"; then
  fail "installed package files refer to the build or source tree"
fi

# ---- the public header alone, as C and as C++ ------------------------------

uv_cflags=$(pkg-config --cflags libuv)
# shellcheck disable=SC2086
printf '#include <uv_pprof.h>\n' |
  run header-c.log "$cc" -std=gnu99 -Wall -Wextra -Werror -fsyntax-only \
    -I"$includedir" $uv_cflags -x c -
if command -v c++ >/dev/null; then
  # shellcheck disable=SC2086
  printf '#include <uv_pprof.h>\nint main() { return uv_pprof_stop(0); }\n' |
    run header-cxx.log c++ -Wall -Wextra -Werror -fsyntax-only \
      -I"$includedir" $uv_cflags -x c++ -
fi

# ---- pkg-config ------------------------------------------------------------

export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --modversion uv_pprof) == "$version" ]] ||
  fail "pkg-config --modversion uv_pprof is not $version"
pc_includedir=$(pkg-config --variable=includedir uv_pprof)
[[ $(realpath -m "$pc_includedir") == "$(realpath "$includedir")" ]] ||
  fail "uv_pprof.pc: includedir is $pc_includedir, not $includedir" \
    "(CMakeLists.txt must set UV_PPROF_PC_UP before configure_file)"

read -r -a pc_shared <<<"$(pkg-config --cflags --libs uv_pprof)"
read -r -a pc_static <<<"$(pkg-config --static --cflags --libs uv_pprof)"
# A user who wants the archive although the .so sits next to it says so.
pc_static=("${pc_static[@]/#-luv_pprof/-l:libuv_pprof.a}")

run pc-shared.log "$cc" "${cflags[@]}" "$src/test/consumer/consumer.c" \
  -o "$tmp/pc-consumer" "${pc_shared[@]}" -Wl,-rpath,"$libdir"
run pc-static.log "$cc" "${cflags[@]}" "$src/test/consumer/consumer.c" \
  -o "$tmp/pc-consumer-static" "${pc_static[@]}"

# ---- CMake -----------------------------------------------------------------

run cmake-configure.log cmake -S "$src/test/consumer" -B "$tmp/cmake-build" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="${cflags[*]}" \
  -DCMAKE_EXE_LINKER_FLAGS="${sanitize[*]}"
run cmake-build.log cmake --build "$tmp/cmake-build"

# ---- run every consumer ----------------------------------------------------

consumers=("$tmp/cmake-build/consumer" "$tmp/cmake-build/consumer_static"
           "$tmp/pc-consumer" "$tmp/pc-consumer-static")
for exe in "${consumers[@]}"; do
  name=${exe#"$tmp"/}
  needed=$(readelf -d "$exe" | grep -c 'NEEDED.*libuv_pprof' || true)
  case $exe in
    *static)
      [[ $needed -eq 0 ]] || fail "$name links libuv_pprof.so, not the .a" ;;
    *)
      [[ $needed -eq 1 ]] || fail "$name does not link libuv_pprof.so"
      loaded=$(ldd "$exe" | awk '/libuv_pprof/ { print $3 }')
      [[ $(realpath "$loaded") == "$(realpath "$libdir/$soname")" ]] ||
        fail "$name loads '$loaded', not the installed $libdir_rel/$soname" ;;
  esac
  # Arguments with a space and an empty one: cmdline must keep them apart.
  if ! out=$(timeout -k 5 30 "$exe" "two words" "" last 2>&1); then
    echo "$out" >&2
    fail "$name failed (exit status above)"
  fi
  grep -q '^consumer: ok' <<<"$out" || fail "$name: $out"
  echo "package.sh: $name: ok"
done
echo "package.sh: ok (installed to $libdir_rel, version $version)"
