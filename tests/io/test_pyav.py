"""Tests of PyAV-backed container reading and the .mp4/.mkv preview writer."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from hinerv.color import rgb_to_yuv
from hinerv.errors import InputError
from hinerv.io import open_video, open_writer
from hinerv.sample import sample_frames
from hinerv.types import VideoInfo


def _psnr(a, b, peak=255.0):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(peak**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def clip():
    return list(sample_frames(64, 48, 10))


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_preview_round_trip_psnr_and_random_access(tmp_path, clip, ext):
    info = VideoInfo(width=64, height=48, frames=10, fps=Fraction(25))
    path = tmp_path / f"clip{ext}"
    with open_writer(path, info) as w:
        for f in clip:
            w.write_rgb(f)
    with open_video(path) as r:
        assert (r.info.width, r.info.height, r.info.frames) == (64, 48, 10)
        assert r.info.fps == 25 and r.info.bit_depth == 8 and r.info.chroma == "420"
        seq = list(r)
        assert len(seq) == 10 and seq[0][1].shape == (24, 32)
        # libx264 CRF 18 at 64x48, measured: Y 35.7..40.4 dB against the written planes,
        # RGB 31.4..35.8 dB against the float source (adds 4:2:0 chroma loss)
        psnr_y = [_psnr(r.read_yuv(t)[0], rgb_to_yuv(f)[0]) for t, f in enumerate(clip)]
        psnr_rgb = [_psnr(r.read_rgb_float(t), f, 1.0) for t, f in enumerate(clip)]
        assert min(psnr_y) > 33, psnr_y
        assert min(psnr_rgb) > 28, psnr_rgb
        for t in (7, 2, 2, 9, 0, 5):  # backwards jumps re-open and skip
            assert all(np.array_equal(a, b) for a, b in zip(r.read_yuv(t), seq[t], strict=True))
    with open_video(path, max_frames=4) as r:
        assert len(r) == 4
        with pytest.raises(IndexError):
            r.read_yuv(4)


def test_10bit_stream_decodes_to_uint16(tmp_path):
    path = tmp_path / "ten.mkv"  # matroska does not state a frame count: counted by decoding
    c = av.open(str(path), "w")
    s = c.add_stream("libx265", rate=30, options={"x265-params": "log-level=error"})
    s.width, s.height, s.pix_fmt = 32, 32, "yuv420p10le"
    for i in range(3):
        a = np.full((48, 32), 300 + 100 * i, np.uint16)
        a[32:] = 512
        frame = av.VideoFrame.from_ndarray(a, format="yuv420p10le")
        frame.pts = i
        for p in s.encode(frame):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    with open_video(path) as r:
        assert r.info.bit_depth == 10 and len(r) == 3
        y, u, v = r.read_yuv(2)
        assert y.dtype == np.uint16 and abs(int(np.median(y)) - 500) <= 4
        assert r.read_rgb(2).dtype == np.uint16
    with open_video(path, bit_depth=8) as r:  # converted by swscale
        y, _, _ = r.read_yuv(2)
        assert y.dtype == np.uint8 and abs(int(np.median(y)) - 125) <= 2


def test_high_bit_depth_info_is_previewed_as_8bit(tmp_path):
    info = VideoInfo(width=16, height=16, frames=2, bit_depth=10)
    path = tmp_path / "p.mp4"
    y = np.full((16, 16), 502, np.uint16)  # mid grey in 10-bit limited range
    c = np.full((8, 8), 512, np.uint16)
    with open_writer(path, info) as w:
        w.write_yuv(y, c, c)
        w.write_yuv(y, c, c)
    with open_video(path) as r:
        y8, u8, _ = r.read_yuv(1)
        assert r.info.bit_depth == 8 and abs(int(np.median(y8)) - 126) <= 1
        assert abs(int(np.median(u8)) - 128) <= 1


def test_unopenable_files(tmp_path):
    bad = tmp_path / "junk.mp4"
    bad.write_bytes(b"\x00not a video at all" * 10)
    with pytest.raises(InputError, match="PyAV cannot open .*junk.mp4"):
        open_video(bad)
    with pytest.raises(InputError, match="unknown video extension '.txt'"):
        (tmp_path / "a.txt").write_text("x")
        open_video(tmp_path / "a.txt")
