"""Frozen configuration records shared by the model, the trainer and the bitstream.

:class:`ModelConfig` fully determines the HiNeRV architecture *for a given video geometry*
(frames T, padded height H, padded width W). It is written into every bitstream (as the flat
field mapping returned by :meth:`ModelConfig.to_fields`), so a decoder can rebuild the network.
Field names and meanings follow ``shared/design/hinerv-reference.md`` §3.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from hinerv.errors import ConfigError

__all__ = ["ModelConfig", "MAX_STAGES", "MAX_WIDTH", "MAX_DEPTH", "MAX_SCALE", "MAX_UPSCALE", "MAX_KERNEL"]
__all__ += ["MAX_LEVELS", "MAX_GRID_FRAMES", "MAX_FACTOR"]

FieldValue = int | float | str | tuple[int, ...] | tuple[float, ...]

# Bounds of every field (docs/bitstream.md, "Model field bounds"). They are far above anything the size
# ladder or a preset produces (the ladder's widest network within the decoder's 2^28-parameter limit has
# C ~ 3000, Cg ~ 6000 at 16384^2, scales 2..5, 2 grid levels, 3 encoder levels), and they keep every
# derived quantity small enough to compute before anything is allocated: a config is checked here,
# before :func:`hinerv.model.arch.derive_arch` builds a tuple per level or stage.
MAX_STAGES = 8
"""Stages (entries of depths, scales, exps, kernels)."""
MAX_WIDTH = 1 << 15
"""channels, base_grid_channels, enc_channels; also every derived stage width."""
MAX_DEPTH = 64
"""ConvNeXt blocks per stage."""
MAX_SCALE = 16
"""Up-sampling factor of one stage."""
MAX_UPSCALE = 1 << 12
"""Product of the stage scales."""
MAX_KERNEL = 63
"""Stage and stem kernels (odd)."""
MAX_LEVELS = 16
"""base_grid_levels, enc_levels."""
MAX_GRID_FRAMES = 1 << 20
"""base_grid_frames (-1 means T), the container's frame limit."""
MAX_FACTOR = 64.0
"""exps, channels_reduce, enc_depth_scale lie in [1/MAX_FACTOR, MAX_FACTOR]."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_int(name: str, v: Any, lo: int, hi: int) -> None:
    if not _is_int(v) or not lo <= v <= hi:
        raise ConfigError(f"model field {name} must be an integer in {lo}..{hi}, got {v!r}")


def _check_real(name: str, v: Any) -> None:
    if not _is_real(v) or not 1.0 / MAX_FACTOR <= float(v) <= MAX_FACTOR:
        raise ConfigError(
            f"model field {name} must be a number in [1/{MAX_FACTOR:g}, {MAX_FACTOR:g}], got {v!r}"
        )


def _check_bounds(cfg: ModelConfig) -> None:
    """Types and ranges of every field (see the MAX_* constants); raises ConfigError."""
    for name in ("depths", "scales", "exps", "kernels"):
        v = getattr(cfg, name)
        if not isinstance(v, tuple) or not 1 <= len(v) <= MAX_STAGES:
            raise ConfigError(f"model field {name} must be a tuple of 1..{MAX_STAGES} entries")
    for i, (d, s, e, k) in enumerate(zip(cfg.depths, cfg.scales, cfg.exps, cfg.kernels, strict=False)):
        _check_int(f"depths[{i}]", d, 0, MAX_DEPTH)
        _check_int(f"scales[{i}]", s, 1, MAX_SCALE)
        _check_real(f"exps[{i}]", e)
        _check_int(f"kernels[{i}]", k, 1, MAX_KERNEL)
    for name in ("channels", "base_grid_channels", "enc_channels"):
        _check_int(name, getattr(cfg, name), 1, MAX_WIDTH)
    _check_int("stem_kernel", cfg.stem_kernel, 1, MAX_KERNEL)
    _check_int("base_grid_levels", cfg.base_grid_levels, 1, MAX_LEVELS)
    _check_int("enc_levels", cfg.enc_levels, 1, MAX_LEVELS)
    if cfg.base_grid_frames != -1:
        _check_int("base_grid_frames", cfg.base_grid_frames, 1, MAX_GRID_FRAMES)
    elif not _is_int(cfg.base_grid_frames):
        raise ConfigError("model field base_grid_frames must be an integer")
    _check_real("channels_reduce", cfg.channels_reduce)
    _check_real("enc_depth_scale", cfg.enc_depth_scale)
    if not isinstance(cfg.upsample_norm, bool):
        raise ConfigError("model field upsample_norm must be a bool")


@dataclass(frozen=True)
class ModelConfig:
    """HiNeRV architecture hyper-parameters (reference flag names in brackets).

    Attributes:
        channels: C, width of stage 1 [--channels]. Stage i>1 has floor(C_{i-1} / channels_reduce).
        depths: ConvNeXt blocks per stage, 4 stages [--depths].
        scales: spatial up-sampling factor per stage [--scales-hw]; their product S divides the
            padded frame size, and the base feature volume is (H/S, W/S).
        exps: MLP expansion per stage [--exps].
        kernels: depth-wise conv kernel per stage [--kernels].
        stem_kernel: kernel of the stem conv [--stem-kernels].
        channels_reduce: width divisor between stages [--channels-reduce].
        base_grid_frames: Tg, temporal length of base-grid level 0; -1 means T [--base-grid-size].
        base_grid_channels: Cg, channels of base-grid level 0 [--base-grid-size].
        base_grid_levels: levels of the base grid; level l has Tg/2^l slices, Cg*2^l channels.
        enc_channels: C_e, channels of level 0 of stage-1's temporal local grid [--enc-grid-size].
        enc_levels: levels of each local grid; level j has T/2^j slices, C_e,i*2^j channels.
        enc_depth_scale: channel factor of the local grids from one stage to the next.
        upsample_norm: LayerNorm (no affine) before each up-sampler ("b" configs: False).
    """

    channels: int
    depths: tuple[int, ...]
    scales: tuple[int, ...]
    base_grid_channels: int
    enc_channels: int
    base_grid_frames: int = -1
    exps: tuple[float, ...] = (4.0, 4.0, 4.0, 1.0)
    kernels: tuple[int, ...] = (3, 3, 3, 3)
    stem_kernel: int = 3
    channels_reduce: float = 2.0
    base_grid_levels: int = 2
    enc_levels: int = 3
    enc_depth_scale: float = 0.5
    upsample_norm: bool = True

    def __post_init__(self) -> None:
        _check_bounds(self)
        n = len(self.depths)
        if not (len(self.scales) == len(self.exps) == len(self.kernels) == n) or n < 1:
            raise ConfigError("depths, scales, exps and kernels must have one entry per stage")
        if self.channels < 1 or self.base_grid_channels < 1 or self.enc_channels < 1:
            raise ConfigError("channel counts must be positive")
        if any(s < 1 for s in self.scales) or any(d < 0 for d in self.depths):
            raise ConfigError("scales must be >= 1 and depths >= 0")
        if self.upscale > MAX_UPSCALE:
            raise ConfigError(f"the product of the scales ({self.upscale}) exceeds {MAX_UPSCALE}")
        if any(k < 1 or k % 2 == 0 for k in (*self.kernels, self.stem_kernel)):
            raise ConfigError("kernels must be odd and positive")

    @property
    def upscale(self) -> int:
        """S, the product of all stage scales: the padded frame size is a multiple of S."""
        p = 1
        for s in self.scales:
            p *= s
        return p

    def to_fields(self) -> dict[str, FieldValue]:
        """Flat mapping of field name to int / float / str / tuple, for the bitstream."""
        out: dict[str, FieldValue] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = int(v) if isinstance(v, bool) else v
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_fields`; unknown keys, a missing field, a value of the wrong type or outside
        the field bounds (the ``MAX_*`` constants) raise :class:`ConfigError` before anything is derived."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in fields.items():
            if k not in known:
                raise ConfigError(f"unknown model field {k!r}")
            if k == "upsample_norm":
                if v not in (0, 1) or not isinstance(v, (bool, int)):
                    raise ConfigError(f"model field upsample_norm must be 0 or 1, got {v!r}")
                v = bool(v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        try:
            return cls(**kw)
        except TypeError as e:
            raise ConfigError(f"incomplete model config: {e}") from None
