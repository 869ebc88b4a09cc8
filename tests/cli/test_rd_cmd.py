"""The rd pipeline through the CLI: encode --pipeline rd, --lambda, --target-bpp, info, bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import Cli  # tests/cli/conftest.py


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("rdclip") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=3)
    return p


BASE = ["--size", "xxs", "--schedule", "tiny", "--device", "cpu", "--quiet"]


def test_encode_rd_then_info_says_rd(clip: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "c.bin"
    code, stdout, _ = cli(["encode", str(clip), "-o", str(out), *BASE, "--pipeline", "rd", "--lambda", "2",
                           "--json"])  # fmt: skip
    assert code == 0
    d = json.loads(stdout)
    assert d["pipeline"] == "rd" and d["lambda"] == 2.0 and d["bytes"] == out.stat().st_size
    code, stdout, _ = cli(["info", str(out), "--json"])
    assert code == 0
    info = json.loads(stdout)
    assert info["pipeline"] == "rd" and info["version"] == 2
    dec = tmp_path / "d.y4m"
    assert cli(["decode", str(out), "-o", str(dec), "--quiet"])[0] == 0
    assert dec.stat().st_size > 0


def test_default_pipeline_is_rd_and_bits_selects_paper(
    clip: Path, tmp_path: Path, cli: Cli
) -> None:
    for extra, pipeline, version in (([], "rd", 2), (["--bits", "6"], "paper", 1)):
        out = tmp_path / f"{pipeline}.bin"
        code, stdout, _ = cli(["encode", str(clip), "-o", str(out), *BASE, *extra, "--json"])
        assert code == 0 and json.loads(stdout)["pipeline"] == pipeline
        info = json.loads(cli(["info", str(out), "--json"])[1])
        assert info["pipeline"] == pipeline and info["version"] == version
    assert json.loads(cli(["info", str(tmp_path / "rd.bin"), "--json"])[1])["meta"]["lambda"] == 4.0


@pytest.mark.parametrize(
    "extra",
    [
        ["--pipeline", "rd", "--lambda", "-1"],
        ["--pipeline", "rd", "--target-bpp", "0"],
        ["--pipeline", "rd", "--target-bpp", "inf"],
        ["--pipeline", "rd", "--target-bpp", "nan"],
        ["--pipeline", "rd", "--target-bpp", "1e9"],
        ["--pipeline", "rd", "--target-bpp", "-1"],
        ["--pipeline", "rd", "--distortion", "l2"],
        ["--pipeline", "fast"],
        ["--bits", "6", "--lambda", "1"],  # --bits selects paper; --lambda needs rd
        ["--pipeline", "paper", "--target-bpp", "0.1"],
        ["--pipeline", "rd", "--bits", "6"],
    ],
)
def test_rd_mistakes_are_refused_before_any_work(
    clip: Path, tmp_path: Path, cli: Cli, extra: list[str]
) -> None:
    out = tmp_path / "c.bin"
    code, _, err = cli(["encode", str(clip), "-o", str(out), *BASE, *extra])
    assert code == 2 and err.strip()
    assert list(tmp_path.iterdir()) == []


def test_unreachable_target_and_ignored_lambda_are_said(clip: Path, tmp_path: Path, cli: Cli) -> None:
    """Issue #16: a target the model cannot reach finished with exit 0 and no word, and --lambda
    with --target-bpp was dropped silently."""
    out = tmp_path / "c.bin"
    code, stdout, err = cli(["encode", str(clip), "-o", str(out), *BASE, "--lambda", "2",
                             "--target-bpp", "1e-6", "--json"])  # fmt: skip
    assert code == 0
    d = json.loads(stdout)
    assert d["target_bpp"] == 1e-6 and d["target_met"] is False
    assert d["bytes"] == out.stat().st_size and d["bpp"] > 1e-6
    assert len(d["warnings"]) == 1 and "--target-bpp 1e-06 not reached" in d["warnings"][0]
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 2
    assert "--lambda 2 is ignored" in lines[0] and "not reached" in lines[1]


def test_a_target_without_a_size_picks_the_size_for_that_rate(clip: Path, tmp_path: Path, cli: Cli) -> None:
    """Issue #19: --target-bpp without --size trained size s whatever the rate; the default size is now
    ``auto``, the largest ladder size expected at or below the target (xs for 22 bpp on this clip)."""
    from hinerv.ratecontrol import size_for_target

    assert size_for_target(22.0, 64, 48, 3) == "xs"
    out = tmp_path / "c.bin"
    opts = ["--schedule", "tiny", "--device", "cpu", "--quiet", "--json"]
    code, stdout, _ = cli(["encode", str(clip), "-o", str(out), *opts, "--target-bpp", "22"])
    assert code == 0
    assert json.loads(stdout)["model"] == "xs"
    code, stdout, _ = cli(["encode", str(clip), "-o", str(tmp_path / "d.bin"), *opts, "--lambda", "2"])
    assert code == 0 and json.loads(stdout)["model"] == "s"  # no target: s, as before


def test_bench_rd_plans_lambda_and_target_points(
    clip: Path, tmp_path: Path, cli: Cli
) -> None:
    common = ["bench", "run", str(clip), "-o", str(tmp_path / "b"), "-c", "hinerv", "--pipeline", "rd",
              "--sizes", "xxs", "--schedule", "tiny", "--dry-run", "--json"]  # fmt: skip
    code, _, plan = cli([*common, "--target-bpp", "0.5,1"])
    assert code == 0
    assert "xxs-t0.5" in plan and "xxs-t1" in plan
    code, _, plan = cli([*common, "--lambdas", "0.5,2"])
    assert code == 0 and "xxs-l0.5" in plan and "xxs-l2" in plan
    code, _, plan = cli([*common[:-5], "xxs,m", *common[-4:]])  # no --lambdas: the ladder's
    assert code == 0 and "xxs-l4" in plan and "m-l0.5" in plan and "xxs-l1" not in plan
