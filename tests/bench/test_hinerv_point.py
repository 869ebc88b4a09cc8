"""Issue #18 item 7: a HiNeRV rate point takes its metrics and decode time from the encode report
(``encode_file`` already decoded and measured the bitstream); nothing is decoded a second time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hinerv.codec
from hinerv.bench.codecs import HiNeRVCodec
from hinerv.bench.sweep import SourceSpec, point_path, run_sweep
from hinerv.io import open_video
from hinerv.metrics import compare_videos


def test_hinerv_point_metrics_come_from_the_encode_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clip_maker: Callable[..., Path]
) -> None:
    clip = clip_maker(tmp_path / "clip.y4m", frames=3)
    real_encode, real_decode = hinerv.codec.encode_file, hinerv.codec.decode_file
    reports: list[Any] = []
    decodes: list[Any] = []

    def encode_spy(*args: Any, **kw: Any) -> Any:
        reports.append(real_encode(*args, **kw))
        return reports[-1]

    def decode_spy(*args: Any, **kw: Any) -> Any:
        decodes.append(args)
        return real_decode(*args, **kw)

    monkeypatch.setattr(hinerv.codec, "encode_file", encode_spy)
    monkeypatch.setattr(hinerv.codec, "decode_file", decode_spy)
    codec = HiNeRVCodec(sizes=("xxs",), bits=(6,), schedule="tiny", device="cpu", pipeline="paper")
    out = tmp_path / "out"
    s = run_sweep([codec], [SourceSpec("clip", clip)], out)
    assert s.ran == 1, s.failed
    assert decodes == []  # no second decode
    (report,) = reports
    rec = json.loads(point_path(out, codec.name, "clip", "xxs-q6").read_text())["results"]
    assert {k: rec[k] for k in report.metrics} == report.metrics
    assert rec["decoding_time"] == report.decode_seconds
    assert (rec["bytes"], rec["params"], rec["model"]) == (report.bytes, report.params, report.model)
    assert rec["precision"] == "fp32"  # the CPU's training precision, resolved for the point

    # the numbers are exactly those a second decode and measurement (the old way) gave
    stream = out / codec.name / "streams" / "clip" / "xxs-q6.hnerv"
    assert stream.stat().st_size == rec["bytes"]
    decoded = tmp_path / "again.y4m"
    real_decode(stream, decoded, device="cpu")
    with open_video(clip) as ref, open_video(decoded) as dist:
        again = compare_videos(ref, dist).as_dict()
    assert {k: rec[k] for k in again} == again
