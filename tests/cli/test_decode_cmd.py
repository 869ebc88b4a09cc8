"""``hinerv decode``: ``--compile`` (CUDA only, refused in one line elsewhere) and the JSON's phase
timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import Cli  # tests/cli/conftest.py


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hinerv.cli import main

    d = tmp_path_factory.mktemp("decode")
    write_sample(d / "clip.y4m", width=64, height=48, frames=3)
    with pytest.raises(SystemExit) as e:
        main(["encode", str(d / "clip.y4m"), "-o", str(d / "x.bin"), "--size", "xxs", "--schedule", "tiny",
              "--bits", "6", "--device", "cpu", "-q"])
    assert e.value.code in (0, None)
    return d / "x.bin"


def test_decode_json_reports_phase_timings(stream: Path, tmp_path: Path, cli: Cli) -> None:
    code, out, err = cli(["decode", str(stream), "-o", str(tmp_path / "d.y4m"), "--device", "cpu", "--json"])
    assert code == 0, err
    rep = json.loads(out)
    assert rep["frames"] == 3
    assert set(rep["timings"]) == {"load", "decode", "write"}
    assert all(v >= 0 for v in rep["timings"].values())
    assert sum(rep["timings"].values()) <= rep["seconds"] + 0.5


def test_decode_compile_on_cpu_is_one_line_and_writes_nothing(stream: Path, tmp_path: Path, cli: Cli) -> None:
    out_path = tmp_path / "d.y4m"
    code, out, err = cli(["decode", str(stream), "-o", str(out_path), "--device", "cpu", "--compile"])
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "--compile is supported on CUDA only" in err
    assert not out_path.exists()
