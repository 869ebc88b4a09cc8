"""Issue #9 as a user hits it: inputs are never lost, mistakes are refused before any work.

Every refusal is checked through the real CLI entry point: exit code 2, one line on stderr, no
traceback, the input unchanged, no output file or ``OUT.work/`` folder left, and no time spent.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hinerv.cli import main
from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import Cli  # tests/cli/conftest.py

FAST = ["--size", "xxs", "--schedule", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("safety") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=4)
    return p


@pytest.fixture(scope="module")
def stream(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "c.bin"
    with pytest.raises(SystemExit) as e:
        main(["encode", str(clip), "-o", str(out), *FAST, "--epochs", "1", "--quiet"])
    assert e.value.code in (0, None)
    return out


def _refused(cli: Cli, args: list[str], match: str) -> str:
    t0 = time.perf_counter()
    code, out, err = cli(args)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert match in err, err
    assert time.perf_counter() - t0 < 5  # refused before loading or training
    return err


def _victim(tmp_path: Path, clip: Path, name: str) -> Path:
    p = tmp_path / name
    if name.endswith(".yuv"):
        from hinerv.io import open_video

        with open_video(clip) as r, open(p, "wb") as f:
            for t in range(len(r)):
                for plane in r.read_yuv(t):
                    f.write(plane.tobytes())
    else:
        p.write_bytes(clip.read_bytes())
    return p


# ------------------------------------------------------------------------------ 1. data loss
@pytest.mark.parametrize("name", ["victim.y4m", "victim_64x48_25.yuv"])
def test_output_equal_to_the_source_is_refused(
    name: str, clip: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _victim(tmp_path, clip, name)
    before = src.read_bytes()
    (tmp_path / "link").symlink_to(src)
    os.link(src, tmp_path / "hard")
    monkeypatch.chdir(tmp_path)
    outputs = [["-o", str(src)], ["-o", "link"], ["-o", "hard"], ["-o", f"./{name}"],
               ["-o", "ok.bin", "--recon", name], ["-o", "ok.bin", "--recon", "link"]]  # fmt: skip
    for o in outputs:
        _refused(cli, ["encode", name, *o, *FAST], "refusing to write")
        assert src.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["hard", "link", name])


def test_decode_onto_its_own_bitstream_is_refused(
    stream: Path, tmp_path: Path, cli: Cli
) -> None:
    s = tmp_path / "stream.yuv"  # a bitstream that happens to have a video's name
    s.write_bytes(stream.read_bytes())
    _refused(cli, ["decode", str(s), "-o", str(s)], "refusing to write")
    assert s.read_bytes() == stream.read_bytes()


# ------------------------------------------------------------------------------ 2./3. validation
@pytest.mark.parametrize(
    "extra,match",
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--bits", "99"], "--bits must be 6, 7 or 8"),
        (["--bits", "5"], "--bits must be 6, 7 or 8"),
        (["--recon", "out.bin"], "unknown output extension"),
        (["--size", "huge"], "unknown model size"),
        (["--schedule", "nope"], "unknown schedule"),
        (["--frames", "0"], "--frames must be at least 1"),
        (["--device", "tpu"], "device"),
        (["-o", "clip_copy.y4m"], "video extension"),
        (["-o", "missing/deeper/x.bin", "--recon", "missing/r.y4m"], "does not exist"),
    ],
)
def test_mistakes_are_refused_before_any_work(
    extra: list[str], match: str, clip: Path, tmp_path: Path, cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    args = ["encode", str(clip), "-o", "out.bin", *FAST, *extra]
    if "-o" in extra:  # the case gives its own output
        args = ["encode", str(clip), *FAST, *extra]
    _refused(cli, args, match)
    assert list(tmp_path.iterdir()) == []  # no file, no OUT.work/


def test_bad_frame_ranges_are_refused_before_decoding(
    stream: Path, tmp_path: Path, cli: Cli
) -> None:
    for bad in ("2:2", "x:3", "5"):
        _refused(cli, ["decode", str(stream), "-o", str(tmp_path / "d.y4m"), "--frames", bad], "--frames")
    _refused(cli, ["decode", str(stream), "-o", str(tmp_path / "d.y4m"), "--frames", "9:"], "outside")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ 8. smaller items
def test_version(cli: Cli) -> None:
    from hinerv import __version__

    code, out, _ = cli(["--version"])
    assert code == 0 and out.strip() == f"hinerv {__version__}"


def test_json_keeps_progress_on_stderr_and_modes_match(
    clip: Path, tmp_path: Path, cli: Cli
) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "c.bin"
        args = ["encode", str(clip), "-o", str(out), *FAST, "--epochs", "1", "--json"]
        code, stdout, err = cli(args)
        assert code == 0
        json.loads(stdout)  # stdout is the JSON alone
        assert "main epoch" in err or "export" in err  # progress still on stderr
        code, stdout, err = cli(["decode", str(out), "-o", str(tmp_path / "d.y4m"), "--json"])
        assert code == 0 and json.loads(stdout)["frames"] == 4
        modes = {stat.S_IMODE(p.stat().st_mode) for p in (out, tmp_path / "d.y4m")}
        assert modes == {0o644}
    finally:
        os.umask(old)


def test_open_ended_frame_range(stream: Path, tmp_path: Path, cli: Cli) -> None:
    for rng, n in (("3:", 1), (":3", 3), ("1:", 3)):
        code, stdout, _ = cli(["decode", str(stream), "-o", str(tmp_path / f"{n}.y4m"), "--frames", rng,
                               "--json"])  # fmt: skip
        assert code == 0 and json.loads(stdout)["frames"] == n


KILLED_WRITER = """
import os, signal, sys
from fractions import Fraction
import numpy as np
from hinerv.io import open_writer
from hinerv.types import VideoInfo
w = open_writer(sys.argv[1], VideoInfo(64, 48, 4, Fraction(25)))
w.write_rgb(np.zeros((3, 48, 64), np.float32))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_decode_leaves_a_temporary_the_next_one_removes(
    stream: Path, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / "d.y4m"
    r = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], check=False)
    assert r.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".d.y4m.")]
    assert len(left) == 1 and not out.exists()  # what kill -9 leaves
    code, _, _ = cli(["decode", str(stream), "-o", str(out)])
    assert code == 0 and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.y4m"]
