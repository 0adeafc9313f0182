#!/usr/bin/env python3
"""scripts/mem-monitor.sh against the real uv-pprof-demo.

usage: mem-monitor.py SOURCE_DIR DEMO JEMALLOC_SO

- --help and bad arguments (usage, exit 2, no log file);
- a target that is down when the monitor starts: one message on stderr,
  no rows; the demo (on jemalloc, leaking timers and heap) comes up: one
  "answers again", then rows with the exact header, numeric, consistent with
  the leaks (handle counts and HeapAlloc rise); the demo stops: one message;
  a fresh demo without leaks on the same port: rows again, with a flat handle
  count below the leaky one's and an RSS matching /proc/PID/status;
- SIGINT: exit 0, the log file mem-YYYYMMDD-HHMMSS.log equal to stdout;
- UV_PPROF_TOKEN is sent (a token-protected demo gives rows only with it),
  and SIGTERM also exits 0.

Every process is started here and stopped by its PID.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from workflow import (Failed, expect, free_port, read, run_main, stop,
                      wait_for)

HEADER = "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb"
ROW = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)[+-]\d\d:\d\d,"
                 r"(\d+),(\d+),(\d+),(\d+\.\d\d)")
WAIT = 60  # seconds for anything awaited here


class Monitor:
    """scripts/mem-monitor.sh ARGS in `cwd`, its output in files."""

    def __init__(self, script, cwd, args, env=None):
        self.out = os.path.join(cwd, ".monitor.out")
        self.err = os.path.join(cwd, ".monitor.err")
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen([script] + args, cwd=cwd, stdout=o,
                                         stderr=e, stdin=subprocess.DEVNULL,
                                         env=env)

    def rows(self):
        lines = read(self.out).splitlines()
        expect(not lines or lines[0] == HEADER, f"header: {lines[:1]}")
        rows = []
        for l in lines[1:]:
            m = ROW.fullmatch(l)
            expect(m, f"not a CSV row: {l!r}")
            rows.append((m.group(1), int(m.group(2)), int(m.group(3)),
                         int(m.group(4)), float(m.group(5))))
        return rows

    def said(self, what):
        return read(self.err).count(what)


class Demo:
    def __init__(self, path, port, jemalloc, args, token=None):
        env = dict(os.environ, UV_PPROF=f"127.0.0.1:{port}",
                   LD_PRELOAD=jemalloc, MALLOC_CONF="prof:true,prof_accum:true")
        env.pop("UV_PPROF_TOKEN", None)
        if token:
            env["UV_PPROF_TOKEN"] = token
        self.proc = subprocess.Popen([path, "--echo-port", "0"] + args, env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        expect(line == f"pprof enabled on http://localhost:{port}/debug/pprof/\n",
               f"demo banner: {line!r}")

    def rss_mib(self):
        status = read(f"/proc/{self.proc.pid}/status")
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def check_usage(script, cwd):
    r = subprocess.run([script, "--help"], cwd=cwd, capture_output=True, text=True)
    expect(r.returncode == 0 and r.stdout.startswith("Usage: mem-monitor.sh")
           and HEADER in r.stdout, f"--help: {r.returncode} {r.stdout!r}")
    for args, why in ((["abc"], "PORT must be"), (["0"], "PORT must be"),
                      (["70000"], "PORT must be"), ([":6060"], "needs a host"),
                      (["6060", "0"], "INTERVAL must be"),
                      (["6060", "1.5"], "INTERVAL must be"),
                      (["6060", "x"], "INTERVAL must be"),
                      (["1", "2", "3"], "too many arguments")):
        r = subprocess.run([script] + args, cwd=cwd, capture_output=True,
                           text=True, timeout=WAIT)
        expect(r.returncode == 2 and why in r.stderr and "Usage:" in r.stderr
               and r.stdout == "", f"{args}: exit {r.returncode}, {r.stderr!r}")
    expect(not [f for f in os.listdir(cwd) if f.startswith("mem-")],
           "a log file was created by a bad invocation")
    print("ok --help and bad arguments")


def main():
    src, demo_path, jemalloc = sys.argv[1:4]
    script = os.path.join(os.path.abspath(src), "scripts", "mem-monitor.sh")
    work = tempfile.mkdtemp(prefix="uv-pprof-mem-monitor-")
    procs = []
    try:
        check_usage(script, work)
        port = free_port()

        # Down at the start: one message, no rows, still running.
        mon = Monitor(script, work, [str(port), "1"])
        procs.append(mon.proc)
        wait_for(lambda: mon.said("no figures from"), "the 'down' message")
        time.sleep(3)  # three more attempts
        expect(mon.said("no figures from") == 1 and mon.rows() == [],
               "more than one message, or rows, while down:\n" + read(mon.err))
        expect(mon.proc.poll() is None, "the monitor exited while the target was down")
        print("ok target down at the start: one message")

        demo = Demo(demo_path, port, jemalloc,
                    ["--leak-timers", "5", "--leak-heap", "1m"])
        procs.append(demo.proc)
        wait_for(lambda: len(mon.rows()) >= 5, "five rows")
        rows = mon.rows()
        expect(mon.said("answers again") == 1, "no 'answers again' message")
        handles = [r[3] for r in rows]
        expect(handles == sorted(handles) and handles[-1] > handles[0],
               f"--leak-timers 5: handle counts should rise: {handles}")
        expect(all(r[2] >= r[1] > 0 for r in rows), "HeapInuse < HeapAlloc")
        heap = [r[1] for r in rows]
        expect(heap == sorted(heap) and heap[-1] > heap[1],
               f"--leak-heap 1m: HeapAlloc should rise: {heap}")
        print(f"ok leaking demo: handles {handles}, HeapAlloc {heap}")

        # Down again (a restart): one more message, then a fresh demo.
        stop(demo.proc, must_obey=True)
        n = len(mon.rows())
        wait_for(lambda: mon.said("no figures from") == 2, "the second 'down' message")
        calm = Demo(demo_path, port, jemalloc, [])
        procs.append(calm.proc)
        # The first scrapes make the demo load its libraries' debug info to
        # name their frames (+17 MiB of heap, seen): the RSS is compared
        # once two rows in a row agree, not while it climbs between a row
        # and the read of /proc.
        def settled():
            r = mon.rows()[n + 1:]
            return len(r) >= 4 and abs(r[-1][4] - r[-2][4]) <= 0.05 * r[-1][4]
        wait_for(settled, "rows after the restart, with a settled RSS")
        expect(mon.said("answers again") == 2 and mon.said("no figures from") == 2,
               "messages around the restart:\n" + read(mon.err))
        after = mon.rows()[n + 1:]  # the first one may be before the demo settled
        handles = {r[3] for r in after}
        expect(len(handles) == 1 and handles.pop() < rows[-1][3],
               f"the calm demo's handle count should be flat and lower: {after}")
        rss = calm.rss_mib()
        expect(abs(after[-1][4] - rss) <= 0.2 * rss,
               f"rss_mb {after[-1][4]} vs VmRSS {rss:.2f} MiB")
        print(f"ok restart: flat {after[-1][3]} handles, rss_mb {after[-1][4]} "
              f"(VmRSS {rss:.2f})")

        # Ctrl-C: exit 0, every row in the log file.
        expect(stop(mon.proc, signal.SIGINT, must_obey=True) == 0,
               "SIGINT: exit status not 0")
        logs = [f for f in os.listdir(work)
                if re.fullmatch(r"mem-\d{8}-\d{6}\.log", f)]
        expect(len(logs) == 1, f"log files: {os.listdir(work)}")
        expect(read(os.path.join(work, logs[0])) == read(mon.out),
               "the log file differs from stdout")
        print(f"ok SIGINT: exit 0, {logs[0]} == stdout ({len(mon.rows())} rows)")
        stop(calm.proc, must_obey=True)

        # The token, and SIGTERM.
        secure = Demo(demo_path, port, jemalloc, [], token="s3cret")
        procs.append(secure.proc)
        time.sleep(1)  # a distinct log file name (one per second)
        env = dict(os.environ)
        env.pop("UV_PPROF_TOKEN", None)
        bare = Monitor(script, work, [str(port), "1"], env)
        procs.append(bare.proc)
        wait_for(lambda: bare.said("no figures from"), "a 401 to be reported")
        expect("401" in read(bare.err) and bare.rows() == [],
               "without the token: " + read(bare.err))
        expect(stop(bare.proc, must_obey=True) == 0,
               "SIGTERM: exit status not 0")
        time.sleep(1)
        env["UV_PPROF_TOKEN"] = "s3cret"
        authed = Monitor(script, work, [f"localhost:{port}", "1"], env)
        procs.append(authed.proc)
        wait_for(lambda: len(authed.rows()) >= 2, "rows with the token")
        expect(authed.said("no figures") == 0, "errors with the token")
        expect(stop(authed.proc, must_obey=True) == 0,
               "SIGTERM: exit status not 0")
        print("ok token sent from UV_PPROF_TOKEN; SIGTERM exits 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    subprocess.run(["rm", "-rf", work])
    print("mem-monitor.sh: all checks passed")
    return 0


if __name__ == "__main__":
    run_main(main)
