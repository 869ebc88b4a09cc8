"""A resumable rate-distortion sweep: codecs x sequences x rate points.

Output folder layout (``OUT``)::

    OUT/<codec>.json                     aggregate over sequences (+ per-sequence curves)
    OUT/<codec>/<sequence>.json          one sequence, lists over rate points
    OUT/<codec>/points/<sequence>/<point>.json   one finished point (presence == done)
    OUT/<codec>/streams/<sequence>/<point>.*     the bitstream of every point (+ encoder log)
    OUT/work/                            scratch: prepared sources, per-point work folders

Every file is written atomically by the parent process, so a killed run loses at most the points in
progress; rerunning the same command skips every finished point (``force=True`` redoes them).

Execution (:mod:`hinerv.bench.executors`, one interface and one failure rule for all three):
``jobs=1`` runs points in this process (with per-point progress); ``jobs=N`` runs one point per worker
of a local process pool (GPU codecs get ``cuda:<worker % n_gpus>``); ``ray_address=...`` submits the
same job function as Ray tasks on an existing cluster (input and output paths must be visible to every
node, e.g. a shared file system). Points of one group (HiNeRV: one size at several bit depths) run one
after another, since they share the trained model; a failed point skips the rest of its group.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec
from hinerv.bench.executors import make_executor, run_groups
from hinerv.bench.jobs import SweepJob, portable_codec, portable_job, run_job
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
from hinerv.errors import ConfigError, InputError

__all__ = [
    "SourceSpec",
    "SweepJob",
    "SweepReporter",
    "SweepSummary",
    "run_job",
    "run_sweep",
    "point_path",
    "portable_job",
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




@dataclass
class _Sweep:
    """The parent side of a running sweep: writes each finished point and keeps the summary
    (the :class:`~hinerv.bench.executors.SweepEvents` of :func:`run_groups`)."""

    out: Path
    codecs: dict[str, Codec]
    descriptions: dict[str, str]
    sequences: list[str]
    summary: SweepSummary
    reporter: SweepReporter

    def started(self, job: SweepJob) -> None:
        self.reporter.point_started(job)

    def finished(self, job: SweepJob, result: dict[str, Any]) -> None:
        desc = self.descriptions[job.codec.name]
        _finish_point(self.out, job, result, desc)
        collect_results(self.out, self.codecs[job.codec.name], self.sequences, desc)
        self.summary.ran += 1
        self.reporter.point_done(job, result, None)

    def failed(self, job: SweepJob, error: str) -> None:
        self.summary.failed["/".join(job.key)] = error
        self.reporter.point_done(job, None, error)

    def skipped(self, job: SweepJob, reason: str) -> None:
        self.summary.failed["/".join(job.key)] = reason


def _runnable(codecs: Sequence[Codec], summary: SweepSummary, rep: SweepReporter) -> list[Codec]:
    """The codecs that can run here; the others are recorded in ``summary`` with their reason."""
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
    return runnable


def _plan(
    codecs: Sequence[Codec], sources: Sequence[Source], out: Path, force: bool, summary: SweepSummary
) -> dict[tuple[str, str, str], deque[SweepJob]]:
    """The jobs to run, by group (codec, sequence, point group), in order; finished points are
    counted in ``summary.skipped_done`` unless ``force``."""
    work = out / "work"
    groups: dict[tuple[str, str, str], deque[SweepJob]] = {}
    for c in codecs:
        for s in sources:
            for p in c.points():
                pp = point_path(out, c.name, s.name, p.label)
                if pp.is_file() and not force:
                    summary.skipped_done += 1
                    continue
                job = SweepJob(c, s, p, work / c.name / s.name / p.label)
                groups.setdefault((c.name, s.name, p.group or p.label), deque()).append(job)
    return groups


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
    runnable = _runnable(codecs, summary, rep)
    prepared = _prepare_sources(sources, out / "work", frames, scale)
    descriptions = {c.name: f"{c.description()}. {METRIC_NOTE}" for c in runnable}
    groups = _plan(runnable, prepared, out, force, summary)
    all_jobs = [j for q in groups.values() for j in q]
    if dry_run:
        for j in all_jobs:
            rep.message(f"would run {j.codec.name} {j.source.name} {j.point.label}")
        summary.seconds = time.perf_counter() - t_start
        return summary
    if force:
        for j in all_jobs:
            point_path(out, *j.key).unlink(missing_ok=True)
    seq_names = [s.name for s in prepared]
    for c in runnable:  # refresh result files from points finished earlier
        collect_results(out, c, seq_names, descriptions[c.name])
        summary.outputs[c.name] = out / f"{c.name}.json"  # exists once a point is done (checked below)
    rep.start(len(all_jobs), summary.skipped_done)
    state = _Sweep(out, {c.name: c for c in runnable}, descriptions, seq_names, summary, rep)
    executor = make_executor(
        jobs, ray_address, gpus=any(j.codec.uses_gpu for j in all_jobs), progress=rep.point_progress
    )
    try:
        run_groups(executor, groups, state)
    finally:
        rep.finish()
        summary.seconds = time.perf_counter() - t_start
        # list only result files that exist (a codec whose every point failed has none)
        summary.outputs = {k: v for k, v in summary.outputs.items() if v.is_file()}
    return summary
