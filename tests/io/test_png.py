"""Tests of PNG-folder reading and writing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hinerv.color import dequantize_rgb, quantize_rgb, rgb_to_yuv, yuv_to_rgb
from hinerv.errors import InputError
from hinerv.io import open_video, open_writer
from hinerv.io.png import decode_png, encode_png
from hinerv.types import VideoInfo


def _rgb(rng, n, h=12, w=10):
    return [rng.random((3, h, w)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_round_trip_exact(tmp_path, bit_depth):
    rng = np.random.default_rng(bit_depth)
    frames = _rgb(rng, 3)  # odd width is fine for RGB
    info = VideoInfo(width=10, height=12, frames=3, bit_depth=bit_depth, chroma="444")
    out = tmp_path / "frames"
    with open_writer(str(out) + "/", info) as w:
        for f in frames:
            w.write_rgb(f)
    assert sorted(p.name for p in out.iterdir()) == ["00001.png", "00002.png", "00003.png"]
    with open_video(out) as r:
        assert r.info == info
        for t in (2, 0, 1):
            q = r.read_rgb(t)
            assert q.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
            assert np.array_equal(q, quantize_rgb(frames[t], bit_depth))
        y, u, v = r.read_yuv(1)
        ref = rgb_to_yuv(dequantize_rgb(r.read_rgb(1), bit_depth), bit_depth=bit_depth, chroma="444")
        assert u.shape == (12, 10) and all(np.array_equal(a, b) for a, b in zip((y, u, v), ref, strict=True))


def test_10bit_via_16bit_png_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    frames = _rgb(rng, 2)
    info = VideoInfo(width=10, height=12, frames=2, bit_depth=10, chroma="444")
    with open_writer(tmp_path / "ten", info) as w:
        for f in frames:
            w.write_rgb(f)
    raw, bits = decode_png((tmp_path / "ten" / "00001.png").read_bytes())
    assert bits == 16 and raw.dtype == np.uint16
    with open_video(tmp_path / "ten", bit_depth=10) as r:
        assert r.info.bit_depth == 10
        assert np.array_equal(r.read_rgb(0), quantize_rgb(frames[0], 10))
        assert np.array_equal(r.read_rgb(1), quantize_rgb(frames[1], 10))


def test_420_info_converts_yuv_to_rgb(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(16, 236, (8, 8)).astype(np.uint8)
    u = rng.integers(16, 241, (4, 4)).astype(np.uint8)
    v = rng.integers(16, 241, (4, 4)).astype(np.uint8)
    info = VideoInfo(width=8, height=8, frames=1)
    with open_writer(tmp_path / "yuv", info) as w:
        w.write_yuv(y, u, v)
    with open_video(tmp_path / "yuv") as r:
        assert r.info.chroma == "444"
        assert np.array_equal(r.read_rgb(0), quantize_rgb(yuv_to_rgb(y, u, v), 8))


def test_natural_order_grey_and_alpha(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(2)
    imgs = {}
    for i in (1, 2, 10):  # lexicographic order would put 10 before 2
        a = rng.integers(0, 256, (6, 4, 3)).astype(np.uint8)
        imgs[i] = a
        Image.fromarray(a).save(d / f"{i}.png")
    (d / "notes.txt").write_text("ignored")
    with open_video(d) as r:
        assert len(r) == 3
        got = [r.read_rgb(t) for t in range(3)]
    assert all(np.array_equal(g, imgs[i].transpose(2, 0, 1)) for g, i in zip(got, (1, 2, 10), strict=True))
    g = rng.integers(0, 256, (6, 4)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "PNG")
    rgb, bits = decode_png(buf.getvalue())
    assert bits == 8 and all(np.array_equal(rgb[c], g) for c in range(3))
    rgba = rng.integers(0, 256, (6, 4, 4)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    assert np.array_equal(decode_png(buf.getvalue())[0], rgba[..., :3].transpose(2, 0, 1))


def test_encode_png_is_deterministic():
    q = np.random.default_rng(3).integers(0, 65536, (3, 5, 7)).astype(np.uint16)
    assert encode_png(q) == encode_png(q)
    assert np.array_equal(decode_png(encode_png(q))[0], q)


def test_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="zero frames"):
        open_video(empty)
    d = tmp_path / "mixed"
    d.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / "a1.png")
    Image.fromarray(np.zeros((6, 4, 3), np.uint8)).save(d / "a2.png")
    (d / "a3.png").write_bytes(b"not a png")
    with open_video(d, max_frames=1) as r:
        assert len(r) == 1
    with open_video(d) as r:
        with pytest.raises(InputError, match="a2.png is 4x6"):
            r.read_rgb(1)
        with pytest.raises(InputError, match="cannot decode PNG .*a3.png"):
            r.read_rgb(2)
    with pytest.raises(InputError, match="width=5 contradicts"):
        open_video(d, width=5)


def test_folder_replacement_rules(tmp_path):
    info = VideoInfo(width=4, height=4, frames=1, chroma="444")
    out = tmp_path / "out"
    for value in (0.2, 0.8):  # second write replaces the first output folder
        with open_writer(out, info) as w:
            w.write_rgb(np.full((3, 4, 4), value, np.float32))
    with open_video(out) as r:
        assert len(r) == 1 and (r.read_rgb(0) == 204).all()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="refusing to replace"):
        open_writer(out, info)
    assert (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp leftovers
