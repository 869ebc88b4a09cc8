#!/usr/bin/env python
"""Side-by-side RD benchmark of the two pipelines on one clip: `paper` (sizes at 6 bits) against `rd`
(one or more sizes at several target rates), plus x265 veryslow; BD-rates in PSNR-RGB and MS-SSIM-RGB,
rate-control accuracy, seconds per point, and an RD plot.

    python tools/bench_rd.py --video ../shared/clips/vtest.avi --frames 32 --width 384 \
        --epochs 30 --out runs/rd-vtest
    python tools/bench_rd.py --demo --out runs/rd-demo          # hinerv demo's built-in clip

Every point is resumable (rerun to continue; points run through `hinerv bench run`). The summary is
printed as a table and written to <out>/summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_vtest import DEFAULT_VIDEO, _hinerv  # tools/ is on sys.path when a tool runs as a script


def _bd(test: Path, anchor: Path, metric: str) -> float | None:
    from hinerv.bench.anchors import load_results
    from hinerv.bench.bdrate import compare_results

    try:
        c = compare_results(load_results(test), load_results(anchor), metric=metric)
    except Exception:  # noqa: BLE001 - a missing curve is reported as n/a
        return None
    v = c.average_bd_rate
    return None if v != v else float(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--demo", action="store_true", help="use hinerv demo's built-in clip (256x144x32)")
    p.add_argument("--as-is", action="store_true", help="code --video as it is (no cut, no scaling)")
    p.add_argument("--out", type=Path, default=Path("runs/rd"))
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--width", type=int, default=384, help="target width (height keeps the aspect)")
    p.add_argument("--paper-sizes", default="xs,s,m,l")
    p.add_argument("--rd-sizes", default="xs,s,m,l", help="rd curve over sizes at --lam")
    p.add_argument("--lam", default="", help="λ of the rd size curve ('' = each size's ladder λ)")
    p.add_argument(
        "--lambda-curve", default="m:0.25,1,4,16", help="SIZE:λ,λ,... one size, several λ ('' = none)"
    )
    p.add_argument("--targets", default="", help="SIZE:bpp,bpp,... rate-control points ('' = none)")
    p.add_argument("--schedule", default="short")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--qps", default="24:44:4")
    p.add_argument("--skip", default="", help="comma list of parts to skip: paper, rd, x265")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    a.out.mkdir(parents=True, exist_ok=True)

    if a.demo:
        from hinerv.sample import write_sample

        clip = a.out / "sample.y4m"
        if not clip.exists():
            write_sample(clip, width=256, height=144, frames=32)
        common = [str(clip)]
    elif a.as_is:
        common = [str(a.video)]
    else:
        from hinerv.io import open_video

        with open_video(a.video) as r:
            scale = a.width / r.info.width
        common = [str(a.video), "--frames", str(a.frames), "--scale", f"{scale:.6g}"]
    ep = ["--epochs", str(a.epochs)] if a.epochs else []
    sched = Path(a.schedule).stem
    tag = f"{sched}{f'-e{a.epochs}' if a.epochs else ''}"
    files: dict[str, Path] = {}
    if "paper" not in skip:
        rc = _hinerv(["bench", "run", *common, "-o", str(a.out / "paper"), "-c", "hinerv", "--sizes",
                      a.paper_sizes, "--bits", "6", "--schedule", a.schedule, *ep, "--quiet"])  # fmt: skip
        if rc:
            return rc
    files["paper"] = a.out / "paper" / f"hinerv-{tag}.json"
    lam = ["--lambdas", a.lam] if a.lam else []
    rd_runs: dict[str, list[str]] = {"rd-sizes": ["--sizes", a.rd_sizes, *lam]}
    if a.lambda_curve:
        size, lams = a.lambda_curve.split(":")
        rd_runs[f"rd-{size}-lambdas"] = ["--sizes", size, "--lambdas", lams]
    if a.targets:
        size, bpps = a.targets.split(":")
        rd_runs[f"rd-{size}-targets"] = ["--sizes", size, "--target-bpp", bpps]
    for name, extra in rd_runs.items():
        if "rd" not in skip:
            rc = _hinerv(["bench", "run", *common, "-o", str(a.out / name), "-c", "hinerv",
                          "--pipeline", "rd", *extra, "--schedule", a.schedule, *ep, "--quiet"])  # fmt: skip
            if rc:
                return rc
        files[name] = a.out / name / f"hinerv-rd-{tag}.json"
    if "x265" not in skip:
        rc = _hinerv(
            ["bench", "run", *common, "-o", str(a.out / "x265"), "-c", "x265", "-q", a.qps, "--quiet"]
        )
        if rc:
            return rc
    files["x265"] = a.out / "x265" / "x265-veryslow-ra.json"
    files = {k: v for k, v in files.items() if v.exists()}

    summary: dict[str, object] = {"files": {k: str(v) for k, v in files.items()}, "bd_rate": {}, "points": {}}
    for name, f in files.items():
        res = json.loads(f.read_text())["results"]
        pts = []
        for i in range(len(res["bpp"])):
            pt = {k: res[k][i] for k in ("q", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time") if k in res}
            if "target_bpp" in res and res["target_bpp"][i] is not None:
                pt["target_bpp"] = res["target_bpp"][i]
                pt["rate_error"] = res["bpp"][i] / res["target_bpp"][i] - 1
            pts.append(pt)
        summary["points"][name] = pts  # type: ignore[index]
    for test in files:
        for anchor in ("paper", "x265"):
            if test == anchor or anchor not in files:
                continue
            for metric in ("psnr-rgb", "ms-ssim-rgb"):
                summary["bd_rate"][f"{test} vs {anchor} {metric}"] = _bd(files[test], files[anchor], metric)  # type: ignore[index]
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))

    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"points ({a.out})")
    for col in ("codec", "q", "bpp", "target", "error", "PSNR-RGB", "MS-SSIM", "encode s"):
        t.add_column(col)
    for name, pts in summary["points"].items():  # type: ignore[attr-defined]
        for pt in pts:
            t.add_row(name, str(pt["q"]), f"{pt['bpp']:.4f}", f"{pt.get('target_bpp', '')}",
                      f"{pt['rate_error']:+.1%}" if "rate_error" in pt else "", f"{pt['psnr-rgb']:.2f}",
                      f"{pt['ms-ssim-rgb']:.4f}", f"{pt.get('encoding_time', 0):.0f}")  # fmt: skip
    con.print(t)
    t = Table(title="BD-rate (negative = fewer bits for the same quality), pchip")
    t.add_column("comparison")
    t.add_column("BD-rate")
    for k, v in summary["bd_rate"].items():  # type: ignore[attr-defined]
        t.add_row(k, "n/a" if v is None else f"{v:+.1f} %")
    con.print(t)
    plot = [str(f) for f in files.values()]
    return _hinerv(["plot", *plot, "-o", str(a.out / "rd.png"), "--title", f"{a.out.name}"])


if __name__ == "__main__":
    sys.exit(main())
