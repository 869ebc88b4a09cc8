"""The ``avx512`` tier: ops on the register-tiled kernels of AVX-512 builds (:func:`fused.avx512_kernels`).

Each function returns None where it does not apply (not float32 CPU tensors, or no AVX-512 build here),
so that the registry (:mod:`hinerv.kernels`) runs the next tier down; otherwise it computes what that
implementation computes, equal within float rounding. Reductions run in a fixed order: results do not
depend on the thread count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hinerv import fused
from hinerv.kernels import LN_EPS, cpu_float32

__all__ = ["block_mlp", "dwconv", "head"]

_Ctx = torch.autograd.function.FunctionCtx


def _grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def dwconv(x: Tensor, weight: Tensor) -> Tensor | None:
    """Depth-wise 'same' conv of NHWC frames ``x`` ``[N, H, W, C]`` by ``weight`` ``[C, 1, k, k]`` (odd k).
    The forward makes the same sums in the same order as oneDNN's, without its ~35 us of set-up a call."""
    if not (cpu_float32(x, weight) and x.ndim == 4):
        return None
    k = fused.avx512_kernels()
    if k is None:
        return None
    if _grad(x, weight):
        return _DWConvFn.apply(x, weight)  # type: ignore[no-any-return]
    return k.dwconv_forward(x.contiguous(), weight.contiguous())  # type: ignore[no-any-return]


class _DWConvFn(torch.autograd.Function):
    """:func:`dwconv` with a gradient (the weight gradient summed per image row, the rows added in order)."""

    @staticmethod
    def forward(ctx: _Ctx, x: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        k = fused.avx512_kernels()
        assert k is not None
        xc = x.contiguous()
        ctx.save_for_backward(xc, weight)
        return k.dwconv_forward(xc, weight.contiguous())  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: _Ctx, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        k = fused.avx512_kernels()
        assert k is not None
        g = g.contiguous()
        # the input gradient is the conv of g with the kernel turned by 180 degrees ('same' padding, odd k)
        gx = k.dwconv_forward(g, weight.flip(-1, -2).contiguous()) if ctx.needs_input_grad[0] else None
        gw = k.dwconv_weight_grad(x, g, weight.shape[-1]) if ctx.needs_input_grad[1] else None
        return gx, gw


def block_mlp(
    z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
) -> Tensor | None:
    """A ConvNeXt block's ``[residual +] [mask *] fc2(GELU(fc1(LN(z))))`` over blocks of 48 rows whose
    hidden activations stay in cache.

    Args:
        z: ``[N, H, W, K]``, the depth-wise conv's output.
        w1: ``[Hd, K]``; w2: ``[C, Hd]``.
        residual: ``[N, H, W, C]`` or None.
        mask: ``[N, H, W, 1]`` bool in-frame mask or None.

    Returns:
        ``[N, H, W, C]`` contiguous (None where the kernel does not apply); with a gradient through
        :class:`_FusedMLPFn`.
    """
    if not cpu_float32(z, w1, w2, residual):
        return None
    k = fused.avx512_kernels()
    if k is None:
        return None
    m = mask.reshape(-1).to(torch.float32) if mask is not None else None
    if _grad(z, w1, w2, residual):
        return _FusedMLPFn.apply(z, w1, w2, residual, m)  # type: ignore[no-any-return]
    r = residual.contiguous() if residual is not None else None
    return k.mlp_forward(z.contiguous(), w1.contiguous(), w2.contiguous(), r, m, True, LN_EPS, False)[0]  # type: ignore[no-any-return]


class _FusedMLPFn(torch.autograd.Function):
    """:func:`block_mlp` with a gradient. Keeps the LayerNorm output and ``rstd``, the GELU output and
    GELU'(fc1's output), as the unfused layers do; the backward (both input-gradient products, the GELU
    and LayerNorm backward and both weight gradients) is one kernel pass over row blocks."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: _Ctx, z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
    ) -> Tensor:
        k = fused.avx512_kernels()
        assert k is not None
        w1c, w2c = w1.contiguous(), w2.contiguous()
        r = residual.contiguous() if residual is not None else None
        out, xn, rstd, y, d = k.mlp_forward(z.contiguous(), w1c, w2c, r, mask, True, LN_EPS, True)
        ctx.save_for_backward(w1c, w2c, xn, rstd, y, d, mask)
        ctx.residual = residual is not None  # type: ignore[attr-defined]
        return out  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: _Ctx, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        w1, w2, xn, rstd, y, d, mask = ctx.saved_tensors  # type: ignore[attr-defined]
        k = fused.avx512_kernels()
        assert k is not None
        g = g.contiguous()
        gm = g if mask is None else g * mask.view(*g.shape[:-1], 1)
        gz, gw1, gw2 = k.mlp_backward(gm, w1, w2, xn, rstd, y, d, True)
        g_res = g if ctx.residual else None  # type: ignore[attr-defined]
        return gz, gw1, gw2, g_res, None


def head(x: Tensor, w: Tensor, b: Tensor) -> Tensor | None:
    """The RGB head for inference, ``sigmoid(w x + b)`` of ``x`` ``[N, H, W, C]`` written as ``[N, 3, H, W]``
    planes in one pass; None with a gradient (inference kernel only)."""
    if _grad(x, w, b) or not cpu_float32(x, w, b):
        return None
    k = fused.avx512_kernels()
    if k is None:
        return None
    return k.head_forward(x.contiguous(), w.contiguous(), b.contiguous())  # type: ignore[no-any-return]
