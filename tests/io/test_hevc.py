"""x265 through PyAV: raw HEVC round trip, atomic output, frame-count check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hinerv.errors import InputError
from hinerv.io import open_video
from hinerv.io.hevc import decode_hevc, encode_hevc, x265_info
from hinerv.metrics import psnr
from hinerv.sample import write_sample


def test_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "c.y4m"
    info = write_sample(src, width=64, height=48, frames=3)
    with open_video(src) as r:
        secs = encode_hevc(r, tmp_path / "c.hevc", preset="ultrafast", x265_params="qp=20:log-level=error")
    assert secs >= 0 and (tmp_path / "c.hevc").stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp"))
    decode_hevc(tmp_path / "c.hevc", tmp_path / "d.y4m", info)
    with open_video(src) as a, open_video(tmp_path / "d.y4m") as b:
        assert len(b) == 3
        for t in range(3):
            assert psnr(a.read_yuv(t)[0], b.read_yuv(t)[0], 255) > 35
    with pytest.raises(InputError):
        decode_hevc(tmp_path / "c.hevc", tmp_path / "e.y4m", replace(info, frames=5))
    assert not (tmp_path / "e.y4m").exists()


def test_x265_info_reports_version() -> None:
    version, opts = x265_info("ultrafast", "")
    assert version != "unknown" and "qp" not in version
    assert isinstance(opts, str) and len(opts) > 0


def test_ten_bit_planes_round_trip() -> None:
    from hinerv.io.hevc import _frame_from_planes, _planes_from_frame

    y = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) % 1024
    c = np.full((24, 32), 512, np.uint16)
    f = _frame_from_planes((y, c, c), "yuv420p10le", np.uint16)
    y2, u2, _ = _planes_from_frame(f, np.uint16)
    assert np.array_equal(y, y2) and np.array_equal(c, u2)
