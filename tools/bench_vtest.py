#!/usr/bin/env python
"""The vtest benchmark: first 128 frames of a real clip scaled to 384x288, x265 veryslow QP ladder
plus three HiNeRV sizes, then BD-rate and an RD plot.

    python tools/bench_vtest.py [--video ../shared/clips/vtest.avi] [--out runs/vtest]
        [--sizes xs,s,m] [--schedule short] [--epochs N] [--frames 128] [--width 384]
        [--jobs 1] [--device auto] [--skip-hinerv]

Resumable (rerun to continue). Prints the BD-rate table of HiNeRV vs x265 veryslow on psnr-rgb and
psnr-yuv, and writes <out>/rd.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hinerv.cli import main as hinerv_main

DEFAULT_VIDEO = Path(__file__).resolve().parent.parent.parent / "shared" / "clips" / "vtest.avi"


def _hinerv(args: list[str]) -> int:
    print("$ hinerv " + " ".join(args), file=sys.stderr, flush=True)
    try:
        hinerv_main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--out", type=Path, default=Path("runs/vtest"))
    p.add_argument("--sizes", default="xs,s,m", help="three HiNeRV sizes (comma list)")
    p.add_argument("--bits", default="6")
    p.add_argument("--schedule", default="short", help="full, short, tiny or a .toml")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--width", type=int, default=384, help="target width (height keeps the aspect)")
    p.add_argument("--qps", default="16:44:4")
    p.add_argument("--preset", default="veryslow")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-hinerv", action="store_true", help="x265 only")
    a = p.parse_args(argv)
    if not a.video.exists():
        p.error(f"{a.video} not found (pass --video)")

    from hinerv.io import open_video

    with open_video(a.video) as r:
        scale = a.width / r.info.width
    common = [str(a.video), "-o", str(a.out), "--frames", str(a.frames), "--scale", f"{scale:.6g}",
              "-j", str(a.jobs)]
    rc = _hinerv(["bench", "run", *common, "-c", "x265", "--preset", a.preset, "-q", a.qps])
    if rc:
        return rc
    codec_files = [str(a.out / f"x265-{a.preset}-ra.json")]
    if not a.skip_hinerv:
        hargs = ["bench", "run", *common, "-c", "hinerv", "--sizes", a.sizes, "--bits", a.bits,
                 "--schedule", a.schedule, "--device", a.device]
        if a.epochs:
            hargs += ["--epochs", str(a.epochs)]
        rc = _hinerv(hargs)
        if rc:
            return rc
        sched = Path(a.schedule).stem if a.schedule.endswith(".toml") else a.schedule
        ours = a.out / f"hinerv-{sched}{f'-e{a.epochs}' if a.epochs else ''}.json"
        codec_files.insert(0, str(ours))
        for metric in ("psnr-rgb", "psnr-yuv", "ms-ssim-rgb"):
            _hinerv(["bdrate", str(ours), codec_files[1], "--metric", metric])
    return _hinerv(["plot", *codec_files, "-o", str(a.out / "rd.png"), "--title",
                    f"vtest {a.frames} frames, {a.width}px"])


if __name__ == "__main__":
    sys.exit(main())
