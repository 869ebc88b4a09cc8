"""Tiny synthetic clips for the bench tests (made with hinerv.io writers)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hinerv.io import open_writer
from hinerv.types import VideoInfo


def make_clip(path: Path, width: int = 64, height: int = 48, frames: int = 6, seed: int = 0) -> Path:
    """A moving textured 8-bit 4:2:0 clip with a little noise."""
    info = VideoInfo(width=width, height=height, frames=frames, fps=Fraction(25))
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    with open_writer(path, info) as w:
        for t in range(frames):
            y = 128 + 60 * np.sin((xx + 2 * t) / 5.0) * np.cos(yy / 7.0)
            y = (y + rng.normal(0, 4, (height, width))).clip(0, 255).astype(np.uint8)
            u = (128 + 30 * np.sin((xx[::2, ::2] + t) / 6.0)).astype(np.uint8)
            v = (128 + 30 * np.cos(yy[::2, ::2] / 4.0)).astype(np.uint8)
            w.write_yuv(y, u, v)
    return path


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.y4m")


@pytest.fixture()
def clip_maker() -> Callable[..., Path]:
    """:func:`make_clip` itself (a module named ``conftest`` is ambiguous when several test folders run)."""
    return make_clip
