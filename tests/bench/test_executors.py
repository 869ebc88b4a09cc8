"""Issue #18 item 7: one executor interface (inline, process pool, Ray) with one failure rule.

The same scripted sweep runs on every executor and must end the same way: a point that fails with a
user error is reported once and skips the rest of its group, other groups go on; any other exception
ends the sweep and propagates, leaving no result for that point."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_stand_ins import ScriptedCodec, fake_ray

from hinerv.bench.executors import SKIPPED_AFTER_FAILURE
from hinerv.bench.sweep import SourceSpec, SweepReporter, point_path, run_sweep

HAS_RAY = importlib.util.find_spec("ray") is not None
KINDS = [
    "inline",
    "pool",
    "fake-ray",
    pytest.param("ray", marks=pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (optional)")),
]


class _Log(SweepReporter):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.done: list[tuple[str, str | None]] = []

    def point_started(self, job):  # type: ignore[no-untyped-def]
        self.started.append(job.point.label)

    def point_done(self, job, result, error):  # type: ignore[no-untyped-def]
        self.done.append((job.point.label, error))


def _sweep(kind: str, codec: ScriptedCodec, clip: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    opts: dict[str, Any] = {"jobs": 1}
    if kind == "pool":
        opts["jobs"] = 2
    elif kind == "fake-ray":
        node = out.parent / "node"
        node.mkdir(exist_ok=True)
        monkeypatch.setitem(sys.modules, "ray", fake_ray(node))
        opts["ray_address"] = "auto"
    elif kind == "ray":  # a local cluster; its workers import the stand-in codec from PYTHONPATH
        here = str(Path(__file__).parent)
        monkeypatch.setenv("PYTHONPATH", ":".join(filter(None, [here, *sys.path])))
        opts["ray_address"] = "local"
    log = _Log()
    return run_sweep([codec], [SourceSpec("clip", clip)], out, reporter=log, **opts), log


@pytest.mark.parametrize("kind", KINDS)
def test_a_user_error_fails_its_point_skips_its_group_and_spares_the_others(
    kind: str, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = ScriptedCodec(groups=(("g1", ("a", "b", "c")), ("g2", ("d", "e"))), fail=("b",))
    out = tmp_path / "out"
    summary, log = _sweep(kind, codec, clip, out, monkeypatch)
    assert summary.ran == 3
    assert summary.failed == {
        "scripted/clip/b": "InputError: point b refused",
        "scripted/clip/c": SKIPPED_AFTER_FAILURE,
    }
    assert "c" not in log.started  # never submitted
    assert sorted(log.done) == [("a", None), ("b", "InputError: point b refused"), ("d", None), ("e", None)]
    assert log.started.index("a") < log.started.index("b")  # a group runs in order
    assert log.started.index("d") < log.started.index("e")
    for label in "ade":
        assert point_path(out, "scripted", "clip", label).is_file()
    for label in "bc":
        assert not point_path(out, "scripted", "clip", label).exists()
    res = json.loads((out / "scripted.json").read_text())["results"]
    assert res["q"] == ["a", "d", "e"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bug_ends_the_sweep_and_propagates(
    kind: str, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = ScriptedCodec(groups=(("g1", ("a", "b")),), crash=("b",))
    out = tmp_path / "out"
    with pytest.raises(Exception, match="boom in b"):
        _sweep(kind, codec, clip, out, monkeypatch)
    assert point_path(out, "scripted", "clip", "a").is_file()
    assert not point_path(out, "scripted", "clip", "b").exists()


def test_inline_runs_group_after_group(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    codec = ScriptedCodec(groups=(("g1", ("a", "b")), ("g2", ("c", "d"))))
    _summary, log = _sweep("inline", codec, clip, tmp_path / "out", monkeypatch)
    assert log.started == ["a", "b", "c", "d"]
