"""The HiNeRV network, its presets, the size ladder and analytic parameter / MAC counts."""

from __future__ import annotations

from hinerv.model.arch import Arch, StageArch, derive_arch, padded_size
from hinerv.model.counts import count_params, macs_per_pixel
from hinerv.model.hinerv import HiNeRV
from hinerv.model.presets import list_presets, load_preset
from hinerv.model.sizes import AUTO_SIZE, SIZES, ladder_config

__all__ = [
    "AUTO_SIZE",
    "SIZES",
    "Arch",
    "HiNeRV",
    "StageArch",
    "count_params",
    "derive_arch",
    "ladder_config",
    "list_presets",
    "load_preset",
    "macs_per_pixel",
    "padded_size",
]
