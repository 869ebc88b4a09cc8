"""Analytic parameter and MAC counts of a HiNeRV network (no tensors are allocated).

The closed forms are those of hinerv-reference.md §4:

* stem = k²·C_b·C + C;
* a block Cin -> Cout with hidden h: k²·Cin + Cin·h + h·Cout (no biases);
* head = 3·C_last + 3;
* base grid = Σ_l Tg_l·H0·W0·Cg·2^l;
* stage-i local grids = Σ_j T_j·s_i²·C_e,i·2^j; stage-i encoder Linear = (Σ_j C_e,i·2^j + 1)·C1_i.
"""

from __future__ import annotations

from hinerv.config import ModelConfig
from hinerv.model.arch import Arch, derive_arch, padded_size

__all__ = ["COUNT_KEYS", "count_params", "count_params_arch", "macs_per_pixel"]

#: keys of :func:`count_params` and ``HiNeRV.param_counts`` (in this order).
COUNT_KEYS = ("total", "network", "base_grid", "local_grids", "enc_linears")


def count_params_arch(arch: Arch) -> dict[str, int]:
    """Parameter split of a resolved architecture.

    Args:
        arch: from :func:`hinerv.model.arch.derive_arch`.

    Returns:
        ``{"total", "network", "base_grid", "local_grids", "enc_linears"}``; network = stem, blocks
        and head (weights and the stem/head biases).
    """
    ks = arch.stem_kernel
    network = ks * ks * arch.stem_in * arch.stem_out + arch.stem_out
    local = 0
    enc_lin = 0
    for st in arch.stages:
        k2 = st.kernel * st.kernel
        for b in range(st.depth):
            cin = st.c_in if b == 0 else st.c_out
            network += k2 * cin + cin * st.hidden + st.hidden * st.c_out
        local += sum(
            tj * st.scale * st.scale * cj for tj, cj in zip(st.enc_frames, st.enc_channels, strict=True)
        )
        enc_lin += (sum(st.enc_channels) + 1) * st.c_in
    network += 3 * arch.out_channels + 3
    hw0 = arch.base_height * arch.base_width
    base = sum(tl * hw0 * cl for tl, cl in zip(arch.base_frames, arch.base_channels, strict=True))
    return {
        "total": network + base + local + enc_lin,
        "network": network,
        "base_grid": base,
        "local_grids": local,
        "enc_linears": enc_lin,
    }


def count_params(cfg: ModelConfig, frames: int, height: int, width: int) -> dict[str, int]:
    """Exact parameter counts of ``HiNeRV(cfg, frames, *padded_size(height, width, cfg))``.

    Args:
        cfg: model config.
        frames: T >= 1.
        height, width: frame size (rounded up to multiples of ``cfg.upscale`` first).

    Returns:
        Same keys as ``HiNeRV.param_counts()``: total, network, base_grid, local_grids,
        enc_linears.

    Raises:
        ConfigError: impossible geometry or config.
    """
    hp, wp = padded_size(height, width, cfg)
    return count_params_arch(derive_arch(cfg, frames, hp, wp))


def macs_per_pixel(cfg: ModelConfig, frames: int, height: int, width: int) -> float:
    """Decoder multiply-accumulates per output pixel of a frame-mode forward pass.

    Counts every conv and linear layer the way this implementation runs them: the stem and the
    depth-wise convs, both MLP linears of every block and the head at their feature-map sizes,
    plus the encoder Linears applied once per frame to the s_i x s_i local-grid table (not per
    pixel, as the reference does). Bilinear up-sampling, LayerNorm, GELU and the grid
    interpolation are not counted (they are not multiply-accumulate layers).

    Args:
        cfg: model config.
        frames: T >= 1.
        height, width: frame size (padded as :func:`count_params` does); MACs are divided by the
            padded pixel count.

    Returns:
        MACs per output pixel (float).
    """
    hp, wp = padded_size(height, width, cfg)
    arch = derive_arch(cfg, frames, hp, wp)
    ks = arch.stem_kernel
    macs = ks * ks * arch.stem_in * arch.stem_out * arch.base_height * arch.base_width
    for st in arch.stages:
        px = st.height * st.width
        k2 = st.kernel * st.kernel
        for b in range(st.depth):
            cin = st.c_in if b == 0 else st.c_out
            macs += px * (k2 * cin + cin * st.hidden + st.hidden * st.c_out)
        macs += st.scale * st.scale * sum(st.enc_channels) * st.c_in
    macs += 3 * arch.out_channels * hp * wp
    return macs / (hp * wp)
