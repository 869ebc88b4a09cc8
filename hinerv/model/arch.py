"""Derived HiNeRV architecture: every shape, width and halo that follows from a config and a geometry.

:func:`derive_arch` is the single place where the rules of the reference (hinerv-reference.md §3)
are turned into numbers. The network (:mod:`hinerv.model.hinerv`), the analytic counts
(:mod:`hinerv.model.counts`) and the CLI all read the same :class:`Arch`, so they cannot disagree.

Halos (patch mode) are derived exactly from receptive fields instead of the reference's
banker's-rounding recursion (pitfall 2 of the reference notes):

* a stage's blocks need ``depth * (kernel // 2)`` extra pixels at the stage's resolution;
* a bilinear up-sampler (align_corners=False) by ``s`` whose output needs a halo ``q`` reads the
  input pixels ``floor(u)`` and ``floor(u) + 1`` with ``u = (o + 0.5) / s - 0.5``; the smallest input
  halo covering every output pixel of ``[-q, s*m + q)`` is ``ceil((2q - 1 + s) / (2s))``;
* the stem conv adds ``stem_kernel // 2`` at the base resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hinerv.config import MAX_LEVELS, MAX_WIDTH, ModelConfig
from hinerv.errors import ConfigError

__all__ = ["Arch", "StageArch", "derive_arch", "padded_size", "upsample_input_halo"]


@dataclass(frozen=True)
class StageArch:
    """One up-sampling stage (index i = 1..n in the reference's notation).

    Attributes:
        scale: spatial up-sampling factor s_i.
        c_in: C1_i, width of the up-sampler and the first block's input.
        c_out: C2_i, width of every block output.
        hidden: MLP hidden width int(C2_i * exp_i).
        depth: number of ConvNeXt blocks.
        kernel: depth-wise conv kernel.
        height, width: full-frame size of this stage's feature maps.
        enc_frames: temporal length of each local-grid level, max(1, int(T / 2^j)).
        enc_channels: channels of each local-grid level, C_e,i * 2^j.
        halo: patch-mode halo of this stage's feature maps (reference "stage output padding").
        in_halo: halo of the up-sampler's input (the previous stage's or the stem's output).
    """

    scale: int
    c_in: int
    c_out: int
    hidden: int
    depth: int
    kernel: int
    height: int
    width: int
    enc_frames: tuple[int, ...]
    enc_channels: tuple[int, ...]
    halo: int
    in_halo: int


@dataclass(frozen=True)
class Arch:
    """The resolved network for one (config, frames, padded height, padded width).

    Attributes:
        frames: T.
        height, width: padded output size (multiples of ``cfg.upscale``).
        base_height, base_width: H0 = H / S, W0 = W / S.
        base_frames: temporal length of each base-grid level, max(1, int(Tg / 2^l)).
        base_channels: channels of each base-grid level, Cg * 2^l.
        stem_kernel: kernel of the stem conv.
        base_halo: patch-mode halo of the base-grid gather (stem input).
        stages: one :class:`StageArch` per stage.
    """

    frames: int
    height: int
    width: int
    base_height: int
    base_width: int
    base_frames: tuple[int, ...]
    base_channels: tuple[int, ...]
    stem_kernel: int
    base_halo: int
    stages: tuple[StageArch, ...]

    @property
    def stem_in(self) -> int:
        """C_b, channels of the concatenated base grid (stem input)."""
        return sum(self.base_channels)

    @property
    def stem_out(self) -> int:
        """C, channels of the stem output (= stage 1 width)."""
        return self.stages[0].c_in

    @property
    def out_channels(self) -> int:
        """Width of the last stage (head input)."""
        return self.stages[-1].c_out


def padded_size(height: int, width: int, cfg: ModelConfig) -> tuple[int, int]:
    """Round a frame size up to multiples of ``cfg.upscale``.

    Args:
        height, width: source frame size in pixels (positive).
        cfg: model config (only its scales are used).

    Returns:
        (padded height, padded width).

    Raises:
        ConfigError: non-positive size.
    """
    if height < 1 or width < 1:
        raise ConfigError(f"frame size must be positive, got {width}x{height}")
    s = cfg.upscale
    return -(-height // s) * s, -(-width // s) * s


def upsample_input_halo(out_halo: int, scale: int) -> int:
    """Smallest input halo of a bilinear x``scale`` up-sampler whose output needs ``out_halo``.

    Args:
        out_halo: halo (pixels) needed around the output patch, >= 0.
        scale: integer up-sampling factor, >= 1.

    Returns:
        ceil((2 * out_halo - 1 + scale) / (2 * scale)), the exact receptive-field bound
        (0 for scale 1 and no halo).
    """
    return -(-(2 * out_halo - 1 + scale) // (2 * scale))


def derive_arch(cfg: ModelConfig, frames: int, height: int, width: int) -> Arch:
    """Resolve every shape of the network for a video geometry.

    Args:
        cfg: the model config.
        frames: number of frames T (>= 1).
        height, width: padded output size; both must be multiples of ``cfg.upscale``.

    Returns:
        The resolved :class:`Arch`.

    Raises:
        ConfigError: T < 1, a size that is not a multiple of the up-scaling factor, or a
            config whose widths collapse to zero or grow beyond ``MAX_WIDTH``.
    """
    if frames < 1:
        raise ConfigError(f"frames must be >= 1, got {frames}")
    s_tot = cfg.upscale
    if height < 1 or width < 1 or height % s_tot or width % s_tot:
        raise ConfigError(
            f"padded size {width}x{height} must be a positive multiple of the up-scaling factor "
            f"{s_tot} (scales {'x'.join(map(str, cfg.scales))}); use padded_size()"
        )
    if cfg.channels_reduce <= 0 or cfg.enc_depth_scale <= 0:
        raise ConfigError("channels_reduce and enc_depth_scale must be positive")
    # ModelConfig bounds the levels already; repeated here because the tuples below have one entry per level
    if not (1 <= cfg.base_grid_levels <= MAX_LEVELS and 1 <= cfg.enc_levels <= MAX_LEVELS):
        raise ConfigError(f"base_grid_levels and enc_levels must be in 1..{MAX_LEVELS}")
    h0, w0 = height // s_tot, width // s_tot
    tg = frames if cfg.base_grid_frames == -1 else cfg.base_grid_frames
    if tg < 1:
        raise ConfigError(f"base_grid_frames must be -1 or >= 1, got {cfg.base_grid_frames}")
    base_frames = tuple(max(1, int(tg / 2**lv)) for lv in range(cfg.base_grid_levels))
    base_channels = tuple(cfg.base_grid_channels * 2**lv for lv in range(cfg.base_grid_levels))

    # widths: C, floor(C / r), floor(floor(C / r) / r), ...
    c_outs: list[int] = []
    c = cfg.channels
    for i in range(len(cfg.depths)):
        if i > 0:
            c = int(math.floor(c / cfg.channels_reduce))
        if c < 1:
            raise ConfigError(f"stage {i + 1} width collapses to 0 (channels={cfg.channels})")
        if c > MAX_WIDTH:
            raise ConfigError(f"stage {i + 1} width {c} exceeds {MAX_WIDTH}")
        c_outs.append(c)

    # halos, walking backwards from the pixel-wise head (halo 0)
    n = len(cfg.depths)
    halos = [0] * n
    in_halos = [0] * n
    need = 0
    for i in reversed(range(n)):
        need += cfg.depths[i] * (cfg.kernels[i] // 2)
        halos[i] = need
        need = upsample_input_halo(need, cfg.scales[i])
        in_halos[i] = need
    base_halo = in_halos[0] + cfg.stem_kernel // 2

    stages: list[StageArch] = []
    hh, ww = h0, w0
    for i in range(n):
        s = cfg.scales[i]
        hh, ww = hh * s, ww * s
        ce = max(int(cfg.enc_channels * cfg.enc_depth_scale**i), 1)
        hidden = int(c_outs[i] * cfg.exps[i])
        c_in = c_outs[i - 1] if i > 0 else c_outs[0]
        if cfg.depths[i] == 0 and c_in != c_outs[i]:
            raise ConfigError(f"stage {i + 1} changes width but has no blocks")
        if hidden < 1:
            raise ConfigError(f"stage {i + 1} MLP width collapses to 0")
        stages.append(
            StageArch(
                scale=s,
                c_in=c_in,
                c_out=c_outs[i],
                hidden=hidden,
                depth=cfg.depths[i],
                kernel=cfg.kernels[i],
                height=hh,
                width=ww,
                enc_frames=tuple(max(1, int(frames / 2**j)) for j in range(cfg.enc_levels)),
                enc_channels=tuple(ce * 2**j for j in range(cfg.enc_levels)),
                halo=halos[i],
                in_halo=in_halos[i],
            )
        )
    return Arch(
        frames=frames,
        height=height,
        width=width,
        base_height=h0,
        base_width=w0,
        base_frames=base_frames,
        base_channels=base_channels,
        stem_kernel=cfg.stem_kernel,
        base_halo=base_halo,
        stages=tuple(stages),
    )
