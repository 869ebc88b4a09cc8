"""Where sweep jobs run: in this process, in a local process pool, or as Ray tasks.

Every back end implements :class:`Executor` (``start`` / ``submit`` / ``wait`` / ``stop``) and
:func:`run_groups` drives all of them the same way, so the scheduling and the failure handling are
one piece of code:

* the points of one group run one after another (they share state, e.g. a trained model); groups
  run side by side up to :attr:`Executor.slots` at a time;
* a point that fails with a :class:`~hinerv.errors.HinervError` (a user problem: bad input, a
  failing reference encoder) is reported through :meth:`SweepEvents.failed` and the rest of its
  group through :meth:`SweepEvents.skipped`; the other groups go on;
* any other exception (a bug, ``KeyboardInterrupt``) stops the executor and propagates.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from hinerv.bench.jobs import SweepJob, gpu_count, init_worker, portable_job, run_job
from hinerv.errors import ConfigError, HinervError

__all__ = [
    "Executor",
    "InlineExecutor",
    "PoolExecutor",
    "RayExecutor",
    "SweepEvents",
    "SKIPPED_AFTER_FAILURE",
    "make_executor",
    "run_groups",
]

#: the reason given for the points of a group left after one of them failed.
SKIPPED_AFTER_FAILURE = "skipped after a failure in its group"

#: ``(handle, error, result)`` of a finished job: ``error`` is None on success.
Finished = tuple[Hashable, BaseException | None, Any]


class SweepEvents(Protocol):
    """What :func:`run_groups` reports, in the parent process, as jobs start and end."""

    def started(self, job: SweepJob) -> None: ...

    def finished(self, job: SweepJob, result: dict[str, Any]) -> None: ...

    def failed(self, job: SweepJob, error: str) -> None: ...

    def skipped(self, job: SweepJob, reason: str) -> None: ...


class Executor(abc.ABC):
    """A place to run :class:`~hinerv.bench.jobs.SweepJob` s, driven by :func:`run_groups`."""

    #: how many jobs may be submitted at once (None: all groups at once; the back end queues them).
    slots: int | None = None

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire the back end (processes, cluster connection)."""

    @abc.abstractmethod
    def submit(self, job: SweepJob) -> Hashable:
        """Start (or queue) ``job``; returns a handle that :meth:`wait` reports it under."""

    @abc.abstractmethod
    def wait(self) -> list[Finished]:
        """Block until at least one submitted job has ended; returns the ended ones."""

    def stop(self, abort: bool) -> None:  # noqa: B027 - optional hook
        """Release the back end; ``abort``: the sweep is being abandoned (cancel queued jobs)."""


def failure_message(error: BaseException) -> str | None:
    """The one-line failure record of a user problem; None for anything else (which propagates)."""
    if isinstance(error, HinervError):
        return f"{type(error).__name__}: {error}"
    return None


def run_groups(executor: Executor, groups: Mapping[Hashable, deque[SweepJob]], events: SweepEvents) -> None:
    """Run every job of ``groups`` (group key -> its jobs in order) on ``executor``; see the module
    docs for the order and the failure handling. The deques are emptied."""
    waiting = deque(groups)  # groups not started yet, in order
    running: dict[Hashable, tuple[Hashable, SweepJob]] = {}

    def submit_next(gkey: Hashable) -> None:
        q = groups[gkey]
        if q:
            job = q.popleft()
            events.started(job)
            running[executor.submit(job)] = (gkey, job)

    def fill() -> None:
        while waiting and (executor.slots is None or len(running) < executor.slots):
            submit_next(waiting.popleft())

    executor.start()
    try:
        fill()
        while running:
            for handle, error, result in executor.wait():
                gkey, job = running.pop(handle)
                if error is None:
                    events.finished(job, result)
                    submit_next(gkey)
                else:
                    msg = failure_message(error)
                    if msg is None:
                        raise error
                    events.failed(job, msg)
                    while groups[gkey]:
                        events.skipped(groups[gkey].popleft(), SKIPPED_AFTER_FAILURE)
            fill()
    except BaseException:
        executor.stop(abort=True)
        raise
    executor.stop(abort=False)


class InlineExecutor(Executor):
    """Runs jobs in this process, one at a time, with per-point progress (``jobs=1``).

    Args:
        progress: ``progress(job, stage, done, total)`` inside the point in progress.
    """

    slots = 1

    def __init__(self, progress: Callable[[SweepJob, str, int, int], None] | None = None) -> None:
        self.progress = progress
        self._queue: deque[tuple[int, SweepJob]] = deque()
        self._count = 0

    def submit(self, job: SweepJob) -> Hashable:
        self._count += 1
        self._queue.append((self._count, job))
        return self._count

    def wait(self) -> list[Finished]:
        handle, job = self._queue.popleft()
        report = self.progress

        def cb(stage: str, done: int, total: int) -> None:
            if report is not None:
                report(job, stage, done, total)

        n_gpus = gpu_count() if job.codec.uses_gpu else 0
        try:
            return [(handle, None, run_job(job, n_gpus, cb))]
        except Exception as e:  # classified by run_groups; KeyboardInterrupt propagates at once
            return [(handle, e, None)]


class PoolExecutor(Executor):
    """Runs each job in a worker of a local spawn-context process pool (``jobs=N``).

    Workers end with this process (even after ``kill -9``); GPU codecs get ``cuda:<worker % n_gpus>``.

    Args:
        workers: pool size.
        gpus: whether any job uses a GPU (then the visible GPUs are counted once).
    """

    def __init__(self, workers: int, gpus: bool = False) -> None:
        self.workers = workers
        self.gpus = gpus
        self._ex: cf.ProcessPoolExecutor | None = None
        self._futures: set[cf.Future[Any]] = set()
        self._n_gpus = 0

    def start(self) -> None:
        self._n_gpus = gpu_count() if self.gpus else 0
        ctx = mp.get_context("spawn")
        counter = ctx.Value("i", 0)
        self._ex = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=init_worker, initargs=(counter, os.getpid())
        )

    def submit(self, job: SweepJob) -> Hashable:
        assert self._ex is not None, "start() first"
        fut = self._ex.submit(run_job, job, self._n_gpus)
        self._futures.add(fut)
        return fut

    def wait(self) -> list[Finished]:
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        self._futures -= done
        out: list[Finished] = []
        for fut in done:
            exc = fut.exception()
            out.append((fut, exc, None if exc is not None else fut.result()))
        return out

    def stop(self, abort: bool) -> None:
        if self._ex is None:
            return
        if abort:
            for f in self._futures:
                f.cancel()
            self._ex.shutdown(wait=False, cancel_futures=True)
        self._ex.shutdown(wait=True)
        self._ex = None


class RayExecutor(Executor):
    """Runs each job as a Ray task on an existing cluster (``ray_address``: ``auto`` or
    ``ray://host:port``). Jobs travel with absolute paths (:func:`~hinerv.bench.jobs.portable_job`),
    so input and output folders must be on a file system every node mounts.

    Raises:
        ConfigError: (from :meth:`start`) Ray is not installed.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._ray: Any = None
        self._remote: Any = None
        self._cluster_gpus = 0
        self._refs: list[Any] = []

    def start(self) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray-address needs Ray: pip install 'hinerv[ray]'") from None
        ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        self._ray = ray
        self._cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
        self._remote = ray.remote(run_job)

    def submit(self, job: SweepJob) -> Hashable:
        gpu = 1 if job.codec.uses_gpu and self._cluster_gpus > 0 else 0
        # Ray pins the task to its GPU through CUDA_VISIBLE_DEVICES, so "auto" finds it.
        ref = self._remote.options(num_gpus=gpu, num_cpus=1).remote(portable_job(job), 0)
        self._refs.append(ref)
        return ref

    def wait(self) -> list[Finished]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        out: list[Finished] = []
        for ref in ready:
            self._refs.remove(ref)
            try:
                out.append((ref, None, self._ray.get(ref)))
            except Exception as e:  # RayTaskError wraps the worker's exception as its cause
                cause = getattr(e, "cause", e)
                out.append((ref, cause if isinstance(cause, HinervError) else e, None))
        return out


def make_executor(
    jobs: int = 1,
    ray_address: str | None = None,
    *,
    gpus: bool = False,
    progress: Callable[[SweepJob, str, int, int], None] | None = None,
) -> Executor:
    """The executor for a sweep's options: Ray when ``ray_address`` is given, else a process pool
    for ``jobs > 1``, else this process (with ``progress``)."""
    if ray_address:
        return RayExecutor(ray_address)
    if jobs > 1:
        return PoolExecutor(jobs, gpus=gpus)
    return InlineExecutor(progress)
