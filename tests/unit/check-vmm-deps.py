#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""No circular file dependencies in src/vmm (docs/ARCHITECTURE.md): from the
object files of the rehome binary, which src/vmm file calls a function another
defines; any cycle in that graph fails, printed as a chain of files."""
import collections, glob, os, subprocess, sys

objdir = os.path.join(sys.argv[1], "src", "cli", "rehome.p")
objs = glob.glob(os.path.join(objdir, ".._vmm_*.c.o"))
if len(objs) < 10:
    print(f"FAIL: only {len(objs)} src/vmm objects in {objdir}")
    sys.exit(1)
defs, undef = {}, collections.defaultdict(set)
for o in objs:
    name = os.path.basename(o)[len(".._vmm_"):-len(".c.o")]
    for line in subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "TDBR":
            defs[p[2]] = name
        elif len(p) == 2 and p[0] == "U":
            undef[name].add(p[1])
graph = collections.defaultdict(set)
for name, syms in undef.items():
    graph[name] |= {defs[s] for s in syms if s in defs and defs[s] != name}
cycles = set()
def walk(node, path):
    for nxt in graph[node]:
        if nxt in path:
            cyc = path[path.index(nxt):]
            k = cyc.index(min(cyc))
            cycles.add(tuple(cyc[k:] + cyc[:k]))
        else:
            walk(nxt, path + [nxt])
for n in list(graph):
    walk(n, [n])
for c in sorted(cycles):
    print("FAIL: cycle " + " -> ".join(c + (c[0],)))
print(f"{len(objs)} files in src/vmm, {sum(len(v) for v in graph.values())} dependencies, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
