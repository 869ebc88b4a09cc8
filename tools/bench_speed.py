#!/usr/bin/env python3
"""Speed of the core: training ms/frame and decoding frames/s for fixed configurations.

Default configuration (the issue's fixed small model): 256x144 output, C = 96, depths 3-3-3-1,
scales 2-2-2-2 (base 9x16), base grid Cg = 2 with Tg = T/4, local grids C_e = 4, 32 frames.
The reference implementation runs this at about 110 ms/frame (training) and 30 frames/s (decoding) on
this 2-core CPU; the targets are 2x better.

A training "frame" is one optimizer step over one frame's worth of pixels (the trainer's patch batch),
loss (L1 + MS-SSIM 5x5), backward, gradient clipping and Adam included. Decoding is frame-mode inference,
batch 1, no gradient.

    python tools/bench_speed.py                       # the fixed 256x144 config on the default device
    python tools/bench_speed.py --preset uvg-hinerv-s --width 1280 --height 720 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from hinerv.codec import resolve_device
from hinerv.config import ModelConfig
from hinerv.model import HiNeRV, count_params, load_preset, macs_per_pixel, padded_size
from hinerv.train import Schedule, Trainer

console = Console()


def fixed_config(frames: int) -> ModelConfig:
    return ModelConfig(
        channels=96,
        depths=(3, 3, 3, 1),
        scales=(2, 2, 2, 2),
        base_grid_channels=2,
        base_grid_frames=max(1, frames // 4),
        enc_channels=4,
    )


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(
    cfg: ModelConfig,
    frames: int,
    height: int,
    width: int,
    dev: torch.device,
    steps: int,
    amp: bool,
    compile: bool,
) -> dict[str, float]:
    hp, wp = padded_size(height, width, cfg)
    torch.manual_seed(0)
    model = HiNeRV(cfg, frames, hp, wp).to(dev)
    cache = torch.randint(0, 256, (frames, 3, hp, wp), dtype=torch.uint8, device=dev)
    sched = Schedule(name="speed", main_epochs=1000, warmup_epochs=1, prune_epochs=0, qat_epochs=0)
    tr = Trainer(model, cache, 255, sched, device=dev, amp=amp, compile=compile)
    B = tr.grid[0] * tr.grid[1]
    order = torch.randperm(frames * B)
    # warm-up (allocator, kernels, compile)
    for s in range(3):
        tr.train_step(*tr._batch(order, s % frames))
    _sync(dev)
    t0 = time.perf_counter()
    for s in range(steps):
        tr.train_step(*tr._batch(order, s % frames))
    _sync(dev)
    train_ms = (time.perf_counter() - t0) / steps * 1000
    model.eval()
    n_dec = min(frames, max(8, steps))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=amp and dev.type == "cuda"):
        for t in range(2):
            model(torch.tensor([[t, 0, 0]], device=dev), (1, 1))
        _sync(dev)
        t0 = time.perf_counter()
        for t in range(n_dec):
            model(torch.tensor([[t % frames, 0, 0]], device=dev), (1, 1))
        _sync(dev)
    dec_fps = n_dec / (time.perf_counter() - t0)
    return {
        "params": float(count_params(cfg, frames, hp, wp)["total"]),
        "macs_per_pixel": macs_per_pixel(cfg, frames, hp, wp),
        "patch_grid": float(B),
        "train_ms_per_frame": train_ms,
        "decode_fps": dec_fps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=None, help="reference preset instead of the fixed config")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    cfg = load_preset(args.preset)[0] if args.preset else fixed_config(args.frames)
    r = measure(cfg, args.frames, args.height, args.width, dev, args.steps, not args.no_amp, args.compile)
    name = args.preset or "fixed C=96 s=2222"
    t = Table(
        title=f"hinerv core speed on {dev} ({torch.get_num_threads()} threads, torch {torch.__version__})"
    )
    for c in ("config", "size", "params", "MACs/px", "train ms/frame", "decode fps"):
        t.add_column(c, justify="right")
    t.add_row(
        name,
        f"{args.width}x{args.height}x{args.frames}",
        f"{r['params']:.0f}",
        f"{r['macs_per_pixel']:.0f}",
        f"{r['train_ms_per_frame']:.1f}",
        f"{r['decode_fps']:.1f}",
    )
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
