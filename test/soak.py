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
"""
import os
import re
import signal
import statistics
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


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


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
    status = {"leaked": 0, "late": []}  # from the demo's status lines

    def read_status():
        for line in proc.stdout:
            m = re.search(r"leaked: (\d+) KiB heap.*late p99 (\d+) us", line)
            if m:
                status["leaked"] = int(m.group(1)) * 1024
                status["late"].append((time.monotonic(), int(m.group(2))))
    threading.Thread(target=read_status, daemon=True).start()
    samples = []  # (t, rss, leaked, fds)
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
                samples.append((time.monotonic() - t0, rss(proc.pid),
                                status["leaked"], fds(proc.pid)))
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
    own = [(t, r - leaked) for t, r, leaked, _ in after]
    growth = own[-1][1] - min(o for _, o in own)
    late = [(t - t0, v) for t, v in status["late"]]
    second = [v for t, v in late if warm <= t < 2 * warm]
    last = [v for t, v in late if t >= seconds - warm]
    fds_first = min(f for t, _, _, f in after if t < 2 * warm)
    fds_last = min(f for t, _, _, f in after if t >= seconds - warm)
    print(f"soak: {seconds} s; {soak.counts['scrapes']} scrapes, "
          f"{soak.counts['metrics']} /metrics, {soak.counts['pprof']} go tool "
          f"pprof; {len(soak.errors)} errors")
    print(f"  RSS {samples[0][1] / MIB:.1f} MiB at the start, "
          f"{samples[-1][1] / MIB:.1f} MiB at the end, of which leaked on "
          f"purpose {samples[-1][2] / MIB:.1f} MiB")
    print(f"  uv_pprof's own (RSS - leaked) after the warm-up: "
          f"{own[0][1] / MIB:.1f} MiB, min {min(o for _, o in own) / MIB:.1f}, "
          f"max {max(o for _, o in own) / MIB:.1f}, end {own[-1][1] / MIB:.1f}"
          f" (growth {growth / MIB:.2f} MiB)")
    print(f"  descriptors (quietest): {fds_first} early, {fds_last} late")
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
