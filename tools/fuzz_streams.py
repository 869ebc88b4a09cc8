#!/usr/bin/env python
"""Fuzz the decoder with hostile streams of both formats, each case time- and memory-bounded.

    python tools/fuzz_streams.py [--cases 2000] [--raw 500] [--seed 0] [--timeout 10] [--memory-gb 3]

Cases come from ``tests/hostile_streams.py``: the CRC-recomputing family (header, model-field and
section-body edits with every CRC rewritten) and the raw family (truncation, bit flips, random spans,
insertions with the CRCs left alone), applied to a real format-1 and format-2 stream. Each case runs
``info`` and ``decode`` up to the first frame in one worker process whose address space is capped at
its size after start-up plus ``--memory-gb``; a case that takes longer than ``--timeout`` seconds is a
hang (the worker is killed and restarted), a worker that dies is a crash. Prints the counts per format
and family and writes them, with the slowest case and peak memory, to
``docs/results/fuzz/fuzz_streams.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _worker(conn: Any, memory_bytes: int) -> None:
    import resource

    import hostile_streams as H
    import torch

    torch.set_num_threads(1)
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory_bytes, vm + memory_bytes))
    conn.send("ready")
    while True:
        data = conn.recv()
        if data is None:
            return
        t0 = time.perf_counter()
        try:
            outcome, detail = H.run_case(data)
        except MemoryError:
            outcome, detail = "other", "MemoryError"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        conn.send((outcome, detail, time.perf_counter() - t0, rss))


class _Runner:
    def __init__(self, timeout: float, memory_bytes: int) -> None:
        self.timeout, self.memory_bytes = timeout, memory_bytes
        self.ctx = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.memory_bytes), daemon=True)
        self.proc.start()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def run(self, data: bytes) -> tuple[str, str, float, int]:
        self.conn.send(data)
        t0 = time.perf_counter()
        try:
            if self.conn.poll(self.timeout):
                return self.conn.recv()
        except EOFError:
            pass
        dt = time.perf_counter() - t0
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
            self._start()
            return "hang", f"> {self.timeout} s", dt, 0
        code = self.proc.exitcode
        self._start()
        return "crash", f"exit code {code}", dt, 0

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000, help="CRC-recomputing cases per format")
    ap.add_argument("--raw", type=int, default=500, help="raw cases per format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--memory-gb", type=float, default=3.0, help="address space a case may add")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/fuzz/fuzz_streams.json")
    args = ap.parse_args()

    import hostile_streams as H

    streams = H.real_streams()
    runner = _Runner(args.timeout, int(args.memory_gb * 2**30))
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "results": []}
    print(f"{'format':>6} {'family':>6} {'cases':>6} {'refused':>8} {'info-only':>9} {'decoded':>8} "
          f"{'other':>6} {'hang':>5} {'crash':>6} {'max s':>6}")  # fmt: skip
    try:
        for version, data in streams.items():
            for family, n in (("crc", args.cases), ("raw", args.raw)):
                counts: Counter = Counter()
                details: Counter = Counter()
                slowest, peak = 0.0, 0
                for case in H.FAMILIES[family](data, n, args.seed):
                    outcome, detail, dt, rss = runner.run(case)
                    counts[outcome] += 1
                    if outcome in ("other", "hang", "crash"):
                        details[detail] += 1
                    slowest, peak = max(slowest, dt), max(peak, rss)
                row = {
                    "format": version,
                    "family": family,
                    "cases": n,
                    **{k: counts[k] for k in ("refused", "info-only", "decoded", "other", "hang", "crash")},
                    "slowest_s": round(slowest, 3),
                    "peak_rss_mb": round(peak / 2**20),
                    "problems": dict(details),
                }
                report["results"].append(row)
                print(f"{version:>6} {family:>6} {n:>6} {row['refused']:>8} {row['info-only']:>9} "
                      f"{row['decoded']:>8} {row['other']:>6} {row['hang']:>5} {row['crash']:>6} "
                      f"{slowest:>6.2f}")  # fmt: skip
    finally:
        runner.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
