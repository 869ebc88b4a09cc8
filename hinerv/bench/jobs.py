"""One sweep job (a codec's rate point on one sequence) and what runs it in any process.

:func:`run_job` is the function every executor calls (in this process, in a pool worker or as a Ray
task); :func:`portable_job` makes a job's paths absolute so it runs the same on another node. Pool
workers start with :func:`init_worker`, which ends them with their parent (:func:`watch_parent`).
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec, PointProgress, RatePoint
from hinerv.bench.sources import Source

__all__ = [
    "SweepJob",
    "run_job",
    "gpu_count",
    "init_worker",
    "watch_parent",
    "portable_codec",
    "portable_job",
    "PARENT_POLL_S",
]


@dataclass
class SweepJob:
    """One point of one codec on one sequence (what a worker runs)."""

    codec: Codec
    source: Source
    point: RatePoint
    workdir: Path
    device: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """``(codec name, sequence name, point label)``."""
        return (self.codec.name, self.source.name, self.point.label)


# --------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------

#: this process's pool slot (0 in the parent); GPU codecs get ``cuda:<slot % n_gpus>``.
_WORKER_SLOT: int = 0

#: how often a pool worker checks that its parent is still alive (seconds).
PARENT_POLL_S = 0.5


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - torch is a dependency
        return 0


def init_worker(counter: Any, parent_pid: int | None = None) -> None:
    """Pool-worker initializer: process settings, a slot number from the shared ``counter``, and
    an exit as soon as ``parent_pid`` is gone."""
    global _WORKER_SLOT
    from hinerv.runtime import configure_process

    configure_process()  # a spawned worker does not run the CLI entry point
    with counter.get_lock():
        _WORKER_SLOT = counter.value
        counter.value += 1
    if parent_pid is not None:
        watch_parent(parent_pid)


def _set_parent_death_signal() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc / no prctl
        pass


def watch_parent(parent_pid: int, poll: float = PARENT_POLL_S) -> threading.Thread | None:
    """End this (worker) process as soon as ``parent_pid`` is gone, even after ``kill -9`` of it.

    Two mechanisms: the Linux parent-death signal (immediate; set up here), and a daemon thread
    that polls ``os.getppid()`` (portable; an orphan is re-parented, so its parent pid changes).
    Returns the thread, or None when the parent is already gone (then the process exits at once).
    """
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent_pid:
                os._exit(1)

    t = threading.Thread(target=watch, name="hinerv-parent-watch", daemon=True)
    t.start()
    return t


def _pick_device(job: SweepJob, n_gpus: int) -> str | None:
    if job.device is not None:
        return job.device
    if job.codec.uses_gpu and n_gpus > 0 and getattr(job.codec, "device", "auto") in ("auto", "cuda"):
        return f"cuda:{_WORKER_SLOT % n_gpus}"
    return None


def run_job(job: SweepJob, n_gpus: int = 0, progress: PointProgress | None = None) -> dict[str, Any]:
    """Run one point (in any process): returns the result record with timing and device added.

    Errors propagate (a :class:`~hinerv.errors.HinervError` for user problems)."""
    dev = _pick_device(job, n_gpus)
    t0 = time.perf_counter()
    res = job.codec.run_point(job.source, job.point, job.workdir, device=dev, progress=progress)
    res.setdefault("q", job.point.label)
    res.setdefault("width", job.source.info.width)
    res.setdefault("height", job.source.info.height)
    res["wall_time"] = time.perf_counter() - t0
    if dev is not None:
        res["device"] = dev
    res["host"] = os.uname().nodename if hasattr(os, "uname") else ""
    return res


# --------------------------------------------------------------------------------------------
# portable jobs (other nodes)
# --------------------------------------------------------------------------------------------


def _abs(p: Path | str | None) -> Any:
    return None if p is None else Path(p).absolute()


def portable_codec(codec: Codec) -> Codec:
    """A copy of ``codec`` whose file-system paths are absolute (relative ones would be resolved
    against a remote worker's own working folder). Bare program names (``TAppEncoder`` on the
    ``PATH``) and named schedules are left alone."""
    c = copy.copy(codec)
    for attr in ("encoder", "decoder"):
        v = getattr(c, attr, None)
        if v is not None and (os.sep in str(v) or Path(v).exists()):
            setattr(c, attr, _abs(v))
    if getattr(c, "cfg", None) is not None:
        c.cfg = _abs(c.cfg)  # type: ignore[attr-defined]
    sched = getattr(c, "schedule", None)
    if isinstance(sched, str) and sched.endswith(".toml"):
        c.schedule = str(_abs(sched))  # type: ignore[attr-defined]
    return c


def portable_job(job: SweepJob) -> SweepJob:
    """A copy of ``job`` in which every path is absolute, so it runs the same on any node that
    mounts the same file system, whatever the node's working folder (what Ray workers need)."""
    src = replace(job.source, path=_abs(job.source.path), original=_abs(job.source.original))
    return SweepJob(portable_codec(job.codec), src, job.point, _abs(job.workdir), job.device)
