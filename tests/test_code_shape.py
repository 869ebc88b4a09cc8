"""The package has no import circle (tools/code_shape.py finds them; this keeps the count at zero)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LoadTool  # tests/conftest.py


@pytest.fixture(scope="module")
def shape(load_tool: LoadTool) -> ModuleType:
    return load_tool("code_shape")


def test_circles_are_found(shape) -> None:  # type: ignore[no-untyped-def]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert shape.circles(graph) == [["a", "b", "c"]]
    assert shape.circles({"a": {"b"}, "b": set()}) == []


def test_lazy_imports_count_and_type_checking_does_not(shape, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pkg = tmp_path / "hinerv"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from hinerv.sub import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from hinerv import top\n")
    (pkg / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from hinerv import other\n"
        "from .sub import leaf\n"
    )
    (pkg / "other.py").write_text("from . import top\n")
    graph = shape.imports(tmp_path)
    assert graph["hinerv.top"] == {"hinerv.sub.leaf"}
    assert graph["hinerv.sub.leaf"] == {"hinerv.top"}
    assert graph["hinerv.other"] == {"hinerv.top"}
    assert shape.circles(graph) == [["hinerv.sub.leaf", "hinerv.top"]]


def test_the_package_has_no_import_circle(shape) -> None:  # type: ignore[no-untyped-def]
    assert shape.circles(shape.imports()) == []
