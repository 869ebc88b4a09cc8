"""The ``avx512`` tier: ops on the register-tiled kernels of AVX-512 builds (:func:`fused.avx512_kernels`).

Each function returns None where it does not apply (not float32 CPU tensors, or no AVX-512 build here),
so that the registry (:mod:`hinerv.kernels`) runs the next tier down; otherwise it computes what that
implementation computes, equal within float rounding, through the custom ops of :mod:`hinerv.kernels.ops`
(eagerly their kernels, under ``torch.compile`` the ops themselves). Reductions run in a fixed order:
results do not depend on the thread count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hinerv.kernels import built, cpu_float32, ops

__all__ = ["block_mlp", "dwconv", "head"]


def dwconv(x: Tensor, weight: Tensor) -> Tensor | None:
    """Depth-wise 'same' conv of NHWC frames ``x`` ``[N, H, W, C]`` by ``weight`` ``[C, 1, k, k]`` (odd k).
    The forward makes the same sums in the same order as oneDNN's, without its ~35 us of set-up a call;
    the weight gradient is summed per image row, the rows added in order."""
    if not (cpu_float32(x, weight) and x.ndim == 4) or not built("avx512"):
        return None
    return ops.dwconv(x, weight)


def block_mlp(
    z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
) -> Tensor | None:
    """A ConvNeXt block's ``[residual +] [mask *] fc2(GELU(fc1(LN(z))))`` over blocks of 48 rows whose
    hidden activations stay in cache (:func:`hinerv.kernels.ops.block_mlp`).

    Args:
        z: ``[N, H, W, K]``, the depth-wise conv's output.
        w1: ``[Hd, K]``; w2: ``[C, Hd]``.
        residual: ``[N, H, W, C]`` or None.
        mask: ``[N, H, W, 1]`` bool in-frame mask or None.

    Returns:
        ``[N, H, W, C]`` contiguous (None where the kernel does not apply). With a gradient the forward
        keeps the LayerNorm output and ``rstd``, the GELU output and GELU'(fc1's output), as the unfused
        layers do, and the backward (both input-gradient products, the GELU and LayerNorm backward and
        both weight gradients) is one kernel pass over row blocks.
    """
    if not cpu_float32(z, w1, w2, residual) or not built("avx512"):
        return None
    return ops.block_mlp(z, w1, w2, residual, mask)


def head(x: Tensor, w: Tensor, b: Tensor) -> Tensor | None:
    """The RGB head for inference, ``sigmoid(w x + b)`` of ``x`` ``[N, H, W, C]`` written as ``[N, 3, H, W]``
    planes in one pass; None with a gradient (inference kernel only)."""
    if _grad(x, w, b) or not cpu_float32(x, w, b) or not built("avx512"):
        return None
    return ops.head(x, w, b)


def _grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
