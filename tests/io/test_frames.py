"""hinerv.io.frames' batched torch colour conversions give exactly hinerv.color's integers and floats,
and VideoReader.read_batch exactly what read_yuv / read_rgb return."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from hinerv.color import dequantize_rgb, quantize_rgb, rgb_to_yuv, yuv_to_rgb
from hinerv.io import open_video, open_writer
from hinerv.io.frames import as_read, dequantize_rgb_t, quantize_rgb_t, rgb_to_yuv_t, yuv_to_rgb_t
from hinerv.types import VideoInfo

BASE = VideoInfo(width=38, height=22, frames=3, fps=Fraction(25))
FORMATS = [
    replace(BASE, bit_depth=b, matrix=m, full_range=f, chroma=c)
    for b in (8, 10)
    for m in ("bt601", "bt709")
    for f in (False, True)
    for c in ("420", "444")
]


def _rgb(seed: int, n: int = 3) -> np.ndarray:
    """Float32 RGB with values at and around every rounding boundary of 8 and 10 bits, and outside [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.05, 1.05, (n, 3, BASE.height, BASE.width)).astype(np.float32)
    k = rng.integers(0, 1024, x.shape)
    ties = ((k + 0.5) / rng.choice([255.0, 1023.0], x.shape)).astype(np.float32)
    pick = rng.random(x.shape)
    return np.where(pick < 0.3, ties, np.where(pick < 0.4, (k % 256 / 255.0).astype(np.float32), x))


@pytest.mark.parametrize("info", FORMATS, ids=lambda i: f"{i.bit_depth}-{i.matrix}-{i.full_range}-{i.chroma}")
def test_rgb_to_yuv_and_back_match_the_numpy_conversions(info: VideoInfo) -> None:
    rgb = _rgb(info.bit_depth + len(info.matrix) + int(info.full_range))
    ty, tu, tv = rgb_to_yuv_t(torch.from_numpy(rgb), info)
    back = yuv_to_rgb_t(ty, tu, tv, info)
    for i, frame in enumerate(rgb):
        i_ = info
        y, u, v = rgb_to_yuv(
            frame, bit_depth=i_.bit_depth, matrix=i_.matrix, full_range=i_.full_range, chroma=i_.chroma
        )
        for a, b in ((ty[i], y), (tu[i], u), (tv[i], v)):
            assert np.array_equal(a.numpy(), b.astype(np.int32))
        ref = yuv_to_rgb(y, u, v, bit_depth=info.bit_depth, matrix=info.matrix, full_range=info.full_range)
        assert np.array_equal(back[i].numpy().view(np.int32), ref.view(np.int32))  # bit for bit


@pytest.mark.parametrize("bits", [8, 10, 16])
def test_quantize_and_dequantize_match_numpy(bits: int) -> None:
    rgb = _rgb(bits)
    q = quantize_rgb_t(torch.from_numpy(rgb), bits)
    assert np.array_equal(q.numpy(), quantize_rgb(rgb, bits).astype(np.int32))
    f = dequantize_rgb_t(q, bits)
    assert np.array_equal(f.numpy().view(np.int32), dequantize_rgb(q.numpy(), bits).view(np.int32))


@pytest.mark.parametrize("chroma", ["420", "444"])
def test_as_read_is_what_a_reader_of_the_written_file_returns(chroma: str, tmp_path: Path) -> None:
    info = replace(BASE, chroma=chroma)
    rgb = _rgb(7)
    out = tmp_path / ("v.y4m" if chroma == "420" else "png")
    with open_writer(out, info) as w:
        for frame in rgb:
            w.write_rgb(frame)
        stores = w.stores
    got = as_read(torch.from_numpy(rgb), info, stores)
    with open_video(out) as r:
        for t in range(len(r)):
            for a, b in zip((got.y[t], got.u[t], got.v[t]), r.read_yuv(t), strict=True):
                assert np.array_equal(a.numpy(), b.astype(np.int32))
            assert np.array_equal(got.rgb[t].numpy(), r.read_rgb(t).astype(np.int32))


@pytest.mark.parametrize(
    ("name", "info"),
    [
        ("v.y4m", BASE),
        ("v10.y4m", replace(BASE, bit_depth=10, matrix="bt709")),
        ("v444.y4m", replace(BASE, chroma="444", full_range=True)),
        ("png", replace(BASE, chroma="444")),
        ("png16", replace(BASE, chroma="444", bit_depth=16)),
    ],
)
def test_read_batch_is_read_yuv_and_read_rgb(name: str, info: VideoInfo, tmp_path: Path) -> None:
    out = tmp_path / name
    with open_writer(out, info) as w:
        for frame in _rgb(3):
            w.write_rgb(frame)
    with open_video(out, matrix=info.matrix) as r:
        got = r.read_batch([2, 0])
        assert len(got) == 2 and all(x.dtype == torch.int32 for x in (got.y, got.u, got.v, got.rgb))
        for i, t in enumerate([2, 0]):
            for a, b in zip((got.y[i], got.u[i], got.v[i]), r.read_yuv(t), strict=True):
                assert np.array_equal(a.numpy(), b.astype(np.int32))
            assert np.array_equal(got.rgb[i].numpy(), r.read_rgb(t).astype(np.int32))
