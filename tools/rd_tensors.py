#!/usr/bin/env python
"""Per-tensor table of a hinerv bitstream: bits per parameter, fraction of zeros, steps, coding.

    python tools/rd_tensors.py out.bin [--json]

For a format-v2 (rd) stream the bits of each tensor are the ideal cost under the models the stream
carries (the range coder adds < 0.1 %); for a format-v1 (paper) stream, under its histogram tables.

A v2 stream also gets its integers priced under other coders (no retraining): format 1's histogram
tables, one model per tensor, and ``empirical_entropy_bytes``, each tensor's zeroth-order empirical
entropy with no cost for describing the model: a lower bound for any coder of independent symbols
with one distribution per tensor, so it says how much a better per-tensor model could still buy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hinerv import entropy
from hinerv.bitstream import CodedTensor, peek, unpack
from hinerv.codec import _header_checks
from hinerv.config import ModelConfig
from hinerv.entropy.tables import table_bits
from hinerv.model import HiNeRV, padded_size
from hinerv.pipelines.rd import _context_view


def _bits_v2(t: CodedTensor, coding: str) -> float:
    q = t.q
    M = int(np.abs(q).max()) if q.size else 0
    if M == 0:
        return 0.0
    if coding == "tensor":
        return entropy.fit_geom(entropy.abs_histogram(q, M), M)[1] + 16
    if coding == "channel":
        return sum(entropy.fit_geom(entropy.abs_histogram(r, M), M)[1] + 16 for r in q)
    assert t.context is not None
    v = q.reshape(t.context[0], t.context[1], -1)
    ctx = entropy.context_map(v)
    return sum(
        entropy.fit_geom(entropy.abs_histogram(v[ctx == k], M), M)[1] + 16 for k in range(entropy.CTX_BUCKETS)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bitstream", type=Path)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    data = a.bitstream.read_bytes()
    summ = peek(data)
    v2 = summ.version >= 2
    stream = unpack(data, expected_shapes=_header_checks(data))
    cfg = ModelConfig.from_fields(dict(stream.model))
    hp, wp = padded_size(stream.info.height, stream.info.width, cfg)
    with torch.device("meta"):
        model = HiNeRV(cfg, stream.info.frames, hp, wp)
    names = [n for n, _ in model.named_parameters()] if v2 else model.quantizable_names()
    rows = []
    for name, t, spec in zip(names, stream.tensors, summ.tensors, strict=True):
        n = int(np.prod(t.shape))
        if v2:
            bits = _bits_v2(t, spec.coding)
            coding, step = spec.coding, float(np.abs(t.scales.astype(np.float32)).mean())
        else:
            kept = t.q[t.mask] if t.mask is not None else t.q.ravel()
            bits = entropy.entropy_bits(kept) + (entropy.entropy_bits(t.mask) if t.mask is not None else 0)
            coding, step = f"hist b{t.bits}", float(np.abs(t.scales.astype(np.float32)).mean())
        rows.append({
            "tensor": name, "params": n, "bits": round(bits, 1), "bits_per_param": bits / max(n, 1),
            "zeros": float(np.mean(t.q == 0)), "max_abs": int(np.abs(t.q).max()) if n else 0,
            "mean_step": step, "coding": coding,
        })  # fmt: skip
    if v2:
        # what each entropy model buys, on these very integers (no retraining needed)
        hist = par = best = either = grid_par = grid_best = bound = 0.0
        for r, t, spec in zip(rows, stream.tensors, summ.tensors, strict=True):
            if not t.q.size or spec.max_abs == 0:
                continue
            tab = entropy.histogram(t.q)
            h_bits = entropy.cross_entropy_bits(t.q, tab) + table_bits(tab)
            hist += h_bits
            bound += entropy.entropy_bits(t.q)
            either += min(h_bits, r["bits"])  # a format-2 histogram mode, chosen per tensor
            p_bits = _bits_v2(t, "tensor")
            par += p_bits
            best += r["bits"]
            view = _context_view(model, r["tensor"])
            if view is not None:
                grid_par += min(p_bits, _bits_v2(t, "channel"))
                ctx_t = CodedTensor(t.shape, t.scale_axes, t.scales, t.q, "context", view)
                grid_best += min(r["bits"], _bits_v2(ctx_t, "context"))
        ablation = {
            "histogram_tables_bytes": hist / 8,
            "parametric_per_tensor_bytes": par / 8,
            "chosen_models_bytes": best / 8,
            "chosen_or_histogram_bytes": either / 8,
            "grids_without_context_bytes": grid_par / 8,
            "grids_with_context_bytes": grid_best / 8,
            "empirical_entropy_bytes": bound / 8,
        }
    else:
        ablation = {}
    if a.json:
        print(json.dumps({"tensors": rows, "ablation": ablation}, indent=1))
        return 0
    print(f"{'tensor':34s} {'params':>7s} {'bits/p':>7s} {'zeros':>6s} {'max|q|':>6s} {'step':>9s} coding")
    for r in rows:
        print(f"{r['tensor']:34s} {r['params']:7d} {r['bits_per_param']:7.3f} {r['zeros']:6.1%} "
              f"{r['max_abs']:6d} {r['mean_step']:9.2e} {r['coding']}")  # fmt: skip
    tot_b = sum(r["bits"] for r in rows)
    tot_n = sum(r["params"] for r in rows)
    zeros = sum(r["zeros"] * r["params"] for r in rows) / max(tot_n, 1)
    print(f"{'total':34s} {tot_n:7d} {tot_b / max(tot_n, 1):7.3f} {zeros:6.1%}   file {len(data)} B, "
          f"payload+models {tot_b / 8:.0f} B")  # fmt: skip
    for k, v in ablation.items():
        print(f"{k:34s} {v:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
