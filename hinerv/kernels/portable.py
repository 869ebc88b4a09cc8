"""The ``portable`` tier: ops on the C++ kernels every build of :mod:`hinerv.fused` has.

Each function returns None where it does not apply (not float32 CPU tensors, or no kernels built here),
so that the registry (:mod:`hinerv.kernels`) runs the ``torch`` implementation instead; otherwise it
computes what that implementation computes, equal within float rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hinerv import fused
from hinerv.kernels import LN_EPS, cpu_float32

__all__ = ["gelu", "layer_norm", "ssim_terms", "upsample_add"]

_Ctx = torch.autograd.function.FunctionCtx


def _grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def layer_norm(x: Tensor) -> Tensor | None:
    """LayerNorm over the last axis without affine parameters (eps :data:`LN_EPS`); ``x`` ``[..., C]``."""
    if not cpu_float32(x):
        return None
    k = fused.kernels()
    if k is None:
        return None
    if not _grad(x):
        return k.layer_norm_forward(x.contiguous(), LN_EPS)[0]  # type: ignore[no-any-return]
    return _FusedLayerNormFn.apply(x)  # type: ignore[no-any-return]


class _FusedLayerNormFn(torch.autograd.Function):
    """:func:`layer_norm` with a gradient; keeps the output and ``rstd`` (not the input) for the backward."""

    @staticmethod
    def forward(ctx: _Ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        k = fused.kernels()
        assert k is not None
        y, rstd = k.layer_norm_forward(x.contiguous(), LN_EPS)
        ctx.save_for_backward(y, rstd)
        return y  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: _Ctx, gy: Tensor) -> Tensor:  # type: ignore[override]
        y, rstd = ctx.saved_tensors  # type: ignore[attr-defined]
        k = fused.kernels()
        assert k is not None
        return k.layer_norm_backward(gy.contiguous(), y, rstd)  # type: ignore[no-any-return]


def gelu(x: Tensor) -> Tensor | None:
    """The exact (erf) GELU; with a gradient the forward also writes GELU'(x), which the backward
    multiplies by (instead of keeping x and re-evaluating erf and exp)."""
    if not cpu_float32(x):
        return None
    k = fused.kernels()
    if k is None:
        return None
    if _grad(x):
        return _FusedGELUFn.apply(x)  # type: ignore[no-any-return]
    return k.gelu_forward(x.contiguous(), False)[0]  # type: ignore[no-any-return]


class _FusedGELUFn(torch.autograd.Function):
    """:func:`gelu` with a gradient; keeps GELU'(x) for the backward."""

    @staticmethod
    def forward(ctx: _Ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        k = fused.kernels()
        assert k is not None
        y, d = k.gelu_forward(x.contiguous(), True)
        ctx.save_for_backward(d)
        return y  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: _Ctx, gy: Tensor) -> Tensor:  # type: ignore[override]
        (d,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return gy * d


def upsample_add(x: Tensor, scale: int, table: Tensor) -> Tensor | None:
    """Bilinear x ``scale`` up-sampling of NHWC frames ``x`` ``[N, H, W, C]`` plus the ``[N, s, s, C]``
    sub-pixel ``table``, in one pass (see :func:`hinerv.model.layers.upsample_add`)."""
    if not cpu_float32(x, table):
        return None
    k = fused.kernels()
    if k is None:
        return None
    if _grad(x, table):
        return _UpsampleAddFn.apply(x, scale, table)  # type: ignore[no-any-return]
    return k.upsample_add(x.contiguous(), scale, table.contiguous())  # type: ignore[no-any-return]


class _UpsampleAddFn(torch.autograd.Function):
    """:func:`upsample_add` with a gradient; the backward is ATen's bilinear backward and a band sum."""

    @staticmethod
    def forward(ctx: _Ctx, x: Tensor, scale: int, table: Tensor) -> Tensor:  # type: ignore[override]
        k = fused.kernels()
        assert k is not None
        ctx.in_size = tuple(x.shape[1:3])  # type: ignore[attr-defined]
        ctx.scale = scale  # type: ignore[attr-defined]
        return k.upsample_add(x.contiguous(), scale, table.contiguous())  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: _Ctx, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        s = ctx.scale  # type: ignore[attr-defined]
        h, w = ctx.in_size  # type: ignore[attr-defined]
        n, oh, ow, c = g.shape
        gx = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.upsample_bilinear2d_backward(
                g.permute(0, 3, 1, 2), [oh, ow], [n, c, h, w], False, None, None
            ).permute(0, 2, 3, 1)
        gt = None
        if ctx.needs_input_grad[2]:
            # over the row bands (one contiguous outer-axis sum), then over the cells of a band
            gt = g.reshape(n, oh // s, s * ow * c).sum(1).view(n, s, ow // s, s, c).sum(2)
        return gx, None, gt


def ssim_terms(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor] | None:
    """Per-plane mean SSIM and contrast-structure terms ``[N, C]`` of ``x`` against a constant ``y``
    (``[N, C, H, W]``), differentiable in ``x`` (see :func:`hinerv.metrics.ssim_terms_torch`)."""
    if not cpu_float32(x, y) or fused.kernels() is None:
        return None
    return _FusedSSIMTerms.apply(x, y, win.to(torch.float32), c1, c2)  # type: ignore[no-any-return]


class _FusedSSIMTerms(torch.autograd.Function):
    """:func:`ssim_terms`: each output row of the five moment maps is made and consumed in cache, and
    the backward's three adjoint blurs run in one pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: _Ctx, x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float
    ) -> tuple[Tensor, Tensor]:
        k = fused.kernels()
        assert k is not None
        x, y, win = x.contiguous(), y.contiguous(), win.contiguous()
        s, cs, maps = k.ssim_forward(x, y, win, c1, c2)
        ctx.save_for_backward(x, y, win, maps)
        return s, cs

    @staticmethod
    def backward(ctx: _Ctx, g_s: Tensor, g_cs: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, y, win, maps = ctx.saved_tensors  # type: ignore[attr-defined]
        k = fused.kernels()
        assert k is not None
        return k.ssim_backward(x, y, win, maps, g_s, g_cs), None, None, None, None
