#!/usr/bin/env python3
"""The one-hour soak (ctest label "soak", outside the default suite).

usage: soak.py DEMO JEMALLOC_SO [SECONDS, default 3600]

uv-pprof-demo leaks heap (16 KiB/s from leak_heap_bytes, sampled every
128 KiB) and timers (one a second) on jemalloc with profiling on; once both
leaks show in the profiles (as scrapers come to a program that has run a
while), at once: Grafana Alloy's and
Parca's default scrape sets run round after round (scrapers.py's sets and
checks), /metrics is read every 5 s, and `go tool pprof -top` reads the heap
profile every minute. Every 30 s the soak notes the demo's RSS, its open
descriptors, what it has leaked and the p99 lateness of its 20 ms work timer
(its status line). It passes when nothing failed, uv_pprof's own memory (RSS
less what the demo leaked on purpose) grew by at most 8 MiB after the
warm-up (the first sixth), the descriptors did not grow (the quietest
sample of the last sixth against the second's, give or take the two
connections a scrape in flight holds), and the timer's
p99 lateness in the last sixth is within 1 ms of the second sixth's. It
prints those figures.

What the demo leaked on purpose is what it says (the usable size of its
heap blocks, the number of its timers times a timer's block, read from the
heap profile) plus what jemalloc's sampling adds to those leaks: a sampled
block smaller than jemalloc's smallest large class (16 KiB) is given one
of that class, so each sampled 1.6 KiB block of leak_heap_bytes holds
16 KiB (one sample per 128 KiB leaked: ~11% more, ~6 MiB an hour, which
the soak used to count as uv_pprof's). The soak reads the number of
sampled leak blocks from heap?debug=1's raw counts. uv_pprof's own memory
that grows with the host's handles (the walk's age table, the tracker's
records, the goroutine profile's buffers: a few hundred bytes a handle)
stays counted as uv_pprof's.

The symbolizer reads an object's debug information (libdw: for Debian's
compressed debug files, the sections decompressed: ~4 MiB for libm) and
opens its files the first time a profile has an address in it, and keeps
them while the worker thread lives, which these scrapes never let idle
out. Which objects a CPU profile first lands in late is chance (libm after
6 and after 8 minutes, libgcc_s after 9, in two 20-minute runs): a step of
a bounded cache, not growth. So before the scrapes start the soak asks
/debug/pprof/symbol about every function of every object the demo maps,
and the descriptors are counted in two kinds: regular files, each of
which must be a mapped object's or a debug file, open at most three times
(the symbolizer's and the unwinder's libdw sessions, the unwinder's own
descriptor of the executable; the unwinder still opens an object the first
time a stack passes through it), and everything else (sockets, pipes,
eventfds, memfds, /proc files), which must not grow.
"""
import collections
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scrapers  # noqa: E402  (its scrape sets, scrape() and checks)
from workflow import (Failed, expect, free_port, http_get, run_main,  # noqa
                      stop, wait_for)

MIB = 1 << 20
OWN_GROWTH_MAX = 8 * MIB
LATE_DRIFT_MAX_US = 1000
# Scrapes in flight hold connections (a CPU window nearly always): the
# quietest sample of a stretch may still have a couple open. A descriptor
# leak of one per scrape would add hundreds.
FDS_SLACK = 2
# libdw's descriptors of one object's file: the symbolizer's session, the
# unwinder's, and the unwinder's own of the main executable.
FILE_FDS_MAX = 3
DEBUG_ROOT = "/usr/lib/debug"
SYMBOL_CHUNK = 16384  # addresses per /debug/pprof/symbol request (cap 65536)
# jemalloc 5 gives a sampled allocation smaller than its smallest large size
# class (4 pages) a block of that class: what a sampled leak really costs.
JE_LARGE_MIN = 4 * 4096
LEAKERS = ("leak_heap_bytes", "leak_timer_start")  # the demo's leaking frames


class Soak:
    def __init__(self, base, end):
        self.base, self.end = base, end
        self.lock = threading.Lock()
        self.errors = []
        self.counts = {"scrapes": 0, "metrics": 0, "pprof": 0}

    def error(self, what):
        with self.lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {what}")

    def count(self, what):
        with self.lock:
            self.counts[what] += 1

    def running(self):
        return time.monotonic() < self.end


def scraper_loop(soak, name):
    interval, _, targets = scrapers.SCRAPERS[name]
    t0 = time.monotonic()
    rnd = 0
    while soak.running():
        threads = []
        for path, timeout in targets:
            res = scrapers.Result(name, rnd, path, timeout)

            def one(res=res):
                scrapers.scrape(soak.base, res)
                if res.error:
                    soak.error(f"{res.where()}: {res.error}")
                else:
                    soak.count("scrapes")
            t = threading.Thread(target=one)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        rnd += 1
        delay = t0 + rnd * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def metrics_loop(soak):
    while soak.running():
        try:
            with urllib.request.urlopen(soak.base + "/metrics", timeout=10) as r:
                body = r.read().decode()
            expect(r.status == 200 and "uv_pprof_" in body, "metrics body")
            soak.count("metrics")
        except (OSError, Failed) as e:
            soak.error(f"/metrics: {e}")
        time.sleep(5)


def pprof_loop(soak, tmp):
    env = dict(os.environ, HOME=tmp, PPROF_TMPDIR=tmp)
    while soak.running():
        r = subprocess.run(["go", "tool", "pprof", "-top",
                            soak.base + "/debug/pprof/heap"],
                           capture_output=True, text=True, env=env, timeout=120)
        if r.returncode != 0 or "leak_heap_bytes" not in r.stdout:
            soak.error(f"go tool pprof: exit {r.returncode}: {r.stderr[-300:]}")
        else:
            soak.count("pprof")
        time.sleep(60)


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def objects(pid):
    """{path: address of its mapping at file offset 0} of the files pid maps
    executable (/proc/PID/maps)."""
    first, code = {}, set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            p = line.split(maxsplit=5)
            if len(p) < 6 or not p[5].startswith("/"):
                continue
            path = p[5].rstrip("\n")
            start = int(p[0].split("-")[0], 16)
            if int(p[2], 16) == 0:
                first[path] = min(start, first.get(path, start))
            if "x" in p[1]:
                code.add(path)
    return {p: first[p] for p in code if p in first and os.path.isfile(p)}


def fds(pid, mapped):
    """(descriptors that are not a regular file, {regular file: count}).
    Every file must be one of mapped (the objects) or a debug file; /proc's
    (read while a profile is made) count with the others."""
    others, files = 0, collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        if (link.startswith("/") and not link.startswith("/proc/") and
                os.path.isfile(link)):
            files[link] += 1
            expect(link in mapped or link.startswith(DEBUG_ROOT + "/"),
                   f"descriptor {fd} on {link}, not an object's file")
        else:
            others += 1
    return others, files


def load_bias(path, base):
    """What to add to path's ELF addresses for where it is loaded at base
    (its mapping at file offset 0); None when it is not a 64-bit ELF."""
    with open(path, "rb") as f:
        h = f.read(64)
        if len(h) < 64 or h[:4] != b"\x7fELF" or h[4] != 2:
            return None
        e_type, = struct.unpack_from("<H", h, 16)
        phoff, = struct.unpack_from("<Q", h, 32)
        phentsize, phnum = struct.unpack_from("<HH", h, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    if e_type == 2:  # ET_EXEC: addresses are absolute
        return 0
    loads = [struct.unpack_from("<Q", ph, i * phentsize + 16)[0]
             for i in range(phnum)
             if struct.unpack_from("<I", ph, i * phentsize)[0] == 1]
    return base - (min(loads) & ~0xFFF) if loads else None


def functions(path):
    """The code symbols' ELF addresses of path: its .symtab, else its debug
    file's (by build ID), else its .dynsym."""
    debug = None
    r = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    if m:
        debug = f"{DEBUG_ROOT}/.build-id/{m.group(1)[:2]}/{m.group(1)[2:]}.debug"
    for args in (["nm", "--defined-only", path],
                 ["nm", "--defined-only", debug] if debug and
                 os.path.isfile(debug) else None,
                 ["nm", "-D", "--defined-only", path]):
        if args is None:
            continue
        out = subprocess.run(args, capture_output=True, text=True).stdout
        addrs = {int(p[0], 16) for p in map(str.split, out.splitlines())
                 if len(p) == 3 and p[1] in "Tt" and int(p[0], 16) != 0}
        if addrs:
            return addrs
    return set()


def leak_overhead(base):
    """(bytes jemalloc's sampling adds to what the demo leaks, bytes of one
    leaked timer), from the raw counts of heap?debug=1's records whose leaf
    is one of LEAKERS: each sampled block below JE_LARGE_MIN holds that much.
    """
    _, text = http_get(base + "/debug/pprof/heap?debug=1")
    extra, timer = 0, 0
    # A record: "N: BYTES [N: BYTES] @ addresses", then its "#" frame lines.
    for m in re.finditer(r"^(\d+): (\d+) \[\d+: \d+\] @.*\n((?:#.*\n?)*)",
                         text, re.M):
        frames = re.findall(r"^#\t0x[0-9a-f]+\t(\w+)\+", m.group(3), re.M)
        if not frames or frames[0] not in LEAKERS:
            continue
        n, size = int(m.group(1)), int(m.group(2))
        if n > 0 and size < n * JE_LARGE_MIN:
            extra += n * JE_LARGE_MIN - size
        if n > 0 and frames[0] == "leak_timer_start":
            timer = size // n
    return extra, timer


def warm_symbolizer(base, pid):
    """Asks /debug/pprof/symbol about every function of every object the
    demo maps, so that the symbolizer has read each one's debug information
    (see the docstring). The number of addresses asked."""
    addrs = []
    for path, start in objects(pid).items():
        bias = load_bias(path, start)
        if bias is not None:
            addrs += [bias + a for a in functions(path)]
    for i in range(0, len(addrs), SYMBOL_CHUNK):
        body = "+".join(hex(a) for a in addrs[i:i + SYMBOL_CHUNK]).encode()
        req = urllib.request.Request(base + "/debug/pprof/symbol", data=body,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read().decode()
        expect(r.status == 200 and text.startswith("num_symbols: 1\n") and
               text.count("\n") > 1, "/debug/pprof/symbol's answer")
    return len(addrs)


def main():
    demo, jemalloc = sys.argv[1:3]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 3600
    port = free_port()
    env = dict(os.environ, UV_PPROF=f"127.0.0.1:{port}", LD_PRELOAD=jemalloc,
               MALLOC_CONF="prof:true,prof_accum:true,lg_prof_sample:17")
    env.pop("UV_PPROF_TOKEN", None)
    proc = subprocess.Popen([demo, "--echo-port", "0", "--leak-heap", "16k",
                             "--leak-timers", "1"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    status = {"leaked": 0, "timers": 0, "late": []}  # its status lines

    def read_status():
        for line in proc.stdout:
            m = re.search(r"leaked: (\d+) KiB heap, (\d+) timers.*"
                          r"late p99 (\d+) us", line)
            if m:
                status["leaked"] = int(m.group(1)) * 1024
                status["timers"] = int(m.group(2))
                status["late"].append((time.monotonic(), int(m.group(3))))
    threading.Thread(target=read_status, daemon=True).start()
    # (t, RSS, leaked on purpose, descriptors but objects' files, objects'
    # files open)
    samples = []
    try:
        banner = proc.stderr.readline()
        expect(banner == f"pprof enabled on http://localhost:{port}/debug/pprof/\n",
               f"demo banner {banner!r}")
        base = f"http://127.0.0.1:{port}"
        for path, name in (("/debug/pprof/heap?debug=1", "leak_heap_bytes"),
                           ("/debug/pprof/goroutine?debug=1",
                            "leaked_timer_cb")):
            wait_for(lambda: name in http_get(base + path)[1],
                     f"{name} in {path}", timeout=120)
        warmed = warm_symbolizer(base, proc.pid)
        t0 = time.monotonic()
        soak = Soak(base, t0 + seconds)
        with tempfile.TemporaryDirectory() as tmp:
            threads = [threading.Thread(target=scraper_loop, args=(soak, s))
                       for s in scrapers.SCRAPERS]
            threads.append(threading.Thread(target=metrics_loop, args=(soak,)))
            threads.append(threading.Thread(target=pprof_loop, args=(soak, tmp)))
            for t in threads:
                t.start()
            while soak.running():
                expect(proc.poll() is None, "the demo exited")
                others, files = fds(proc.pid, objects(proc.pid))
                expect(max(files.values(), default=0) <= FILE_FDS_MAX,
                       f"more than {FILE_FDS_MAX} descriptors on one file: "
                       f"{files.most_common(3)}")
                extra, timer = leak_overhead(base)
                leaked = status["leaked"] + status["timers"] * timer + extra
                samples.append((time.monotonic() - t0, rss(proc.pid),
                                leaked, others, len(files)))
                sampling = extra
                time.sleep(min(30, max(1, soak.end - time.monotonic())))
            for t in threads:
                t.join()
    finally:
        rc = stop(proc)
    expect(rc == 0, f"the demo's exit status after SIGTERM: {rc}")

    # The figures.
    warm = seconds / 6
    after = [s for s in samples if s[0] >= warm]
    expect(len(after) >= 2, "too few samples after the warm-up")
    own = [(t, r - leaked) for t, r, leaked, _, _ in after]
    growth = own[-1][1] - min(o for _, o in own)
    late = [(t - t0, v) for t, v in status["late"]]
    second = [v for t, v in late if warm <= t < 2 * warm]
    last = [v for t, v in late if t >= seconds - warm]
    fds_first = min(f for t, _, _, f, _ in after if t < 2 * warm)
    fds_last = min(f for t, _, _, f, _ in after if t >= seconds - warm)
    print(f"soak: {seconds} s; {soak.counts['scrapes']} scrapes, "
          f"{soak.counts['metrics']} /metrics, {soak.counts['pprof']} go tool "
          f"pprof; {len(soak.errors)} errors")
    print(f"  RSS {samples[0][1] / MIB:.1f} MiB at the start, "
          f"{samples[-1][1] / MIB:.1f} MiB at the end, of which leaked on "
          f"purpose {samples[-1][2] / MIB:.1f} MiB (jemalloc's blocks for "
          f"its sampled leaks {sampling / MIB:.1f} MiB of it)")
    print(f"  uv_pprof's own (RSS - leaked) after the warm-up: "
          f"{own[0][1] / MIB:.1f} MiB, min {min(o for _, o in own) / MIB:.1f}, "
          f"max {max(o for _, o in own) / MIB:.1f}, end {own[-1][1] / MIB:.1f}"
          f" (growth {growth / MIB:.2f} MiB)")
    print(f"  symbolizer warmed with {warmed} addresses")
    print(f"  descriptors but objects' files (quietest): {fds_first} early, "
          f"{fds_last} late; objects' files {samples[0][4]} at the start, "
          f"{samples[-1][4]} at the end")
    print(f"  work timer p99 lateness: median {statistics.median(second)} us "
          f"in the second sixth, {statistics.median(last)} us in the last")
    for e in soak.errors[:20]:
        print("  error:", e)
    expect(not soak.errors, f"{len(soak.errors)} errors")
    expect(growth <= OWN_GROWTH_MAX,
           f"uv_pprof's own memory grew {growth / MIB:.2f} MiB")
    expect(fds_last <= fds_first + FDS_SLACK,
           f"descriptors grew: {fds_first} -> {fds_last}")
    expect(statistics.median(last) <= statistics.median(second) +
           LATE_DRIFT_MAX_US, "the work timer's lateness grew")
    return 0


if __name__ == "__main__":
    run_main(main)
