"""Shared fixtures of the CUDA tests (marker ``gpu``; every test here is skipped without a CUDA device).

The tests drive the real ``hinerv`` command line on a tiny clip made here (64x64, 4 frames, the built-in
sample generator), so each runs in seconds on a GPU. ``tools/gpu_check.sh`` runs them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hinerv.sample import write_sample


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``gpu`` and skip it where torch sees no CUDA device."""
    here = Path(__file__).parent
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gpu)
            item.add_marker(skip)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sample clip, 64x64, 4 frames, 8-bit 4:2:0 y4m."""
    p = tmp_path_factory.mktemp("gpuclip") / "clip.y4m"
    write_sample(p, width=64, height=64, frames=4, fps=25)
    return p
