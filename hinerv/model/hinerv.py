"""The HiNeRV network (Kwan et al., "HiNeRV: Video Compression with Hierarchical Encoding-based
Neural Representation", NeurIPS 2023), re-implemented from hinerv-reference.md §3.

Pipeline for a frame t (all activations channels-last, ``[N, H, W, C]``)::

    base grid (T_g x H0 x W0, resampled in time)  -> stem conv (k x k, bias)
    -> for each stage i: LayerNorm (no affine) -> bilinear x s_i -> + local-grid encoding
                         -> d_i ConvNeXt blocks (no skip on the width-changing first block)
    -> Linear head (bias) -> sigmoid -> RGB

**Frame mode** (``grid=(1, 1)``) runs whole frames with ``F.interpolate`` and no halos. **Patch
mode** computes a ``gh x gw`` tile with a halo at every resolution; everything outside the frame
is held at zero (base gather, stem output, up-sampler weights, encodings and block branches are
masked) so each tile equals the matching crop of the frame-mode output. Halos are the exact
receptive-field bounds of :func:`hinerv.model.arch.derive_arch`.

Every parameter is read through module attributes on every call, so
``torch.func.functional_call`` overrides (pruning masks, fake quantization) take effect.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hinerv import kernels
from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model.arch import Arch, StageArch, derive_arch, padded_size
from hinerv.model.counts import COUNT_KEYS
from hinerv.model.encoding import BaseGrid, LocalGrid
from hinerv.model.layers import (
    ConvNeXtBlock,
    constant,
    conv_nhwc,
    layer_norm,
    linear,
    upsample_add,
    upsample_matrix_cached,
    upsample_patch,
)

__all__ = ["HiNeRV", "Stage", "padded_size"]

_HEAD = kernels.op("head")


def head_torch(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The ``torch`` tier of the RGB head: ``sigmoid(x w^T + b)`` of ``[N, H, W, C]`` as ``[N, 3, H, W]``
    (its matmul on oneDNN where :func:`linear` uses it: 2x faster than ``addmm`` for these 4..12 inputs)."""
    return torch.sigmoid(linear(x, w) + b).permute(0, 3, 1, 2)


class Stage(nn.Module):
    """One up-sampling stage: its local-grid encoder and its ConvNeXt blocks.

    Args:
        frames: T.
        st: the stage's resolved shapes.
    """

    def __init__(self, frames: int, st: StageArch) -> None:
        super().__init__()
        self.enc = LocalGrid(frames, st.scale, st.enc_frames, st.enc_channels, st.c_in)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(st.c_in if b == 0 else st.c_out, st.c_out, st.hidden, st.kernel)
            for b in range(st.depth)
        )


class HiNeRV(nn.Module):
    """HiNeRV decoder network for one video geometry.

    Parameter names (deterministic order): ``base.grids.{l}``, ``stem.{weight,bias}``,
    ``stages.{i}.enc.grids.{j}``, ``stages.{i}.enc.linear.{weight,bias}``,
    ``stages.{i}.blocks.{b}.{dw,fc1,fc2}.weight``, ``head.{weight,bias}``. No buffers.

    Args:
        cfg: architecture hyper-parameters.
        frames: T >= 1.
        height, width: PADDED output size, multiples of ``cfg.upscale`` (see :func:`padded_size`).

    Raises:
        ConfigError: impossible geometry or config.
    """

    def __init__(self, cfg: ModelConfig, frames: int, height: int, width: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.arch: Arch = derive_arch(cfg, frames, height, width)
        a = self.arch
        self.base = BaseGrid(frames, a.base_height, a.base_width, a.base_frames, a.base_channels)
        self.stem = nn.Conv2d(a.stem_in, a.stem_out, a.stem_kernel, padding=a.stem_kernel // 2)
        nn.init.zeros_(self.stem.bias)
        self.stages = nn.ModuleList(Stage(frames, st) for st in a.stages)
        self.head = nn.Linear(a.out_channels, 3)
        nn.init.zeros_(self.head.bias)
        self.norm = cfg.upsample_norm

    # ------------------------------------------------------------------------------ forward
    def forward(self, idx: Tensor, grid: tuple[int, int] = (1, 1)) -> Tensor:
        """Reconstruct frames or tiles.

        Args:
            idx: ``[N, 3]`` int64 rows ``(t, ih, iw)``: frame index in ``[0, T)`` and tile row and
                column in a ``gh x gw`` tiling of the padded frame (0 in frame mode).
            grid: ``(gh, gw)`` tiling; ``(1, 1)`` is frame mode (the fast path).

        Returns:
            ``[N, 3, H / gh, W / gw]`` float32 in (0, 1) (float64 for a float64 model; float32
            under autocast).

        Raises:
            ConfigError: a tiling whose tile size is not a multiple of ``cfg.upscale``.
        """
        if idx.ndim != 2 or idx.shape[1] != 3:
            raise ConfigError(f"idx must have shape [N, 3], got {tuple(idx.shape)}")
        gh, gw = int(grid[0]), int(grid[1])
        if (gh, gw) == (1, 1):
            y = self._forward_frame(idx[:, 0])
        else:
            y = self._forward_patch(idx, gh, gw)
        if y.dtype != torch.float64:
            y = y.float()
        return y.contiguous()

    def _head(self, x: Tensor) -> Tensor:
        """``[N, 3, H, W]`` RGB in (0, 1) from the last stage's ``[N, H, W, C]``: the ``head`` op of
        :mod:`hinerv.kernels` (inference on a float32 CPU tensor by the ``avx512`` kernel, which writes
        the RGB planes in one pass, where it is built; else :func:`head_torch`)."""
        return _HEAD(x, self.head.weight, self.head.bias)  # type: ignore[no-any-return]

    def _forward_frame(self, t: Tensor) -> Tensor:
        x = self.base(t)
        x = conv_nhwc(x, self.stem.weight, self.stem.bias)
        for stage, st in zip(self.stages, self.arch.stages, strict=True):
            if self.norm:
                x = layer_norm(x)
            x = upsample_add(x, st.scale, stage.enc(t))
            for blk in stage.blocks:
                x = blk(x)
        return self._head(x)

    def _forward_patch(self, idx: Tensor, gh: int, gw: int) -> Tensor:
        a = self.arch
        s_tot = self.cfg.upscale
        if gh < 1 or gw < 1 or a.height % gh or a.width % gw:
            raise ConfigError(f"grid {gh}x{gw} does not tile the padded frame {a.width}x{a.height}")
        if (a.height // gh) % s_tot or (a.width // gw) % s_tot:
            raise ConfigError(
                f"tile size {a.width // gw}x{a.height // gh} must be a multiple of the "
                f"up-scaling factor {s_tot}"
            )
        dev = idx.device
        t, ih, iw = idx[:, 0], idx[:, 1], idx[:, 2]
        n = idx.shape[0]
        ph, pw = a.base_height // gh, a.base_width // gw
        hb = a.base_halo

        # base-grid gather with halo, zeros outside the frame (index and mask tables: once per geometry)
        vol = nn.functional.pad(self.base(t), (0, 0, hb, hb, hb, hb))
        rows = constant(_axis_index, gh, ph, hb, dev).index_select(0, ih)
        cols = constant(_axis_index, gw, pw, hb, dev).index_select(0, iw)
        ar = torch.arange(n, device=dev)
        x = vol[ar[:, None, None], rows[:, :, None], cols[:, None, :]]
        x = conv_nhwc(x, self.stem.weight, self.stem.bias)
        x = x * _tile_mask(ih, iw, gh, gw, ph, pw, hb, a.base_height, a.base_width, x.dtype)
        k = a.stem_kernel // 2
        if k:
            x = x[:, k:-k, k:-k]

        h_in, w_in = a.base_height, a.base_width
        next_halos = [st.in_halo for st in a.stages[1:]] + [0]
        for stage, st, keep in zip(self.stages, a.stages, next_halos, strict=True):
            s = st.scale
            if self.norm:
                x = layer_norm(x)
            if s > 1 or st.halo != st.in_halo:
                mh = upsample_matrix_cached(gh, ph, st.in_halo, h_in, s, st.halo, dev, x.dtype)
                mw = upsample_matrix_cached(gw, pw, st.in_halo, w_in, s, st.halo, dev, x.dtype)
                x = upsample_patch(x.contiguous(), mh.index_select(0, ih), mw.index_select(0, iw))
            ph, pw, h_in, w_in = ph * s, pw * s, st.height, st.width
            e = _tile_table(stage.enc(t), ph + 2 * st.halo, pw + 2 * st.halo, st.halo)
            # in the encoding's dtype, which the blocks' outputs share (a no-op cast in each block)
            mask = _tile_mask(ih, iw, gh, gw, ph, pw, st.halo, h_in, w_in, e.dtype)
            x = x + e * mask
            for blk in stage.blocks:
                x = blk(x, mask)
            crop = st.halo - keep
            if crop:
                x = x[:, crop:-crop, crop:-crop]
        return self._head(x)

    # ------------------------------------------------------------------------------ memory
    def activation_bytes(self, grid: tuple[int, int] = (1, 1), dtype_bytes: int = 4) -> int:
        """Estimated bytes of activations one sample (a frame, or a tile with its halos) keeps for backward.

        Per ConvNeXt block: its input, the depth-wise output, the LayerNorm output (``c_in`` each), the
        fc1 output and the GELU output (``hidden`` each) and the block output (``c_out``), over the
        stage's tile with halos; plus the up-sampled and encoded maps of each stage. Measured peaks of
        a training step on CPU are within about 1.5x of this (the loss, gradients and the allocator's
        slack come on top), so callers budget with a margin.
        """
        a = self.arch
        gh, gw = int(grid[0]), int(grid[1])
        ph, pw = a.base_height // gh, a.base_width // gw
        patch = (gh, gw) != (1, 1)
        total = 0
        for st in a.stages:
            ph, pw = ph * st.scale, pw * st.scale
            halo = st.halo if patch else 0
            px = (ph + 2 * halo) * (pw + 2 * halo)
            total += px * 3 * st.c_in  # norm out, up-sampled, + encoding
            for b in range(st.depth):
                cin = st.c_in if b == 0 else st.c_out
                total += px * (3 * cin + 2 * st.hidden + st.c_out)
        return total * dtype_bytes

    # ------------------------------------------------------------------------------ names / counts
    def prunable_names(self) -> list[str]:
        """Names of the prunable weights: stem, depth-wise convs, fc1, fc2 and head weights."""
        out = ["stem.weight"]
        for i, stage in enumerate(self.stages):
            for b in range(len(stage.blocks)):
                out += [f"stages.{i}.blocks.{b}.{m}.weight" for m in ("dw", "fc1", "fc2")]
        out.append("head.weight")
        return out

    def quantizable_names(self) -> list[str]:
        """Names of every parameter with ndim >= 2 (weights, grids, encoder Linear weights)."""
        return [name for name, p in self.named_parameters() if p.ndim >= 2]

    def param_counts(self) -> dict[str, int]:
        """Parameter split by numel: total, network, base_grid, local_grids, enc_linears."""
        out = dict.fromkeys(COUNT_KEYS, 0)
        for name, p in self.named_parameters():
            if name.startswith("base."):
                key = "base_grid"
            elif ".enc.grids." in name:
                key = "local_grids"
            elif ".enc.linear." in name:
                key = "enc_linears"
            else:
                key = "network"
            out[key] += p.numel()
            out["total"] += p.numel()
        return out


def _tile_table(e: Tensor, rows: int, cols: int, halo: int) -> Tensor:
    """Tile ``[N, s, s, C]`` tables over a ``rows x cols`` tile whose first pixel is at global
    ``(i*p - halo, j*p - halo)`` with ``p`` a multiple of s, i.e. entry ``((y mod s), (x mod s))``.

    Returns:
        ``[N, rows, cols, C]``.
    """
    s = e.shape[1]
    if s == 1:
        return e.expand(-1, rows, cols, -1)
    off = (-halo) % s
    reps_h, reps_w = -(-(rows + off) // s), -(-(cols + off) // s)
    return e.repeat(1, reps_h, reps_w, 1)[:, off : off + rows, off : off + cols]


def _axis_index(count: int, p: int, halo: int, device: torch.device) -> Tensor:
    """``[count, p + 2*halo]`` int64: ``i*p + j``, the rows (or columns) of tile i with its halo in a
    frame padded by ``halo`` on each side."""
    return torch.arange(count, device=device)[:, None] * p + torch.arange(p + 2 * halo, device=device)


def _axis_mask(count: int, p: int, halo: int, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[count, p + 2*halo]`` in ``dtype``: 1 where global coordinate ``i*p - halo + j`` of tile i lies
    inside ``[0, size)``, else 0."""
    g = _axis_index(count, p, halo, device) - halo
    return ((g >= 0) & (g < size)).to(dtype)


def _tile_mask(
    ih: Tensor,
    iw: Tensor,
    gh: int,
    gw: int,
    ph: int,
    pw: int,
    halo: int,
    height: int,
    width: int,
    dtype: torch.dtype,
) -> Tensor:
    """``[N, ph + 2*halo, pw + 2*halo, 1]`` in ``dtype``: 1 where the pixel of tile ``(ih, iw)`` (with its
    halo) lies inside the ``height x width`` frame, else 0. The per-axis tables are built once per
    geometry (:func:`~hinerv.model.layers.constant`)."""
    dev = ih.device
    rm = constant(_axis_mask, gh, ph, halo, height, dev, dtype).index_select(0, ih)
    cm = constant(_axis_mask, gw, pw, halo, width, dev, dtype).index_select(0, iw)
    return rm[:, :, None, None] * cm[:, None, :, None]
