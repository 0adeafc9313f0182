#!/usr/bin/env python3
"""Runs every shell command of docs/memory-profiling.md against uv-pprof-demo.

usage: guide.py SOURCE_DIR DEMO

The guide's fenced blocks are read in order. A block's info string is its
language and an id: ```sh heap. Every `sh` block runs, in bash with -e and
pipefail, in one scratch directory laid out like the source tree
(build/uv-pprof-demo is DEMO with --echo-port 0, so that the demo's echo
server takes a free port; scripts/ is the tree's), with the guide's ports
replaced by free ones (6060, 6061, 8080; UV_PPROF=1 becomes the first) and
its one-minute timeline by a one-second one (UV_PPROF_TIMELINE=60 becomes 1:
the history of section 8 then fills in seconds, not hours). Its result is
then checked by the function CHECKS maps its id to. `console`
blocks are commands this test cannot run (the Node addon is not in this
tree): each must be listed in NOT_RUN with the reason, and the summary names
them. Any other block must be a language that holds no commands (c, text).
A block without an id, an id without a check, a check whose block is gone, or
an unknown language fails the test, so the guide and this file cannot drift
apart.

Blocks run in one of three modes: "run" (to completion, exit status 0),
"server" (in the background until the end; the banner must appear), and
"bounded" (started, checked while it runs, then stopped with SIGINT as a
user's Ctrl-C would). BROWSER=true keeps `go tool pprof -http` from opening
a browser. Every process started is stopped by its PID (process group for
the bounded ones, which `go tool` runs as children).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

from workflow import (Failed, expect, free_port, http_get, pid_alive, read,
                      run_main, stop, wait_for)

GUIDE = "docs/memory-profiling.md"
RUN_TIMEOUT = 180  # seconds, per "run" block

NOT_RUN = {}
# The stand-in for the reader's app.js of the Node block: a server and a timer.
NODE_APP = """const http = require('http');
http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1');
setInterval(() => {}, 1000);
"""
TEXT_LANGS = {"c", "text"}


# ---- reading pprof -top output ---------------------------------------------

UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def top_rows(out):
    """{function: flat value} from `go tool pprof -top` text (bytes for sizes)."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(-?[0-9.]+)([a-zA-Z]*)\s+-?[0-9.]+%\s+-?[0-9.]+%\s+"
                     r"-?[0-9.]+[a-zA-Z]*\s+-?[0-9.]+%\s+(.+?)\s*$", line)
        if m:
            value = float(m.group(1)) * UNITS.get(m.group(2), 1)
            rows[m.group(3)] = value
    return rows


def top_flat(out, function, what):
    rows = top_rows(out)
    expect(function in rows, f"{what}: no row for {function} in:\n{out}")
    return rows[function]


# ---- the checks, one per block id -------------------------------------------

def banner(ctx, port):
    line = f"pprof enabled on http://localhost:{port}/debug/pprof/"
    wait_for(lambda: line in read(ctx["stderr_path"]).splitlines()
             or not pid_alive(ctx["pid"]), "the banner")
    err = read(ctx["stderr_path"])
    expect(line in err.splitlines(), f"banner line {line!r} missing; stderr:\n{err}")
    return err


def check_start(ctx):
    err = banner(ctx, ctx["ports"][0])
    expect("heap profiling is off" not in err,
           f"jemalloc profiling did not come on:\n{err}")

    # The guide has the reader look at a program that has run a while: wait
    # until the demo's leak is in the heap profile (jemalloc samples one
    # allocation per 512 KiB on average).
    def sampled():
        try:
            _, text = http_get(f"http://127.0.0.1:{ctx['ports'][0]}"
                               "/debug/pprof/heap?debug=1")
        except OSError:
            return False
        return "leak_heap_bytes" in text
    wait_for(sampled, "the demo's leak to be sampled")


def check_cmdline(ctx):
    out = ctx["stdout"]
    expect("uv-pprof-demo" in out and "--leak-heap 1m --leak-timers 5" in out,
           f"cmdline is not the demo's: {out!r}")


def gzip_file(ctx, name):
    path = os.path.join(ctx["work"], name)
    with open(path, "rb") as f:
        head = f.read(2)
    expect(head == b"\x1f\x8b", f"{name} is not a gzipped profile")


def check_heap(ctx):
    gzip_file(ctx, "heap.prof")
    out = ctx["stdout"]
    expect("Type: inuse_space" in out, "heap: not inuse_space:\n" + out)
    expect(top_flat(out, "leak_heap_bytes", "heap") > 0,
           "heap: leak_heap_bytes holds nothing")


def check_allocs(ctx):
    gzip_file(ctx, "allocs.prof")
    out = ctx["stdout"]
    expect("Type: alloc_objects" in out, "allocs: not alloc_objects:\n" + out)
    m = re.search(r"^Showing nodes accounting for .* of (\d+) total$", out, re.M)
    expect(m and int(m.group(1)) > 0, "allocs: no objects allocated:\n" + out)
    # By count, the demo's few large leaked blocks may fall under pprof's
    # display cut-off; by bytes they lead.
    space = subprocess.run(["go", "tool", "pprof", "-top", "-sample_index=alloc_space",
                            os.path.join(ctx["work"], "allocs.prof")],
                           capture_output=True, text=True, check=True).stdout
    expect(top_flat(space, "leak_heap_bytes", "allocs") > 0,
           "allocs: leak_heap_bytes allocated nothing")


def check_goroutine_total(ctx):
    m = re.fullmatch(r"goroutine profile: total (\d+)\n", ctx["stdout"])
    expect(m, f"not a goroutine total line: {ctx['stdout']!r}")
    # The demo's own: echo listener, 4 timers, leak timer, 2 signals.
    expect(int(m.group(1)) >= 8, f"too few handles: {m.group(1)}")


def check_goroutine_debug2(ctx):
    lines = ctx["stdout"].splitlines()
    expect(lines and lines[0].isdigit() and int(lines[0]) >= 8,
           f"handle count line: {lines[:1]}")
    text = read(os.path.join(ctx["work"], "handles.txt"))
    expect(text.count("\ngoroutine ") + text.startswith("goroutine ")
           == int(lines[0]), "grep -c disagrees with handles.txt")
    expect(any("[uv_timer_t" in l for l in lines[1:]) and
           any("repeat" in l for l in lines[1:]),
           "no timer block with its repeat:\n" + ctx["stdout"])


def check_goroutine_profile(ctx):
    out = ctx["stdout"]
    expect("Type: goroutine" in out, "not a goroutine profile:\n" + out)
    expect(top_flat(out, "leaked_timer_cb", "goroutine") >= 1,
           "no leaked timers")
    m = re.search(r"type: Total (\d+)", out)
    expect(m and re.search(r"\): uv_timer_t", out),
           "-tags shows no handle types:\n" + out)


def check_memstats(ctx):
    lines = ctx["stdout"].splitlines()
    expect(lines and lines[0] == "# runtime.MemStats",
           "does not start at the stats:\n" + ctx["stdout"])
    stats = {}
    for l in lines[1:]:
        m = re.fullmatch(r"# (\S+) = (.+)", l)
        expect(m, f"not a stats line: {l!r}")
        stats[m.group(1)] = m.group(2)
    for name in ("HeapAlloc", "HeapInuse", "HeapSys", "HeapIdle",
                 "HeapReleased", "Mallocs", "Frees", "HeapObjects", "RSS",
                 "MaxRSS"):
        expect(stats.get(name, "").isdigit(), f"{name} missing or not a number")
    expect(stats.get("jemalloc.opt.prof") == "true", "jemalloc profiling off")
    expect(int(stats["HeapInuse"]) >= int(stats["HeapAlloc"]) > 1 << 20,
           "HeapInuse < HeapAlloc, or HeapAlloc implausibly small")
    expect(int(stats["MaxRSS"]) > 0 and int(stats["RSS"]) > 0, "no RSS")


def check_heap_base(ctx):
    out = ctx["stdout"]
    grew = top_flat(out, "leak_heap_bytes", "heap -base")
    # 1 MiB/s for at least 20 s; the demo catches up with its rate after
    # any stall, so half of it is a safe floor.
    expect(grew >= 10 << 20, f"leak_heap_bytes grew only {grew:.0f} B:\n{out}")


def check_goroutine_base(ctx):
    out = ctx["stdout"]
    rows = top_rows(out)
    grew = top_flat(out, "leaked_timer_cb", "goroutine -base")
    expect(grew >= 25, f"leaked_timer_cb grew only {grew}:\n{out}")
    others = {f: v for f, v in rows.items()
              if v != 0 and f not in ("leaked_timer_cb",)}
    expect(not others, f"something else moved too: {others}")


def check_heap_delta(ctx):
    out = ctx["stdout"]
    expect("Type: inuse_space" in out, "heap delta: not inuse_space:\n" + out)
    grew = top_flat(out, "leak_heap_bytes", "heap?seconds=10")
    # 1 MiB/s leaks ~10.9 MiB in 112 KiB blocks over the window; at one
    # sample per 512 KiB each sampled block counts ~571 KiB, and the number
    # sampled is near Poisson with mean ~18 (a fresh-clone run saw 7: 4.0 MB).
    # Below 2 MiB (3 samples or fewer, p ~ 2e-5) the delta lost the leak.
    expect(grew >= 2 << 20, f"leak_heap_bytes grew only {grew:.0f} B in 10 s")


CSV_HEADER = "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb"
CSV_ROW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d,"
                     r"(\d+),(\d+),(\d+),(\d+\.\d\d)")


def csv_rows(text, what):
    lines = text.splitlines()
    expect(lines and lines[0] == CSV_HEADER, f"{what}: header {lines[:1]}")
    rows = []
    for l in lines[1:]:
        m = CSV_ROW.fullmatch(l)
        expect(m, f"{what}: not a row: {l!r}")
        rows.append((int(m.group(1)), int(m.group(2)), int(m.group(3)),
                     float(m.group(4))))
    return rows


def during_monitor(ctx):
    wait_for(lambda: len(read(ctx["stdout_path"]).splitlines()) >= 4,
             "three monitor rows")


def check_monitor(ctx):
    expect(ctx["rc"] == 0, f"mem-monitor.sh exited {ctx['rc']} on SIGINT")
    rows = csv_rows(ctx["stdout"], "mem-monitor stdout")
    expect(len(rows) >= 3, "fewer than 3 rows")
    goroutines = [r[2] for r in rows]
    expect(goroutines == sorted(goroutines) and goroutines[-1] > goroutines[0],
           f"handle counts should rise with --leak-timers: {goroutines}")
    expect(rows[-1][0] > rows[0][0], "HeapAlloc did not grow with --leak-heap")
    expect(all(r[1] >= r[0] for r in rows), "a HeapInuse below its HeapAlloc")
    logs = [f for f in os.listdir(ctx["work"])
            if re.fullmatch(r"mem-\d{8}-\d{6}\.log", f)]
    expect(len(logs) == 1, f"log files: {logs}")
    expect(read(os.path.join(ctx["work"], logs[0])) == ctx["stdout"],
           "the log file differs from stdout")


def check_timeline(ctx):
    rows = csv_rows(ctx["stdout"], "the timeline")
    expect(len(rows) >= 1, "the timeline has no row")
    with open(os.path.join(ctx["work"], "timeline.svg"), "rb") as f:
        svg = f.read()
    expect(b"<svg" in svg[:200] and svg.rstrip().endswith(b"</svg>"),
           f"timeline.svg is not an SVG: {svg[:80]!r}")


def check_metrics(ctx):
    out = ctx["stdout"]
    expect(re.search(r"^uv_pprof_heap_alloc_bytes [1-9][0-9]*$", out, re.M),
           f"no heap_alloc_bytes in:\n{out}")
    m = re.search(r'^uv_pprof_handles\{loop="0x[0-9a-f]+",type="uv_timer_t"\} '
                  r"(\d+)$", out, re.M)
    expect(m and int(m.group(1)) >= 5, f"no uv_timer_t handle count in:\n{out}")


def check_overnight_start(ctx):
    night = os.path.join(ctx["work"], "overnight")
    pid = int(read(os.path.join(night, "monitor.pid")))
    ctx["state"]["monitor_pid"] = pid
    gzip_file(ctx, "overnight/heap-evening.prof")
    gzip_file(ctx, "overnight/goroutine-evening.prof")
    expect(pid_alive(pid), "the monitor is not running")

    def first_row():
        logs = [f for f in os.listdir(night) if f.startswith("mem-")]
        return logs and len(read(os.path.join(night, logs[0])).splitlines()) >= 2
    wait_for(first_row, "the monitor's first row")

    # The night: until the demo has leaked 50 more timers (10 s of its
    # leaks, so also about 10 MiB of heap, which sampling cannot miss).
    def handles():
        _, text = http_get(f"http://127.0.0.1:{ctx['ports'][0]}"
                           "/debug/pprof/goroutine?debug=1")
        return int(re.match(r"goroutine profile: total (\d+)", text).group(1))
    evening = handles()
    wait_for(lambda: handles() >= evening + 50, "50 more leaked timers")


def check_overnight_end(ctx):
    pid = ctx["state"]["monitor_pid"]
    wait_for(lambda: not pid_alive(pid), "the monitor to stop on SIGTERM", 10)
    out = ctx["stdout"]
    expect(re.search(r"^time\s+heap_alloc_bytes\s+heap_inuse_bytes\s+"
                     r"goroutines\s+rss_mb$", out, re.M), "no CSV table")
    # The night was at least 50 leaked timers (10 s) long: 10 MiB of heap.
    expect(top_flat(out, "leak_heap_bytes", "overnight heap") >= 4 << 20,
           "the heap diff does not show the leak")
    expect(top_flat(out, "leaked_timer_cb", "overnight goroutine") >= 50,
           "the goroutine diff does not show the 50 leaked timers")
    err = read(os.path.join(ctx["work"], "overnight", "monitor.err"))
    expect("mem-monitor.sh:" in err, "monitor.err is empty")


def leak_entries(report, section):
    """The function each entry of a /leaks text section names first."""
    m = re.search(section + r".*?:\n(.*?)\n\n", report, re.S)
    expect(m, f"no {section} section in:\n{report}")
    names = []
    for block in re.split(r"\n(?=\s+\d+\. )", m.group(1)):
        lines = [l.strip() for l in block.splitlines()]
        if lines and re.match(r"\d+\. ", lines[0]) and len(lines) > 1:
            names.append(lines[1].split()[0])
    return names


def check_morning_leaks(ctx):
    out = ctx["stdout"]
    expect(out.startswith("leaks: what grew steadily over "),
           f"not the leaks report:\n{out}")
    expect(leak_entries(out, "heap")[:1] == ["leak_heap_bytes"],
           f"leak_heap_bytes is not the first heap entry:\n{out}")
    expect(leak_entries(out, "handles")[:1] == ["leaked_timer_cb"],
           f"leaked_timer_cb is not the first handle entry:\n{out}")


def check_morning_base(ctx):
    out = ctx["stdout"]
    expect(out.count("base=start: the snapshot of ") == 2,
           f"the comments do not say which snapshot:\n{out}")
    rows = top_rows(out)
    expect(rows.get("leak_heap_bytes", 0) >= 10 << 20,
           f"heap?base=start: leak_heap_bytes did not grow:\n{out}")
    expect(rows.get("leaked_timer_cb", 0) >= 50,
           f"goroutine?base=start: leaked_timer_cb did not grow:\n{out}")


def check_morning_text(ctx):
    lines = ctx["stdout"].splitlines()
    m = re.fullmatch(r"goroutine profile: total (-?\d+)", lines[0])
    # 5 leaked timers a second over 30 s.
    expect(m and int(m.group(1)) >= 75, f"first line: {lines[:1]}")
    expect(lines[1].startswith("# base=30s: the snapshot of "),
           f"second line: {lines[1:2]}")


def during_recorder(ctx):
    dumps = os.path.join(ctx["work"], "dumps")

    def written():
        names = os.listdir(dumps) if os.path.isdir(dumps) else []
        return [n for n in names if n.endswith("-timeline.csv")]
    wait_for(written, "the flight recorder's files", 90)


def check_recorder(ctx):
    pass  # checked while it ran (during_recorder) and by recorder-files


def check_recorder_files(ctx):
    out = ctx["stdout"]
    names = [l for l in out.splitlines()
             if re.fullmatch(r"uv-pprof-\d{8}T\d{6}Z-\d+-(heap\.pb\.gz|"
                             r"goroutine\.pb\.gz|timeline\.csv)", l)]
    expect(len(names) >= 3 and len(names) % 3 == 0,
           f"not complete sets of dumps:\n{out}")
    expect(top_flat(out, "leak_heap_bytes", "the recorded heap") > 0,
           "the recorded heap profile does not name the leak")


def during_web_ui(ctx):
    base = f"http://127.0.0.1:{ctx['ports'][2]}"

    def up():
        try:
            return http_get(base + "/ui/")[0] == 200
        except OSError:
            return False
    wait_for(up, "pprof -http to answer")
    for page in ("/ui/", "/ui/flamegraph"):
        status, html = http_get(base + page)
        expect(status == 200 and "leak_heap_bytes" in html,
               f"{page} does not show leak_heap_bytes")
    expect(ctx["proc"].poll() is None, "pprof -http exited by itself")


def check_web_ui(ctx):
    pass  # all checked while it ran (during_web_ui)


def check_ui(ctx):
    out = ctx["stdout"].strip()
    expect(out == "200 text/html; charset=utf-8",
           f"the built-in UI's heap page: {out!r}")


def during_node(ctx):
    banner(ctx, ctx["ports"][1])
    base = f"http://127.0.0.1:{ctx['ports'][1]}/debug/pprof"
    _, text = http_get(base + "/goroutine?debug=1")
    expect("node::Environment::RunTimers" in text,
           f"node's timer handle is not named:\n{text}")
    _, text = http_get(base + "/heap?debug=1")
    expect("# jemalloc.opt.prof = true" in text,
           "jemalloc profiling is not on in node")


def check_node(ctx):
    pass  # all checked while it ran (during_node)


def check_token_start(ctx):
    banner(ctx, ctx["ports"][1])


def check_token_fetch(ctx):
    lines = ctx["stdout"].splitlines()
    expect(lines[:1] == ["401"], f"without the token: {lines[:1]}")
    gzip_file(ctx, "heap-token.prof")
    expect(any(l.startswith("Type: inuse_space") for l in lines),
           "the token fetch is not a heap profile")


CHECKS = {
    "start": ("server", check_start),
    "cmdline": ("run", check_cmdline),
    "heap": ("run", check_heap),
    "allocs": ("run", check_allocs),
    "goroutine-total": ("run", check_goroutine_total),
    "goroutine-debug2": ("run", check_goroutine_debug2),
    "goroutine-profile": ("run", check_goroutine_profile),
    "memstats": ("run", check_memstats),
    "heap-base": ("run", check_heap_base),
    "goroutine-base": ("run", check_goroutine_base),
    "heap-delta": ("run", check_heap_delta),
    "monitor": ("bounded", check_monitor, during_monitor),
    "timeline": ("run", check_timeline),
    "metrics": ("run", check_metrics),
    "overnight-start": ("run", check_overnight_start),
    "overnight-end": ("run", check_overnight_end),
    "ui": ("run", check_ui),
    "morning-leaks": ("run", check_morning_leaks),
    "morning-base": ("run", check_morning_base),
    "morning-text": ("run", check_morning_text),
    "recorder": ("bounded", check_recorder, during_recorder),
    "recorder-files": ("run", check_recorder_files),
    "web-ui": ("bounded", check_web_ui, during_web_ui),
    "node-register": ("bounded", check_node, during_node),
    "token-start": ("server", check_token_start),
    "token-fetch": ("run", check_token_fetch),
}


# ---- the guide's blocks -----------------------------------------------------

def blocks(text):
    """[(line number, language, id, body)] of every fenced block."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"```(.*)", lines[i])
        if not m:
            i += 1
            continue
        words = m.group(1).split()
        start = i + 1
        i += 1
        body = []
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise Failed(f"{GUIDE}:{start}: unclosed block")
        i += 1
        out.append((start, words[0] if words else "",
                    words[1] if len(words) > 1 else None, "\n".join(body)))
    return out


def plan(text):
    """Validates the blocks against CHECKS and NOT_RUN; returns (runs, skipped)."""
    runs, skipped, seen = [], [], set()
    for line, lang, bid, body in blocks(text):
        where = f"{GUIDE}:{line}"
        if lang in TEXT_LANGS:
            continue
        if lang not in ("sh", "console"):
            raise Failed(f"{where}: block language {lang!r}: shell commands "
                              "go in ```sh ID (run and checked) or ```console "
                              "ID (listed in NOT_RUN)")
        if bid is None:
            raise Failed(f"{where}: ```{lang} block without an id")
        if bid in seen:
            raise Failed(f"{where}: id {bid} used twice")
        seen.add(bid)
        if lang == "console":
            if bid not in NOT_RUN:
                raise Failed(f"{where}: console block {bid} is not in NOT_RUN")
            skipped.append(bid)
        else:
            if bid not in CHECKS:
                raise Failed(f"{where}: sh block {bid} has no check in "
                                  "test/guide.py CHECKS")
            runs.append((where, bid, body))
    stale = (set(CHECKS) | set(NOT_RUN)) - seen
    if stale:
        raise Failed(f"checks for blocks no longer in {GUIDE}: {sorted(stale)}")
    return runs, skipped


def substitute(body, ports):
    body = body.replace("UV_PPROF=1 ", f"UV_PPROF={ports[0]} ")
    body = body.replace("UV_PPROF_TIMELINE=60", "UV_PPROF_TIMELINE=1")
    for old, new in zip(("6060", "6061", "8080"), ports):
        body = body.replace(old, str(new))
    return body


def main():
    src, demo = sys.argv[1], os.path.abspath(sys.argv[2])
    node_path = sys.argv[3] if len(sys.argv) > 3 else ""
    with open(os.path.join(src, GUIDE)) as f:
        runs, skipped = plan(f.read())
    if not os.path.exists(os.path.join(node_path, "uv-pprof", "uv_pprof.node")):
        NOT_RUN["node-register"] = "the Node addon is not built (no node headers)"
        skipped.append("node-register")
        runs = [r for r in runs if r[1] != "node-register"]

    work = tempfile.mkdtemp(prefix="uv-pprof-guide-")
    os.makedirs(os.path.join(work, "build"))
    wrapper = os.path.join(work, "build", "uv-pprof-demo")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec "{demo}" --echo-port 0 "$@"\n')
    os.chmod(wrapper, 0o755)
    os.symlink(os.path.join(os.path.abspath(src), "scripts"),
               os.path.join(work, "scripts"))
    ports = [free_port() for _ in range(3)]
    with open(os.path.join(work, "app.js"), "w") as f:
        f.write(NODE_APP)
    env = dict(os.environ, BROWSER="true", NODE_PATH=node_path)
    env.pop("UV_PPROF", None)
    env.pop("UV_PPROF_TOKEN", None)
    state = {}
    servers = []
    n = 0
    print(f"work directory {work}, ports {ports}")
    try:
        for where, bid, body in runs:
            mode, check = CHECKS[bid][0], CHECKS[bid][1]
            script = substitute(body, ports)
            out_path = os.path.join(work, f".{bid}.out")
            err_path = os.path.join(work, f".{bid}.err")
            print(f"--- {where} [{bid}] ({mode})\n{script}", flush=True)
            with open(out_path, "w") as out, open(err_path, "w") as err:
                proc = subprocess.Popen(
                    ["bash", "-e", "-o", "pipefail", "-c", script], cwd=work,
                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=(mode == "bounded"))
            ctx = {"work": work, "ports": ports, "state": state,
                   "proc": proc, "pid": proc.pid,
                   "stdout_path": out_path, "stderr_path": err_path}
            if mode == "server":
                servers.append(proc)
            elif mode == "bounded":
                try:
                    CHECKS[bid][2](ctx)
                finally:
                    ctx["rc"] = stop(proc, signal.SIGINT, True)
            else:
                try:
                    ctx["rc"] = proc.wait(timeout=RUN_TIMEOUT)
                except subprocess.TimeoutExpired:
                    stop(proc, signal.SIGKILL, False)
                    raise Failed(f"{bid}: still running after {RUN_TIMEOUT} s")
            ctx["stdout"] = read(out_path)
            ctx["stderr"] = read(err_path)
            sys.stdout.write(ctx["stdout"])
            sys.stdout.write(ctx["stderr"])
            if mode == "run":
                expect(ctx["rc"] == 0, f"{bid}: exit status {ctx['rc']}")
            check(ctx)
            if mode == "server":
                expect(proc.poll() is None, f"{bid}: the server exited")
            n += 1
            print(f"ok {bid}")
    finally:
        for proc in servers:
            stop(proc, signal.SIGTERM, False)
        pid = state.get("monitor_pid")
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    print(f"\n{GUIDE}: {n} of {len(runs)} sh blocks ran and passed their checks; "
          f"{len(skipped)} not run: " +
          ", ".join(f"{b} ({NOT_RUN[b]})" for b in skipped))
    subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    run_main(main)
