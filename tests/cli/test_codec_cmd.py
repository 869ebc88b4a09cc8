"""`hinerv encode / decode / info / demo` through the real CLI entry point."""

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
    p = tmp_path_factory.mktemp("cliclip") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=3)
    return p


def test_encode_decode_info_json(
    clip: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hinerv.runtime

    sizes: list[tuple[int, int]] = []  # the allocator rule sees each command's frame size
    monkeypatch.setattr(hinerv.runtime, "keep_freed_memory_for", lambda w, h: sizes.append((w, h)) or False)
    out = tmp_path / "c.bin"
    code, stdout, _ = cli(
        [
            "encode",
            str(clip),
            "-o",
            str(out),
            "--size",
            "xxs",
            "--schedule",
            "tiny",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["bytes"] == out.stat().st_size and d["frames"] == 3
    for k in ("psnr-rgb", "ms-ssim-rgb", "bpp", "bitrate", "encode_seconds"):
        assert k in d
    code, stdout, _ = cli(
        ["decode", str(out), "-o", str(tmp_path / "d.yuv"), "--json", "--device", "cpu"]
    )
    assert code == 0 and json.loads(stdout)["frames"] == 3
    assert (tmp_path / "d.yuv").stat().st_size == 3 * 64 * 48 * 3 // 2
    assert sizes == [(64, 48), (64, 48)]  # encode's (from the input), decode's (from the stream header)
    code, stdout, _ = cli(["info", str(out), "--json"])
    assert code == 0 and json.loads(stdout)["video"]["frames"] == 3
    code, stdout, _ = cli(["info", str(out)])
    assert code == 0 and "channels" in stdout


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "missing.y4m", "-o", "x.bin"],
        ["decode", "missing.bin", "-o", "x.y4m"],
        ["info", "missing.bin"],
    ],
)
def test_user_errors_exit_2_without_traceback(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(args)
    assert code == 2
    assert "Traceback" not in err and "error" in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_corrupt_bitstream_exit_2_no_output(tmp_path: Path, cli: Cli) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"HNRV\x01garbage" * 10)
    code, _, err = cli(["decode", str(bad), "-o", str(tmp_path / "o.y4m")])
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "o.y4m").exists()


def test_wrong_yuv_size_exit_2(tmp_path: Path, cli: Cli) -> None:
    src = tmp_path / "clip_64x48_30.yuv"
    src.write_bytes(b"\x00" * (64 * 48 * 3 // 2 * 2 + 7))
    code, _, err = cli(["encode", str(src), "-o", str(tmp_path / "o.bin"), "--schedule", "tiny"])
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "o.bin").exists()


def test_demo_runs_end_to_end(tmp_path: Path, cli: Cli) -> None:
    args = ["demo", "--out", str(tmp_path / "d"), "--schedule", "tiny", "--size", "xxs", "--frames", "3"]
    code, stdout, _ = cli([*args, "--width", "64", "--height", "48", "--x265", "37", "--json"])
    assert code == 0
    d = json.loads(stdout)
    assert d["hinerv"]["bytes"] == (tmp_path / "d" / "sample.bin").stat().st_size
    assert len(d["x265"]) == 1 and d["x265"][0]["bytes"] > 0
    for f in ("sample.y4m", "decoded.y4m", "decoded.mp4"):
        assert (tmp_path / "d" / f).exists()


def test_encode_time_budget_prints_the_plan(
    clip: Path, tmp_path: Path, cli: Cli
) -> None:
    import time

    t0 = time.perf_counter()
    code, out, err = cli(
        [
            "encode",
            str(clip),
            "-o",
            str(tmp_path / "b.bin"),
            "--size",
            "xxs",
            "--device",
            "cpu",
            "--time-budget",
            "4s",
            "--max-memory",
            "64M",
            "--json",
        ]
    )
    wall = time.perf_counter() - t0
    assert code == 0
    flat = " ".join(err.split())
    assert "plan:" in flat and "s/step" in flat and "budget 4 s" in flat
    # the default schedule (auto) fitted to a few hundred steps trains at fast's rates, and says so
    sched = json.loads(out)["schedule"]
    assert sched["name"].startswith("fast~") and sched["lr"] == 8e-3 and sched["adam_beta2"] == 0.99
    assert "schedule fast~" in flat  # the plan's fit (the budget keeper may re-fit it as training runs)
    assert wall < 4 * 3  # generous: the budget is the target, a loaded test machine is not
    code, _, err = cli(["encode", str(clip), "-o", str(tmp_path / "x.bin"), "--time-budget", "soon"])
    assert code == 2 and "duration" in err
    code, _, err = cli(["encode", str(clip), "-o", str(tmp_path / "x.bin"), "--max-memory", "lots"])
    assert code == 2 and "--max-memory" in err


def test_fused_kernels_prepared_for_cpu_only(monkeypatch, capsys) -> None:
    """encode/decode load the fused kernels before the work on CPU, never for CUDA, and say when they
    cannot be built."""
    from hinerv import fused
    from hinerv.cli import codec_cmd

    calls: list[int] = []
    monkeypatch.setattr(fused, "kernels", lambda: calls.append(1))
    monkeypatch.setattr(fused, "loaded", lambda: False)
    monkeypatch.setattr(fused, "build_error", lambda: None)
    codec_cmd._prepare_fused_kernels("cuda:0", quiet=True)
    assert calls == []
    codec_cmd._prepare_fused_kernels("cpu", quiet=True)
    assert calls == [1]
    monkeypatch.setattr(fused, "build_error", lambda: "RuntimeError: no compiler")
    codec_cmd._prepare_fused_kernels("cpu", quiet=False)
    assert "fused CPU kernels unavailable (RuntimeError: no compiler)" in capsys.readouterr().err
    monkeypatch.setenv(fused.FUSED_ENV, "0")
    codec_cmd._prepare_fused_kernels("cpu", quiet=True)
    assert calls == [1, 1]
