#!/usr/bin/env python3
"""Lists import cycles between sibling modules in each crate of the workspace.

An edge a -> b exists when a file of module a names a path into its sibling b (`crate::x::b`,
`super::b`, also inside `use …::{…}` groups). Comments and unit-test modules are left out, and
so are glob imports (`use super::*`) and paths through a parent's re-exports: the check reads
the text, it does not resolve names. Exits 1 when it finds a cycle, 2 when a crate's sources
are missing.

Usage: scripts/module-cycles.py [--crate NAME]... [workspace root]  (default: every crate)
"""
import os
import re
import sys

CRATES = {
    "sheetsync-core": "sheetsync-core/src",
    "sheetsync-sql": "sheetsync-sql/src",
    "sheetsync-gsheets": "sheetsync-gsheets/src",
    "sheetsync-emulator": "sheetsync-emulator/src",
    "sheetsync": "src",
    "sheetsync-cli": "examples/sheetsync/src",
}


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def paths_in(text):
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//.*", "", text)

    def expand(m):
        items = re.split(r",(?![^{]*\})", m.group(2))
        return " ".join(m.group(1) + "::" + i.strip() for i in items if i.strip())

    for _ in range(3):
        text = re.sub(r"\b((?:crate|super|self)(?:::\w+)*)::\{([^{}]*)\}", expand, text)
    return re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)


def edges(src):
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs")]
    mods = {module_of(src, f): f for f in files}
    out = set()
    for m, f in mods.items():
        for path in paths_in(open(f, encoding="utf-8").read()):
            parts = path.split("::")
            if parts[0] == "crate":
                target = tuple(parts[1:])
            elif parts[0] == "self":
                target = m + tuple(parts[1:])
            else:
                base, i = m[:-1], 1
                while i < len(parts) and parts[i] == "super":
                    base, i = base[:-1], i + 1
                target = base + tuple(parts[i:])
            while target and target not in mods:
                target = target[:-1]
            k = 0
            while k < min(len(m), len(target)) and m[k] == target[k]:
                k += 1
            if k < len(m) and k < len(target):  # siblings below a common parent
                out.add((m[: k + 1], target[: k + 1]))
    return out


def cycles(graph):
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def main():
    args, picked = sys.argv[1:], []
    while len(args) >= 2 and args[0] == "--crate":
        picked.append(args[1])
        args = args[2:]
    root = args[0] if args else "."
    unknown = [c for c in picked if c not in CRATES]
    if unknown:
        print("unknown crate: " + ", ".join(unknown), file=sys.stderr)
        return 2
    any_cycle = False
    for crate in picked or list(CRATES):
        src = os.path.join(root, CRATES[crate])
        # A moved crate must not pass for one without cycles.
        if not os.path.isdir(src):
            print(crate + ": no sources at " + src, file=sys.stderr)
            return 2
        graph = {}
        for a, b in edges(src):
            graph.setdefault(a, set()).add(b)
        for comp in cycles(graph):
            any_cycle = True
            print(crate + ": " + " <-> ".join("::".join(m) for m in comp))
    if not any_cycle:
        print("no import cycles between sibling modules")
    return 1 if any_cycle else 0


if __name__ == "__main__":
    sys.exit(main())
