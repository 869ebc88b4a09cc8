#!/usr/bin/env python
"""Fixed-time RD benchmark (issue 19): per clip, HiNeRV points at a fixed wall time per encode and x265
veryslow (random access) on the same frames; BD-rates (PSNR-RGB, MS-SSIM-RGB) against x265 and a plot.

    taskset -c 1 python tools/bench_budget.py --time-budget 10m --sizes xs,s,m,l --threads 1 \
        [--out runs/budget] [--results docs/results/budget] [--clip NAME=PATH[:FRAMES[:WIDTH]] ...]

Default clips (found under a ``shared/clips`` folder above the repository, or ``--clips-root``):
``vtest`` (vtest.avi, first 128 frames, 384x288) and ``bunny`` (bunny_1280x720_132f.mp4, all 132
frames, 320x180). Each clip is cut and resized once by :func:`hinerv.bench.sources.prepare_source`
(anti-aliased bicubic on the 4:2:0 planes) into ``<clips-dir>/sources/<name>_<W>x<H>_<T>f.y4m``.

Everything runs through ``hinerv bench run`` and is resumable: rerun the same command and only the
missing points run. ``--core N`` pins this process (and so every encode) to one CPU core, as
``taskset -c N`` does; ``--threads`` sets torch's intra-op threads. Per clip the tool writes
``<results>/<clip>/<hinerv-name>.json`` beside ``<results>/<clip>/x265-<preset>-ra.json`` (CompressAI
layout plus per-sequence curves; ``encoding_time`` per point) and ``<results>/<clip>/rd.png``, then
``<results>/summary.json`` (points, BD-rates, settings, load) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_vtest import _hinerv  # tools/ is on sys.path when a tool runs as a script

#: metrics the BD-rates are computed on (x265 is the anchor)
BD_METRICS = ("psnr-rgb", "ms-ssim-rgb")
#: per-point keys copied into the summary
POINT_KEYS = ("q", "size", "lambda", "qp", "bpp", "bytes", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
              "wall_time")


@dataclass(frozen=True)
class ClipSpec:
    """A clip of the benchmark: ``name``, source ``path``, first ``frames`` (None: all) and target
    ``width`` (None: as is; the height keeps the aspect, both even)."""

    name: str
    path: Path
    frames: int | None
    width: int | None


def _clips_root() -> Path | None:
    """The first ``shared/clips`` folder in the repository's parents."""
    for p in Path(__file__).resolve().parents:
        if (p / "shared" / "clips").is_dir():
            return p / "shared" / "clips"
    return None


def default_clips(root: Path) -> list[ClipSpec]:
    """The two clips of issue 19 under ``root``."""
    return [ClipSpec("vtest", root / "vtest.avi", 128, 384),
            ClipSpec("bunny", root / "bunny_1280x720_132f.mp4", None, 320)]


def parse_clip(text: str) -> ClipSpec:
    """``NAME=PATH[:FRAMES[:WIDTH]]`` (empty FRAMES / WIDTH: all frames / as is)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"--clip wants NAME=PATH[:FRAMES[:WIDTH]], got {text!r}")
    path, *nums = rest.split(":")
    if len(nums) > 2:
        raise argparse.ArgumentTypeError(f"--clip wants NAME=PATH[:FRAMES[:WIDTH]], got {text!r}")
    try:
        vals = [int(n) if n else None for n in nums] + [None] * (2 - len(nums))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--clip: FRAMES and WIDTH must be integers, got {text!r}"
                                         ) from None
    if any(v is not None and v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"--clip: FRAMES and WIDTH must be positive, got {text!r}")
    return ClipSpec(name, Path(path), vals[0], vals[1])


def prepare_clip(clip: ClipSpec, clips_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Cut / resize ``clip`` once with hinerv's own reader and resampler; returns the
    :class:`hinerv.bench.sources.Source` and a JSON note of how the frames were made."""
    from hinerv.bench.sources import prepare_source
    from hinerv.io import open_video

    with open_video(clip.path) as r:
        info = r.info
    scale = None if clip.width is None or clip.width == info.width else clip.width / info.width
    src = prepare_source(clip.path, clips_dir, name=clip.name, frames=clip.frames, scale=scale)
    note = {
        "source": clip.path.name,
        "source_geometry": f"{info.width}x{info.height}, {info.frames} frames, {info.chroma}, "
                           f"{info.bit_depth}-bit, {info.matrix}, "
                           f"{'full' if info.full_range else 'limited'} range",
        "frames": f"0-{src.info.frames - 1}",
        "geometry": f"{src.info.width}x{src.info.height}x{src.info.frames}",
        "file": src.path.name,
        "preparation": (
            "hinerv.bench.sources.prepare_source: frames decoded by hinerv.io (PyAV to yuv420p for "
            "containers), each 4:2:0 plane resized on its own (luma to WxH, chroma to W/2xH/2) with "
            "torch bicubic interpolation, antialias=True, align_corners=False, rounded and clipped to "
            "8 bits; written as 8-bit 4:2:0 y4m; no colour conversion (metrics convert with BT.601 "
            "limited range)" if scale else
            "hinerv.bench.sources.prepare_source: frames decoded by hinerv.io and written as 8-bit "
            "4:2:0 y4m, not resized"),
    }
    return src, note


def parse_ladder(text: str) -> tuple[tuple[str, ...], tuple[tuple[str, float], ...]]:
    """``--sizes``: ``SIZE`` (at its ladder λ) or ``SIZE@LAMBDA``, comma-separated, e.g. ``xs,s,m,m@0.25``;
    returns the plain sizes and the ``(size, λ)`` pairs.

    Raises:
        argparse.ArgumentTypeError: an empty ladder, or a λ that is not a positive number.
    """
    plain: list[str] = []
    pairs: list[tuple[str, float]] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        size, at, lam = item.partition("@")
        if not at:
            plain.append(size)
            continue
        try:
            value = float(lam)
        except ValueError:
            value = float("nan")
        if not (size and value > 0 and value < float("inf")):
            raise argparse.ArgumentTypeError(f"--sizes: {item!r} is not SIZE or SIZE@LAMBDA (λ > 0)")
        pairs.append((size, value))
    if not plain and not pairs:
        raise argparse.ArgumentTypeError("--sizes: no size given")
    return tuple(plain), tuple(pairs)


def _points(curve: dict[str, list[Any]]) -> list[dict[str, Any]]:
    n = len(curve.get("bpp", []))
    return [{k: curve[k][i] for k in POINT_KEYS if k in curve and i < len(curve[k])} for i in range(n)]


def fitted_schedules(run_dir: Path, codec: str) -> dict[str, dict[str, Any]]:
    """``{point: {"schedule", "main", "prune", "qat", "train_s"}}``: the schedule each finished hinerv
    point was fitted to and its training seconds, read from the point's training checkpoint
    (``<run>/work/<codec>/<sequence>/train-<point>/state.ckpt``); points without one are left out."""
    import torch

    out: dict[str, dict[str, Any]] = {}
    for ckpt in sorted((run_dir / "work" / codec).glob("*/train-*/state.ckpt")):
        try:
            st = torch.load(ckpt, map_location="cpu", weights_only=True)
            sch = st["schedule"]
            out[ckpt.parent.name.removeprefix("train-")] = {
                "schedule": sch["name"], "main": sch["main_epochs"], "prune": sch["prune_epochs"],
                "qat": sch["qat_epochs"], "train_s": float(st["elapsed"])}
        except Exception:  # noqa: BLE001 - informative only: an unreadable checkpoint is skipped
            continue
    return out


def _bd(test: Any, anchor: Any) -> dict[str, Any]:
    """BD-rate and BD-quality of ``test`` against ``anchor`` on each of :data:`BD_METRICS` (MS-SSIM in
    dB, as ``hinerv bdrate``)."""
    import math

    from hinerv.bench.bdrate import compare_results
    from hinerv.errors import HinervError

    out: dict[str, Any] = {}
    for m in BD_METRICS:
        try:
            c = compare_results(test, anchor, metric=m)
        except HinervError as e:
            out[m] = {"bd_rate": None, "bd_quality": None, "note": str(e)}
            continue
        r, q = c.average_bd_rate, c.average_bd_quality
        out[m] = {"bd_rate": r if math.isfinite(r) else None, "bd_quality": q if math.isfinite(q) else None,
                  "warnings": list(c.warnings)}
    return out


def _gaps(point: dict[str, Any], anchor: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per metric of :data:`BD_METRICS`: percent more rate than x265 needs for the point's quality
    (:func:`hinerv.bench.bdrate.rate_gap`, on the BD scale: MS-SSIM in dB; None outside x265's quality
    range)."""
    import math

    from hinerv.bench.bdrate import bd_scale, rate_gap

    out: dict[str, float | None] = {}
    for m in BD_METRICS:
        pts = [(p["bpp"], p[m]) for p in anchor if m in p]
        if m not in point or len(pts) < 2:
            out[m] = None
            continue
        anchor_q = bd_scale(m, [q for _, q in pts])
        g = rate_gap([r for r, _ in pts], anchor_q, point["bpp"], bd_scale(m, [point[m]])[0])
        out[m] = g if math.isfinite(g) else None
    return out


def publish_clip(name: str, note: dict[str, Any], run_dir: Path, hinerv_name: str, x265_name: str,
                 results_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Copy the two result files of clip ``name`` into ``results_dir/name`` (description extended
    with how the frames were made and how the points ran), draw ``rd.png`` and return the clip's
    summary (points and BD-rates against x265)."""
    from hinerv.bench.plot import plot_rd
    from hinerv.bench.results import ResultSet, read_json

    dst = results_dir / name
    sets: dict[str, Any] = {}
    for key, codec in (("hinerv", hinerv_name), ("x265", x265_name)):
        path = run_dir / f"{codec}.json"
        if not path.is_file():
            continue
        rs = ResultSet.from_json(read_json(path), origin=str(path))
        rs.description += (f" CLIP {name}: {note['geometry']} from {note['source']} (frames "
                           f"{note['frames']}); {note['preparation']}. RUN: {settings['run_note']}")
        rs.extra["clip"] = note
        rs.save(dst / f"{codec}.json")
        sets[key] = rs
    summary: dict[str, Any] = {"clip": note}
    for key, rs in sets.items():
        summary[key] = {"name": rs.name, "file": f"{name}/{rs.name}.json", "points": _points(rs.results)}
    if "hinerv" in summary:
        fitted = fitted_schedules(run_dir, hinerv_name)
        for pt in summary["hinerv"]["points"]:
            if pt.get("q") in fitted:
                pt["fitted"] = fitted[pt["q"]]
    if "hinerv" in sets and "x265" in sets:
        summary["bd_vs_x265"] = _bd(sets["hinerv"], sets["x265"])
        for pt in summary["hinerv"]["points"]:
            pt["rate_gap_vs_x265"] = _gaps(pt, summary["x265"]["points"])
    if sets:
        plot_rd(list(sets.values()), dst / "rd.png",
                title=f"{name} {note['geometry']}: hinerv at {settings['time_budget']} per point vs x265")
        summary["plot"] = f"{name}/rd.png"
    return summary


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:+.0f} %"


def print_table(summary: dict[str, Any]) -> None:
    """The points and BD-rates of every clip as rich tables."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    for clip, s in summary["clips"].items():
        t = Table(title=f"{clip} ({s['clip']['geometry']})")
        for col in ("codec", "point", "bpp", "PSNR-RGB", "MS-SSIM", "enc s", "wall s", "epochs",
                    "vs x265 PSNR", "vs x265 MS-SSIM"):
            t.add_column(col, justify="left" if col in ("codec", "point") else "right")
        for key in ("hinerv", "x265"):
            for p in s.get(key, {}).get("points", []):
                t.add_row(key, str(p.get("q")), f"{p['bpp']:.4f}", f"{p.get('psnr-rgb', float('nan')):.2f}",
                          f"{p.get('ms-ssim-rgb', float('nan')):.4f}", f"{p.get('encoding_time', 0):.0f}",
                          f"{p.get('wall_time', 0):.0f}",
                          "{main}+{prune}+{qat}".format(**p["fitted"]) if "fitted" in p else "",
                          *(_pct(p.get("rate_gap_vs_x265", {}).get(m)) for m in BD_METRICS))
        con.print(t)
        for m, bd in s.get("bd_vs_x265", {}).items():
            v = bd.get("bd_rate")
            con.print(f"  BD-rate {m} vs x265: " + ("n/a" if v is None else f"{v:+.1f} %")
                      + "".join(f"  [{w}]" for w in bd.get("warnings", [])))


def main(argv: list[str] | None = None) -> int:
    from hinerv.optim import OPTIMIZER_CHOICES
    from hinerv.pipelines.rd import DEFAULT_DISTORTION, DISTORTIONS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clip", type=parse_clip, action="append", default=[],
                   help="NAME=PATH[:FRAMES[:WIDTH]] (repeat; default: vtest and bunny)")
    p.add_argument("--clips-root", type=Path, default=None, help="folder of the default clips")
    p.add_argument("--clips-dir", type=Path, default=None,
                   help="where prepared clips go (default <out>/clips)")
    p.add_argument("--out", type=Path, default=Path("runs/budget"), help="run folder (resumable)")
    p.add_argument("--results", type=Path, default=Path("docs/results/budget"))
    p.add_argument("--time-budget", default="10m", help="wall time per hinerv point")
    p.add_argument("--sizes", type=parse_ladder, default=parse_ladder("s,m,l"),
                   help="SIZE (at its ladder λ) or SIZE@LAMBDA, comma-separated (e.g. xs,s,m,m@0.25)")
    p.add_argument("--schedule", default=None, help="hinerv schedule (default: the encoder's default)")
    p.add_argument("--distortion", choices=DISTORTIONS, default=DEFAULT_DISTORTION,
                   help=f"rd pipeline distortion (default: the encoder's, {DEFAULT_DISTORTION})")
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=None,
                   help="rd pipeline optimizer (default: the encoder's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--qps", default="27:51:3", help="x265 QPs (a:b:step or comma list)")
    p.add_argument("--preset", default="veryslow")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--core", type=int, default=None, help="pin to this CPU core (as taskset -c)")
    p.add_argument("--skip", default="", help="comma list: hinerv, x265 (collect what exists)")
    a = p.parse_args(argv)

    from hinerv.bench.codecs import HiNeRVCodec
    from hinerv.budget import format_duration, parse_duration
    from hinerv.errors import HinervError

    if a.threads < 1:
        p.error("--threads must be at least 1")
    try:
        budget_s = parse_duration(a.time_budget)
    except HinervError as e:
        p.error(str(e))
    skip = set(filter(None, a.skip.split(",")))
    if skip - {"hinerv", "x265"}:
        p.error(f"--skip takes hinerv and x265, got {a.skip!r}")
    clips = a.clip
    if not clips:
        root = a.clips_root or _clips_root()
        if root is None:
            p.error("no shared/clips folder above the repository: pass --clips-root or --clip")
        clips = default_clips(root)
    for c in clips:
        if not c.path.exists():
            p.error(f"clip {c.name}: {c.path} not found")
    if a.core is not None:
        try:
            os.sched_setaffinity(0, {a.core})
        except (OSError, ValueError) as e:
            p.error(f"--core {a.core}: {e}")
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)

    plain, pairs = a.sizes
    sizes = plain + tuple(f"{z}@{lam:g}" for z, lam in pairs)
    sched = a.schedule or "auto"  # `hinerv encode`'s default
    from hinerv.pipelines import DEFAULT_RD_OPTIMIZER

    optimizer = a.optimizer or DEFAULT_RD_OPTIMIZER
    try:
        hinerv_name = HiNeRVCodec(sizes=plain + tuple(z for z, _ in pairs), pipeline="rd", schedule=sched,
                                  time_budget=budget_s, distortion=a.distortion, optimizer=optimizer).name
    except HinervError as e:
        p.error(str(e))
    x265_name = f"x265-{a.preset}-ra"
    cores = sorted(os.sched_getaffinity(0))
    settings = {
        "time_budget": a.time_budget, "time_budget_s": budget_s, "sizes": list(sizes), "schedule": sched,
        "pipeline": "rd", "distortion": a.distortion, "optimizer": optimizer, "seed": a.seed,
        "device": a.device,
        "threads": a.threads, "cores": cores,
        "x265": {"preset": a.preset, "gop": "ra", "qps": a.qps},
        "run_note": (f"hinerv rd pipeline ({a.distortion} distortion, {optimizer}), schedule {sched} "
                     f"fitted to {format_duration(budget_s)} per point, seed {a.seed}, device {a.device}, "
                     f"{a.threads} torch thread(s), CPU affinity {cores} (of the invocation that "
                     f"published: finished points are reused as they are, see their wall_time); "
                     f"x265 {a.preset} ra, one point at a time"),
    }
    clips_dir = a.clips_dir or a.out / "clips"
    summary: dict[str, Any] = {"settings": settings, "clips": {}, "load": []}
    rc = 0
    for c in clips:
        try:
            src, note = prepare_clip(c, clips_dir)
        except HinervError as e:
            print(f"error: clip {c.name}: {e}", file=sys.stderr)
            return 2
        run_dir = a.out / c.name
        common = [str(src.path), "-o", str(run_dir), "--quiet"]
        if "hinerv" not in skip:
            summary["load"].append({"at": time.strftime("%H:%M:%S"), "clip": c.name, "what": "hinerv start",
                                    "loadavg": list(os.getloadavg())})
            # one sweep over the plain sizes and one per SIZE@LAMBDA, into the same run (its curve
            # collects every finished point)
            ladders = ([["--sizes", ",".join(plain)]] if plain else []) + [
                ["--sizes", z, "--lambdas", f"{lam:g}"] for z, lam in pairs
            ]
            for ladder in ladders:
                hargs = ["bench", "run", *common, "-c", "hinerv", *ladder, "--time-budget", a.time_budget,
                         "--seed", str(a.seed), "--device", a.device, "--schedule", sched,
                         "--distortion", a.distortion, "--optimizer", optimizer]
                rc = _hinerv(hargs) or rc
        if "x265" not in skip:
            summary["load"].append({"at": time.strftime("%H:%M:%S"), "clip": c.name, "what": "x265 start",
                                    "loadavg": list(os.getloadavg())})
            rc = _hinerv(["bench", "run", *common, "-c", "x265", "--preset", a.preset, "--gop", "ra",
                          "--qps", a.qps]) or rc
        summary["load"].append({"at": time.strftime("%H:%M:%S"), "clip": c.name, "what": "done",
                                "loadavg": list(os.getloadavg())})
        summary["clips"][c.name] = publish_clip(c.name, note, run_dir, hinerv_name, x265_name, a.results,
                                                settings)
    from hinerv.bench.results import write_json_atomic

    write_json_atomic(a.results / "summary.json", summary)
    print_table(summary)
    return rc


if __name__ == "__main__":
    sys.exit(main())
