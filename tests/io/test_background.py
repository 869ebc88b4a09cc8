"""BackgroundWriter: frames written in order on a worker thread, bounded queue, atomic output (nothing at
the path and no temporary left after an error in the caller or in the worker)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hinerv.io import open_writer
from hinerv.io.background import BackgroundWriter
from hinerv.io.y4m import Y4mWriter
from hinerv.types import VideoInfo

INFO = VideoInfo(width=32, height=16, frames=6, fps=Fraction(25))


def _frames(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((3, INFO.height, INFO.width), dtype=np.float32) for _ in range(n)]


def _left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("name", ["a.y4m", "a.yuv", "png"])
def test_writes_the_same_bytes_as_the_writer_itself(name: str, tmp_path: Path) -> None:
    frames = _frames()
    (tmp_path / "direct").mkdir()
    (tmp_path / "bg").mkdir()
    with open_writer(tmp_path / "direct" / name, INFO) as w:
        for f in frames:
            w.write_rgb(f)
    with BackgroundWriter(open_writer(tmp_path / "bg" / name, INFO), depth=2) as bw:
        for i, f in enumerate(frames):
            if i % 2 and bw.writer.stores == "rgb":
                bw.write_rgb_int(
                    np.floor(np.clip(f, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
                )
            else:
                bw.write_rgb(f)
    a, b = tmp_path / "direct" / name, tmp_path / "bg" / name
    if a.is_dir():
        assert [p.read_bytes() for p in sorted(a.iterdir())] == [p.read_bytes() for p in sorted(b.iterdir())]
    else:
        assert a.read_bytes() == b.read_bytes()


def test_an_error_in_the_caller_leaves_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        BackgroundWriter(open_writer(tmp_path / "a.y4m", INFO)) as bw,
    ):
        bw.write_rgb(_frames(1)[0])
        raise RuntimeError("boom")
    assert _left(tmp_path) == []


def test_an_error_in_the_worker_is_raised_in_the_caller_and_leaves_nothing(tmp_path: Path) -> None:
    bad = np.zeros((3, 8, 8), np.float32)  # wrong size: the writer raises ValueError on the worker thread
    with pytest.raises(ValueError), BackgroundWriter(open_writer(tmp_path / "a.y4m", INFO)) as bw:
        bw.write_rgb(_frames(1)[0])
        bw.write_rgb(bad)
        for f in _frames(20):  # raised at one of the next calls at the latest (or at close)
            bw.write_rgb(f)
    assert _left(tmp_path) == []
    with pytest.raises(ValueError, match="closed"):
        bw.write_rgb(_frames(1)[0])


class _SlowY4m(Y4mWriter):
    """A y4m writer whose writes wait for ``gate``."""

    gate = threading.Event()

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        assert self.gate.wait(10)
        super().write_yuv(y, u, v)


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    bw = BackgroundWriter(_SlowY4m(tmp_path / "a.y4m", INFO), depth=2)
    frames = _frames(6)
    producer = threading.Thread(target=lambda: [bw.write_rgb(f) for f in frames])
    producer.start()
    time.sleep(0.3)
    assert producer.is_alive()  # blocked: one frame in the worker, two queued, the fourth waits
    _SlowY4m.gate.set()
    producer.join(10)
    bw.close()
    assert not producer.is_alive() and (tmp_path / "a.y4m").stat().st_size > 6 * INFO.width * INFO.height
