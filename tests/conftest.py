"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable

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
