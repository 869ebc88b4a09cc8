from __future__ import annotations

import json
from pathlib import Path

import pytest

from hinerv.bench.anchors import load_results
from hinerv.bench.results import (
    ResultSet,
    aggregate,
    canonical_sequence,
    write_json_atomic,
)
from hinerv.errors import InputError


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", "beauty"),
        ("/data/uvg/ReadySteadyGo_1920x1080_120fps_420_8bit_YUV.yuv", "readysteadygo"),
        ("ReadySetGo", "readysteadygo"),
        ("videoSRC01_1920x1080_30.yuv", "src01"),
        ("SRC01", "src01"),
        ("BQTerrace_1920x1080_60", "bqterrace"),
    ],
)
def test_canonical_sequence(name: str, key: str) -> None:
    assert canonical_sequence(name) == key


def test_aggregate_means_common_points_by_label() -> None:
    seqs = {
        "a": {"q": ["qp40", "qp32", "qp24"], "bpp": [0.1, 0.2, 0.4], "frames": [10, 10, 10]},
        "b": {"q": ["qp40", "qp32"], "bpp": [0.3, 0.6], "frames": [20, 20]},
    }
    agg = aggregate(seqs)
    assert agg["q"] == ["qp40", "qp32"]
    assert agg["bpp"] == pytest.approx([0.2, 0.4])
    assert agg["frames"] == [15, 15]


def test_envelope_round_trip(tmp_path: Path) -> None:
    rs = ResultSet("x265-veryslow-ra", "desc", {"bpp": [0.1, 0.2], "psnr-rgb": [30.0, 32.0]},
                   {"clip": {"bpp": [0.1, 0.2], "psnr-rgb": [30.0, 32.0]}})
    p = tmp_path / "r.json"
    rs.save(p)
    obj = json.loads(p.read_text())
    assert set(obj) >= {"name", "description", "results", "sequences", "aggregation"}
    assert obj["results"]["bpp"] == [0.1, 0.2]
    back = load_results(p)
    assert back.name == rs.name and back.sequences == rs.sequences
    assert not list(tmp_path.glob(".*tmp"))


def test_compressai_layout_and_per_sequence_file_load(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"name": "x", "description": "", "results": {"bitrate": [1, 2],
                                                                        "psnr-rgb": [3, 4]}}))
    assert load_results(p).results["bitrate"] == [1, 2]
    p.write_text(json.dumps({"name": "x", "source": "clip", "results": {"bpp": 0.1}}))
    assert load_results(p).sequences == {"clip": {"bpp": [0.1]}}


def test_bad_files_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError):
        load_results(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError):
        load_results(bad)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    write_json_atomic(p, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]
