"""Shared fixtures of the CLI tests: ``cli`` comes from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Callable

#: ``cli(args) -> (exit code, stdout, stderr)`` (the type of ``tests/conftest.py``'s ``cli`` fixture)
Cli = Callable[[list[str]], tuple[int, str, str]]
