"""Fixtures shared by every test folder."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from hinerv.cli import main

#: ``cli(args) -> (exit code, stdout, stderr)``
Cli = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the real ``hinerv`` entry point on ``args`` in this process; return its exit code and captured
    output."""

    def run(args: list[str]) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as e:
            main(args)
        out, err = capsys.readouterr()
        return int(e.value.code or 0), out, err

    return run


#: ``load_tool(name) -> module``: ``tools/<name>.py`` loaded as a module (tools/ is not a package)
LoadTool = Callable[[str], ModuleType]


@pytest.fixture(scope="session")
def load_tool() -> LoadTool:
    """Load a script of ``tools/`` by its file name (without ``.py``), for tests of the tools."""

    def load(name: str) -> ModuleType:
        path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
