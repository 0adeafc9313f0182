#!/usr/bin/env python3
"""Checks src/'s layering (docs/INTERNALS.md, "Layers"): every source file
includes its own layer's header and no header of a layer above it, and the
graph of which file calls which (read from the objects' symbol tables with
nm) only goes down the layers and has no cycle.

    layers.py SOURCE_DIR OBJECT...   (the library's objects, src/<file>.o)
"""
import os
import re
import subprocess
import sys

# Bottom to top; a file's layer is the header it must include.
LAYERS = ["base.h", "proc.h", "pprof.h", "loop.h", "request.h", "profile.h",
          "router.h", "server.h", "uv_pprof.h"]
FILES = {
    "base.h": ["buf.c", "stop.c"],
    "proc.h": ["maps.c", "threads.c", "symbolize.c", "debuginfo.c", "plt.c", "jit.c",
               "demangle.c", "jemalloc.c", "stacks.c", "memstat.c", "unwind.c",
               "sampler.c", "dw.c", "threadstate.c"],
    "pprof.h": ["pprof/builder.c", "pprof/gzip.c", "pprof/text.c"],
    "loop.h": ["libuv_internals.c", "own.c", "handles.c", "worker.c",
               "loops.c", "wakeup.c", "stall.c", "stallsite.c",
               "stallrec.c", "report.c"],
    "request.h": ["request.c", "http.c"],
    "profile.h": ["profile/*", "metrics.c", "timeline.c", "history.c",
                  "groups.c", "when.c", "recorder.c"],
    "router.h": ["router.c"],
    "server.h": ["server.c"],
    "uv_pprof.h": ["uv_pprof.c"],
}


def layer_of(path):
    for layer, names in FILES.items():
        for n in names:
            if n == path or (n.endswith("/*") and path.startswith(n[:-1])):
                return LAYERS.index(layer)
    return None


def main():
    src = sys.argv[1]
    objects = {}
    for o in (o for arg in sys.argv[2:] for o in arg.split(";")):
        m = re.search(r"/src/(.+)\.o$", o)
        if m:
            objects[m.group(1)] = o
    errors = []
    sources = []
    for root, _, files in os.walk(os.path.join(src, "src")):
        for f in files:
            if f.endswith(".c"):
                rel = os.path.relpath(os.path.join(root, f),
                                      os.path.join(src, "src"))
                # The interposing libraries and the launcher are users of
                # the library, not layers of it.
                if not rel.startswith(("track/", "attach/")):
                    sources.append(rel)
    for rel in sorted(sources):
        lay = layer_of(rel)
        if lay is None:
            errors.append(f"{rel}: in no layer (add it to test/layers.py and"
                          " docs/INTERNALS.md)")
            continue
        text = open(os.path.join(src, "src", rel)).read()
        inc = re.findall(r'#include "([^"]+)"', text)
        own = LAYERS[lay] if LAYERS[lay] != "uv_pprof.h" else "server.h"
        if own not in inc:
            errors.append(f"{rel}: does not include its layer's {own}")
        for h in inc:
            if h in LAYERS and LAYERS.index(h) > max(lay, LAYERS.index(own)):
                errors.append(f"{rel}: includes {h}, a layer above its own")

    # Who defines and who uses each uv_pprof__ symbol.
    defines = {}
    uses = {}
    for rel in sources:
        obj = objects.get(rel)
        if obj is None:
            errors.append(f"{rel}: no object file given")
            continue
        out = subprocess.run(["nm", obj], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            name = parts[-1]
            if not name.startswith("uv_pprof__"):
                continue
            if parts[-2] == "U":
                uses.setdefault(rel, set()).add(name)
            elif parts[-2] in "TDBRC":
                defines[name] = rel
    edges = {}
    for rel, names in uses.items():
        for n in names:
            to = defines.get(n)
            if to is None or to == rel:
                continue
            edges.setdefault(rel, set()).add(to)
            if layer_of(to) is None or layer_of(rel) is None:
                continue  # reported above
            if layer_of(to) > layer_of(rel):
                errors.append(f"{rel} calls up into {to} ({n})")

    # No cycle, not even within a layer.
    state = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                errors.append("cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])

    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    n = sum(len(v) for v in edges.values())
    print(f"{len(sources)} files, {n} calls between files: all go down, "
          "no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
