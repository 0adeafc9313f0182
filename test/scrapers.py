#!/usr/bin/env python3
"""Replays Grafana Alloy's and Parca's default scrape sets against uv-pprof-demo.

usage: scrapers.py DEMO JEMALLOC_SO
       scrapers.py DEMO --no-jemalloc

The second form is for a sanitized demo, whose malloc cannot be jemalloc:
then allocs must be a valid profile with Go's sample types, no samples and a
comment naming jemalloc, and everything else is checked the same.

What the two scrapers do by default (reference/ANCHORS.md §9), per target:

  Alloy pyroscope.scrape: every 15 s, each profile on its own: allocs, block,
    goroutine, mutex (timeout 10 s) and profile?seconds=14 (timeout 10 s +
    interval - 1 s = 24 s).
  Parca: every 10 s: allocs, block, goroutine, mutex and profile?seconds=10,
    all with scrape_timeout = interval + 3 s = 13 s.

Both run here at once, each request on its own thread, two Alloy rounds and
three Parca rounds, so CPU windows of both overlap with each other and with
every instant profile. Every answer must pass Alloy's validation (HTTP 2xx,
non-empty body, Content-Type application/octet-stream, no Content-Encoding,
gzip or raw protobuf) within the scraper's timeout, and decode as a pprof
Profile with the sample types the scrapers expect (Go's names and order),
consistent references, symbolized functions and the main mapping's build ID
(Parca symbolizes by build ID); allocs must be cumulative from one scrape to
the next (Alloy diffs alloc_* itself), and the demo's own functions must show
(leak_heap_bytes in allocs, leaked_timer_cb in goroutine). The demo must
survive it all and exit 0 on SIGTERM (its clean shutdown).
"""
import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

EXPECTED_TYPES = {
    "allocs": ([("alloc_objects", "count"), ("alloc_space", "bytes"),
                ("inuse_objects", "count"), ("inuse_space", "bytes")],
               ("space", "bytes")),
    "block": ([("contentions", "count"), ("delay", "nanoseconds")],
              ("contentions", "count")),
    "mutex": ([("contentions", "count"), ("delay", "nanoseconds")],
              ("contentions", "count")),
    "goroutine": ([("goroutine", "count")], ("goroutine", "count")),
    "profile": ([("samples", "count"), ("cpu", "nanoseconds")],
                ("cpu", "nanoseconds")),
}
MUST_NAME = {"allocs": "leak_heap_bytes", "goroutine": "leaked_timer_cb"}

# scraper: (interval s, rounds, [(path, timeout s)])
SCRAPERS = {
    "alloy": (15, 2, [("/debug/pprof/allocs", 10), ("/debug/pprof/block", 10),
                      ("/debug/pprof/goroutine", 10), ("/debug/pprof/mutex", 10),
                      ("/debug/pprof/profile?seconds=14", 24)]),
    "parca": (10, 3, [("/debug/pprof/allocs", 13), ("/debug/pprof/block", 13),
                      ("/debug/pprof/goroutine", 13), ("/debug/pprof/mutex", 13),
                      ("/debug/pprof/profile?seconds=10", 13)]),
}


# ---- a minimal protobuf reader, enough for profile.proto ---------------------

def varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """{field number: [values]}: ints for varints, bytes for length-delimited."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            v, i = buf[i:i + n], i + n
        elif wire == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wire == 5:
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ValueError(f"wire type {wire}")
        if num == 0:
            raise ValueError("field 0")
        out.setdefault(num, []).append(v)
    return out


def ints(msg, num):
    """A repeated integer field, packed or not, as signed 64-bit values."""
    out = []
    for v in msg.get(num, []):
        if isinstance(v, bytes):
            i = 0
            while i < len(v):
                x, i = varint(v, i)
                out.append(x)
        else:
            out.append(v)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


def one(msg, num, default=0):
    v = ints(msg, num)
    return v[-1] if v else default


def decode_profile(raw):
    p = fields(raw)
    strings = [s.decode("utf-8") for s in p.get(6, [])]

    def vt(b):
        m = fields(b)
        return strings[one(m, 1)], strings[one(m, 2)]
    prof = {
        "strings": strings,
        "sample_types": [vt(b) for b in p.get(1, [])],
        "period_type": vt(p[11][-1]) if 11 in p else None,
        "period": one(p, 12),
        "samples": [], "mappings": {}, "locations": {}, "functions": {},
    }
    for b in p.get(2, []):
        m = fields(b)
        prof["samples"].append((ints(m, 1), ints(m, 2)))
    for b in p.get(3, []):
        m = fields(b)
        prof["mappings"][one(m, 1)] = {
            "filename": strings[one(m, 5)], "build_id": strings[one(m, 6)],
            "has_functions": one(m, 7)}
    for b in p.get(4, []):
        m = fields(b)
        lines = [one(fields(l), 1) for l in m.get(4, [])]
        prof["locations"][one(m, 1)] = (one(m, 2), lines)
    for b in p.get(5, []):
        m = fields(b)
        prof["functions"][one(m, 1)] = strings[one(m, 2)]
    prof["mapping_order"] = [one(fields(b), 1) for b in p.get(3, [])]
    prof["comments"] = [strings[i] for i in ints(p, 13)]
    return prof


# ---- one scrape ---------------------------------------------------------------

class Result:
    def __init__(self, scraper, rnd, path, timeout):
        self.scraper, self.round, self.path, self.timeout = scraper, rnd, path, timeout
        self.error = None
        self.profile = None

    def name(self):
        return self.path.split("/")[-1].split("?")[0]

    def where(self):
        return f"{self.scraper} round {self.round} {self.path}"


def scrape(base, res):
    req = urllib.request.Request(base + res.path, headers={
        "User-Agent": f"uv-pprof-test-{res.scraper}",
        "Accept-Encoding": "gzip",
        "X-Prometheus-Scrape-Timeout-Seconds": str(res.timeout)})
    try:
        with urllib.request.urlopen(req, timeout=res.timeout) as r:
            status = r.status
            ctype = r.headers.get("Content-Type", "")
            cenc = r.headers.get("Content-Encoding")
            body = r.read()
    except urllib.error.HTTPError as e:
        res.error = f"HTTP {e.code}: {e.read()[:200]!r}"
        return
    except (OSError, TimeoutError) as e:
        res.error = f"no answer within {res.timeout} s: {e}"
        return
    try:
        if not 200 <= status < 300:
            raise ValueError(f"HTTP {status}")
        if not body:
            raise ValueError("empty body")
        if ctype.split(";")[0].strip() != "application/octet-stream":
            raise ValueError(f"Content-Type {ctype!r}")
        if cenc is not None:
            raise ValueError(f"Content-Encoding {cenc!r}")
        raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        res.profile = decode_profile(raw)
        check_profile(res.name(), res.profile)
    except (ValueError, IndexError, KeyError, EOFError, OSError) as e:
        res.error = f"{type(e).__name__}: {e}"


JEMALLOC = True  # False: allocs must be empty and say why


def check_profile(name, p):
    types, period_type = EXPECTED_TYPES[name]
    if p["strings"][:1] != [""]:
        raise ValueError("string_table[0] is not empty")
    if p["sample_types"] != types:
        raise ValueError(f"sample types {p['sample_types']}, expected {types}")
    if p["period_type"] != period_type:
        raise ValueError(f"period type {p['period_type']}, expected {period_type}")
    for locs, values in p["samples"]:
        if len(values) != len(types):
            raise ValueError(f"a sample has {len(values)} values")
        if not locs or any(l not in p["locations"] for l in locs):
            raise ValueError("a sample names a missing location")
    for mapping_id, fns in p["locations"].values():
        if mapping_id and mapping_id not in p["mappings"]:
            raise ValueError("a location names a missing mapping")
        if any(f not in p["functions"] for f in fns):
            raise ValueError("a location names a missing function")
    if p["samples"]:
        if not p["mapping_order"]:
            raise ValueError("no mappings")
        main = p["mappings"][p["mapping_order"][0]]
        if not main["filename"].endswith("uv-pprof-demo") or not main["build_id"]:
            raise ValueError(f"first mapping {main}: not the demo with a build ID")
        if not main["has_functions"]:
            raise ValueError("the demo's mapping is not symbolized (has_functions)")
    if name == "allocs" and not JEMALLOC:
        if p["samples"] or not any("jemalloc" in c for c in p["comments"]):
            raise ValueError("allocs without jemalloc: expected no samples and "
                             f"a comment naming jemalloc, got {p['comments']}")
    elif name in MUST_NAME and MUST_NAME[name] not in p["functions"].values():
        raise ValueError(f"no {MUST_NAME[name]} among the functions")
    if name == "profile" and p["period"] != 10_000_000:
        raise ValueError(f"CPU period {p['period']} ns, expected 10 ms")


def run_scraper(base, scraper, results, t0):
    interval, rounds, targets = SCRAPERS[scraper]
    threads = []
    for rnd in range(rounds):
        delay = t0 + rnd * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for path, timeout in targets:
            res = Result(scraper, rnd, path, timeout)
            results.append(res)
            t = threading.Thread(target=scrape, args=(base, res))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()


def totals(res, index):
    return sum(v[index] for _, v in res.profile["samples"])


def main():
    global JEMALLOC
    demo, jemalloc = sys.argv[1:3]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, UV_PPROF=f"127.0.0.1:{port}")
    if jemalloc == "--no-jemalloc":
        JEMALLOC = False
    else:
        env.update(LD_PRELOAD=jemalloc, MALLOC_CONF="prof:true,prof_accum:true")
    env.pop("UV_PPROF_TOKEN", None)
    proc = subprocess.Popen([demo, "--echo-port", "0", "--leak-heap", "1m",
                             "--leak-timers", "5"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        line = proc.stderr.readline()
        if line != f"pprof enabled on http://localhost:{port}/debug/pprof/\n":
            print(f"FAIL: demo banner {line!r}", file=sys.stderr)
            return 1
        base = f"http://127.0.0.1:{port}"
        # Scrapers come to a program that has run a while: wait until the
        # demo's leak has been sampled (one allocation per 512 KiB).
        deadline = time.monotonic() + 60
        while JEMALLOC and b"leak_heap_bytes" not in urllib.request.urlopen(
                base + "/debug/pprof/heap?debug=1", timeout=30).read():
            if time.monotonic() > deadline:
                print("FAIL: the demo's leak was never sampled", file=sys.stderr)
                return 1
            time.sleep(0.2)
        results = []
        t0 = time.monotonic() + 0.5
        scrapers = [threading.Thread(target=run_scraper,
                                     args=(base, s, results, t0))
                    for s in SCRAPERS]
        for t in scrapers:
            t.start()
        for t in scrapers:
            t.join()

        for res in sorted(results, key=lambda r: (r.scraper, r.round, r.path)):
            if res.error:
                failures.append(f"{res.where()}: {res.error}")
                continue
            p = res.profile
            print(f"ok {res.where()}: {len(p['samples'])} samples, "
                  f"{len(p['locations'])} locations")
        for scraper in SCRAPERS:
            allocs = [r for r in results if r.scraper == scraper and
                      r.name() == "allocs" and r.profile]
            allocs.sort(key=lambda r: r.round)
            for a, b in zip(allocs, allocs[1:]):
                for i, what in ((0, "alloc_objects"), (1, "alloc_space")):
                    if totals(b, i) < totals(a, i):
                        failures.append(f"{scraper}: {what} went down between "
                                        f"rounds {a.round} and {b.round}")
            if len(allocs) >= 2:
                print(f"ok {scraper}: allocs cumulative, alloc_space "
                      + " <= ".join(str(totals(r, 1)) for r in allocs))
        if proc.poll() is not None:
            failures.append(f"the demo exited during the scrapes ({proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            err = proc.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        rc = proc.returncode
    if rc != 0:
        failures.append(f"the demo's exit status after SIGTERM: {rc}\n{err}")
    n = sum(len(SCRAPERS[s][2]) * SCRAPERS[s][1] for s in SCRAPERS)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"all {n} scrapes answered and validated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
