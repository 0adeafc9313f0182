#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into test/fuzz/corpus/<target>/: small
inputs in each format, made here (nothing is copied from elsewhere). Run it
again after changing it; the files are committed. libFuzzer grows its own
corpus from these in a scratch directory (scripts/fuzz.sh)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def heap():
    # jemalloc 5.3's heap_v2 layout: header, the t* summary, per-thread
    # lines, then "@ pcs" and each stack's counts, then MAPPED_LIBRARIES.
    lib = 0x7F0000000000
    exe = 0x555555554000
    def stack(pcs, counts):
        line = "@ " + " ".join("0x%x" % p for p in pcs) + "\n"
        return line + "  t*: %d: %d [%d: %d]\n  t0: %d: %d [%d: %d]\n" % (
            counts * 2)
    jem = [lib + 0xA2630, lib + 0xA2D21, lib + 0x95F24, lib + 0x25045]
    dump = "heap_v2/524288\n  t*: 129: 105906176 [139: 147849216]\n"
    dump += "  t0: 129: 105906176 [139: 147849216]\n"
    dump += stack(jem + [exe + 0x1182, exe + 0x11BC, exe + 0x1394], (25, 104857600, 25, 104857600))
    dump += stack(jem + [exe + 0x125F, exe + 0x13AD], (0, 0, 10, 41943040))
    dump += stack(jem[:3] + [lib + 0x22ED9, lib - 0x3FA846], (1, 82659, 1, 82659))
    dump += "\nMAPPED_LIBRARIES:\n%x-%x r-xp 00001000 fe:00 1 /usr/bin/host\n" % (exe, exe + 0x1000)
    dump += "%x-%x r-xp 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n" % (lib, lib + 0xA6000)
    write("fuzz_heap", "three_stacks", dump)
    write("fuzz_heap", "empty", "heap_v2/1\n  t*: 0: 0 [0: 0]\n")
    write("fuzz_heap", "lg0", "heap_v2/1\n  t*: 1: 1024 [1: 1024]\n"
          "@ 0x1 0x2 0x3\n  t*: 1: 1024 [1: 1024]\n  t3: 1: 1024 [1: 1024] worker\n")
    write("fuzz_heap", "huge_counts", "heap_v2/1\n  t*: 18446744073709551615: 2 [3: 4]\n"
          "@ 0xffffffffffffffff\n  t*: 18446744073709551615: 18446744073709551615 [3: 4]\n")


def maps():
    write("fuzz_maps", "typical",
          "555555554000-555555555000 r--p 00000000 fe:00 10953266                   /usr/bin/host\n"
          "555555555000-555555556000 r-xp 00001000 fe:00 10953266                   /usr/bin/host\n"
          "7ffff7c00000-7ffff7c28000 r--p 00000000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
          "7ffff7c28000-7ffff7d7e000 r-xp 00028000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
          "7ffff7fc1000-7ffff7fc3000 r-xp 00000000 00:00 0                          [vdso]\n"
          "7ffff0000000-7ffff0021000 rwxp 00000000 00:00 0 \n"
          "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n")
    write("fuzz_maps", "deleted", "7f0000000000-7f0000001000 r-xp 00000000 08:01 12 /tmp/x (deleted)\n")
    write("fuzz_maps", "spaces", "7f0000000000-7f0000001000 r-xp 00000000 08:01 12 /a path/with spaces\n")
    write("fuzz_maps", "no_newline", "1-2 r-xp 3 0:0 4 /x")


def symbol():
    # The first byte picks the reader (fuzz_symbol.c): 0 symbol protocol,
    # 1 query lookup, 2 seconds, 3 percent-decoding, 4 path cleaning.
    write("fuzz_symbol", "addresses", "\x00" + "0x401000+0x7f0000000000+4198400+0+017+bad+")
    write("fuzz_symbol", "query", "\x01debug=1&seconds=30&gc=1&debug=%32&x")
    write("fuzz_symbol", "seconds", "\x02seconds=%2B5")
    write("fuzz_symbol", "unescape", "\x03/debug/pprof//%0d%0aSet-Cookie:%20x=1%zz%2")
    write("fuzz_symbol", "clean", "\x04/debug/pprof/../a/./b//c/..")


def builder():
    out = bytes([2]) + b"\x03cpu\x0bnanoseconds" + struct.pack(">q", 10000000)
    out += b"\x07samples\x05count" + b"\x03cpu\x0bnanoseconds"
    # a sample of 2 locations (an address and a named frame), a label
    out += bytes([3, 2, 0]) + struct.pack(">Q", 0x401000)
    out += bytes([1, 4]) + b"tick" + bytes([6]) + b"main.c"
    out += bytes([5, 7, 1, 4]) + b"type" + bytes([1, 3]) + b"tcp" + bytes([0, 1])
    out += bytes([1, 7]) + b"comment"
    write("fuzz_builder", "sample", out)
    write("fuzz_builder", "empty", b"\x00")


def unwind():
    # [how][pick][17 registers][stack bytes] (fuzz_unwind.c): pick 0x80 is a
    # real stack of the fuzzer itself, the rest XORed into it.
    write("fuzz_unwind", "real_rules", bytes([0x3E, 0x80]))
    write("fuzz_unwind", "real_libdw", bytes([0x3F, 0x80]))
    # 0x40: a library loaded and unloaded first; found libdw reading freed
    # memory after the modules were reported again (test-fuzzfound.c)
    write("fuzz_unwind", "real_libdw_reload", bytes([0x3F, 0xC0]))
    write("fuzz_unwind", "real_libdw_reload2", bytes([0x3F, 0xC0]))
    regs = b"".join(struct.pack("<Q", 0x7FFF0000 + 8 * i) for i in range(17))
    write("fuzz_unwind", "code_in_copy", bytes([0x3E, 0x03]) + regs + bytes(range(256)) * 4)
    write("fuzz_unwind", "garbage", bytes([0x21, 0x00]) + regs + b"\xff" * 64)


def http():
    # On a loopback bind only a loopback or localhost Host is answered
    # (issue 12's item 2): the seeds send one, but for "foreign_host".
    get = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    post = "POST /debug/pprof/symbol HTTP/1.1\r\nHost: localhost\r\n"
    write("fuzz_http", "index", get % "/debug/pprof/")
    write("fuzz_http", "pipelined", get % "/debug/pprof/cmdline" + get % "/debug/pprof/threadcreate?debug=1"
          + get % "/debug/pprof/nosuch")
    write("fuzz_http", "redirect", get % "/debug/pprof//%0d%0aSet-Cookie:%20x=1")
    write("fuzz_http", "redirect_query", get % "/debug/pprof/./cmdline?a=%0d%0a&b=\\x")
    write("fuzz_http", "backslash", get % "/%5cevil.example/.")
    write("fuzz_http", "post_symbol", post + "Content-Length: 23\r\n\r\n0x401000+0x7f0000000000")
    write("fuzz_http", "expect", post + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n0x401")
    write("fuzz_http", "chunked", post + "Transfer-Encoding: chunked\r\n\r\n5\r\n0x401\r\n0\r\n\r\n")
    write("fuzz_http", "head_close", "HEAD /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: [::1]:6060\r\n"
          "Connection: close\r\n\r\n")
    write("fuzz_http", "http10", "GET /metrics HTTP/1.0\r\n\r\n")
    write("fuzz_http", "bad_method", "DELETE /debug/pprof/ HTTP/1.1\r\nHost: localhost:6060\r\n\r\n")
    write("fuzz_http", "upgrade", "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1:6060\r\n"
          "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + get % "/debug/pprof/cmdline")
    write("fuzz_http", "foreign_host", "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: evil.example\r\n\r\n"
          + get % "/debug/pprof/cmdline")
    write("fuzz_http", "ui_gzip", "GET /debug/pprof/ui/heap HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Accept-Encoding: gzip\r\n\r\n")
    write("fuzz_http", "garbage", "\x00\xff GET / HTTP/9.9\r\n\r\n")

heap()
http()
maps()
symbol()
builder()
unwind()
