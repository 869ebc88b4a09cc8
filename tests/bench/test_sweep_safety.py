"""Issue #9, items 4 and 5: Ray jobs with relative paths, honest summaries, failures printed once,
and pool workers that end with their parent (even after ``kill -9``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bench_stand_ins import fake_ray

from hinerv.bench.codecs import HiNeRVCodec, HMCodec, RatePoint, X265Codec
from hinerv.bench.sources import Source
from hinerv.bench.sweep import SweepJob, portable_job
from hinerv.cli import main
from hinerv.types import VideoInfo


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def test_portable_job_makes_every_path_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "enc").write_text("")
    (tmp_path / "s.toml").write_text("")
    src = Source("clip", Path("clip.y4m"), VideoInfo(64, 48, 3), {}, Path("orig/clip.y4m"))
    hm = HMCodec(encoder=Path("./enc"), cfg=Path("ra.cfg"), decoder=Path("TAppDecoder"))
    for codec in (hm, X265Codec(), HiNeRVCodec.__new__(HiNeRVCodec)):
        if isinstance(codec, HiNeRVCodec):
            codec.schedule = "s.toml"
        job = portable_job(SweepJob(codec, src, RatePoint("p", {}), Path("out/work/p")))
        assert job.source.path == tmp_path / "clip.y4m" and job.source.original == tmp_path / "orig/clip.y4m"
        assert job.workdir == tmp_path / "out/work/p"
    assert job.codec.schedule == str(tmp_path / "s.toml")  # type: ignore[attr-defined]
    hm_job = portable_job(SweepJob(hm, src, RatePoint("p", {}), Path("w")))
    c: Any = hm_job.codec
    assert c.encoder == tmp_path / "enc" and c.cfg == tmp_path / "ra.cfg"
    assert c.decoder == Path("TAppDecoder")  # a program on the PATH stays a bare name
    assert hm.encoder == Path("./enc")  # the caller's codec is not changed


def test_ray_with_relative_paths_summary_and_single_failure_report(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "node"
    node.mkdir()
    monkeypatch.setitem(sys.modules, "ray", fake_ray(node))
    monkeypatch.chdir(clip.parent)
    fail = tmp_path / "fail.sh"
    fail.write_text("#!/bin/sh\nexit 1\n")
    fail.chmod(0o755)
    (tmp_path / "ra.cfg").write_text("")
    code = _run(["bench", "run", clip.name, "-o", "out", "-c", "x265", "-c", "hm", "--preset", "ultrafast",
                 "-q", "36", "--hm-bin", str(fail), "--hm-cfg", str(tmp_path / "ra.cfg"), "--hm-qps", "30,34",
                 "--ray-address", "auto", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1  # the HM points failed
    summary = json.loads(out.out)
    assert summary["ran"] == 1  # the x265 point ran on the "node" despite the relative paths
    assert list(summary["outputs"]) == ["x265-ultrafast-ra"]  # HM wrote no result file
    for path in summary["outputs"].values():
        assert Path(path).is_absolute() and Path(path).is_file()
    assert list(node.iterdir()) == []  # nothing was written relative to the node's folder
    for key in summary["failed"]:
        assert out.err.count(key.replace("/", " ")) + out.err.count(key) == 1, out.err
    assert len(summary["failed"]) == 2  # HM qp30 and qp34 (two groups, both run, both failed)
    assert out.err.count("encoder failed") == 2  # once each, not again under the summary


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_kill_9_of_bench_run_ends_its_pool_workers(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hinerv", "bench", "run", str(clip), "-o", str(out), "-c", "hinerv",
           "--sizes", "xxs,xs", "--schedule", "full", "--device", "cpu", "-j", "2", "--quiet",
           "--pipeline", "paper"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        points = out / "work" / "hinerv-full" / "clip"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both workers are inside a point (initializer done)
            if points.is_dir() and len([p for p in points.iterdir() if p.name.endswith("-q6")]) == 2:
                break
            assert proc.poll() is None, "bench run ended early"
            time.sleep(0.2)
        else:
            pytest.fail("the workers did not start")
        kids = _children(proc.pid)
        assert len(kids) >= 2  # two workers (and the resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        left = [k for k in kids if _alive(k)]
        for k in left:  # do not leave them running if the test fails
            os.kill(k, signal.SIGKILL)
        assert left == [], "orphaned pool processes survived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
