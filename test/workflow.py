"""What the workflow tests (test/*.py) share: failing with a message, free
loopback ports, reading a file that may not exist yet, waiting for a
condition with a bound, HTTP GETs, whether a pid is still running, stopping
a child, and the entry point that turns a failure into exit status 1."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


class Failed(Exception):
    """A check did not hold; the message says which."""


def expect(cond, what):
    if not cond:
        raise Failed(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path):
    """The file's text, "" while it does not exist."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(pred, what, timeout=60, ignore=()):
    """pred()'s first true value, polled every 0.2 s for at most timeout
    seconds; exceptions of the types in `ignore` count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except ignore:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise Failed("timed out waiting for " + what)


def http_get(url, timeout=30):
    """(status, body as text) of a GET; raises on HTTP errors."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours (a server that exited) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop(proc, sig=signal.SIGTERM, group=False, must_obey=False):
    """Sends sig to proc (to its process group when group) unless it has
    exited, and reaps it: its exit status. After 20 s it is killed, which
    fails the check when must_obey."""
    kill = os.killpg if group else os.kill
    if proc.poll() is None:
        try:
            kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        kill(proc.pid, signal.SIGKILL)
        rc = proc.wait()
        if must_obey:
            raise Failed(f"pid {proc.pid} ignored signal {sig}")
        return rc


def run_main(main):
    """Exits with main()'s status; a Failed check prints FAIL and exits 1."""
    try:
        sys.exit(main())
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
