"""A resumable rate-distortion sweep: codecs x sequences x rate points.

Output folder layout (``OUT``)::

    OUT/<codec>.json                     aggregate over sequences (+ per-sequence curves)
    OUT/<codec>/<sequence>.json          one sequence, lists over rate points
    OUT/<codec>/points/<sequence>/<point>.json   one finished point (presence == done)
    OUT/<codec>/streams/<sequence>/<point>.*     the bitstream of every point (+ encoder log)
    OUT/work/                            scratch: prepared sources, per-point work folders

Every file is written atomically by the parent process, so a killed run loses at most the points in
progress; rerunning the same command skips every finished point (``force=True`` redoes them).

Execution: ``jobs=1`` runs points in this process (with per-point progress); ``jobs=N`` runs one point
per worker of a local :class:`concurrent.futures.ProcessPoolExecutor` (GPU codecs get
``cuda:<worker % n_gpus>``); ``ray_address=...`` submits the same job function as Ray tasks on an
existing cluster (input and output paths must be visible to every node, e.g. a shared file system).
Points of one group (HiNeRV: one size at several bit depths) run one after another, since they share
the trained model.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec, PointProgress, RatePoint
from hinerv.bench.results import (
    AGGREGATION_RULE,
    RESULT_KEYS,
    ResultSet,
    aggregate,
    points_to_lists,
    read_json,
    write_json_atomic,
)
from hinerv.bench.sources import Source, prepare_source
from hinerv.errors import ConfigError, HinervError, InputError

__all__ = [
    "SourceSpec",
    "SweepJob",
    "SweepReporter",
    "SweepSummary",
    "run_job",
    "run_sweep",
    "point_path",
    "collect_results",
]

#: How result JSON files describe the metrics (appended to each codec's description).
METRIC_NOTE = (
    "Metrics on decoded integer frames: psnr-* = mean over frames of per-frame PSNR; psnr-rgb after "
    "BT.601 limited-range YUV->RGB (ffmpeg's default, as published HiNeRV numbers); psnr-yuv = "
    "(6*Y+U+V)/8 (JVET/DCVC 6:1:1); psnr-yuv-411 = (4*Y+U+V)/6 (CompressAI); ms-ssim-rgb / "
    "ms-ssim-y per frame (11x11 window), frame mean; bpp = 8*bytes/(frames*W*H) (luma pixels "
    "once); bitrate = kbps; encoding_time / decoding_time = seconds per sequence."
)


@dataclass(frozen=True)
class SourceSpec:
    """A sequence to benchmark before preparation: name, file and raw-``.yuv`` reader options."""

    name: str
    path: Path
    reader_options: dict[str, Any] = field(default_factory=dict)


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
        return (self.codec.name, self.source.name, self.point.label)


class SweepReporter:
    """Progress hooks; the default does nothing. The CLI subclasses it with rich progress bars."""

    def start(self, total: int, skipped: int) -> None:
        """Called once with the number of points to run and the number already done."""

    def message(self, text: str) -> None:
        """An informational line (skipped codec, dry-run plan)."""

    def point_started(self, job: SweepJob) -> None:
        """A point began (in this process or on a worker)."""

    def point_progress(self, job: SweepJob, stage: str, done: int, total: int) -> None:
        """Progress inside a point (only when it runs in this process)."""

    def point_done(self, job: SweepJob, result: dict[str, Any] | None, error: str | None) -> None:
        """A point finished (``result``) or failed (``error``)."""

    def finish(self) -> None:
        """The sweep ended (normally or not)."""


@dataclass
class SweepSummary:
    """What a sweep did. ``outputs`` maps codec name to its aggregate JSON path."""

    ran: int = 0
    skipped_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped_codecs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "skipped_done": self.skipped_done,
            "failed": dict(self.failed),
            "skipped_codecs": dict(self.skipped_codecs),
            "outputs": {k: str(v) for k, v in self.outputs.items()},
            "seconds": self.seconds,
        }


def point_path(out: Path, codec: str, sequence: str, label: str) -> Path:
    """Where a finished point's JSON lives (its presence marks the point as done)."""
    return Path(out) / codec / "points" / sequence / f"{label}.json"


# --------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------

_WORKER_SLOT: int = 0

#: how often a pool worker checks that its parent is still alive (seconds).
PARENT_POLL_S = 0.5


def _init_worker(counter: Any, parent_pid: int | None = None) -> None:
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

    Errors propagate (a :class:`HinervError` for user problems)."""
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
# parent side
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


def _ordered_keys(points: Sequence[dict[str, Any]]) -> list[str]:
    first = ["q", "qp", "size", "bits", *RESULT_KEYS]
    keys = [k for k in first if any(k in p for p in points)]
    for p in points:
        for k, v in p.items():
            if k not in keys and (isinstance(v, (int, float)) or k == "model"):
                keys.append(k)
    return [k for k in keys if k not in ("bitstream", "host", "device")]


def collect_results(
    out: Path, codec: Codec, sequences: Sequence[str], description: str
) -> tuple[ResultSet, dict[str, Path]]:
    """Rebuild per-sequence and aggregate JSON for ``codec`` from the finished point files and
    write them (atomically). Returns the aggregate and the per-sequence file paths.

    Every finished point of the codec counts, also those of earlier sweeps with another ladder (a
    sweep over ``--sizes l`` after one over ``--sizes xs,s,m`` gives a four-point curve); points are
    ordered by rate."""
    seqs: dict[str, dict[str, list[Any]]] = {}
    files: dict[str, Path] = {}
    for s in sequences:
        recs = []
        labels = {p.label for p in codec.points()}
        folder = point_path(out, codec.name, s, "x").parent
        if folder.is_dir():
            labels |= {f.stem for f in folder.glob("*.json")}
        for label in sorted(labels):
            pp = point_path(out, codec.name, s, label)
            if pp.is_file():
                try:
                    recs.append(read_json(pp)["results"])
                except (InputError, KeyError, TypeError):
                    continue
        if not recs:
            continue
        recs.sort(key=lambda r: float(r.get("bpp", 0.0)))
        curve = points_to_lists(recs, _ordered_keys(recs))
        seqs[s] = curve
        f = Path(out) / codec.name / f"{s}.json"
        write_json_atomic(f, {"name": codec.name, "description": description, "source": s, "results": curve})
        files[s] = f
    agg = aggregate(seqs)
    rs = ResultSet(codec.name, f"{description} {AGGREGATION_RULE}.", agg, seqs)
    if seqs:  # an empty result file would not load; write once something is done
        rs.save(Path(out) / f"{codec.name}.json")
    return rs, files


class _Inline:
    """Runs jobs in this process, one at a time (jobs=1)."""

    def __init__(self, reporter: SweepReporter) -> None:
        self.reporter = reporter

    def run(self, job: SweepJob) -> Any:
        def cb(stage: str, done: int, total: int) -> None:
            self.reporter.point_progress(job, stage, done, total)

        try:
            return ("ok", run_job(job, _n_gpus_local(job), cb))
        except HinervError as e:
            return ("err", f"{type(e).__name__}: {e}")


def _n_gpus_local(job: SweepJob) -> int:
    if not job.codec.uses_gpu:
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - torch is a dependency
        return 0


def _prepare_sources(
    specs: Sequence[SourceSpec], work: Path, frames: int | None, scale: float | None
) -> list[Source]:
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"duplicate sequence names: {', '.join(dup)} (rename the files)")
    return [
        prepare_source(s.path, work, name=s.name, frames=frames, scale=scale, reader_options=s.reader_options)
        for s in specs
    ]


def _finish_point(out: Path, job: SweepJob, res: dict[str, Any], description: str) -> None:
    keep = job.workdir / "keep"
    streams = Path(out) / job.codec.name / "streams" / job.source.name
    if keep.is_dir():
        streams.mkdir(parents=True, exist_ok=True)
        for f in keep.iterdir():
            os.replace(f, streams / f.name)
    rec = {
        "name": job.codec.name,
        "description": description,
        "sequence": job.source.name,
        "point": job.point.label,
        "params": job.point.params,
        "source": str(job.source.original or job.source.path),
        "prepared_source": str(job.source.path),
        "width": job.source.info.width,
        "height": job.source.info.height,
        "fps": float(job.source.info.fps),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": res,
    }
    write_json_atomic(point_path(out, job.codec.name, job.source.name, job.point.label), rec)
    shutil.rmtree(job.workdir, ignore_errors=True)


def run_sweep(
    codecs: Sequence[Codec],
    sources: Sequence[SourceSpec],
    out: Path,
    *,
    frames: int | None = None,
    scale: float | None = None,
    jobs: int = 1,
    ray_address: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    reporter: SweepReporter | None = None,
) -> SweepSummary:
    """Run every rate point of every codec on every source; resumable (see module docs).

    Args:
        codecs: codecs to run (ones whose :meth:`Codec.available` gives a reason are skipped).
        sources: sequences; ``frames`` / ``scale`` cut and rescale them once (cached in OUT/work).
        out: output folder.
        jobs: local parallel workers (1: in this process).
        ray_address: run on this Ray cluster instead (``auto`` or ``ray://host:port``).
        force: redo finished points.
        dry_run: list what would run, run nothing.
        reporter: progress hooks.

    Returns:
        A :class:`SweepSummary`.

    Raises:
        ConfigError: no sources, no runnable codec, bad options, or Ray missing.
    """
    rep = reporter or SweepReporter()
    # Absolute paths from here on: jobs may run in other processes or on other machines.
    out = Path(out).absolute()
    sources = [replace(s, path=Path(s.path).absolute()) for s in sources]
    codecs = [portable_codec(c) for c in codecs]
    t_start = time.perf_counter()
    summary = SweepSummary()
    if not sources:
        raise ConfigError("no sequences to benchmark (give video files or --dataset with --root)")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two codecs share a run name ({', '.join(names)}); set distinct names")
    runnable = []
    for c in codecs:
        reason = c.available()
        if reason:
            summary.skipped_codecs[c.name] = reason
            rep.message(reason)
        else:
            runnable.append(c)
    if not runnable:
        raise ConfigError("no runnable codec: " + "; ".join(summary.skipped_codecs.values()))
    work = out / "work"
    prepared = _prepare_sources(sources, work, frames, scale)
    descriptions = {c.name: f"{c.description()}. {METRIC_NOTE}" for c in runnable}

    groups: dict[tuple[str, str, str], deque[SweepJob]] = {}
    for c in runnable:
        for s in prepared:
            for p in c.points():
                pp = point_path(out, c.name, s.name, p.label)
                if pp.is_file() and not force:
                    summary.skipped_done += 1
                    continue
                job = SweepJob(c, s, p, work / c.name / s.name / p.label)
                groups.setdefault((c.name, s.name, p.group or p.label), deque()).append(job)
    pending = sum(len(q) for q in groups.values())
    if dry_run:
        for q in groups.values():
            for j in q:
                rep.message(f"would run {j.codec.name} {j.source.name} {j.point.label}")
        summary.seconds = time.perf_counter() - t_start
        return summary
    if force:
        for q in groups.values():
            for j in q:
                point_path(out, *j.key).unlink(missing_ok=True)
    seq_names = [s.name for s in prepared]
    for c in runnable:  # refresh result files from points finished earlier
        rs_path = out / f"{c.name}.json"
        collect_results(out, c, seq_names, descriptions[c.name])
        summary.outputs[c.name] = rs_path  # exists once a point of the codec is done (checked at the end)
    rep.start(pending, summary.skipped_done)
    by_name = {c.name: c for c in runnable}

    def done(job: SweepJob, status: str, payload: Any) -> None:
        if status == "ok":
            _finish_point(out, job, payload, descriptions[job.codec.name])
            collect_results(out, by_name[job.codec.name], seq_names, descriptions[job.codec.name])
            summary.ran += 1
            rep.point_done(job, payload, None)
        else:
            summary.failed["/".join(job.key)] = str(payload)
            rep.point_done(job, None, str(payload))

    try:
        if ray_address:
            _run_ray(groups, ray_address, rep, done)
        elif jobs == 1:
            inline = _Inline(rep)
            for q in groups.values():
                while q:
                    job = q.popleft()
                    rep.point_started(job)
                    status, payload = inline.run(job)
                    done(job, status, payload)
                    if status != "ok":
                        summary.failed.update(
                            {"/".join(j.key): "skipped after a failure in its group" for j in q}
                        )
                        q.clear()
        else:
            _run_pool(groups, jobs, rep, done)
    finally:
        rep.finish()
        summary.seconds = time.perf_counter() - t_start
        # list only result files that exist (a codec whose every point failed has none)
        summary.outputs = {k: v for k, v in summary.outputs.items() if v.is_file()}
    return summary


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        return 0


def _run_pool(groups: dict[Any, deque[SweepJob]], jobs: int, rep: SweepReporter, done: Any) -> None:
    n_gpus = _gpu_count() if any(j.codec.uses_gpu for q in groups.values() for j in q) else 0
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    with cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(counter, os.getpid())
    ) as ex:
        running: dict[cf.Future[Any], tuple[Any, SweepJob]] = {}

        def submit(gkey: Any) -> None:
            q = groups[gkey]
            if q:
                job = q.popleft()
                rep.point_started(job)
                running[ex.submit(run_job, job, n_gpus)] = (gkey, job)

        for g in list(groups):
            submit(g)
        try:
            while running:
                finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    gkey, job = running.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        done(job, "ok", fut.result())
                        submit(gkey)
                    elif isinstance(exc, HinervError):
                        done(job, "err", f"{type(exc).__name__}: {exc}")
                        groups[gkey].clear()
                    else:
                        raise exc
        except BaseException:
            for f in running:
                f.cancel()
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(groups: dict[Any, deque[SweepJob]], address: str, rep: SweepReporter, done: Any) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray-address needs Ray: pip install 'hinerv[ray]'") from None
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(run_job)
    running: dict[Any, tuple[Any, SweepJob]] = {}

    def submit(gkey: Any) -> None:
        q = groups[gkey]
        if q:
            job = q.popleft()
            gpu = 1 if job.codec.uses_gpu and cluster_gpus > 0 else 0
            rep.point_started(job)
            # Ray pins the task to its GPU through CUDA_VISIBLE_DEVICES, so "auto" finds it.
            ref = remote.options(num_gpus=gpu, num_cpus=1).remote(portable_job(job), 0)
            running[ref] = (gkey, job)

    for g in list(groups):
        submit(g)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            gkey, job = running.pop(ref)
            try:
                res = ray.get(ref)
            except Exception as e:  # RayTaskError wraps the worker's exception
                cause = getattr(e, "cause", e)
                if isinstance(cause, HinervError):
                    done(job, "err", f"{type(cause).__name__}: {cause}")
                    groups[gkey].clear()
                    continue
                raise
            done(job, "ok", res)
            submit(gkey)
