"""Resume across devices through the command line: an encode killed on one device continues with
``--resume`` on the other (or is refused with one line, never a traceback), and the result decodes.

The first encode runs as a child process and is killed with SIGKILL once its work folder holds a
checkpoint (``state.ckpt``, first written when the main stage ends), as a lost machine would leave it;
the prune and QAT stages (the optimizer and, under fp16, the loss scaler restarted from that state) then
run on the other device. ``--epochs 24`` leaves a few hundred milliseconds of training after the first
checkpoint on a GPU, far more than the 10 ms between looks at the folder.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from gpu_util import TINY, Cli, hinerv_process, one_line_error

LONG = ["--epochs", "24", "--bits", "6"]


def _kill_after_first_checkpoint(args: list[str], wd: Path, timeout: float = 120.0) -> None:
    log = wd.with_name("first.log")
    proc = hinerv_process(args, log)
    t0 = time.monotonic()
    try:
        while not (wd / "state.ckpt").exists():
            assert proc.poll() is None, f"encode ended before its first checkpoint: {log.read_text()}"
            assert time.monotonic() - t0 < timeout, "no checkpoint in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()  # no-op when it is gone already
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()


@pytest.mark.parametrize(("first", "then"), [("cpu", "cuda"), ("cuda", "cpu")])
def test_killed_encode_resumes_on_the_other_device(
    first: str, then: str, clip: Path, tmp_path: Path, cli: Cli
) -> None:
    out, wd = tmp_path / "r.bin", tmp_path / "work"
    enc = ["encode", str(clip), "-o", str(out), *TINY, *LONG, "--workdir", str(wd)]
    _kill_after_first_checkpoint([*enc, "--device", first], wd)
    assert not out.exists() and (wd / "job.json").is_file()
    code, stdout, err = cli([*enc, "--device", then, "--resume"])
    if code != 0:  # the project may refuse a change of device, in one line
        assert one_line_error(code, err), err
        assert not out.exists()
        return
    rep = json.loads(stdout)
    assert out.is_file() and rep["bytes"] == out.stat().st_size
    assert rep["train_seconds"] <= rep["encode_seconds"]
    code, stdout, err = cli(["decode", str(out), "-o", str(tmp_path / "d.y4m"), "--device", then, "--json"])
    assert code == 0, err
    assert json.loads(stdout)["frames"] == 4
