"""Issue #16 (items 2, 3, 5, 6) as a user hits it: one-line refusals (exit 2) before any work, options
that say what they do, quiet that is quiet, and a command line that starts at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import Cli  # tests/cli/conftest.py

FAST = ["--size", "xxs", "--schedule", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("mistakes") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=4)
    return p


def _one_line(cli: Cli, args: list[str], match: str, code: int = 2) -> str:
    t0 = time.perf_counter()
    got, _, err = cli(args)
    assert got == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert match in err, err
    assert time.perf_counter() - t0 < 5  # refused before loading or training
    return err


# ------------------------------------------------------------------------------ 2. tracebacks
@pytest.mark.parametrize(
    "extra,match",
    [
        (["--lambda", "inf"], "--lambda must be a finite number >= 0, got inf"),
        (["--lambda", "-inf"], "--lambda must be a finite number"),
        (["--lambda", "nan"], "--lambda must be a finite number"),
        (["--time-budget", "10"], "--time-budget 10 has no unit: add one, e.g. 10s, 10m or 10h"),
        (["--time-budget", "2.5"], "no unit"),
        (["--frames", "5"], "--frames 5 is more than the source's 4 frames"),
        (["-o", "missing/x.bin"], "output folder missing does not exist"),
        (["--epochs", "abc"], "Invalid value for '--epochs'"),
        (["--no-such-option"], "No such option"),
        (["--optimizer", "sgd"], "unknown optimizer 'sgd' (auto, adam, soap, soap-pretrain)"),
        (["--pipeline", "paper", "--optimizer", "soap"], "--optimizer needs --pipeline rd"),
    ],
)
def test_mistakes_give_one_line_before_any_work(
    extra: list[str], match: str, clip: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["encode", str(clip), "-o", "out.bin", *FAST, *extra]
    if "-o" in extra:
        args = ["encode", str(clip), *FAST, *extra]
    _one_line(cli, args, match)
    assert list(tmp_path.iterdir()) == []  # no file, no OUT.work/, no folder made


def test_a_workdir_holding_other_files_is_refused(
    clip: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    args = ["encode", str(clip), "-o", "out.bin", *FAST, "--workdir"]
    _one_line(cli, [*args, "."], "not a hinerv work folder")
    _one_line(cli, [*args, "notes.txt"], "not a folder")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_decode_refuses_an_unknown_device_in_one_line(clip: Path, tmp_path: Path, cli: Cli) -> None:
    # a real bitstream, so that only the device is wrong (made by the library: no CLI encode needed)
    from hinerv.codec import EncodeOptions, encode_file

    stream = tmp_path / "c.bin"
    encode_file(clip, stream, EncodeOptions(size="xxs", schedule="tiny", epochs=1, device="cpu"))
    args = ["decode", str(stream), "-o", str(tmp_path / "d.y4m")]
    _one_line(cli, [*args, "--device", "tpu"], "unknown device")
    _one_line(cli, ["decode", str(stream), "-o", str(tmp_path / "no" / "d.y4m")], "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.bin"]


def test_usage_errors_are_one_line_everywhere(cli: Cli) -> None:
    _one_line(cli, ["decode", "x.bin"], "Missing option '-o'")
    _one_line(cli, ["eval", "a.y4m"], "Missing argument")
    _one_line(cli, ["nope"], "No such command 'nope'")
    _one_line(cli, ["model", "--width", "wide"], "Invalid value for '--width'")


# ------------------------------------------------------------------------------ 6. resume, workdir, quiet
def test_resume_with_nothing_to_resume_says_so_and_quiet_is_quiet(
    clip: Path, tmp_path: Path, cli: Cli
) -> None:
    wd, out = tmp_path / "wd", tmp_path / "c.bin"
    code, stdout, err = cli(["encode", str(clip), "-o", str(out), *FAST, "--epochs", "1",
                             "--workdir", str(wd), "--resume", "--time-budget", "100h",
                             "--json"])  # fmt: skip
    assert code == 0 and json.loads(stdout)["bytes"] == out.stat().st_size
    flat = " ".join(err.split())
    assert "budget 100.0 h (more than the schedule needs: it runs whole)" in flat  # #16.3, at once
    assert "the budget 100.0 h is more than schedule tiny" in flat
    assert f"nothing to resume in {wd}: starting a new encode" in flat
    assert f"kept the work folder {wd}" in flat
    # resumed from the finished work folder: no note, and -q prints nothing at all
    code, stdout, err = cli(["encode", str(clip), "-o", str(tmp_path / "d.bin"), *FAST, "--epochs", "1",
                             "--workdir", str(wd), "--resume", "--time-budget", "100h", "-q"])  # fmt: skip
    assert code == 0 and stdout == "" and err == ""
    code, stdout, err = cli(["decode", str(out), "-o", str(tmp_path / "d.y4m"), "-q"])
    assert code == 0 and stdout == "" and err == ""
    code, stdout, _ = cli(["decode", str(out), "-o", str(tmp_path / "e.y4m"), "-q", "--json"])
    assert code == 0 and json.loads(stdout)["frames"] == 4


# ------------------------------------------------------------------------------ 6. help texts
def test_help_says_what_the_options_do(cli: Cli) -> None:
    code, out, _ = cli(["encode", "--help"])
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0
    assert "4x the learning rate with Adam beta2 0.99" in flat and "2x" not in flat
    assert "auto (the default: full, 390 epochs" in flat
    assert "at fast's learning rate when at most 12,000 steps fit" in flat
    assert "(CUDA only)" in flat
    assert "with a unit (90s, 10m, 2h, 1h30m)" in flat


def test_model_help_lists_the_ladder(cli: Cli) -> None:
    from hinerv.cli.model_cmd import SIZE_NAMES
    from hinerv.model import SIZES

    assert tuple(SIZES) == SIZE_NAMES


# ------------------------------------------------------------------------------ 6. kernel build on a log
def test_a_slow_kernel_build_is_announced_on_a_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hinerv import fused
    from hinerv.cli import codec_cmd

    monkeypatch.setattr(fused, "loaded", lambda: False)
    monkeypatch.setattr(fused, "build_error", lambda: None)
    monkeypatch.setattr(codec_cmd, "COMPILE_NOTICE_SECONDS", 0.05)
    monkeypatch.setattr(fused, "kernels", lambda: time.sleep(0.5))  # a compile
    codec_cmd._prepare_fused_kernels("cpu", quiet=False)  # capsys: stderr is not a terminal
    assert "compiling the fused CPU kernels" in capsys.readouterr().err
    monkeypatch.setattr(fused, "kernels", lambda: None)  # a cached build: nothing to say
    codec_cmd._prepare_fused_kernels("cpu", quiet=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ 6. start-up
STARTUP = """
import sys
from hinerv.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "av", "scipy", "skimage", "matplotlib") if m in sys.modules)
print("HEAVY", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], ["encode", "--help"], ["eval", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", STARTUP, *args], capture_output=True, text=True, check=False)
    assert "Usage" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "HEAVY", r.stderr
