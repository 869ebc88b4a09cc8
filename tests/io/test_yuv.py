"""Tests of raw .yuv reading (memmap) and writing."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

from hinerv.errors import InputError
from hinerv.io import open_video, open_writer
from hinerv.types import VideoInfo


def _frames(rng, n, w, h, bit_depth, chroma="420"):
    peak = 2**bit_depth
    dt = np.uint8 if bit_depth == 8 else np.uint16
    cs = (h // 2, w // 2) if chroma == "420" else (h, w)
    return [
        (
            rng.integers(0, peak, (h, w)).astype(dt),
            rng.integers(0, peak, cs).astype(dt),
            rng.integers(0, peak, cs).astype(dt),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_round_trip_exact(tmp_path, bit_depth):
    rng = np.random.default_rng(bit_depth)
    frames = _frames(rng, 4, 32, 24, bit_depth)
    info = VideoInfo(width=32, height=24, frames=4, fps=Fraction(50), bit_depth=bit_depth)
    path = tmp_path / f"clip_32x24_50_{bit_depth}bit.yuv"
    with open_writer(path, info) as w:
        for f in frames:
            w.write_yuv(*f)
    assert w.frames_written == 4
    item = 1 if bit_depth == 8 else 2
    assert path.stat().st_size == 4 * 32 * 24 * 3 // 2 * item
    with open_video(path) as r:
        assert r.info == info
        assert len(r) == 4
        for t in (2, 0, 3, 1):
            for a, b in zip(r.read_yuv(t), frames[t], strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b)
        assert all(
            np.array_equal(a, b) for f, g in zip(frames, r, strict=True) for a, b in zip(f, g, strict=True)
        )
        rgb = r.read_rgb(1)
        assert rgb.shape == (3, 24, 32) and rgb.dtype == frames[0][0].dtype
        fl = r.read_rgb_float(1)
        assert fl.dtype == np.float32 and np.allclose(fl, rgb / (2**bit_depth - 1))


def test_10bit_is_little_endian_uint16(tmp_path):
    info = VideoInfo(width=2, height=2, frames=1, bit_depth=10)
    path = tmp_path / "le.yuv"
    with open_writer(path, info) as w:
        w.write_yuv(np.array([[1, 2], [3, 1023]]), np.array([[512]]), np.array([[258]]))
    assert path.read_bytes() == bytes([1, 0, 2, 0, 3, 0, 0xFF, 0x03, 0, 2, 2, 1])


def test_444_from_name(tmp_path):
    rng = np.random.default_rng(0)
    frames = _frames(rng, 2, 16, 8, 8, chroma="444")
    path = tmp_path / "a_16x8_yuv444p.yuv"
    info = VideoInfo(width=16, height=8, frames=2, chroma="444")
    with open_writer(path, info) as w:
        for f in frames:
            w.write_yuv(*f)
    with open_video(path) as r:
        assert r.info.chroma == "444"
        assert all(np.array_equal(a, b) for a, b in zip(r.read_yuv(1), frames[1], strict=True))


def test_write_rgb_converts_to_420(tmp_path):
    rgb = np.zeros((3, 4, 4), np.float32)
    rgb[0] = 1.0  # pure red
    info = VideoInfo(width=4, height=4, frames=1)
    with open_writer(tmp_path / "red.yuv", info) as w:
        w.write_rgb(rgb)
    with open_video(tmp_path / "red.yuv", width=4, height=4) as r:
        y, u, v = r.read_yuv(0)
        assert (y == 81).all() and (u == 90).all() and (v == 240).all()  # BT.601 red
        assert np.abs(r.read_rgb(0).astype(int) - np.array([255, 0, 0])[:, None, None]).max() <= 1


def test_reader_is_lazy_memmap(tmp_path):
    """A 600-frame 1080p file (sparse, ~1.9 GB apparent) opens and reads frame 3 in O(1)."""
    w, h, t = 1920, 1080, 600
    frame = w * h * 3 // 2
    path = tmp_path / f"big_{w}x{h}_120fps_420_8bit_YUV.yuv"
    with open(path, "wb") as f:
        f.truncate(frame * t)  # sparse: no data blocks
        f.seek(3 * frame)
        f.write(bytes([77]) * w)  # first luma row of frame 3
    tracemalloc.start()
    with open_video(path) as r:
        assert isinstance(r._mm, np.memmap)
        assert len(r) == 600
        y, u, v = r.read_yuv(3)
        peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (y[0] == 77).all() and (y[1] == 0).all()
    assert peak < 4 * frame  # one frame (+ a few temporaries), never the whole file
    with open_video(path, max_frames=128) as r:
        assert len(r) == 128 and r._mm.shape[0] == 128
        with pytest.raises(IndexError):
            r.read_yuv(128)


def test_size_not_multiple_of_frame(tmp_path):
    path = tmp_path / "a_16x8_30.yuv"
    path.write_bytes(bytes(16 * 8 * 3 // 2 * 2 + 7))
    with pytest.raises(InputError, match=r"frame size 192 bytes.*7 bytes left over") as e:
        open_video(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_odd_size_and_zero_frames(tmp_path):
    path = tmp_path / "a_15x8.yuv"
    path.write_bytes(bytes(15 * 8 * 2))
    with pytest.raises(InputError, match="even width and height"):
        open_video(path)
    empty = tmp_path / "e_16x8.yuv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="zero frames"):
        open_video(empty)
    with pytest.raises(InputError, match="even"):
        open_writer(tmp_path / "o.yuv", VideoInfo(width=15, height=8, frames=1))


def test_writer_rejects_wrong_plane_shapes(tmp_path):
    info = VideoInfo(width=4, height=4, frames=1)
    with pytest.raises(ValueError), open_writer(tmp_path / "x.yuv", info) as w:
        w.write_yuv(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((2, 2)))
    assert not (tmp_path / "x.yuv").exists()
    assert list(tmp_path.iterdir()) == []
