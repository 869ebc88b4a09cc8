#!/usr/bin/env python3
"""Training benchmark on real footage: PSNR-RGB after each tenth of the schedule, s/epoch, peak RAM,
and the coded result at several bit depths.

Default: the first 128 frames of ../shared/clips/vtest.avi scaled to 384x288, sizes xs and s, the short
schedule. For each size the model is trained once (main + prune); QAT and coding then run once per bit
depth from the pruned checkpoint (the codec's work-folder reuse).

    python tools/bench_train.py --sizes xs,s --schedule short --bits 6,7,8 --json runs/train-short.json

PSNR-RGB during training is measured on the float model (masks applied, no quantization) with its output
rounded to 8 bits, against the 8-bit RGB of the source, per frame, averaged. The final rows are measured on
the decoded bitstream (the codec's own metrics). Numbers are for the device printed in the header.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hinerv.bench.sources import prepare_source
from hinerv.bitstream import unpack
from hinerv.codec import EncodeOptions, encode_file
from hinerv.device import resolve_device
from hinerv.entropy import entropy_bits
from hinerv.pipelines.paper import PaperOptions
from hinerv.train import Trainer

console = Console()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Probe:
    """Epoch hook: evaluates PSNR-RGB of the float model after each tenth of the schedule."""

    def __init__(self, total_epochs: int, height: int, width: int) -> None:
        self.marks = sorted({max(1, math.ceil(total_epochs * k / 10)) for k in range(1, 11)})
        self.h, self.w = height, width
        self.rows: list[dict[str, object]] = []
        self.t0 = time.perf_counter()
        self.last_t, self.last_e = self.t0, 0
        self.eval_seconds = 0.0

    def __call__(self, tr: Trainer) -> None:
        e = tr.epochs_done
        if e not in self.marks or any(r["epoch"] == e for r in self.rows):
            return
        now = time.perf_counter()
        sec_per_epoch = (now - self.last_t) / max(1, e - self.last_e)
        t_eval = time.perf_counter()
        psnrs = []
        peak = tr.peak
        with torch.no_grad():
            for t in range(tr.T):
                x = tr.reconstruct(torch.tensor([t]))[0, :, : self.h, : self.w].float().cpu()
                x = torch.round(x * peak)
                ref = tr.frames[t, :, : self.h, : self.w].float().cpu()
                mse = float(((x - ref) ** 2).mean()) / peak**2
                psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
        self.eval_seconds += time.perf_counter() - t_eval
        self.rows.append(
            {
                "tenth": self.marks.index(e) + 1,
                "epoch": e,
                "stage": tr.stage if tr.stage != "done" else "qat",
                "psnr_rgb": float(np.mean(psnrs)),
                "sec_per_epoch": sec_per_epoch,
                "elapsed_s": now - self.t0 - self.eval_seconds,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
        self.last_t, self.last_e = time.perf_counter(), e


def coded_entropy_bytes(data: bytes) -> float:
    """Zeroth-order empirical entropy (bytes) of the integers the payload codes (mask-kept positions)."""
    s = unpack(data)
    bits = 0.0
    for t in s.tensors:
        sym = t.q[t.mask] if t.mask is not None else t.q.reshape(-1)
        bits += entropy_bits(np.asarray(sym).reshape(-1))
    return bits / 8


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=os.environ.get("HINERV_VTEST", "../shared/clips/vtest.avi"))
    ap.add_argument("--frames", type=int, default=128, help="first N frames (0: all)")
    ap.add_argument("--scale", type=float, default=0.5, help="resize factor (768x576 -> 384x288)")
    ap.add_argument("--sizes", default="xs,s")
    ap.add_argument("--schedule", default="short")
    ap.add_argument("--epochs", type=int, default=None, help="rescale the schedule's main stage")
    ap.add_argument("--bits", default="6,7,8")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workdir", default="runs/bench_train", help="prepared sources and bitstreams")
    ap.add_argument(
        "--train-dir",
        default=None,
        help="training folder template with {size} and {schedule}; pointing it at a `hinerv bench` "
        "sweep's folder (OUT/work/hinerv-{schedule}/SEQ/train-{size}) lets the sweep reuse the models",
    )
    ap.add_argument("--json", default=None, help="write all rows here")
    args = ap.parse_args(argv)

    work = Path(args.workdir)
    src = prepare_source(
        Path(args.video), work, frames=args.frames or None, scale=args.scale if args.scale != 1 else None
    )
    info = src.info
    dev = resolve_device(args.device)
    console.print(
        f"[bold]bench_train[/] {src.path} {info.width}x{info.height}x{info.frames}  device={dev} "
        f"threads={torch.get_num_threads()} torch={torch.__version__} cpu={platform.processor() or '?'}"
    )
    all_rows: dict[str, object] = {"video": str(args.video), "device": str(dev), "sizes": {}}
    bits_list = [int(b) for b in args.bits.split(",")]
    for size in args.sizes.split(","):
        results = []
        probe: Probe | None = None
        for i, bits in enumerate(bits_list):
            opts = EncodeOptions(
                size=size,
                schedule=args.schedule,
                epochs=args.epochs,
                device=args.device,
                pipeline="paper",
                settings=PaperOptions(bits=bits),
            )
            sched = opts.resolve().schedule
            if i == 0:
                probe = Probe(sched.total_epochs, info.height, info.width)
            out = work / f"{size}-{args.schedule}-b{bits}.bin"
            rep = encode_file(
                src.path,
                out,
                opts,
                workdir=Path(args.train_dir.format(size=size, schedule=args.schedule))
                if args.train_dir
                else work / f"work-{size}-{args.schedule}",
                resume=True,
                epoch_hook=probe if i == 0 else None,
            )
            ent = coded_entropy_bytes(out.read_bytes())
            d = rep.as_dict()
            d["entropy_bytes"] = ent
            d["peak_rss_mb"] = peak_rss_mb()
            results.append(d)
        assert probe is not None
        t = Table(title=f"size {size}, schedule {args.schedule} ({sched.total_epochs} epochs): training")
        for c in ("tenth", "epoch", "stage", "PSNR-RGB dB", "s/epoch", "elapsed s", "peak RAM MB"):
            t.add_column(c, justify="right")
        for r in probe.rows:
            t.add_row(
                str(r["tenth"]),
                str(r["epoch"]),
                str(r["stage"]),
                f"{r['psnr_rgb']:.2f}",
                f"{r['sec_per_epoch']:.2f}",
                f"{r['elapsed_s']:.0f}",
                f"{r['peak_rss_mb']:.0f}",
            )
        console.print(t)
        t2 = Table(title=f"size {size}: coded (decoded bitstream, {info.width}x{info.height}x{info.frames})")
        cols = ("bits", "params", "bytes", "bpp", "PSNR-RGB", "MS-SSIM", "PSNR-YUV", "entropy B")
        sec_names = list(results[0]["sections"]) if results else []
        for c in (*cols, *sec_names):
            t2.add_column(c, justify="right")
        for d in results:
            t2.add_row(
                str(d["bits"]),
                str(d["params"]),
                str(d["bytes"]),
                f"{d['bpp']:.4f}",
                f"{d['psnr-rgb']:.2f}",
                f"{d['ms-ssim-rgb']:.4f}",
                f"{d['psnr-yuv']:.2f}",
                f"{d['entropy_bytes']:.0f}",
                *(str(d["sections"][k]) for k in sec_names),
            )
        console.print(t2)
        all_rows["sizes"][size] = {"training": probe.rows, "coded": results}  # type: ignore[index]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(all_rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
