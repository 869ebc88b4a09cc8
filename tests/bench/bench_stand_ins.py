"""Stand-ins shared by the sweep tests: a scripted codec (picklable, so pool workers can run it) and
a fake ``ray`` module whose tasks run in this process in another working folder, as on a node.

Pool workers import this module by name: pytest puts ``tests/bench`` on ``sys.path`` and spawned
workers inherit the parent's ``sys.path``.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec, PointProgress, RatePoint
from hinerv.bench.sources import Source
from hinerv.errors import InputError


@dataclass
class ScriptedCodec(Codec):
    """Points ``groups`` = ``{group: (label, ...)}``; a label in ``fail`` raises an
    :class:`InputError` (a user problem), one in ``crash`` a ``RuntimeError`` (a bug). Every other
    point returns a small result whose ``bpp`` is its position in the ladder."""

    groups: tuple[tuple[str, tuple[str, ...]], ...] = (("g", ("a",)),)
    fail: tuple[str, ...] = ()
    crash: tuple[str, ...] = ()
    name: str = "scripted"

    def description(self) -> str:
        return "scripted stand-in codec"

    def points(self) -> list[RatePoint]:
        return [RatePoint(lb, {}, group=g) for g, labels in self.groups for lb in labels]

    def run_point(
        self,
        source: Source,
        point: RatePoint,
        workdir: Path,
        *,
        device: str | None = None,
        progress: PointProgress | None = None,
    ) -> dict[str, Any]:
        if point.label in self.fail:
            raise InputError(f"point {point.label} refused")
        if point.label in self.crash:
            raise RuntimeError(f"boom in {point.label}")
        rank = [p.label for p in self.points()].index(point.label)
        return {"q": point.label, "bpp": 0.1 * (rank + 1), "psnr-rgb": 30.0 + rank}


class _Ref:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


def fake_ray(worker_cwd: Path) -> types.ModuleType:
    """A stand-in for Ray whose tasks run in another working folder, as on a cluster node."""
    ray = types.ModuleType("ray")

    class TaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__(str(cause))
            self.cause = cause

    def remote(fn: Any) -> Any:
        def call(*args: Any) -> _Ref:
            here = os.getcwd()
            os.chdir(worker_cwd)
            try:
                return _Ref(fn(*args))
            except Exception as e:  # noqa: BLE001 - Ray wraps whatever the task raised
                return _Ref(error=TaskError(e))
            finally:
                os.chdir(here)

        task = types.SimpleNamespace(remote=call)
        return types.SimpleNamespace(options=lambda **kw: task, remote=call)

    def get(ref: _Ref) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value

    ray.init = lambda **kw: None  # type: ignore[attr-defined]
    ray.cluster_resources = lambda: {}  # type: ignore[attr-defined]
    ray.remote = remote  # type: ignore[attr-defined]
    ray.wait = lambda refs, num_returns=1: (refs[:num_returns], refs[num_returns:])  # type: ignore[attr-defined]
    ray.get = get  # type: ignore[attr-defined]
    return ray
