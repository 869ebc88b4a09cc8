"""``hinerv encode --precision`` as a user hits it (issue #17 item 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import Cli  # tests/cli/conftest.py

FAST = ["--size", "xxs", "--schedule", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("precision") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=3)
    return p


@pytest.mark.parametrize(
    "value,match",
    [
        ("fp64", "unknown precision 'fp64'; use fp32, fp16, bf16"),
        ("bf16", "--precision bf16 needs a CUDA device; on cpu training runs in fp32"),
        ("fp16", "--precision fp16 needs a CUDA device"),
    ],
)
def test_a_precision_the_device_cannot_run_is_one_line(
    value: str, match: str, clip: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["encode", str(clip), "-o", "out.bin", *FAST, "--precision", value])
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and match in err, err
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_the_report_says_device_and_precision(clip: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "c.bin"
    code, stdout, _ = cli(["encode", str(clip), "-o", str(out), *FAST, "--epochs", "1", "--precision", "fp32",
                           "--json"])  # fmt: skip
    assert code == 0
    d = json.loads(stdout)
    assert d["device"] == "cpu" and d["precision"] == "fp32" and d["bytes"] == out.stat().st_size
    code, help_text, _ = cli(["encode", "--help"])
    flat = " ".join(help_text.replace("│", " ").split())
    assert "Training precision: fp32, fp16 (autocast with loss scaling) or bf16" in flat
    assert "Decoding is always fp32" in flat


def test_bench_run_refuses_a_bad_precision_in_one_line(clip: Path, tmp_path: Path, cli: Cli) -> None:
    args = ["bench", "run", str(clip), "-c", "hinerv", "--sizes", "xxs", "--schedule", "tiny",
            "-o", str(tmp_path / "b")]  # fmt: skip
    cases = [
        (["--precision", "fp64"], "unknown precision 'fp64'"),
        (["--device", "cpu", "--precision", "bf16"], "--precision bf16 needs a CUDA device"),
    ]
    for extra, match in cases:
        code, _, err = cli([*args, *extra])
        assert code == 2 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and match in err, err
