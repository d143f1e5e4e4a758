#!/bin/bash
# Lists the module -> module `use crate::X` edges of src/ (outside #[cfg(test)] code) and fails if
# they form a cycle (prints the strongly connected components). Run from the repository root.
set -eu
edges=$(for f in $(git ls-files 'src/*.rs' | grep -v '^src/bin/\|^src/main.rs\|/tests.rs$'); do
  m=$(echo "$f" | cut -d/ -f2 | sed 's/\.rs$//')
  sed '/#\[cfg(test)\]/,$d' "$f" | grep -v '^\s*//' | grep -o 'crate::[a-z_]*' | sort -u | sed "s|crate::|$m |" || true
done | awk '$1!=$2' | sort -u)
echo "$edges" | python3 -c '
import sys, collections
g = collections.defaultdict(set)
for line in sys.stdin:
    if line.strip():
        a, b = line.split(); g[a].add(b); g.setdefault(b, set())
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in g[v]:
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        s = []
        while True:
            w = stack.pop(); on.discard(w); s.append(w)
            if w == v: break
        sccs.append(s)
for v in list(g):
    if v not in index: visit(v)
cycles = [sorted(s) for s in sccs if len(s) > 1]
print(f"{len(g)} modules, {sum(map(len, g.values()))} edges")
if cycles:
    print("cycles:", cycles); sys.exit(1)
print("no cycle: the module graph is a DAG")
'
