"""Tests of the built-in demo clip."""

from __future__ import annotations

import numpy as np
import pytest

from hinerv.color import quantize_rgb
from hinerv.errors import ConfigError
from hinerv.io import open_video
from hinerv.sample import sample_frames, write_sample


@pytest.mark.parametrize("w,h,n", [(64, 64, 12), (256, 144, 32), (384, 288, 2), (2, 2, 1)])
def test_shape_count_range(w, h, n):
    frames = list(sample_frames(w, h, n))
    assert len(frames) == n
    for f in frames:
        assert f.shape == (3, h, w) and f.dtype == np.float32
        assert f.min() >= 0.0 and f.max() <= 1.0
    assert frames[0].std() > 0.05  # a photograph, not a flat field


def test_deterministic_and_seeded():
    a = list(sample_frames(64, 48, 8))
    b = list(sample_frames(64, 48, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = list(sample_frames(64, 48, 8, seed=1))
    assert not np.array_equal(a[0], c[0])


def test_consecutive_frames_similar_but_not_equal():
    frames = list(sample_frames(128, 72, 16))
    diffs = [float(np.abs(frames[t + 1] - frames[t]).mean()) for t in range(15)]
    assert min(diffs) > 1e-3  # the camera always moves
    assert max(diffs) < 0.2  # ... smoothly (measured max ~0.12 at 256x144 during the fade)
    assert float(np.abs(frames[-1] - frames[0]).mean()) > max(diffs)


@pytest.mark.parametrize("target", ["s.y4m", "s_64x64.yuv", "frames/"])
def test_write_sample_same_bytes_twice(tmp_path, target):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    infos = [write_sample(str(d / target), width=64, height=64, frames=6) for d in (a, b)]
    assert infos[0] == infos[1]
    files_a = sorted(p for p in a.rglob("*") if p.is_file())
    files_b = sorted(p for p in b.rglob("*") if p.is_file())
    assert files_a and [p.read_bytes() for p in files_a] == [p.read_bytes() for p in files_b]
    with open_video(str(a / target)) as r:
        assert len(r) == 6 and (r.info.width, r.info.height) == (64, 64)
        assert r.info.chroma == infos[0].chroma


def test_write_sample_formats(tmp_path):
    info = write_sample(tmp_path / "s.y4m", width=64, height=48, frames=4, fps=25)
    assert (info.bit_depth, info.chroma, info.matrix, info.full_range) == (8, "420", "bt601", False)
    assert info.fps == 25 and info.frames == 4
    info = write_sample(tmp_path / "png", width=64, height=48, frames=3)
    assert info.chroma == "444"
    ref = list(sample_frames(64, 48, 3))
    with open_video(tmp_path / "png") as r:
        assert all(np.array_equal(r.read_rgb(t), quantize_rgb(ref[t], 8)) for t in range(3))


@pytest.mark.parametrize("args", [(63, 64, 4), (64, 0, 4), (64, 64, 0)])
def test_bad_arguments(args):
    with pytest.raises(ConfigError):
        sample_frames(*args)
