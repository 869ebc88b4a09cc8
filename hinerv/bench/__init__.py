"""Rate-distortion evaluation at scale: sweeps, baselines, result JSON, BD-rate, plots, datasets.

* :mod:`hinerv.bench.sweep` — :func:`run_sweep` (resumable); :mod:`hinerv.bench.executors` — where
  its jobs (:mod:`hinerv.bench.jobs`) run: this process, a local process pool or Ray;
* :mod:`hinerv.bench.codecs` — :class:`HiNeRVCodec`, :class:`X265Codec`, :class:`HMCodec`;
* :mod:`hinerv.bench.results` — CompressAI-layout result JSON with per-sequence curves;
* :mod:`hinerv.bench.bdrate` — BD-rate / BD-PSNR (pchip default, akima, cubic);
* :mod:`hinerv.bench.anchors` — built-in published anchors (``@hinerv-uvg`` ...), importers and
  :func:`load_results` (a result file or an ``@anchor``);
* :mod:`hinerv.bench.specs` — :func:`~hinerv.bench.specs.build_codecs` (codecs by name and options);
* :mod:`hinerv.bench.plot` — RD curves; :mod:`hinerv.bench.datasets` — UVG / MCL-JCV checks.
"""

from __future__ import annotations

from hinerv.bench.anchors import import_csv, import_dcvc_json, list_anchors, load_anchor, load_results
from hinerv.bench.bdrate import bd_compare, bd_psnr, bd_rate, compare_results
from hinerv.bench.codecs import Codec, HiNeRVCodec, HMCodec, RatePoint, X265Codec
from hinerv.bench.datasets import check_dataset, load_dataset
from hinerv.bench.results import ResultSet
from hinerv.bench.sweep import SourceSpec, SweepReporter, run_sweep

__all__ = [
    "Codec",
    "HMCodec",
    "HiNeRVCodec",
    "RatePoint",
    "ResultSet",
    "SourceSpec",
    "SweepReporter",
    "X265Codec",
    "bd_compare",
    "bd_psnr",
    "bd_rate",
    "check_dataset",
    "compare_results",
    "import_csv",
    "import_dcvc_json",
    "list_anchors",
    "load_anchor",
    "load_dataset",
    "load_results",
    "run_sweep",
]
