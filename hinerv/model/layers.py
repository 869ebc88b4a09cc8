"""Building blocks of the HiNeRV decoder, all on channels-last (NHWC) activations.

Activations are ``[N, H, W, C]`` contiguous tensors, so every Linear acts on the last axis without
permutes and the depth-wise convs run on a ``channels_last`` NCHW view of the same memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hinerv import kernels
from hinerv.kernels import LN_EPS

__all__ = [
    "ConvNeXtBlock",
    "conv_nhwc",
    "dwconv",
    "gelu",
    "layer_norm",
    "linear",
    "linear_gelu",
    "lerp_frames",
    "upsample_add",
    "upsample_frame",
    "upsample_patch",
    "upsample_matrix",
    "upsample_matrix_cached",
    "constant",
]

_LAYER_NORM = kernels.op("layer_norm")
_GELU = kernels.op("gelu")
_DWCONV = kernels.op("dwconv")
_UPSAMPLE_ADD = kernels.op("upsample_add")
_BLOCK_MLP = kernels.op("block_mlp")


def layer_norm(x: Tensor) -> Tensor:
    """LayerNorm over the last (channel) axis without affine parameters, eps 1e-6.

    Args:
        x: ``[..., C]`` float.

    Returns:
        Same shape and dtype (contiguous). On CPU in float32 computed by the ``portable`` kernel
        (:mod:`hinerv.kernels`) where it is available, else by :func:`layer_norm_torch`. All equal
        ``F.layer_norm`` within float rounding.
    """
    return _LAYER_NORM(x)  # type: ignore[no-any-return]


def layer_norm_torch(x: Tensor) -> Tensor:
    """The ``torch`` tier of :func:`layer_norm`: on CPU in float32 :class:`_LayerNormFn` (or its forward
    alone without a gradient), elsewhere (and when compiling) ``F.layer_norm``."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.compiler.is_compiling():
        if not (torch.is_grad_enabled() and x.requires_grad):
            return _ln_stats(x)[0]
        return _LayerNormFn.apply(x)  # type: ignore[no-any-return]
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


def _ln_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(normalised x, mean, rstd)``, the last two ``[..., 1]``."""
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    rstd = torch.mean(xc * xc, -1, keepdim=True).add_(LN_EPS).rsqrt_()
    return xc.mul_(rstd), mean, rstd


class _LayerNormFn(torch.autograd.Function):
    """Channel LayerNorm whose forward is a few whole-tensor reductions and whose backward is ATen's.

    ATen's CPU LayerNorm forward walks the rows one at a time, which is slow for this network's
    narrow rows (4..32 channels over 10^4..10^5 pixels): measured on one thread, [1, 288, 384, 8]
    forward + backward 6.5 -> 3.6 ms, [1, 144, 192, 32] 2.1 -> 1.4 ms. The backward takes the saved
    mean and 1/std to ATen's own ``native_layer_norm_backward``.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # type: ignore[override]
        y, mean, rstd = _ln_stats(x)
        ctx.save_for_backward(x, mean, rstd)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, gy: Tensor) -> Tensor:  # type: ignore[override]
        x, mean, rstd = ctx.saved_tensors  # type: ignore[attr-defined]
        gx, _, _ = torch.ops.aten.native_layer_norm_backward(
            gy.contiguous(), x, [x.shape[-1]], mean, rstd, None, None, [True, False, False]
        )
        return gx


#: oneDNN's dense linear (``torch.ops.mkldnn._linear_pointwise``), when this torch build has it
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` takes the oneDNN path: float32 CPU tensors, no CPU autocast, not compiling."""
    return (
        _ONEDNN_LINEAR is not None
        and not torch.compiler.is_compiling()
        and torch.backends.mkldnn.is_available()
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def _onednn_linear(x: Tensor, weight: Tensor, act: str = "none") -> Tensor:
    """``act(x @ weight.T)`` by oneDNN; x ``[M, K]``, weight ``[N, K]`` (any strides); act "none" or
    "gelu" (the exact erf GELU)."""
    assert _ONEDNN_LINEAR is not None
    return _ONEDNN_LINEAR(x, weight, None, act, [], "none" if act == "gelu" else "")


class _LinearFn(torch.autograd.Function):
    """``x @ weight.T`` without bias; forward and input gradient by oneDNN, weight gradient by ``mm``.

    On CPU, oneDNN's matmul is faster than the BLAS ``mm`` behind ``F.linear`` for this network's
    skinny shapes (tens to hundreds of channels, 10^4..10^5 rows), except for the weight gradient
    (a long reduction), which stays on ``mm``. The sums are the same products in (possibly) another
    order: results agree with ``F.linear`` within float rounding.
    """

    @staticmethod
    def forward(x2: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        return _onednn_linear(x2, weight)

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, gy: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x2, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        gy = gy.contiguous()
        gx = _onednn_linear(gy, weight.t()) if ctx.needs_input_grad[0] else None
        gw = _weight_grad(gy, x2) if ctx.needs_input_grad[1] else None
        return gx, gw


def _weight_grad(gy: Tensor, x2: Tensor) -> Tensor:
    """``gy.T @ x2`` (``[M, N]``, ``[M, K]`` -> ``[N, K]``), the weight gradient of a linear layer.

    CPU BLAS is up to 5x slower at this long reduction when the result is taller than wide and narrow
    (an MLP's expanding fc1: N = 4K, K <= 32); computing the transpose ``x2.T @ gy`` is then faster.
    Measured on one thread: [27648, 32] x [27648, 8] 1.31 -> 0.23 ms, [110592, 8] x [110592, 4] 1.08
    -> 0.55 ms; wider layers are compute-bound and keep the plain product.
    """
    if gy.shape[1] > x2.shape[1] and x2.shape[1] <= 32:
        return x2.t().mm(gy).t().contiguous()
    return gy.t().mm(x2)


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """``F.linear(x, weight)`` (no bias) over the last axis, on oneDNN for float32 CPU tensors.

    Args:
        x: ``[..., K]`` float.
        weight: ``[N, K]``.

    Returns:
        ``[..., N]``, equal to ``F.linear(x, weight)`` within float rounding (exactly that elsewhere and
        when compiling).
    """
    if not _use_onednn(x, weight):
        return F.linear(x, weight)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    return _LinearFn.apply(x2, weight).view(*x.shape[:-1], weight.shape[0])


def gelu(x: Tensor) -> Tensor:
    """The exact (erf) GELU, ``F.gelu(x)``.

    Args:
        x: any float tensor.

    Returns:
        Same shape. For float32 CPU tensors computed by the ``portable`` kernel (:mod:`hinerv.kernels`)
        where it is available (with a gradient its forward also writes GELU'(x) for the backward), else by
        ``F.gelu``. Equal to ``F.gelu`` within float rounding.
    """
    return _GELU(x)  # type: ignore[no-any-return]


def linear_gelu(x: Tensor, weight: Tensor) -> Tensor:
    """``F.gelu(F.linear(x, weight))`` (exact erf GELU), fused into the matmul when no gradient is needed.

    Args:
        x: ``[..., K]`` float.
        weight: ``[N, K]``.

    Returns:
        ``[..., N]``; equal to the unfused composition within float rounding.
    """
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if needs_grad or not _use_onednn(x, weight):
        return gelu(linear(x, weight))
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    return _onednn_linear(x2, weight, "gelu").view(*x.shape[:-1], weight.shape[0])


def conv_nhwc(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int = 1) -> Tensor:
    """'same'-padded 2-D convolution of an NHWC tensor (zero padding, stride 1, odd kernel).

    Args:
        x: ``[N, H, W, Cin]`` float, contiguous.
        weight: ``[Cout, Cin / groups, k, k]``.
        bias: ``[Cout]`` or None.
        groups: conv groups (``Cin`` for depth-wise).

    Returns:
        ``[N, H, W, Cout]`` (channels-last memory).
    """
    k = weight.shape[-1]
    y = F.conv2d(x.permute(0, 3, 1, 2), weight, bias, 1, k // 2, 1, groups)
    return y.permute(0, 2, 3, 1)


def dwconv(x: Tensor, weight: Tensor) -> Tensor:
    """Depth-wise 'same'-padded conv of NHWC frames (zero padding, stride 1, odd kernel).

    Args:
        x: ``[N, H, W, C]``.
        weight: ``[C, 1, k, k]``.

    Returns:
        ``[N, H, W, C]``: ``conv_nhwc(x, weight, None, groups=C)``. For float32 CPU tensors by the
        ``avx512`` kernels where they are built (:mod:`hinerv.kernels.avx512`), else by :func:`dwconv_torch`.
    """
    return _DWCONV(x, weight)  # type: ignore[no-any-return]


def dwconv_torch(x: Tensor, weight: Tensor) -> Tensor:
    """The ``torch`` tier of :func:`dwconv`: :func:`conv_nhwc` with ``C`` groups."""
    return conv_nhwc(x, weight, None, groups=x.shape[-1])


_Built = TypeVar("_Built")


def constant(build: Callable[..., _Built], *key: object) -> _Built:
    """``build(*key)``, built once per key and kept (eagerly; traced by ``torch.compile`` every time).

    For the index, weight and mask tensors that depend only on the geometry (ints, a device, a dtype),
    which the model (and the MS-SSIM of the loss, :mod:`hinerv.metrics`) would otherwise rebuild with a
    dozen small ops on every call; ``build`` returns a tensor or a tuple of tensors. They are built
    outside inference mode (so that a training step may save them for backward) and must never be
    modified in place; the values are those ``build`` computes, so results do not change.
    """
    if torch.compiler.is_compiling():
        return build(*key)
    return _constant(build, *key)


@functools.lru_cache(maxsize=256)
def _constant(build: Callable[..., Any], *key: object) -> Any:
    with torch.inference_mode(False), torch.no_grad():
        return build(*key)


def _lerp_coefficients(n_src: int, frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[frames, 2]`` int64 source slices (i0, i1) of every frame (see :func:`lerp_frames`)."""
    return _lerp_terms(torch.arange(frames, device=device), n_src, frames, dtype)[0]


def _lerp_weights(n_src: int, frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[frames, 1]`` weights of slice i1 of every frame, in ``dtype``."""
    return _lerp_terms(torch.arange(frames, device=device), n_src, frames, dtype)[1]


def _lerp_terms(t: Tensor, n_src: int, frames: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``([N, 2] int64 (i0, i1), [N, 1] weight of i1 in dtype)`` of frames ``t``."""
    src = ((t.to(torch.float64) + 0.5) * (n_src / frames) - 0.5).clamp(0.0, n_src - 1)
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=n_src - 1)
    w1 = (src - i0.to(torch.float64)).to(dtype).unsqueeze(1)
    return torch.stack([i0, i1], dim=1), w1


def lerp_frames(table: Tensor, t: Tensor, frames: int) -> Tensor:
    """Linear interpolation of a temporal table at frame indices (align_corners=False, clamped).

    Row ``t`` of the result is the table resampled from ``L`` to ``frames`` slices, i.e. read at
    the source coordinate ``clamp((t + 0.5) * L / frames - 0.5, 0, L - 1)``; this is what
    ``F.interpolate(mode="linear", align_corners=False)`` computes, but only for the rows asked.

    Args:
        table: ``[L, D]`` float (L >= 1 slices).
        t: ``[N]`` int64 frame indices in ``[0, frames)``.
        frames: T, the temporal length being resampled to.

    Returns:
        ``[N, D]`` in the table's dtype.
    """
    n_src = table.shape[0]
    if n_src == frames:
        return table.index_select(0, t)
    # the coefficients of all frames are built once per geometry: per call, two small gathers
    key = (n_src, frames, table.device, table.dtype)
    pair = constant(_lerp_coefficients, *key).index_select(0, t)
    w1 = constant(_lerp_weights, *key).index_select(0, t)
    return torch.lerp(table.index_select(0, pair[:, 0]), table.index_select(0, pair[:, 1]), w1)


def upsample_frame(x: Tensor, scale: int) -> Tensor:
    """Bilinear (align_corners=False) up-sampling of whole NHWC frames by an integer factor.

    Args:
        x: ``[N, H, W, C]``.
        scale: integer factor s >= 1.

    Returns:
        ``[N, s*H, s*W, C]`` (channels-last memory).
    """
    if scale == 1:
        return x
    n, h, w, _ = x.shape
    y = F.interpolate(
        x.permute(0, 3, 1, 2), size=(h * scale, w * scale), mode="bilinear", align_corners=False
    )
    return y.permute(0, 2, 3, 1)


def upsample_add(x: Tensor, scale: int, table: Tensor) -> Tensor:
    """Bilinear up-sampling of whole NHWC frames plus a stage's sub-pixel table (frame mode).

    Args:
        x: ``[N, H, W, C]``.
        scale: integer factor s >= 1.
        table: ``[N, s, s, C]``; entry (r, c) is added to every output pixel with
            ``(y mod s, x mod s) == (r, c)``.

    Returns:
        ``[N, s*H, s*W, C]`` contiguous: ``upsample_frame(x, s)`` plus the tiled table. On CPU in float32
        one pass of the ``portable`` kernel (:mod:`hinerv.kernels`) where it is available, else
        :func:`upsample_add_torch`; equal within float rounding.
    """
    return _UPSAMPLE_ADD(x, scale, table)  # type: ignore[no-any-return]


def upsample_add_torch(x: Tensor, scale: int, table: Tensor) -> Tensor:
    """The ``torch`` tier of :func:`upsample_add`: :func:`upsample_frame` plus the tiled table."""
    y = upsample_frame(x, scale).contiguous()
    n, h, w, c = y.shape
    # the s x s table repeated along a whole row band of cells, added to every band: one broadcast over
    # the outer axis (its backward is a plain outer-axis sum)
    band = table.view(n, 1, scale, 1, scale, c).expand(n, 1, scale, w // scale, scale, c)
    return (y.view(n, h // scale, scale * w * c) + band.reshape(n, 1, scale * w * c)).view(n, h, w, c)


def upsample_matrix(
    count: int,
    p_in: int,
    halo_in: int,
    size_in: int,
    scale: int,
    halo_out: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Per-tile 1-D bilinear interpolation matrices built from global pixel coordinates.

    Tile ``i`` covers input pixels ``[i*p_in - halo_in, (i+1)*p_in + halo_in)`` and output pixels
    ``[i*p_out - halo_out, (i+1)*p_out + halo_out)`` with ``p_out = scale * p_in``. The weight of
    input pixel g for output pixel o is ``max(0, 1 - |u - g|)`` with
    ``u = clamp((o + 0.5) / scale - 0.5, 0, size_in - 1)``, times "o lies inside the frame", so
    the result equals a crop of the full-frame bilinear resize, outside-frame pixels being 0.

    Args:
        count: number of tiles along the axis.
        p_in: tile size at the input resolution.
        halo_in, halo_out: halos at the input and output resolutions.
        size_in: full size of the axis at the input resolution.
        scale: integer up-sampling factor.
        device: where to build the matrices.
        dtype: the result's dtype (computed in float64, then cast).

    Returns:
        ``[count, p_out + 2*halo_out, p_in + 2*halo_in]`` in ``dtype``.
    """
    p_out = p_in * scale
    i = torch.arange(count, device=device, dtype=torch.float64)[:, None]
    o = i * p_out - halo_out + torch.arange(p_out + 2 * halo_out, device=device)
    g = i * p_in - halo_in + torch.arange(p_in + 2 * halo_in, device=device)
    u = ((o + 0.5) / scale - 0.5).clamp(0.0, size_in - 1)
    w = (1.0 - (u[:, :, None] - g[:, None, :]).abs()).clamp_min(0.0)
    inside = (o >= 0) & (o < size_in * scale)
    return (w * inside[:, :, None]).to(dtype)


def upsample_matrix_cached(
    count: int,
    p_in: int,
    halo_in: int,
    size_in: int,
    scale: int,
    halo_out: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """:func:`upsample_matrix` cast to ``dtype``, built once per geometry (:func:`constant`)."""
    return constant(upsample_matrix, count, p_in, halo_in, size_in, scale, halo_out, device, dtype)


def upsample_patch(x: Tensor, mat_h: Tensor, mat_w: Tensor) -> Tensor:
    """Apply per-sample separable interpolation matrices to NHWC tiles (H first, then W).

    Args:
        x: ``[N, Hi, Wi, C]``.
        mat_h: ``[N, Ho, Hi]``.
        mat_w: ``[N, Wo, Wi]``.

    Returns:
        ``[N, Ho, Wo, C]``.
    """
    n, hi, wi, c = x.shape
    y = torch.matmul(mat_h.to(x.dtype), x.reshape(n, hi, wi * c)).view(n, -1, wi, c)
    return torch.matmul(mat_w.to(x.dtype).unsqueeze(1), y)


def block_mlp_torch(
    z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
) -> Tensor:
    """The ``torch`` tier of a block's ``[residual +] [mask *] fc2(GELU(fc1(LN(z))))``, by the separate
    layers (:func:`layer_norm`, :func:`linear_gelu`, :func:`linear`).

    Args:
        z: ``[N, H, W, K]``, the depth-wise conv's output.
        w1: ``[Hd, K]``; w2: ``[C, Hd]``.
        residual: ``[N, H, W, C]`` or None.
        mask: ``[N, H, W, 1]`` bool in-frame mask or None.

    Returns:
        ``[N, H, W, C]``.
    """
    y = linear(linear_gelu(layer_norm(z), w1), w2)
    if mask is not None:
        y = y.mul_(mask.to(y.dtype))  # in place: fc2's backward does not need its output
    if residual is None:
        return y
    return y.add_(residual) if y.dtype == residual.dtype else residual + y


class ConvNeXtBlock(nn.Module):
    """HiNeRV's ConvNeXt-style block (reference §3.4c), no biases, no affine norm.

    ``y = fc2(GELU(fc1(LN(dwconv(x)))))``; the output is ``x + y`` when the width is unchanged
    and ``y`` alone for the width-changing first block of a stage (no skip connection there).

    Args:
        c_in: input width (the depth-wise conv runs at this width).
        c_out: output width.
        hidden: MLP hidden width.
        kernel: odd depth-wise kernel size.

    Raises:
        KernelError: a configuration a registered kernel does not support (an even or non-positive
            kernel, an empty width; :func:`hinerv.kernels.require`).

    The forward runs the ``dwconv`` and ``block_mlp`` ops of :mod:`hinerv.kernels`: the fused MLP kernel
    where the ``avx512`` tier applies, else :func:`block_mlp_torch`.
    """

    def __init__(self, c_in: int, c_out: int, hidden: int, kernel: int) -> None:
        super().__init__()
        kernels.require("dwconv", kernel=kernel)
        kernels.require("block_mlp", c_in=c_in, hidden=hidden, c_out=c_out)
        self.dw = nn.Conv2d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in, bias=False)
        self.fc1 = nn.Linear(c_in, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, c_out, bias=False)
        self.residual = c_in == c_out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Run the block.

        Args:
            x: ``[N, H, W, c_in]`` float.
            mask: ``[N, H, W, 1]`` in-frame mask (patch mode) or None (frame mode).

        Returns:
            ``[N, H, W, c_out]``.
        """
        z = dwconv(x, self.dw.weight)
        return _BLOCK_MLP(z, self.fc1.weight, self.fc2.weight, x if self.residual else None, mask)  # type: ignore[no-any-return]
