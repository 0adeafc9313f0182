#!/usr/bin/env python3
"""go tool pprof's web UI on a live uv-pprof-demo, looked at with Chromium.

usage: webui.py DEMO JEMALLOC_SO OUTDIR

The demo runs on jemalloc with profiling, leaking heap from leak_heap_bytes
and timers calling leaked_timer_cb. For its heap and its goroutine profile,
`go tool pprof -http=127.0.0.1:PORT -no_browser URL` serves the UI; then, for
the graph view (/ui/, drawn by graphviz's dot) and the flame graph
(/ui/flamegraph):

- the page's HTML (as served) holds the demo's function name, and the graph
  view an SVG;
- headless Chromium's DOM after the page's scripts ran (--dump-dom) shows the
  name as a rendered element: an SVG node of the graph, a frame of the flame
  graph;
- Chromium's screenshot (--screenshot, PNG in OUTDIR) is not blank: decoded
  here (zlib + PNG filters), at least 3 % of the pixels below pprof's tool
  bar differ from the page's background.

Every process is started here, bounded in time, and stopped by its PID (pprof
and Chromium by their process group, since they run children).
"""
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import zlib

from workflow import (Failed, expect, free_port, http_get, run_main, stop,
                      wait_for)

CHROMIUM_TIME = 90  # seconds, per Chromium run
WINDOW = (1280, 900)
TOOLBAR = 50       # pixels: pprof's menu bar, which is never blank


# ---- PNG ----------------------------------------------------------------------

def png_pixels(path):
    """(width, height, rows of pixel tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    expect(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG")
    i, idat, head = 8, b"", None
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    w, h, depth, color, _, _, interlace = head
    expect(depth == 8 and color in (2, 6) and interlace == 0,
           f"{path}: PNG depth {depth} colour type {color} interlace {interlace}")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(h):
        ftype, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
            elif ftype != 0:
                raise Failed(f"{path}: PNG filter {ftype}")
        rows.append([bytes(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def not_blank(path):
    w, h, rows = png_pixels(path)
    expect((w, h) == WINDOW, f"{path}: {w}x{h}, expected {WINDOW}")
    body = [p for row in rows[TOOLBAR:] for p in row]
    counts = {}
    for p in body:
        counts[p] = counts.get(p, 0) + 1
    background, n = max(counts.items(), key=lambda kv: kv[1])
    share = 1 - n / len(body)
    expect(share >= 0.03, f"{path}: only {share:.1%} of the pixels below the "
           f"tool bar differ from the background #{background.hex()}")
    return share


# ---- Chromium -------------------------------------------------------------------

def chromium(profile_dir, args):
    """Runs headless Chromium with args; returns its stdout."""
    cmd = ["chromium", "--headless", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile_dir}", "--no-first-run",
           f"--window-size={WINDOW[0]},{WINDOW[1]}",
           "--virtual-time-budget=5000"]  # lets the flame graph's scripts run
    if os.geteuid() == 0:
        cmd.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=CHROMIUM_TIME)
    except subprocess.TimeoutExpired:
        stop(proc, group=True)
        raise Failed(f"chromium {args} still running after {CHROMIUM_TIME} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind, if any
        except ProcessLookupError:
            pass
    expect(proc.returncode == 0, f"chromium {args}: exit {proc.returncode}")
    return out.decode("utf-8", "replace")


def check_ui(ui, name, kind, outdir, tmp):
    for view, rendered in (("/ui/", r"<g id=\"node\d+\" class=\"node\">(?:(?!</g>).)*?"
                            r"<text [^>]*>" + re.escape(name) + "</text>"),
                           ("/ui/flamegraph", r"name=\"" + re.escape(name) + "\"")):
        url = ui + view
        status, html = http_get(url)
        expect(status == 200 and name in html, f"{url}: {name} not in the page")
        if view == "/ui/":
            expect("<svg" in html, f"{url}: no SVG graph (is graphviz installed?)")
        dom = chromium(os.path.join(tmp, "chromium"), ["--dump-dom", url])
        expect(re.search(rendered, dom, re.S),
               f"{url}: Chromium's DOM has no rendered element for {name}")
        png = os.path.join(outdir, f"{kind}-{'graph' if view == '/ui/' else 'flamegraph'}.png")
        if os.path.exists(png):
            os.unlink(png)
        chromium(os.path.join(tmp, "chromium"), [f"--screenshot={png}", url])
        share = not_blank(png)
        print(f"ok {kind} {view}: {name} rendered; {png}: {share:.1%} non-background")


def main():
    demo, jemalloc, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="uv-pprof-webui-")
    port = free_port()
    env = dict(os.environ, UV_PPROF=f"127.0.0.1:{port}", LD_PRELOAD=jemalloc,
               MALLOC_CONF="prof:true,prof_accum:true")
    env.pop("UV_PPROF_TOKEN", None)
    procs = []
    demo_proc = subprocess.Popen([demo, "--echo-port", "0", "--leak-heap", "1m",
                                  "--leak-timers", "5"], env=env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/debug/pprof"
        wait_for(lambda: "leak_heap_bytes" in http_get(base + "/heap?debug=1")[1],
                 "the demo's leak to be sampled", ignore=(OSError,))
        for kind, name in (("heap", "leak_heap_bytes"),
                           ("goroutine", "leaked_timer_cb")):
            ui_port = free_port()
            pprof = subprocess.Popen(
                ["go", "tool", "pprof", f"-http=127.0.0.1:{ui_port}",
                 "-no_browser", f"{base}/{kind}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(pprof)
            ui = f"http://127.0.0.1:{ui_port}"
            wait_for(lambda: http_get(ui + "/ui/")[0] == 200,
                     f"pprof -http ({kind})", ignore=(OSError,))
            check_ui(ui, name, kind, outdir, tmp)
            stop(pprof, group=True)
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p, group=True)
        demo_proc.terminate()
        try:
            demo_proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo_proc.kill()
            demo_proc.wait()
        subprocess.run(["rm", "-rf", tmp])
    print("pprof's web UI: graph and flame graph rendered for heap and goroutine")
    return 0


if __name__ == "__main__":
    run_main(main)
