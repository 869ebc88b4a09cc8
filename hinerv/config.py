"""Frozen configuration records shared by the model, the trainer and the bitstream.

:class:`ModelConfig` fully determines the HiNeRV architecture *for a given video geometry*
(frames T, padded height H, padded width W). It is written into every bitstream (as the flat
field mapping returned by :meth:`ModelConfig.to_fields`), so a decoder can rebuild the network.
Field names and meanings follow ``shared/design/hinerv-reference.md`` §3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hinerv.errors import ConfigError

__all__ = ["ModelConfig"]

FieldValue = int | float | str | tuple[int, ...] | tuple[float, ...]


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
        n = len(self.depths)
        if not (len(self.scales) == len(self.exps) == len(self.kernels) == n) or n < 1:
            raise ConfigError("depths, scales, exps and kernels must have one entry per stage")
        if self.channels < 1 or self.base_grid_channels < 1 or self.enc_channels < 1:
            raise ConfigError("channel counts must be positive")
        if any(s < 1 for s in self.scales) or any(d < 0 for d in self.depths):
            raise ConfigError("scales must be >= 1 and depths >= 0")
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
        """Inverse of :meth:`to_fields`; unknown keys raise :class:`ConfigError`."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in fields.items():
            if k not in known:
                raise ConfigError(f"unknown model field {k!r}")
            if k == "upsample_norm":
                v = bool(v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        try:
            return cls(**kw)
        except TypeError as e:
            raise ConfigError(f"incomplete model config: {e}") from None
