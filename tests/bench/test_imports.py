"""Issue #18: the bench modules import one another without circles (also counting imports inside
functions), and the bench CLI module imports nothing heavy when it is loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hinerv.bench

BENCH = Path(hinerv.bench.__file__).parent


def _bench_imports(path: Path) -> set[str]:
    """``hinerv.bench`` submodules ``path`` imports anywhere in its code."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n.split(".")[2] for n in names if n.startswith("hinerv.bench.") and n.count(".") >= 2}
    return out


def test_bench_modules_import_without_circles() -> None:
    graph = {p.stem: _bench_imports(p) & {q.stem for q in BENCH.glob("*.py")} for p in BENCH.glob("*.py")}
    graph.pop("__init__")

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert circles == [], f"modules on an import circle: {circles}"


def test_bench_cli_module_loads_without_heavy_imports() -> None:
    # Loads hinerv/cli/bench_cmd.py alone (the package __init__ registers every command module).
    code = (
        "import sys, types, hinerv; from pathlib import Path\n"
        "pkg = types.ModuleType('hinerv.cli'); pkg.__path__ = [str(Path(hinerv.__file__).parent / 'cli')]\n"
        "sys.modules['hinerv.cli'] = pkg\n"
        "import hinerv.cli.bench_cmd\n"
        "heavy = ('torch', 'av', 'skimage', 'scipy', 'matplotlib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
