"""The rd pipeline through the CLI: encode --pipeline rd, --lambda, --target-bpp, info, bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hinerv.cli import main
from hinerv.sample import write_sample


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("rdclip") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=3)
    return p


BASE = ["--size", "xxs", "--schedule", "tiny", "--device", "cpu", "--quiet"]


def test_encode_rd_then_info_says_rd(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.bin"
    code, stdout, _ = run(["encode", str(clip), "-o", str(out), *BASE, "--pipeline", "rd", "--lambda", "2",
                           "--json"], capsys)  # fmt: skip
    assert code == 0
    d = json.loads(stdout)
    assert d["pipeline"] == "rd" and d["lambda"] == 2.0 and d["bytes"] == out.stat().st_size
    code, stdout, _ = run(["info", str(out), "--json"], capsys)
    assert code == 0
    info = json.loads(stdout)
    assert info["pipeline"] == "rd" and info["version"] == 2
    dec = tmp_path / "d.y4m"
    assert run(["decode", str(out), "-o", str(dec), "--quiet"], capsys)[0] == 0
    assert dec.stat().st_size > 0


def test_default_pipeline_is_rd_and_bits_selects_paper(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra, pipeline, version in (([], "rd", 2), (["--bits", "6"], "paper", 1)):
        out = tmp_path / f"{pipeline}.bin"
        code, stdout, _ = run(["encode", str(clip), "-o", str(out), *BASE, *extra, "--json"], capsys)
        assert code == 0 and json.loads(stdout)["pipeline"] == pipeline
        info = json.loads(run(["info", str(out), "--json"], capsys)[1])
        assert info["pipeline"] == pipeline and info["version"] == version
    assert json.loads(run(["info", str(tmp_path / "rd.bin"), "--json"], capsys)[1])["meta"]["lambda"] == 4.0


@pytest.mark.parametrize(
    "extra",
    [
        ["--pipeline", "rd", "--lambda", "-1"],
        ["--pipeline", "rd", "--target-bpp", "0"],
        ["--pipeline", "rd", "--distortion", "l2"],
        ["--pipeline", "fast"],
        ["--bits", "6", "--lambda", "1"],  # --bits selects paper; --lambda needs rd
        ["--pipeline", "paper", "--target-bpp", "0.1"],
        ["--pipeline", "rd", "--bits", "6"],
    ],
)
def test_rd_mistakes_are_refused_before_any_work(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "c.bin"
    code, _, err = run(["encode", str(clip), "-o", str(out), *BASE, *extra], capsys)
    assert code == 2 and err.strip()
    assert list(tmp_path.iterdir()) == []


def test_bench_rd_plans_lambda_and_target_points(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["bench", "run", str(clip), "-o", str(tmp_path / "b"), "-c", "hinerv", "--pipeline", "rd",
              "--sizes", "xxs", "--schedule", "tiny", "--dry-run", "--json"]  # fmt: skip
    code, _, plan = run([*common, "--target-bpp", "0.5,1"], capsys)
    assert code == 0
    assert "xxs-t0.5" in plan and "xxs-t1" in plan
    code, _, plan = run([*common, "--lambdas", "0.5,2"], capsys)
    assert code == 0 and "xxs-l0.5" in plan and "xxs-l2" in plan
    code, _, plan = run([*common[:-5], "xxs,m", *common[-4:]], capsys)  # no --lambdas: the ladder's
    assert code == 0 and "xxs-l4" in plan and "m-l0.5" in plan and "xxs-l1" not in plan
