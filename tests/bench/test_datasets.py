from __future__ import annotations

import json
from pathlib import Path

import pytest

from hinerv.bench.datasets import check_dataset, list_datasets, load_dataset
from hinerv.cli import main
from hinerv.errors import ConfigError


def test_builtin_datasets() -> None:
    assert {"uvg", "mcl-jcv"} <= set(list_datasets())
    uvg = load_dataset("uvg")
    assert len(uvg.sequences) == 7
    assert sum(s.frames for s in uvg.sequences) == 3900
    assert all(s.fps == 120 and (s.width, s.height) == (1920, 1080) for s in uvg.sequences)
    mcl = load_dataset("MCL-JCV")
    assert len(mcl.sequences) == 30
    assert sum(s.frames for s in mcl.sequences) == 4115
    with pytest.raises(ConfigError):
        load_dataset("nope")


def _fake(tmp_path: Path) -> Path:
    (tmp_path / "ds").mkdir()
    toml = tmp_path / "tiny.toml"
    toml.write_text(
        'name = "tiny"\nwidth = 8\nheight = 4\n'
        '[[sequences]]\nname = "A"\nfile = "A_8x4.yuv"\nframes = 3\nfps = 30\n'
        '[[sequences]]\nname = "B"\nfile = "B_8x4.yuv"\nframes = 2\nfps = 30\n'
        '[[sequences]]\nname = "C"\nfile = "C_8x4.yuv"\nframes = 2\nfps = 30\n'
    )
    (tmp_path / "ds" / "A_8x4.yuv").write_bytes(bytes(8 * 4 * 3 // 2 * 3))
    (tmp_path / "ds" / "sub").mkdir()
    (tmp_path / "ds" / "sub" / "B_8x4.yuv").write_bytes(bytes(10))
    return toml


def test_check_reports_ok_missing_wrong(tmp_path: Path) -> None:
    toml = _fake(tmp_path)
    rows = {r.name: r for r in check_dataset(tmp_path / "ds", load_dataset(toml))}
    assert rows["A"].status == "ok"
    assert rows["B"].status == "wrong-size" and rows["B"].actual_bytes == 10
    assert rows["B"].file == "sub/B_8x4.yuv"
    assert rows["C"].status == "missing"


def test_cli_check_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = _fake(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["datasets", "check", str(tmp_path / "ds"), "--dataset", str(toml), "--json"])
    assert e.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["missing"], out["wrong-size"]) == (1, 1, 1)
    with pytest.raises(SystemExit) as e:
        main(["datasets", "check", str(tmp_path / "nowhere"), "--dataset", "uvg"])
    assert e.value.code == 2
    assert "not a folder" in capsys.readouterr().err
