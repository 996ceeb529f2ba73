"""The module graph of every crate in shared/ and functions/ has no cycle
(issue 16): a reader can start at the bottom of a crate and read upwards,
and no change to one module can come back round to it through another.

An edge A -> B is any path to module B named in A's production code: `use
crate::...`, `use super::...` (with nested `{...}` groups), and inline
`crate::b::f()` / `super::b::f()` paths. Test modules (`#[cfg(test)] mod
... { }`) are left out: a test may reach into any module it proves. A module
is never said to depend on its own ancestors, and a path through a
re-export (`pub use child::item`) leads to the module that defines the item."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRATES = [ROOT / "shared" / "src"] + sorted(p / "src" for p in (ROOT / "functions").iterdir() if (p / "src").is_dir())

TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")
USE = re.compile(r"\buse\s+(crate|super)::([^;]*);")
REEXPORT = re.compile(r"\bpub\s+use\s+([^;]*);")
INLINE = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def without_test_modules(text):
    out, pos = [], 0
    for match in TEST_MODULE.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos : match.start()])
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


def use_tree_paths(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (as segment lists)."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [[s for s in tree.split(" as ")[0].split("::") if s]]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rindex("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    prefix = [s for s in head.split("::") if s]
    return [prefix + p for part in parts if part for p in use_tree_paths(part)]


def modules(src):
    found = {}
    for f in src.rglob("*.rs"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[tuple(parts)] = f
    return found


def graph(src):
    mods = modules(src)
    reexports = reexports_of(mods)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = without_test_modules(f.read_text())
        paths = []
        for anchor, tree in USE.findall(text):
            base = [] if anchor == "crate" else list(m[:-1])
            paths += [base + p for p in use_tree_paths(tree)]
        for anchor, path in INLINE.findall(text):
            base = [] if anchor == "crate" else list(m[:-1])
            paths.append(base + path.strip(":").split("::"))
        for path in paths:
            target = resolve(path, mods, reexports)
            if target is not None and target != m and m[: len(target)] != target:
                edges[m].add(target)
    return edges


def reexports_of(mods):
    """(module, name) -> the child module a `pub use child::...name` takes it from."""
    found = {}
    for m, f in mods.items():
        for tree in REEXPORT.findall(without_test_modules(f.read_text())):
            for path in use_tree_paths(tree):
                if path and path[0] not in ("crate", "super", "self") and m + (path[0],) in mods:
                    found[(m, path[-1])] = m + (path[0],)
    return found


def resolve(path, mods, reexports):
    """The module a path leads into: its longest prefix that is a module,
    followed through re-exports (`crate::webhooks::release_parked` is
    `webhooks::parked`, where it is defined)."""
    for k in range(len(path), 0, -1):
        target = tuple(path[:k])
        if target in mods:
            while k < len(path) and (target, path[k]) in reexports:
                target = reexports[(target, path[k])]
            return target
    return None


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append("::".join(w) or "crate")
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("src", CRATES, ids=lambda p: p.parent.name)
def test_no_module_cycle(src):
    found = cycles(graph(src))
    assert not found, f"{src.parent.name}: modules that import each other in a circle: {found}"


def test_the_check_sees_imports_and_cycles(tmp_path):
    # Guards the check above from passing because it parsed nothing.
    (tmp_path / "a").mkdir()
    (tmp_path / "lib.rs").write_text("pub mod a;\npub mod b;\n")
    (tmp_path / "a" / "mod.rs").write_text("mod x;\nmod y;\npub use y::f;\nuse crate::b::{self, Thing};\n")
    (tmp_path / "a" / "x.rs").write_text("use super::{y::{f, g}, z};\n#[cfg(test)]\nmod tests { use crate::b; }\n")
    (tmp_path / "a" / "y.rs").write_text("fn h() { super::x::k(); }\n")
    (tmp_path / "b.rs").write_text("pub struct Thing;\nfn t() { crate::a::f(); }\n#[cfg(test)]\nmod tests { use crate::a; }\n")
    edges = graph(tmp_path)
    assert edges[("a", "x")] == {("a", "y")}
    assert edges[("a",)] == {("b",)}
    # Through the re-export to where `f` is defined.
    assert edges[("b",)] == {("a", "y")}
    assert cycles(edges) == [["a::x", "a::y"]]
