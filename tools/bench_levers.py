#!/usr/bin/env python
"""Levers of the fixed-time benchmark (issue 19 item 3): single hinerv points placed against x265's curve
and against the default ladder of the same clip, at equal wall time.

    python tools/bench_levers.py --results docs/results/budget \
        --baseline hinerv-rd-blend-auto-auto-t600s \
        --lever share-main87=runs/levers/share-main87 --lever lr2x=runs/levers/lr2x [--publish] [--json F]
    python tools/bench_levers.py --lever blend=runs/levers/blend,runs/levers/blend-s   # several folders

A lever folder holds what ``hinerv bench run <clip>.y4m -o <lever>/<sequence> ...`` wrote for each clip
(``<lever>/<sequence>/<run>.json``, the run's training folders under ``<lever>/<sequence>/work``); the
clip is the sequence name up to its first ``_`` (``vtest_384x288_128f`` -> ``vtest``) and must have its
x265 curve (``<results>/<clip>/x265-veryslow-ra.json``) and the baseline ladder
(``<results>/<clip>/<baseline>.json``) published by ``tools/bench_budget.py``.

Per point the table gives the fitted epochs (main + prune + QAT, from the training checkpoint), bpp,
PSNR-RGB, MS-SSIM-RGB, the encode's wall time, and two rate gaps at equal quality
(:func:`hinerv.bench.bdrate.rate_gap`; MS-SSIM in dB): against x265 and against the baseline ladder
(negative: the lever saves bits over the default at that quality; empty outside the curve's range). With
``--publish`` each run file is copied to ``<results>/<clip>/levers/<lever>.json`` (``<lever>-<run>.json``
where a lever has several run files for a clip); ``--json`` writes every row (``file``: the run file,
relative to its lever folder).

A lever may gather several folders (``NAME=A,B``). Where it has two points or more on a clip, a second
table gives the BD-rate of its curve against x265 and against the default ladder's points of the same
sizes (the size is the point name up to its first ``-``: ``m-l0.5`` -> ``m``), so a partial ladder is
compared like for like.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from bench_budget import BD_METRICS, _gaps, _points, fitted_schedules  # tools/ is on sys.path as a script

X265 = "x265-veryslow-ra"
#: the default ladder (optimizer ``auto`` since the eighth round: Adam at xs, SOAP while pre-training from s
#: up; the seventh round's, soap-pretrain at every size: hinerv-rd-blend-soap-pretrain-auto-t600s; Adam's:
#: hinerv-rd-blend-auto-t600s)
BASELINE = "hinerv-rd-blend-auto-auto-t600s"


def _curve(path: Path) -> list[dict[str, Any]]:
    return _points(json.loads(path.read_text())["results"])


def lever_rows(name: str, folder: Path, results: Path, baseline: str) -> list[dict[str, Any]]:
    """One row per point of every run file under ``folder/<sequence>/``."""
    rows = []
    for seq_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        clip = seq_dir.name.split("_")[0]
        x265, base = _curve(results / clip / f"{X265}.json"), _curve(results / clip / f"{baseline}.json")
        for run in sorted(seq_dir.glob("*.json")):
            fitted = fitted_schedules(seq_dir, run.stem)
            for p in _curve(run):
                file = str(run.relative_to(folder))
                row = {"lever": name, "clip": clip, "run": run.stem, **p, "file": file}
                if p.get("q") in fitted:
                    row["fitted"] = fitted[p["q"]]
                for anchor, gaps in (("x265", _gaps(p, x265)), ("baseline", _gaps(p, base))):
                    row.update({f"gap_vs_{anchor}_{m}": g for m, g in gaps.items()})
                rows.append(row)
    return rows


def _bd_rates(test: list[dict[str, Any]], anchor: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per metric of :data:`BD_METRICS`: the BD-rate (pchip; MS-SSIM in dB) of ``test`` against ``anchor``;
    None with fewer than two points on a side or no overlap."""
    from hinerv.bench.bdrate import bd_rate, bd_scale

    out: dict[str, float | None] = {}
    for m in BD_METRICS:
        t = sorted((p["bpp"], p[m]) for p in test if m in p)
        a = sorted((p["bpp"], p[m]) for p in anchor if m in p)
        if len(t) < 2 or len(a) < 2:
            out[m] = None
            continue
        try:
            v = bd_rate([r for r, _ in a], bd_scale(m, [q for _, q in a]), [r for r, _ in t],
                        bd_scale(m, [q for _, q in t]))  # fmt: skip
        except Exception:  # noqa: BLE001 - no overlap or a degenerate curve: no figure
            v = math.nan
        out[m] = v if math.isfinite(v) else None
    return out


def _size(point: dict[str, Any]) -> str:
    return str(point.get("q", "")).split("-")[0]


def curve_rows(rows: list[dict[str, Any]], results: Path, baseline: str) -> list[dict[str, Any]]:
    """Per lever and clip with two points or more: BD-rates against x265 and against the baseline's
    points of the same sizes."""
    out = []
    for lever, clip in dict.fromkeys((r["lever"], r["clip"]) for r in rows):
        pts = [r for r in rows if r["lever"] == lever and r["clip"] == clip]
        if len(pts) < 2:
            continue
        sizes = {_size(p) for p in pts}
        base = [p for p in _curve(results / clip / f"{baseline}.json") if _size(p) in sizes]
        x265 = _curve(results / clip / f"{X265}.json")
        row = {
            "lever": lever,
            "clip": clip,
            "sizes": sorted(sizes, key=lambda s: min(p["bpp"] for p in pts if _size(p) == s)),
        }
        for key, test, anchor in (("bd_vs_x265", pts, x265), ("bd_vs_baseline", pts, base),
                                  ("baseline_bd_vs_x265", base, x265)):  # fmt: skip
            row.update({f"{key}_{m}": v for m, v in _bd_rates(test, anchor).items()})
        out.append(row)
    return out


def print_curves(curves: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title="lever curves: BD-rate (pchip; negative saves bits) against x265 and the default's same sizes"
    )
    for c in (
        "lever",
        "clip",
        "sizes",
        "vs x265 PSNR",
        "vs x265 MS-SSIM",
        "default vs x265 PSNR",
        "default vs x265 MS-SSIM",
        "vs default PSNR",
        "vs default MS-SSIM",
    ):
        t.add_column(c, justify="left" if c in ("lever", "clip", "sizes") else "right")
    for c in curves:
        t.add_row(c["lever"], c["clip"], ",".join(c["sizes"]),
                  *(_pct(c[f"{k}_{m}"]) for k in ("bd_vs_x265", "baseline_bd_vs_x265", "bd_vs_baseline")
                    for m in BD_METRICS))  # fmt: skip
    Console(width=200).print(t)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:+.1f} %"


def print_rows(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="levers at equal wall time (rate gaps at equal quality; negative saves bits)")
    cols = (
        "lever",
        "clip",
        "point",
        "epochs",
        "bpp",
        "PSNR-RGB",
        "MS-SSIM",
        "enc s",
        "vs x265 PSNR",
        "vs x265 MS-SSIM",
        "vs default PSNR",
        "vs default MS-SSIM",
    )
    for c in cols:
        t.add_column(c, justify="left" if c in ("lever", "clip", "point") else "right")
    for r in rows:
        f = r.get("fitted")
        epochs = f"{f['main']}+{f['prune']}+{f['qat']}" if f else ""
        gaps = (_pct(r[f"gap_vs_{a}_{m}"]) for a in ("x265", "baseline") for m in BD_METRICS)
        t.add_row(r["lever"], r["clip"], str(r.get("q")), epochs, f"{r['bpp']:.4f}",
                  f"{r.get('psnr-rgb', math.nan):.2f}", f"{r.get('ms-ssim-rgb', math.nan):.4f}",
                  f"{r.get('encoding_time', 0):.0f}", *gaps)  # fmt: skip
    Console(width=200).print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("docs/results/budget"))
    ap.add_argument("--baseline", default=BASELINE, help="the default ladder's run name")
    ap.add_argument("--lever", action="append", default=[], metavar="NAME=FOLDER[,FOLDER]", required=True)
    ap.add_argument("--publish", action="store_true", help="copy each run file to <results>/<clip>/levers/")
    ap.add_argument("--json", type=Path, help="write every row here")
    a = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    sources: dict[int, Path] = {}  # row -> its run file (rows keep the path relative to the lever folder)
    for spec in a.lever:
        name, sep, folders = spec.partition("=")
        if not sep or not all(Path(f).is_dir() for f in folders.split(",")):
            print(
                f"error: --lever {spec!r}: expected NAME=FOLDER[,FOLDER] with existing folders",
                file=sys.stderr,
            )
            return 2
        for folder in folders.split(","):
            new = lever_rows(name, Path(folder), a.results, a.baseline)
            for r in new:
                sources[id(r)] = Path(folder) / r["file"]
            rows += new
    print_rows(rows)
    curves = curve_rows(rows, a.results, a.baseline)
    if curves:
        print_curves(curves)
    if a.publish:
        for r in rows:
            files = {sources[id(x)] for x in rows if x["lever"] == r["lever"] and x["clip"] == r["clip"]}
            stem = r["lever"] if len(files) == 1 else f"{r['lever']}-{sources[id(r)].stem}"
            dst = a.results / r["clip"] / "levers" / f"{stem}.json"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sources[id(r)], dst)
    if a.json:
        a.json.write_text(
            json.dumps({"baseline": a.baseline, "rows": rows, "curves": curves}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
