"""Tests of open_video/open_writer dispatch, bad input and atomic output."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from hinerv.errors import HinervError, InputError
from hinerv.io import VideoReader, VideoWriter, is_folder_target, open_video, open_writer
from hinerv.types import VideoInfo

INFO = VideoInfo(width=8, height=8, frames=2)
TARGETS = ["v_8x8.yuv", "v.y4m", "v.mp4", "v.mkv", "pngs/"]


def _write(path, info=INFO, n=2):
    with open_writer(path, info) as w:
        for i in range(n):
            w.write_rgb(np.full((3, info.height, info.width), 0.1 * (i + 1), np.float32))


@pytest.mark.parametrize("target", TARGETS)
def test_exception_inside_writer_leaves_nothing(tmp_path, target):
    path = str(tmp_path / target)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), open_writer(path, INFO) as w:
        w.write_rgb(np.zeros((3, 8, 8), np.float32))
        raise Boom
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", TARGETS)
def test_failed_rewrite_keeps_previous_output(tmp_path, target):
    path = str(tmp_path / target)
    _write(path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with open_video(path) as r:
        first = r.read_rgb(1)
    with pytest.raises(RuntimeError), open_writer(path, INFO) as w:
        w.write_rgb(np.ones((3, 8, 8), np.float32))
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with open_video(path) as r:
        assert len(r) == 2 and np.array_equal(r.read_rgb(1), first)


@pytest.mark.parametrize("target", TARGETS)
def test_every_format_reads_back(tmp_path, target):
    path = str(tmp_path / target)
    _write(path)
    with open_video(path) as r:
        assert isinstance(r, VideoReader) and len(r) == 2
        q = r.read_rgb(1).astype(int)
        assert np.abs(q - round(0.2 * 255)).max() <= 2  # flat grey survives every format
        f = r.read_rgb_float(1)
        assert f.dtype == np.float32 and np.allclose(f, q / 255)
        assert len(list(r)) == 2
    mask = os.umask(0o022)
    os.umask(mask)
    out = tmp_path / target.rstrip("/")
    full = 0o777 if out.is_dir() else 0o666
    assert out.stat().st_mode & 0o777 == full & ~mask  # not mkstemp's private 0600


def test_writer_dropped_without_close_leaves_no_temp(tmp_path):
    w = open_writer(tmp_path / "x.yuv", INFO)
    w.write_rgb(np.zeros((3, 8, 8), np.float32))
    assert isinstance(w, VideoWriter)
    del w
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_close_is_idempotent_and_final(tmp_path):
    w = open_writer(tmp_path / "x.y4m", INFO)
    w.write_rgb(np.zeros((3, 8, 8), np.float32))
    w.close()
    w.close()
    with pytest.raises(ValueError):
        w.write_rgb(np.zeros((3, 8, 8), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["x.y4m"]


def test_reader_close_and_context(tmp_path):
    _write(tmp_path / "a.y4m")
    r = open_video(tmp_path / "a.y4m")
    with r:
        r.read_yuv(0)
    with pytest.raises(ValueError):
        r.read_yuv(0)


def test_bad_inputs_are_one_line_input_errors(tmp_path):
    cases = [
        (lambda: open_video(tmp_path / "missing.yuv"), "no such file"),
        (lambda: open_video(tmp_path / "v.xyz"), "unknown video extension"),
        (lambda: open_writer(tmp_path / "v.xyz", INFO), "unknown output extension"),
        (lambda: open_writer(tmp_path / "nodir" / "v.yuv", INFO), "does not exist"),
        (lambda: open_video(tmp_path / "a_8x8.yuv", max_frames=0), "max_frames"),
        (lambda: open_video(tmp_path / "a_8x8.yuv", matrix="bt2020"), "unknown matrix"),
        (lambda: open_video(tmp_path / "a_8x8.yuv", fps=0), "frame rate"),
    ]
    (tmp_path / "v.xyz").write_bytes(b"x")
    (tmp_path / "a_8x8.yuv").write_bytes(bytes(96))
    for fn, match in cases:
        with pytest.raises(InputError, match=match) as e:
            fn()
        assert isinstance(e.value, HinervError) and "\n" not in str(e.value)


def test_is_folder_target(tmp_path):
    assert is_folder_target("out/") and is_folder_target(tmp_path) and is_folder_target("frames")
    assert not is_folder_target("a.yuv") and not is_folder_target("b.mp4")
