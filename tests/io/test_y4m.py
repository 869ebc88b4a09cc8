"""Tests of the YUV4MPEG2 reader and writer."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hinerv.errors import InputError
from hinerv.io import open_video, open_writer
from hinerv.io.y4m import parse_y4m_header
from hinerv.types import VideoInfo


def _frames(rng, n, w, h, bit_depth, chroma="420"):
    dt = np.uint8 if bit_depth == 8 else np.uint16
    cs = (h // 2, w // 2) if chroma == "420" else (h, w)
    hi = 2**bit_depth
    return [tuple(rng.integers(0, hi, s).astype(dt) for s in ((h, w), cs, cs)) for _ in range(n)]


def _write_raw(path, header: bytes, frames, marker=b"FRAME\n"):
    with open(path, "wb") as f:
        f.write(header + b"\n")
        for planes in frames:
            f.write(marker)
            for p in planes:
                f.write(p.astype(p.dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize(
    "bit_depth,chroma,tag",
    [(8, "420", b"C420jpeg"), (10, "420", b"C420p10"), (8, "444", b"C444"), (12, "444", b"C444p12")],
)
def test_round_trip_exact(tmp_path, bit_depth, chroma, tag):
    rng = np.random.default_rng(bit_depth)
    frames = _frames(rng, 5, 16, 12, bit_depth, chroma)
    info = VideoInfo(
        width=16, height=12, frames=5, fps=Fraction(30000, 1001), bit_depth=bit_depth, chroma=chroma
    )
    path = tmp_path / "a.y4m"
    with open_writer(path, info) as w:
        for f in frames:
            w.write_yuv(*f)
    header = path.read_bytes().split(b"\n", 1)[0]
    assert header.startswith(b"YUV4MPEG2 W16 H12 F30000:1001 Ip A1:1 " + tag + b" ")
    assert b"XCOLORRANGE" not in header
    with open_video(path) as r:
        assert r.info == info
        assert r._offsets is None  # plain FRAME markers: O(1) offsets, no scan
        seq = list(r)
        for t in (4, 1, 3, 0, 2):
            assert all(np.array_equal(a, b) for a, b in zip(r.read_yuv(t), frames[t], strict=True))
            assert all(np.array_equal(a, b) for a, b in zip(r.read_yuv(t), seq[t], strict=True))


def test_full_range_flag(tmp_path):
    info = VideoInfo(width=4, height=4, frames=1, full_range=True)
    path = tmp_path / "f.y4m"
    with open_writer(path, info) as w:
        w.write_rgb(np.ones((3, 4, 4), np.float32))
    assert b" XCOLORRANGE=FULL\n" in path.read_bytes()[:100]
    with open_video(path) as r:
        assert r.info.full_range is True
        assert (r.read_yuv(0)[0] == 255).all()
    with open_video(path, full_range=False, fps=12, matrix="bt709") as r:  # options win
        assert r.info.full_range is False and r.info.fps == 12 and r.info.matrix == "bt709"


def test_frame_markers_with_parameters_are_scanned(tmp_path):
    rng = np.random.default_rng(0)
    frames = _frames(rng, 3, 8, 4, 8)
    path = tmp_path / "p.y4m"
    _write_raw(
        path, b"YUV4MPEG2 W8 H4 F25:1 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2", frames, marker=b"FRAME Ixyz\n"
    )
    with open_video(path) as r:
        assert r._offsets is not None and len(r) == 3 and r.info.fps == 25
        assert all(np.array_equal(a, b) for a, b in zip(r.read_yuv(2), frames[2], strict=True))
    with open_video(path, max_frames=2) as r:
        assert len(r) == 2


@pytest.mark.parametrize("tag", [b"C420", b"C420jpeg", b"C420mpeg2", b"C420paldv", b""])
def test_accepted_420_tags(tmp_path, tag):
    rng = np.random.default_rng(0)
    frames = _frames(rng, 2, 8, 4, 8)
    path = tmp_path / "t.y4m"
    _write_raw(path, b"YUV4MPEG2 W8 H4 F30:1 Ip " + tag, frames)
    with open_video(path) as r:
        assert r.info.chroma == "420" and r.info.bit_depth == 8 and len(r) == 2


@pytest.mark.parametrize(
    "header,match",
    [
        (b"YUV4MPEG W8 H4 F30:1", "does not start with YUV4MPEG2"),
        (b"YUV4MPEG2 H4 F30:1", "missing W"),
        (b"YUV4MPEG2 Wx H4", "field 'Wx'"),
        (b"YUV4MPEG2 W8 H4 F30:1 It", "interlaced"),
        (b"YUV4MPEG2 W8 H4 F30:1 Cmono", "unsupported y4m colourspace Cmono"),
        (b"YUV4MPEG2 W8 H4 F30:1 C422", "unsupported y4m colourspace C422"),
        (b"YUV4MPEG2 W8 H4 F30:1 C444alpha", "unsupported y4m colourspace"),
    ],
)
def test_bad_headers(tmp_path, header, match):
    path = tmp_path / "bad.y4m"
    path.write_bytes(header + b"\nFRAME\n" + bytes(48))
    with pytest.raises(InputError, match=match) as e:
        open_video(path)
    assert str(path) in str(e.value)


def test_no_header_line_truncation_and_zero_frames(tmp_path):
    p = tmp_path / "n.y4m"
    p.write_bytes(b"YUV4MPEG2 W8 H4" + bytes(5000))
    with pytest.raises(InputError, match="no header line"):
        open_video(p)
    p.write_bytes(b"YUV4MPEG2 W8 H4 F30:1 C420jpeg\n")
    with pytest.raises(InputError, match="zero frames"):
        open_video(p)
    p.write_bytes(b"YUV4MPEG2 W8 H4 F30:1 C420jpeg\nFRAME\n" + bytes(48) + b"FRAME\n" + bytes(10))
    with pytest.raises(InputError, match="frame 1 is truncated"):
        open_video(p)
    p.write_bytes(b"YUV4MPEG2 W8 H4 F30:1 C420jpeg\nFRAME\n" + bytes(48) + b"FRAMX\n" + bytes(48))
    with open_video(p) as r:  # fixed-stride layout: markers are checked when a frame is read
        r.read_yuv(0)
        with pytest.raises(InputError, match="bad y4m frame marker for frame 1"):
            r.read_yuv(1)


def test_contradicting_options(tmp_path):
    p = tmp_path / "c.y4m"
    p.write_bytes(b"YUV4MPEG2 W8 H4 F30:1 C420jpeg\nFRAME\n" + bytes(48))
    with pytest.raises(InputError, match="width=16 contradicts"):
        open_video(p, width=16)
    with pytest.raises(InputError, match="bit_depth=10 contradicts"):
        open_video(p, bit_depth=10)
    with open_video(p, width=8, height=4, bit_depth=8) as r:
        assert len(r) == 1


def test_parse_header_fields():
    h = parse_y4m_header(b"YUV4MPEG2 W1920 H1080 F120:1 Ip A1:1 C420p10 XYSCSS=420P10 XCOLORRANGE=LIMITED")
    assert (h["width"], h["height"], h["fps"], h["bit_depth"], h["chroma"]) == (
        1920,
        1080,
        Fraction(120),
        10,
        "420",
    )
    assert h["full_range"] is False
    assert parse_y4m_header(b"YUV4MPEG2 W2 H2")["fps"] == 30  # missing F -> 30
