"""Tests of hinerv.io.parse_video_name and how open_video combines it with options."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hinerv.errors import InputError
from hinerv.io import open_video, parse_video_name

F = Fraction


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "Beauty_1920x1080_120fps_420_8bit_YUV.yuv",
            dict(width=1920, height=1080, fps=F(120), bit_depth=8, chroma="420"),
        ),
        ("videoSRC01_1920x1080_30.yuv", dict(width=1920, height=1080, fps=F(30))),
        ("BQTerrace_1920x1080_60.yuv", dict(width=1920, height=1080, fps=F(60))),
        ("Foo_1920x1080_50_10bit.yuv", dict(width=1920, height=1080, fps=F(50), bit_depth=10)),
        (
            "x_832x480_30fps_yuv420p10le.yuv",
            dict(width=832, height=480, fps=F(30), bit_depth=10, chroma="420"),
        ),
        (
            "name_416x240_60Hz_8bit_P420.yuv",
            dict(width=416, height=240, fps=F(60), bit_depth=8, chroma="420"),
        ),
        (
            "/data/uvg/ShakeNDry_1920x1080_120fps_420_8bit_YUV.yuv",
            dict(width=1920, height=1080, fps=F(120), bit_depth=8, chroma="420"),
        ),
        ("cam_64x48_I420_10LE.yuv", dict(width=64, height=48, chroma="420", bit_depth=10)),
        ("ntsc_720x480_29.97.yuv", dict(width=720, height=480, fps=F(30000, 1001))),
        ("rgbish_352x288_yuv444p.yuv", dict(width=352, height=288, chroma="444", bit_depth=8)),
        ("clip_352x288.yuv", dict(width=352, height=288)),
        ("foo.yuv", {}),
        ("video_final_2.yuv", {}),
    ],
)
def test_parse_names(name, expected):
    assert parse_video_name(name) == expected


def test_fps_is_a_fraction():
    assert isinstance(parse_video_name("a_64x48_25.yuv")["fps"], Fraction)


def test_defaults_and_explicit_options_win(tmp_path):
    frame = 64 * 48 * 3 // 2
    p = tmp_path / "seq_64x48_25.yuv"
    p.write_bytes(bytes(2 * frame))
    with open_video(p) as r:  # from the name; missing depth -> 8, format -> 4:2:0
        assert (r.info.width, r.info.height, r.info.fps) == (64, 48, 25)
        assert (r.info.bit_depth, r.info.chroma, r.info.frames) == (8, "420", 2)
    with open_video(p, width=32, height=48, fps="30000/1001") as r:  # options win
        assert (r.info.width, r.info.height, r.info.frames) == (32, 48, 4)
        assert r.info.fps == Fraction(30000, 1001)
    with open_video(p, bit_depth=10) as r:
        assert r.info.bit_depth == 10 and r.info.frames == 1
        assert r.read_yuv(0)[0].dtype == np.uint16
    q = tmp_path / "nofps_64x48.yuv"
    q.write_bytes(bytes(frame))
    with open_video(q) as r:
        assert r.info.fps == 30  # missing fps -> 30


def test_unknown_size_is_an_error(tmp_path):
    p = tmp_path / "foo.yuv"
    p.write_bytes(bytes(100))
    with pytest.raises(InputError, match="unknown frame size"):
        open_video(p)


def test_422_name_is_rejected(tmp_path):
    p = tmp_path / "a_64x48_yuv422p.yuv"
    p.write_bytes(bytes(64 * 48 * 2))
    with pytest.raises(InputError, match="chroma"):
        open_video(p)
