#!/usr/bin/env python
"""Seconds per training step of the `paper` and `rd` pipelines, interleaved, on one clip, and the cost of
the rd pipeline's per-epoch rate probe (one pack of the stream, used with --target-bpp).

    python tools/bench_rd_time.py clip.y4m --sizes s,m --steps 40 --rounds 3 [--threads 1]

Paper stages: main (plain forward), prune (masked), qat (Quant-Noise). rd stages: prune (rounding
proxy + rate), qat (straight-through + rate); its main stage is the paper's. Prints a table; ``--json``
writes the numbers to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hinerv.bitstream import pack
from hinerv.codec import load_rgb_cache
from hinerv.io import open_video
from hinerv.model import HiNeRV, ladder_config, padded_size
from hinerv.pipelines.paper import PaperRecipe
from hinerv.pipelines.rd import RDRecipe, RDSettings, default_lambda, export_rd_stream
from hinerv.train import Trainer, load_schedule


def _steps(tr: Trainer, n: int) -> float:
    order = torch.randperm(tr.T * tr.grid[0] * tr.grid[1], generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i in range(n):
        tr.train_step(*tr.runner.batch(order, i % tr.T))
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("clip")
    p.add_argument("--sizes", default="s,m")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    reader = open_video(a.clip)
    info = reader.info
    sched = load_schedule("short")
    out: dict[str, dict[str, list[float]]] = {}
    for size in a.sizes.split(","):
        cfg = ladder_config(size, info.width, info.height, info.frames)
        hp, wp = padded_size(info.height, info.width, cfg)
        cache = load_rgb_cache(reader, hp, wp)
        torch.manual_seed(0)
        paper = Trainer(HiNeRV(cfg, info.frames, hp, wp), cache, info.peak, sched, recipe=PaperRecipe())
        torch.manual_seed(0)
        rd_model = HiNeRV(cfg, info.frames, hp, wp)
        recipe = RDRecipe(RDSettings(lam=default_lambda(size)), pixels=info.frames * info.height * info.width)
        rd = Trainer(rd_model, cache, info.peak, sched, recipe=recipe)
        res: dict[str, list[float]] = {
            k: [] for k in ("paper main", "paper qat", "rd prune", "rd qat", "rd probe")
        }
        for _ in range(a.rounds):  # interleaved: old and new see the same machine load
            paper.enter_stage("main")
            res["paper main"].append(_steps(paper, a.steps))
            paper.enter_stage("prune")
            paper.enter_stage("qat")
            res["paper qat"].append(_steps(paper, a.steps))
            rd.enter_stage("prune")
            res["rd prune"].append(_steps(rd, a.steps))
            rd.enter_stage("qat")
            res["rd qat"].append(_steps(rd, a.steps))
            t0 = time.perf_counter()
            pack(export_rd_stream(rd_model, recipe.rate, info, cfg, {}))
            res["rd probe"].append(time.perf_counter() - t0)
        out[size] = res
    reader.close()
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    for size, res in out.items():
        print(f"size {size}, {a.threads} thread(s), {a.steps} steps x {a.rounds} rounds "
              "(min / max seconds per step)")  # fmt: skip
        for k, v in res.items():
            print(f"  {k:11s} {min(v):.4f} / {max(v):.4f}")
        ratio = min(res["rd main"]) / min(res["paper main"])
        print(f"  rd main / paper main: {ratio:.2f}x; rd ste / paper qat: "
              f"{min(res['rd ste']) / min(res['paper qat']):.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
