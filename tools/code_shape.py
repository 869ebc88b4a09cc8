"""The package's shape as the code has it: module imports, import circles, the longest classes and functions.

    python tools/code_shape.py          # dependency table, circles, classes > 250 and functions > 80 lines
    python tools/code_shape.py --json   # the same as JSON

An import counts wherever it stands (module level or inside a function: a lazy import is still a dependency),
except under ``if TYPE_CHECKING:``, which never runs. ``from hinerv.pkg import name`` depends on
``hinerv.pkg`` (its ``__init__``) unless ``name`` is a submodule. ``tests/test_code_shape.py`` fails on any
circle; docs/architecture.md's picture is drawn from this table.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hinerv"
CLASS_LINES, FUNCTION_LINES = 250, 80


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for alt in child.orelse:
                    if isinstance(alt, (ast.Import, ast.ImportFrom)):
                        out.append(alt)
                    else:
                        visit(alt)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            visit(child)

    visit(tree)
    return out


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (outside TYPE_CHECKING)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                target = _resolve(mod, path.name == "__init__.py", node)
                subs = [f"{target}.{a.name}" for a in node.names]
                targets = [sub if sub in mods else target for sub in subs]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.split(".")[0] == PACKAGE:
                    deps.add(t)
        graph[mod] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(out)


def long_definitions(root: Path = ROOT) -> list[tuple[str, str, int]]:
    """(kind, module:qualified name, lines) of classes over CLASS_LINES and functions over FUNCTION_LINES."""
    out: list[tuple[str, str, int]] = []
    for mod, path in modules(root).items():

        def walk(node: ast.AST, prefix: str, mod: str = mod) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = (child.end_lineno or child.lineno) - child.lineno + 1
                    name = f"{prefix}{child.name}"
                    is_class = isinstance(child, ast.ClassDef)
                    if n > (CLASS_LINES if is_class else FUNCTION_LINES):
                        out.append(("class" if is_class else "function", f"{mod}:{name}", n))
                    walk(child, name + ".", mod)

        walk(ast.parse(path.read_text(), str(path)), "")
    return sorted(out, key=lambda r: -r[2])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    ns = p.parse_args(argv)
    graph = imports()
    circ = circles(graph)
    longs = long_definitions()
    if ns.json:
        print(json.dumps({"imports": {k: sorted(v) for k, v in graph.items()}, "circles": circ,
                          "long": [{"kind": k, "name": n, "lines": size} for k, n, size in longs]}, indent=1))
        return 0
    width = max(map(len, graph))
    for mod in sorted(graph):
        deps = ", ".join(d.removeprefix(PACKAGE + ".") for d in sorted(graph[mod]))
        print(f"{mod:<{width}}  -> {deps or '-'}")
    print(f"\nimport circles: {len(circ)}")
    for c in circ:
        print("  " + " <-> ".join(c))
    print(f"\nclasses > {CLASS_LINES} lines, functions > {FUNCTION_LINES} lines: {len(longs)}")
    for kind, name, n in longs:
        print(f"  {n:5d}  {kind:8s} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
