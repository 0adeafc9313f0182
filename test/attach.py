#!/usr/bin/env python3
"""test/attach.py BUILD_DIR NAME: uv_pprof attached to programs that were
not built for it, through the uv-pprof launcher (and the raw LD_PRELOAD
form): the launcher's bad input, which loop serves, children, and the real
programs of Debian's packages (python3-uvloop, lua-luv, neovim) and node.
Every process started here is on loopback, bounded in time and killed by
its PID at the end."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1])
LAUNCHER = os.path.join(BUILD, "uv-pprof")
ATTACH = os.path.join(BUILD, "libuv_pprof_attach.so.0")
TRACK = os.path.join(BUILD, "libuv_pprof_track.so.0")
PLAIN = os.path.join(BUILD, "test", "uv_pprof_plainhost")
PY = "/usr/bin/python3"  # Debian's, where python3-uvloop lives
TMP = tempfile.mkdtemp(prefix="uv_pprof_attach.")
started = []


def fail(msg):
    print("attach.py: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def env(**extra):
    e = dict(os.environ)
    for k in ("UV_PPROF", "UV_PPROF_TOKEN", "UV_PPROF_TRACK",
              "UV_PPROF_TIMELINE", "UV_PPROF_QUIET", "UV_PPROF_ATTACH_PID",
              "LD_PRELOAD", "MALLOC_CONF", "NODE_OPTIONS"):
        e.pop(k, None)
    e.update(extra)
    return e


def start(argv, **extra):
    p = subprocess.Popen(argv, env=env(**extra), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=TMP, text=True)
    started.append(p)
    return p


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def run(argv, timeout=60, **extra):
    return finish(start(argv, **extra), timeout)


# No proxy from the environment: everything here is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port, path, timeout=10):
    with OPENER.open("http://127.0.0.1:%d%s" % (port, path),
                     timeout=timeout) as r:
        return r.read()


def wait_served(port, p, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        if p.poll() is not None:
            fail("the program exited (%d) before serving: %s"
                 % (p.returncode, p.communicate()[1]))
        try:
            return get(port, "/debug/pprof/goroutine?debug=1").decode()
        except OSError:
            time.sleep(0.1)
    fail("nothing served on port %d" % port)


def counts(text):
    """goroutine?debug=1 -> (total, {type: count})"""
    total = int(re.match(r"goroutine profile: total (\d+)", text).group(1))
    by_type = {}
    for m in re.finditer(r"^(\d+) @.*\n# labels: .*\"type\":\"(\w+)\"", text,
                         re.M):
        by_type[m.group(2)] = by_type.get(m.group(2), 0) + int(m.group(1))
    return total, by_type


def frames_named(text):
    """Every frame line of a debug=1 text names its function (no bare
    address), if only by its place (`nvim+0x3cb60`) in stripped code.
    `#\t0x0` is no frame: a record without a stack (an inactive handle has
    no callback), which Go prints so."""
    bare = [l for l in text.splitlines()
            if re.match(r"^#\t0x[0-9a-f]+\s*$", l) and l != "#\t0x0"]
    check(not bare, "frames without a name: %s" % bare[:5])


def launch(args, program, port=None, **extra):
    port = port or free_port()
    return port, start([LAUNCHER, "--listen", "127.0.0.1:%d" % port] + args +
                       ["--"] + program, **extra)


# ---- the launcher's bad input ---------------------------------------------

def t_launcher_badinput():
    def bad(argv, status, reason):
        rc, out, err = run([LAUNCHER] + argv)
        check(rc == status, "%s: exit %d, expected %d (%s)" % (argv, rc,
                                                                status, err))
        lines = err.strip().splitlines()
        check(len(lines) == 1 and reason in lines[0],
              "%s: stderr %r lacks %r" % (argv, err, reason))

    marker = os.path.join(TMP, "ran")
    prog = ["--", "/bin/sh", "-c", "touch " + marker]
    bad(["--bogus"] + prog, 2, "unknown option --bogus")
    bad(["--timeline", "x"] + prog, 2, "--timeline x")
    bad(["--timeline"], 2, "--timeline needs a value")
    bad(["--stall-ms", "5"] + prog, 2, "--stall-ms 5: expected 0 (off)")
    bad(["--mutex", "-1"] + prog, 2, "--mutex -1: expected a whole number")
    bad([], 2, "no PROGRAM")
    bad(["--", "no-such-program-uv-pprof"], 127, "command not found")
    bad(["--", "/no/such/file"], 127, "no such file")
    noexec = os.path.join(TMP, "noexec")
    open(noexec, "w").close()
    bad(["--", noexec], 126, "not executable")
    bad(["--token-file", "/no/such/token"] + prog, 2, "--token-file")
    bad(["--listen", "127.0.0.1:99999"] + prog, 2, "UV_PPROF=")
    bad(["--listen", "0.0.0.0:0"] + prog, 2, "without a token")
    # A port in use: one line, and the program never runs.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    bad(["--listen", "127.0.0.1:%d" % s.getsockname()[1]] + prog, 2,
        "address already in use")
    s.close()
    check(not os.path.exists(marker), "the program ran after a bad option")
    rc, out, err = run([LAUNCHER, "--help"])
    check(rc == 0 and out.startswith("usage: uv-pprof") and err == "",
          "--help: %d %r" % (rc, err))


def t_launcher_nolibuv():
    # Runs it, its status is the launcher's, and one line says so.
    rc, out, err = run([LAUNCHER, "--listen", "127.0.0.1:%d" % free_port(),
                        "--", PY, "-c", "print('hi'); exit(7)"])
    check(rc == 7 and out == "hi\n", "exit %d, out %r" % (rc, out))
    check(err.count("\n") == 1 and "ran no libuv loop" in err,
          "stderr: %r" % err)


def t_launcher_env():
    # LD_PRELOAD and MALLOC_CONF of the user's are kept, after ours.
    user_lib = "libdl.so.2"
    rc, out, err = run([LAUNCHER, "--heap", "--track", "--timeline", "5",
                        "--quiet", "--listen", "127.0.0.1:0", "--",
                        "/usr/bin/env"], LD_PRELOAD=user_lib,
                       MALLOC_CONF="lg_prof_sample:17")
    check(rc == 0, "env: %d %s" % (rc, err))
    e = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    pre = e["LD_PRELOAD"].split(":")
    check(pre[-1] == user_lib and "libjemalloc.so.2" in pre[0] and
          any("libuv_pprof_attach" in x for x in pre) and
          any("libuv_pprof_track" in x for x in pre),
          "LD_PRELOAD=%s" % e["LD_PRELOAD"])
    check(e["MALLOC_CONF"] == "prof:true,prof_accum:true,lg_prof_sample:17",
          "MALLOC_CONF=%s" % e["MALLOC_CONF"])
    check(e["UV_PPROF"] == "127.0.0.1:0" and e["UV_PPROF_TRACK"] ==
          "handles" and e["UV_PPROF_TIMELINE"] == "5" and
          e["UV_PPROF_QUIET"] == "1", "environment: %r" % e)
    check(e["UV_PPROF_ATTACH_PID"].isdigit(), "no owner pid")
    # A token from a file: its first line.
    tok = os.path.join(TMP, "token")
    with open(tok, "w") as f:
        f.write("s3cret\n")
    rc, out, err = run([LAUNCHER, "--token-file", tok, "--", "/usr/bin/env"])
    check("UV_PPROF_TOKEN=s3cret\n" in out, "token: %r" % out)


# ---- which loop serves, children, the raw form ------------------------------

def t_attach_stall_mutex():
    # --stall-ms and --mutex reach uv_pprof_start; --mutex alone preloads
    # the tracker, whose pthread_mutex_lock samples at that rate.
    rc, out, err = run([LAUNCHER, "--stall-ms", "20", "--mutex", "3",
                        "--listen", "127.0.0.1:0", "--", "/usr/bin/env"])
    e = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    check(rc == 0 and e.get("UV_PPROF_STALL_MS") == "20" and
          e.get("UV_PPROF_MUTEX") == "3" and
          "libuv_pprof_track" in e.get("LD_PRELOAD", "") and
          "UV_PPROF_TRACK" not in e, "environment: %r" % e)
    port, p = launch(["--stall-ms", "20", "--mutex", "1"],
                     [PLAIN, "shortloop", "4"])
    wait_served(port, p)
    text = get(port, "/debug/pprof/mutex?debug=1").decode()
    check(text.startswith("--- mutex:\ncycles/second=1000000000\n"
                          "sampling period=1\n"), "mutex text:\n" + text)
    text = get(port, "/debug/pprof/block?debug=1").decode()
    check(text.startswith("--- contention:\n"), "block text:\n" + text)
    rc, out, err = finish(p)
    check(rc == 9, "exit %d: %s" % (rc, err))


def t_attach_shortloop():
    port, p = launch([], [PLAIN, "shortloop", "5"])
    text = wait_served(port, p)
    # The short-lived loop is gone; the main loop serves, the thread's loop
    # is registered: 4 + 2 timers, the stop timer and the thread's async.
    end = time.time() + 2
    while counts(text)[1].get("uv_timer_t") != 7 and time.time() < end:
        time.sleep(0.2)
        text = get(port, "/debug/pprof/goroutine?debug=1").decode()
    total, by_type = counts(text)
    check(by_type.get("uv_timer_t") == 7 and total == 8,
          "handles: %r\n%s" % (by_type, text))
    check(len(set(re.findall(r'"loop":"(0x[0-9a-f]+)"', text))) == 2,
          "two loops expected:\n" + text)
    rc, out, err = finish(p)
    check(rc == 9, "exit %d: %s" % (rc, err))


def t_attach_children():
    # The spawned child inherits LD_PRELOAD and UV_PPROF: it must neither
    # serve nor complain (one banner, no "cannot listen").
    port, p = launch([], [PLAIN, "spawn", "2"])
    wait_served(port, p)
    rc, out, err = finish(p)
    check(rc == 9, "exit %d: %s" % (rc, err))
    check(err.count("pprof enabled on") == 1 and "cannot" not in err,
          "stderr: %r" % err)


def t_attach_raw_preload():
    port = free_port()
    p = start([PLAIN, "spawn", "2"], LD_PRELOAD=ATTACH,
              UV_PPROF="127.0.0.1:%d" % port)
    total, by_type = counts(wait_served(port, p))
    check(by_type.get("uv_timer_t", 0) >= 4, "handles: %r" % by_type)
    rc, out, err = finish(p)
    check(rc == 9 and err.count("pprof enabled on") == 1, "%d %r" % (rc, err))


def t_tracker_rtld_local():
    # libuv inside modules loaded RTLD_LOCAL (a Python extension, a Lua
    # module): the tracker alone, preloaded, must forward, never abort.
    rc, out, err = run([PY, SVC, "0.3", "3"], LD_PRELOAD=TRACK,
                       UV_PPROF_TRACK="handles")
    check(rc == 3, "uvloop under the tracker: exit %d: %s" % (rc, err))
    rc, out, err = run(["lua", LUV, "0.3"], LD_PRELOAD=TRACK,
                       UV_PPROF_TRACK="handles")
    check(rc == 4, "luv under the tracker: exit %d: %s" % (rc, err))


# ---- real programs -------------------------------------------------------------

SVC = os.path.join(TMP, "svc.py")
LUV = os.path.join(TMP, "luvsvc.lua")
LUVGC = os.path.join(TMP, "luvgc.lua")
APP = os.path.join(TMP, "app.js")

with open(SVC, "w") as f:
    f.write("""import asyncio, sys, uvloop
CALL_LATER = 7
held = []
async def main():
    loop = asyncio.get_running_loop()
    for i in range(CALL_LATER):
        loop.call_later(3600, print, i)
    # What the heap profile must show: 64 MiB held in 1 MiB blocks.
    for i in range(64):
        held.append(bytearray(1 << 20))
    await asyncio.sleep(float(sys.argv[1]))
uvloop.install()
asyncio.run(main())
sys.exit(int(sys.argv[2]))
""")
with open(LUV, "w") as f:
    f.write("""local uv = require('luv')
local timers = {}
for i = 1, 5 do
  local t = uv.new_timer()
  t:start(3600000, 0, function() end)
  timers[i] = t
end
local stop = uv.new_timer()
stop:start(tonumber(arg[1]) * 1000, 0, function()
  for _, t in ipairs(timers) do t:close() end
  stop:close()
end)
uv.run()
os.exit(4)
""")
with open(LUVGC, "w") as f:
    f.write("""local uv = require('luv')
local t = uv.new_timer()
t:start(3600000, 0, function() end)
local s = uv.new_timer()
s:start(tonumber(arg[1]) * 1000, 0, function() uv.stop() end)
uv.run()
-- ends with its handles open: luv's teardown closes what uv_walk shows,
-- then closes the loop until that succeeds
""")
with open(APP, "w") as f:
    f.write("""const ts = [];
for (let i = 0; i < 4; i++) ts.push(setInterval(() => {}, 3600000));
setTimeout(() => { ts.forEach(clearInterval); process.exitCode = 5; },
           +process.argv[2] * 1000);
""")


def t_real_uvloop(named=False):
    port, p = launch([], [PY, SVC, "4", "3"])
    text = wait_served(port, p)
    total, by_type = counts(text)
    # Its 7 call_later timers and asyncio.sleep's.
    check(by_type.get("uv_timer_t") == 8, "uvloop handles: %r\n%s"
          % (by_type, text))
    if named:
        frames_named(text)
    rc, out, err = finish(p)
    check(rc == 3, "exit %d: %s" % (rc, err))
    check("Error" not in err and "Traceback" not in err, err)


def t_real_uvloop_heap():
    port, p = launch(["--heap"], [PY, SVC, "6", "0"])
    wait_served(port, p)
    time.sleep(1)
    prof = os.path.join(TMP, "heap.prof")
    with open(prof, "wb") as f:
        f.write(get(port, "/debug/pprof/heap"))
    r = subprocess.run(["go", "tool", "pprof", "-top", "-sample_index=inuse_space",
                        prof], capture_output=True, text=True, timeout=120,
                       env=env(HOME=TMP, GOFLAGS="-mod=mod"))
    check(r.returncode == 0, "go tool pprof: " + r.stderr)
    m = re.search(r"of ([\d.]+)(MB|GB|kB|B) total", r.stdout)
    check(m is not None, r.stdout)
    mb = float(m.group(1)) * {"GB": 1024, "MB": 1, "kB": 1 / 1024,
                              "B": 1 / 2 ** 20}[m.group(2)]
    check(mb >= 48, "heap in use %.1f MB, the program holds 64 MB:\n%s"
          % (mb, r.stdout))
    rc, out, err = finish(p)
    check(rc == 0, "exit %d: %s" % (rc, err))


def t_real_luv(named=False):
    port, p = launch([], ["lua", LUV, "3"])
    text = wait_served(port, p)
    total, by_type = counts(text)
    check(total == 6 and by_type.get("uv_timer_t") == 6,
          "luv handles: %r\n%s" % (by_type, text))
    if named:
        frames_named(text)
    rc, out, err = finish(p)
    check(rc == 4, "exit %d: %s" % (rc, err))
    # luv's teardown of a loop with handles left (the segfault of old).
    port, p = launch([], ["lua", LUVGC, "2"])
    total, by_type = counts(wait_served(port, p))
    check(total == 2, "luv handles: %r" % by_type)
    rc, out, err = finish(p)
    check(rc == 0, "luv teardown: exit %d: %s" % (rc, err))


def t_real_nvim(named=False):
    port, p = launch([], ["nvim", "--headless", "--clean", "-n", "-i", "NONE",
                          "-c", "call timer_start(3000, {-> execute('qa!')})"],
                     HOME=TMP, XDG_CONFIG_HOME=TMP, XDG_DATA_HOME=TMP,
                     XDG_STATE_HOME=TMP)
    text = wait_served(port, p)
    total, by_type = counts(text)
    check(total > 0 and by_type.get("uv_timer_t", 0) >= 1 and
          by_type.get("uv_signal_t", 0) >= 1, "nvim handles: %r" % by_type)
    if named:
        frames_named(text)
    rc, out, err = finish(p)
    check(rc == 0, "exit %d: %s" % (rc, err))


def t_real_node():
    port, p = launch([], ["node", APP, "3"])
    total, by_type = counts(wait_served(port, p))
    check(by_type.get("uv_timer_t", 0) >= 1, "node handles: %r" % by_type)
    rc, out, err = finish(p)
    check(rc == 5, "exit %d: %s" % (rc, err))
    check(err.count("pprof enabled on") == 1, err)


TESTS = {
    "launcher_badinput": t_launcher_badinput,
    "launcher_nolibuv": t_launcher_nolibuv,
    "launcher_env": t_launcher_env,
    "attach_shortloop": t_attach_shortloop,
    "attach_stall_mutex": t_attach_stall_mutex,
    "attach_children": t_attach_children,
    "attach_raw_preload": t_attach_raw_preload,
    "tracker_rtld_local": t_tracker_rtld_local,
    "real_uvloop": t_real_uvloop,
    "real_uvloop_heap": t_real_uvloop_heap,
    "real_luv": t_real_luv,
    "real_nvim": t_real_nvim,
    "real_node": t_real_node,
    # Every frame named, stripped modules included.
    "real_uvloop_named": lambda: t_real_uvloop(True),
    "real_luv_named": lambda: t_real_luv(True),
    "real_nvim_named": lambda: t_real_nvim(True),
}

if __name__ == "__main__":
    try:
        TESTS[sys.argv[2]]()
        print("attach.py: %s: ok" % sys.argv[2])
    finally:
        for p in started:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.run(["rm", "-rf", TMP])
