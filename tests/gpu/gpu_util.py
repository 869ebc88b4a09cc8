"""Helpers of the CUDA tests (``tests/gpu``): the tiny encode's options and frame comparisons."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hinerv.io import open_video

#: ``cli(args) -> (exit code, stdout, stderr)``
Cli = Callable[[list[str]], tuple[int, str, str]]

#: a tiny encode: ladder size xxs, the smoke-test schedule (every stage runs), JSON report, no progress
TINY = ["--size", "xxs", "--schedule", "tiny", "--json", "-q"]


def hinerv_process(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m hinerv ARGS`` as a child process (the environment is inherited; stdout and
    stderr go to ``log``, so a full pipe can never block it)."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "hinerv", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def planes(path: Path) -> list[np.ndarray]:
    """Every integer plane of every frame of a video, in order (Y, U, V per frame)."""
    with open_video(path) as r:
        return [np.asarray(p) for t in range(len(r)) for p in r.read_yuv(t)]


def one_line_error(code: int, err: str) -> bool:
    """A refusal in the project's style: exit code 2, no traceback, one ``error:`` line on stderr."""
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    return code == 2 and "Traceback" not in err and len(errors) == 1
