#!/usr/bin/env bash
# Polls a uv_pprof process and prints one CSV row of its memory figures per
# interval, to stdout and to mem-YYYYMMDD-HHMMSS.log in the current directory:
#
#   time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb
#
# The figures come from the process's own endpoints (curl only):
# /debug/pprof/heap?debug=1 (the "# HeapAlloc", "# HeapInuse" and "# RSS"
# lines of its memory statistics) and /debug/pprof/goroutine?debug=1 ("goroutine
# profile: total N": live libuv handles). Run it with --help for the usage.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: mem-monitor.sh [PORT [INTERVAL]]
       mem-monitor.sh --help

Every INTERVAL seconds, reads the memory statistics and the live handle count
of the uv_pprof process listening on PORT and prints one CSV row, to stdout
and to mem-YYYYMMDD-HHMMSS.log in the current directory:

  time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb

  time              ISO 8601 local time with its UTC offset
  heap_alloc_bytes  HeapAlloc: bytes in live allocations (jemalloc's
                    stats.allocated; glibc's in-use bytes without jemalloc)
  heap_inuse_bytes  HeapInuse: bytes in active pages (stats.active)
  goroutines        live libuv handles of every registered loop
  rss_mb            resident set size, MiB (2 decimals)

  PORT      the uv_pprof port (default 6060), or HOST:PORT (default host
            127.0.0.1)
  INTERVAL  whole seconds between rows (default 60)

While the target does not answer (down, restarting) no row is written; one
line on stderr says so, and another when it answers again. UV_PPROF_TOKEN, when
set, is sent as "Authorization: Bearer <token>". Stop with Ctrl-C (SIGINT) or
SIGTERM: exits 0 with every row written.
EOF
}

die_usage() {
  echo "mem-monitor.sh: $1" >&2
  usage >&2
  exit 2
}

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
esac
[[ $# -le 2 ]] || die_usage "too many arguments"
target=${1:-6060}
interval=${2:-60}

host=127.0.0.1
port=$target
if [[ $target == *:* ]]; then
  host=${target%:*}
  port=${target##*:}
  [[ -n $host ]] || die_usage "HOST:PORT needs a host, got '$target'"
fi
if [[ ! $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  die_usage "PORT must be 1-65535 or HOST:PORT, got '$target'"
fi
port=$((10#$port))
if [[ ! $interval =~ ^[0-9]{1,6}$ ]] || ((10#$interval < 1)); then
  die_usage "INTERVAL must be a whole number of seconds >= 1, got '$interval'"
fi
interval=$((10#$interval))

base="http://$host:$port/debug/pprof"
log=mem-$(date +%Y%m%d-%H%M%S).log
if ! : >>"$log"; then
  echo "mem-monitor.sh: cannot write $log in $(pwd)" >&2
  exit 1
fi
tmp=$(mktemp -d) || exit 1
child=

finish() {
  [[ -n $child ]] && kill "$child" 2>/dev/null
  rm -rf "$tmp"
  exit 0
}
trap finish INT TERM
trap 'rm -rf "$tmp"' EXIT

curl_args=(-sS --fail --connect-timeout 3 --max-time 30)
if [[ -n ${UV_PPROF_TOKEN:-} ]]; then
  # From a file, so that the token does not show in ps.
  (umask 077 && printf 'Authorization: Bearer %s\n' "$UV_PPROF_TOKEN" \
    >"$tmp/auth")
  curl_args+=(-H "@$tmp/auth")
fi

# Runs a command in the background and waits for it, so that a signal is
# handled at once rather than after the command. Returns its status.
run() {
  "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=
  return $rc
}

# fetch PATH FILE: GETs PATH into FILE; curl's error goes to $tmp/err.
fetch() {
  run curl "${curl_args[@]}" -o "$2" "$base/$1" 2>"$tmp/err"
}

# Prints the CSV fields after `time` from the two answers, or fails when a
# figure is missing.
parse() {
  awk '
    FNR == 1 && FILENAME ~ /goroutine$/ && /^goroutine profile: total [0-9]+$/ {
      g = $4
    }
    FILENAME ~ /heap$/ && $1 == "#" && $3 == "=" && $4 ~ /^[0-9]+$/ {
      if ($2 == "HeapAlloc") alloc = $4
      else if ($2 == "HeapInuse") inuse = $4
      else if ($2 == "RSS") rss = $4
    }
    END {
      if (alloc == "" || inuse == "" || g == "" || rss == "") exit 1
      printf "%s,%s,%s,%.2f\n", alloc, inuse, g, rss / 1048576
    }' "$tmp/heap" "$tmp/goroutine"
}

emit() {
  printf '%s\n' "$1"
  printf '%s\n' "$1" >>"$log"
}

emit "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb"
echo "mem-monitor.sh: $base every ${interval}s, logging to $log" >&2

state=up # what was last said on stderr: up (nothing said yet, or back) or down
next=$(date +%s)
while :; do
  stamp=$(date +%Y-%m-%dT%H:%M:%S%:z)
  why=
  if ! fetch 'heap?debug=1' "$tmp/heap" ||
     ! fetch 'goroutine?debug=1' "$tmp/goroutine"; then
    why=$(head -c 300 "$tmp/err" | tr '\n' ' ')
  elif ! fields=$(parse); then
    why="the answer has no HeapAlloc, HeapInuse, RSS or goroutine total (is it uv_pprof?)"
  fi
  if [[ -z $why ]]; then
    emit "$stamp,$fields"
    if [[ $state == down ]]; then
      echo "mem-monitor.sh: $stamp: $base answers again" >&2
      state=up
    fi
  elif [[ $state == up ]]; then
    echo "mem-monitor.sh: $stamp: no figures from $base: ${why% }; retrying every ${interval}s" >&2
    state=down
  fi

  # The next row is due a whole number of intervals after the first, so that
  # slow answers do not make rows drift.
  now=$(date +%s)
  next=$((next + interval))
  ((next <= now)) && next=$((now + interval - (now - next) % interval))
  run sleep $((next - now))
done
