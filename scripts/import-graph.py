#!/usr/bin/env python3
"""File-level import graph of a Rust crate, and its cycles.

Usage: scripts/import-graph.py [SRC_DIR] [--list] [--under PREFIX]

For each .rs file under SRC_DIR (default: src), lists the other files of the crate it
names through `crate::`, `super::`, `self::` or a child module's name (in `use` lines and
in inline paths), resolved to the file that defines the longest matching module. Files
under src/bin/ are separate crates and are skipped. Code in `#[cfg(test)]` modules counts
too: a test module's imports are imports of its file.

Prints each cycle (strongly connected component of more than one file) and exits 1 if
there is one; --list also prints every file's edges. --under keeps only files whose path
starts with PREFIX (e.g. src/sandbox) in the report.
"""
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip(text):
    """Removes comments, string and char literals (keeps line structure)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', lambda m: "\n" * m.group(0).count("\n"), text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', lambda m: '""' + "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
    text = re.sub(r"//[^\n]*", "", text)
    return text


def expand_use(body):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (roughly)."""
    body = re.sub(r"\s+", "", body)
    out = []

    def rec(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for p in parts:
            if not p:
                continue
            if "{" in p:
                head, rest = p.split("{", 1)
                rec(prefix + head, rest[: rest.rfind("}")])
            else:
                out.append(prefix + re.sub(r"as\w+$", "", p))

    rec("", body)
    return out


PATH = re.compile(r"\b((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def paths_in(code):
    """Yields (path, inline-module-depth) for each path in `code`."""
    # Track inline modules (`mod x {`) so `super::` inside them resolves right.
    i, depth, stack = 0, 0, []
    tokens = re.finditer(r"\bmod\s+([a-z_][a-z0-9_]*)\s*\{|\{|\}|\buse\s+([^;]+);|" + PATH.pattern, code)
    for m in tokens:
        t = m.group(0)
        if m.group(1):
            depth += 1
            stack.append((depth, m.group(1)))
        elif t == "{":
            depth += 1
        elif t == "}":
            if stack and stack[-1][0] == depth:
                stack.pop()
            depth -= 1
        elif m.group(2):
            for p in expand_use(m.group(2)):
                yield p, [n for _, n in stack]
        else:
            yield m.group(3), [n for _, n in stack]


def main():
    args = sys.argv[1:]
    list_all = "--list" in args
    under = None
    if "--under" in args:
        under = args[args.index("--under") + 1]
        args = [a for a in args if a not in ("--under", under)]
    args = [a for a in args if a != "--list"]
    src = args[0] if args else "src"
    files = {}
    for root, _, names in os.walk(src):
        if os.path.relpath(root, src).split(os.sep)[0] == "bin":
            continue
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_of(p, src)] = p
    children = {}
    for mod in files:
        if mod:
            children.setdefault(mod[:-1], set()).add(mod[-1])
    edges = {p: set() for p in files.values()}
    for mod, path in files.items():
        code = strip(open(path, encoding="utf-8").read())
        for p, inline in paths_in(code):
            segs = p.split("::")
            here = list(mod) + inline
            if segs[0] == "crate":
                absolute, segs = [], segs[1:]
            elif segs[0] in ("super", "self"):
                absolute = list(here)
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super" and absolute:
                        absolute.pop()
                    segs = segs[1:]
            elif segs[0] in children.get(tuple(here), ()):
                absolute = list(here)
            else:
                continue  # another crate, a std path or a local item
            full = tuple(absolute + segs)
            for k in range(len(full), -1, -1):
                target = files.get(full[:k])
                if target:
                    break
            if target and target != path:
                edges[path].add(target)
    # Tarjan's strongly connected components.
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    keep = lambda p: under is None or p.startswith(under)
    if list_all:
        for v in sorted(edges):
            if keep(v):
                print(f"{v}: {', '.join(sorted(edges[v])) or '-'}")
    bad = [c for c in sccs if any(keep(p) for p in c)]
    for c in bad:
        print("cycle:", " <-> ".join(c))
        for v in c:
            print(f"  {v} -> {', '.join(sorted(w for w in edges[v] if w in c))}")
    if not bad:
        print("no import cycles" + (f" under {under}" if under else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
