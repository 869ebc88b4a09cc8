#!/usr/bin/env python3
"""Speed of the core: training ms/frame, decoding frames/s and peak RSS, for one checkout or two side by side.

Default configuration (the issue's fixed small model): C = 96, depths 3-3-3-1, scales 2-2-2-2, base grid
Cg = 2 with Tg = T/4, local grids C_e = 4, 32 frames, at 256x144 and 384x288.

A training "frame" is one optimizer step over one frame's worth of pixels (the trainer's patch batch),
loss (L1 + MS-SSIM 5x5), backward, gradient clipping and Adam included. Decoding is frame-mode inference,
batch 1, no gradient. Every measurement runs with the measured checkout's process settings
(``hinerv.runtime.configure_process``, as its ``hinerv`` command: denormals flushed, and whatever else
it sets).

    python tools/bench_speed.py                                   # this checkout, default sizes
    python tools/bench_speed.py --preset uvg-hinerv-s --sizes 1280x720 --device cuda
    python tools/bench_speed.py --preset uvg-hinerv-s --sizes 1920x1080 --device cuda \
        --compile-mode reduce-overhead
    # two checkouts, interleaved (A B A B ...), each measurement in a fresh process:
    git worktree add /tmp/hinerv-main main
    python tools/bench_speed.py --against /tmp/hinerv-main --threads 1 --rounds 3

With ``--against``, each round runs one fresh process per checkout and size, alternating, so both see
the same machine load; the table gives the median and the range over rounds, the ratio
(this checkout / the other) of the medians, and the range of the per-round ratios.

``--recipe rd`` times the rd pipeline's rate-aware step instead (learned quantizers and rate term on
every parameter, as in its prune and QAT stages); the default ``paper`` step is float training, the
main stage of both pipelines.

``--compile`` (``--compile-mode MODE`` picks the ``torch.compile`` mode and implies it) compiles the
training forward (``StepRunner``, static shapes) and the decoding forward. The ``hinerv`` command refuses
``--compile`` on CPU (``DevicePolicy.check_compile``); this script does not ask the policy, so a CPU run
works as a smoke test of the compiled path (inductor builds C++ for the CPU: minutes; not a speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_rss_mb() -> float:
    """Peak resident set size of this process (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(
    preset: str | None,
    frames: int,
    height: int,
    width: int,
    device: str,
    steps: int,
    amp: bool,
    compile: bool | str,
    recipe: str = "paper",
    ladder: str | None = None,
) -> dict[str, float]:
    """Train and decode timings of whichever ``hinerv`` package is importable (this process's).

    ``compile``: False, True (torch.compile's default mode) or a mode name. ``recipe``: ``"paper"``
    (float training, the main stage of both pipelines) or ``"rd"`` (the rd pipeline's rate-aware
    step: every parameter through its learned quantizer and the rate term, as in its prune and QAT
    stages). ``ladder``: a size of the ladder (``hinerv.model.sizes``) for this geometry instead of the
    fixed config (``preset`` wins over it)."""
    import torch

    from hinerv.codec import resolve_device
    from hinerv.config import ModelConfig
    from hinerv.model import HiNeRV, count_params, load_preset, macs_per_pixel, padded_size
    from hinerv.train import Schedule, Trainer

    try:  # the measured checkout's own process settings, as its ``hinerv`` command applies them
        from hinerv.runtime import configure_process
    except ImportError:
        torch.set_flush_denormal(True)
    else:
        configure_process()
        try:  # and the memory setting its encode command picks for this frame size
            from hinerv.runtime import keep_freed_memory_for
        except ImportError:
            pass
        else:
            keep_freed_memory_for(width, height)
    dev = resolve_device(device)
    if preset:
        cfg = load_preset(preset)[0]
    elif ladder:
        from hinerv.model.sizes import ladder_config

        cfg = ladder_config(ladder, width, height, frames)
    else:
        cfg = ModelConfig(
            channels=96,
            depths=(3, 3, 3, 1),
            scales=(2, 2, 2, 2),
            base_grid_channels=2,
            base_grid_frames=max(1, frames // 4),
            enc_channels=4,
        )
    hp, wp = padded_size(height, width, cfg)
    torch.manual_seed(0)
    model = HiNeRV(cfg, frames, hp, wp).to(dev)
    cache = torch.randint(0, 256, (frames, 3, hp, wp), dtype=torch.uint8, device=dev)
    sched = Schedule(name="speed", main_epochs=1000, warmup_epochs=1, prune_epochs=0, qat_epochs=0)
    try:  # checkouts with training recipes (the paper pipeline's is the plain trainer of older ones)
        from hinerv.pipelines.paper import PaperRecipe
    except ImportError:
        extra: dict[str, Any] = {}
    else:
        extra = {"recipe": PaperRecipe()}
    if recipe == "rd":
        from hinerv.pipelines.rd import RDRecipe, RDSettings

        # rate-aware from the first step (no distortion-only pre-training, λ at full weight)
        extra["recipe"] = RDRecipe(
            RDSettings(pretrain=False, lambda_ramp=0.0), pixels=frames * height * width
        )
    try:  # the activation budget the checkout's encode command picks for this device (one batch on a big GPU)
        from hinerv.device import DevicePolicy

        extra["max_memory"] = DevicePolicy.resolve(dev, amp=amp).default_max_memory()
    except (ImportError, AttributeError, TypeError):
        pass
    tr = Trainer(model, cache, 255, sched, device=dev, amp=amp, compile=compile, **extra)
    batch = tr.runner.batch if hasattr(tr, "runner") else tr._batch
    B = tr.grid[0] * tr.grid[1]
    order = torch.randperm(frames * B)
    for s in range(3):  # warm-up (allocator, kernels, compile)
        tr.train_step(*batch(order, s % frames))
    _sync(dev)
    t0 = time.perf_counter()
    for s in range(steps):
        tr.train_step(*batch(order, s % frames))
    _sync(dev)
    train_ms = (time.perf_counter() - t0) / steps * 1000
    model.eval()
    decode: Any = model
    if compile:
        mode = None if compile is True or compile == "default" else str(compile)
        decode = torch.compile(model, mode=mode, dynamic=False)
    n_dec = min(frames, max(8, steps))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=amp and dev.type == "cuda"):
        for t in range(2):
            decode(torch.tensor([[t, 0, 0]], device=dev), (1, 1))
        _sync(dev)
        t0 = time.perf_counter()
        for t in range(n_dec):
            decode(torch.tensor([[t % frames, 0, 0]], device=dev), (1, 1))
        _sync(dev)
    dec_fps = n_dec / (time.perf_counter() - t0)
    return {
        "params": float(count_params(cfg, frames, hp, wp)["total"]),
        "macs_per_pixel": float(macs_per_pixel(cfg, frames, hp, wp)),
        "patch_grid": float(B),
        "train_ms_per_frame": train_ms,
        "decode_fps": dec_fps,
        "peak_rss_mb": peak_rss_mb(),
        "threads": float(torch.get_num_threads()),
    }


def _worker(args: argparse.Namespace) -> int:
    """Child process: measure one size with the checkout given by --checkout, print JSON."""
    sys.path.insert(0, str(Path(args.checkout).resolve()))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import hinerv

    where = Path(hinerv.__file__).resolve()
    if not where.is_relative_to(Path(args.checkout).resolve()):
        print(json.dumps({"error": f"imported hinerv from {where}, not from {args.checkout}"}))
        return 1
    w, h = (int(v) for v in args.sizes.split(",")[0].split("x"))
    compile: bool | str = args.compile_mode or args.compile
    r = measure(
        args.preset,
        args.frames,
        h,
        w,
        args.device,
        args.steps,
        not args.no_amp,
        compile,
        args.recipe,
        args.ladder,
    )
    r["module"] = str(where.parent)  # type: ignore[assignment]
    print(json.dumps(r))
    return 0


def _run_child(checkout: Path, size: str, args: argparse.Namespace) -> dict[str, Any]:
    # each checkout measures with its own copy of this script: the trainer's API may differ between them
    own = checkout / "tools" / "bench_speed.py"
    cmd = [
        sys.executable,
        str(own if own.is_file() else Path(__file__).resolve()),
        "--worker",
        "--checkout",
        str(checkout),
        "--sizes",
        size,
        "--frames",
        str(args.frames),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
    ]
    if args.preset:
        cmd += ["--preset", args.preset]
    if args.ladder:
        cmd += ["--ladder", args.ladder]
    if args.recipe != "paper":
        cmd += ["--recipe", args.recipe]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.no_amp:
        cmd.append("--no-amp")
    if args.compile:
        cmd.append("--compile")
    if args.compile_mode:
        cmd += ["--compile-mode", args.compile_mode]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"worker for {checkout} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=None, help="reference preset instead of the fixed config")
    ap.add_argument("--ladder", default=None, help="a ladder size (xs, s, m, ...) for each frame size")
    ap.add_argument("--sizes", default="256x144,384x288", help="WxH list")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training and decoding forwards")
    ap.add_argument(
        "--recipe",
        choices=("paper", "rd"),
        default="paper",
        help="training step: paper (float; the main stage) or rd (rate-aware: quantizers and rate term)",
    )
    ap.add_argument(
        "--compile-mode",
        default=None,
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        help="torch.compile mode (implies --compile); reduce-overhead uses CUDA graphs",
    )
    ap.add_argument("--against", type=Path, default=None, help="another checkout to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds with --against")
    ap.add_argument("--json", type=Path, default=None, help="write every measurement here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkout", type=Path, default=HERE, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    sizes = args.sizes.split(",")
    checkouts = {"this": HERE}
    if args.against is not None:
        checkouts["other"] = args.against.resolve()
    rounds = args.rounds if args.against is not None else 1
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(rounds):
        order = list(checkouts.items())
        if r % 2:
            order.reverse()  # A B, B A, A B ...: neither side always runs first
        for size in sizes:
            for name, path in order:
                res = _run_child(path, size, args)
                results.setdefault((name, size), []).append(res)
                console.print(
                    f"[dim]round {r + 1} {name:5s} {size}: train {res['train_ms_per_frame']:.1f} ms/frame, "
                    f"decode {res['decode_fps']:.1f} fps, peak RSS {res['peak_rss_mb']:.0f} MB[/]"
                )
    threads = next(iter(results.values()))[0]["threads"]
    t = Table(
        title=f"hinerv core speed ({args.preset or args.ladder or 'fixed C=96 s=2222'}, {args.recipe} step, "
        f"{args.frames} frames, {int(threads)} threads, device {args.device}; "
        f"median (min-max) over {rounds} round(s))"
    )
    for c in ("checkout", "size", "params", "train ms/frame", "decode fps", "peak RSS MB"):
        t.add_column(c, justify="right")
    for size in sizes:
        for name, path in checkouts.items():
            rs = results[(name, size)]
            t.add_row(
                f"{name} ({path})",
                size,
                f"{rs[0]['params']:.0f}",
                _spread([x["train_ms_per_frame"] for x in rs]),
                _spread([x["decode_fps"] for x in rs]),
                f"{max(x['peak_rss_mb'] for x in rs):.0f}",
            )
        if args.against is not None:
            a, b = results[("this", size)], results[("other", size)]
            tr = statistics.median(x["train_ms_per_frame"] for x in b) / statistics.median(
                x["train_ms_per_frame"] for x in a
            )
            de = statistics.median(x["decode_fps"] for x in a) / statistics.median(x["decode_fps"] for x in b)
            # the two sides of one round ran back to back: their ratio shares that round's machine load
            tr_r = [y["train_ms_per_frame"] / x["train_ms_per_frame"] for x, y in zip(a, b, strict=True)]
            de_r = [x["decode_fps"] / y["decode_fps"] for x, y in zip(a, b, strict=True)]
            t.add_row(
                "speed-up this/other",
                size,
                "",
                f"{tr:.2f}x (rounds {min(tr_r):.2f}-{max(tr_r):.2f})",
                f"{de:.2f}x (rounds {min(de_r):.2f}-{max(de_r):.2f})",
                "",
            )
    console.print(t)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({f"{n} {s}": v for (n, s), v in results.items()}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
