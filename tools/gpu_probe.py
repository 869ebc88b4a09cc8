"""GPU probe: 1080p uvg-hinerv-s training-step time under several settings, a profiler summary, decode fps.

    PYTHONPATH=$PWD python3 tools/gpu_probe.py [old new compile ro rd prof dec deccomp]

``old``: eager with the former 3 GiB activation budget (micro-batches); ``new``: eager, one batch;
``compile`` / ``ro``: torch.compile default / reduce-overhead (CUDA graphs); ``rd``: the rd recipe eager;
``prof``: torch.profiler table of 3 steps (``$OUT/prof.txt``); ``dec`` / ``deccomp``: decode forward eager /
compiled. Results print one JSON line each and go to ``$OUT/probe.json``. Without CUDA it runs a tiny CPU
smoke configuration (no timings worth reading).
"""

import functools
import json
import os
import sys
import time
import traceback

import torch

from hinerv.device import DevicePolicy
from hinerv.model import HiNeRV, load_preset, padded_size
from hinerv.pipelines.paper import PaperRecipe
from hinerv.train import Schedule, Trainer

OUT = os.environ.get("OUT", "/tmp")
SMOKE = not torch.cuda.is_available()
T, H, W = (4, 240, 320) if SMOKE else (16, 1080, 1920)
cfg = load_preset("uvg-hinerv-s")[0]
hp, wp = padded_size(H, W, cfg)
dev = torch.device("cpu" if SMOKE else "cuda")
if SMOKE:
    torch.cuda.synchronize = lambda *a: None
    torch.cuda.max_memory_allocated = lambda *a: 0
    torch.cuda.empty_cache = lambda: None
    torch.cuda.get_device_name = lambda *a: "cpu"
cache = torch.randint(0, 256, (T, 3, hp, wp), dtype=torch.uint8, device=dev)
sched = Schedule(name="speed", main_epochs=1000, warmup_epochs=1, prune_epochs=0, qat_epochs=0)
res = {}


def trainer(max_memory, compile=False, recipe=None):
    torch.manual_seed(0)
    model = HiNeRV(cfg, T, hp, wp).to(dev)
    pol = DevicePolicy.resolve(dev)
    tr = Trainer(
        model,
        cache,
        255,
        sched,
        device=pol,
        compile=compile,
        recipe=recipe or PaperRecipe(),
        max_memory=max_memory,
    )
    return tr


def time_steps(tr, steps=10, warm=3):
    B = tr.grid[0] * tr.grid[1]
    order = torch.randperm(T * B)
    t0 = time.perf_counter()
    for s in range(warm):
        tr.train_step(*tr.runner.batch(order, s % T))
    torch.cuda.synchronize()
    tw = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(steps):
        tr.train_step(*tr.runner.batch(order, s % T))
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1000, tw


def run(name, fn):
    try:
        t0 = time.perf_counter()
        r = fn()
        r["wall_s"] = time.perf_counter() - t0
    except Exception as e:
        r = {"error": f"{type(e).__name__}: {str(e)[:400]}"}
        traceback.print_exc(limit=3)
    res[name] = r
    print(name, json.dumps(r), flush=True)
    torch.cuda.empty_cache()


def cfg_step(mm, compile=False, mode=None, recipe=None):
    def f():
        orig = torch.compile
        torch._dynamo.reset()  # a graph cached under another mode would be reused
        if mode:
            torch.compile = functools.partial(orig, mode=mode)
        try:
            tr = trainer(mm, compile, recipe)
        finally:
            torch.compile = orig
        ms, tw = time_steps(tr)
        return {
            "ms": ms,
            "warm_s": tw,
            "micro_batch": tr.micro_batch,
            "B": tr.grid[0] * tr.grid[1],
            "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
        }

    return f


def prof():
    tr = trainer(None)
    B = tr.grid[0] * tr.grid[1]
    order = torch.randperm(T * B)
    for s in range(3):
        tr.train_step(*tr.runner.batch(order, s))
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for s in range(3):
            tr.train_step(*tr.runner.batch(order, s))
        torch.cuda.synchronize()
    ka = p.key_averages()
    txt = ka.table(sort_by="cuda_time_total", row_limit=25)
    open(f"{OUT}/prof.txt", "w").write(txt)
    print(txt[:6000])
    n_cpu = sum(e.count for e in ka if not e.key.startswith("cuda") and "aten::" in e.key)
    n_k = sum(e.count for e in ka if e.device_type.name == "CUDA")
    return {"aten_calls_per_step": n_cpu / 3, "cuda_kernels_per_step": n_k / 3}


def _frames(t, bs):
    """``[bs, 3]`` frame-mode indices of frames t .. t + bs - 1 (wrapping)."""
    z = torch.zeros(bs, dtype=torch.long)
    return torch.stack([torch.arange(t, t + bs) % T, z, z], 1).to(dev)


def dec(compile=False):
    def f():
        torch.manual_seed(0)
        m = HiNeRV(cfg, T, hp, wp).to(dev).eval()
        fwd = torch.compile(m, dynamic=False) if compile else m
        out = {}
        for bs in (1, 4):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=not SMOKE):
                for t in range(3):
                    fwd(_frames(t, bs), (1, 1))
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                n = 0
                for t in range(0, 32, bs):
                    fwd(_frames(t, bs), (1, 1))
                    n += bs
                torch.cuda.synchronize()
            out[f"fps_b{bs}"] = n / (time.perf_counter() - t0)
        return out

    return f


want = sys.argv[1:] or ["old", "new", "prof", "dec"]
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
for w in want:
    if w == "old":
        run("eager_3GiB", cfg_step(3 << 30))
    if w == "new":
        run("eager_onebatch", cfg_step(None))
    if w == "compile":
        run("compile_default", cfg_step(None, True))
    if w == "ro":
        run("compile_reduce_overhead", cfg_step(None, True, "reduce-overhead"))
    if w == "rd":
        from hinerv.pipelines.rd import RDRecipe, RDSettings

        run("rd_eager_onebatch", cfg_step(None, recipe=RDRecipe(RDSettings(), T * hp * wp)))
    if w == "prof":
        run("profile", prof)
    if w == "dec":
        run("decode_eager", dec(False))
    if w == "deccomp":
        run("decode_compile", dec(True))
json.dump(res, open(f"{OUT}/probe.json", "w"), indent=1)
