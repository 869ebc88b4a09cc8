"""The ``portable`` tier: ops on the C++ kernels every build of :mod:`hinerv.fused` has.

Each function returns None where it does not apply (not float32 CPU tensors, or no kernels built here),
so that the registry (:mod:`hinerv.kernels`) runs the ``torch`` implementation instead; otherwise it
computes what that implementation computes, equal within float rounding, through the custom ops of
:mod:`hinerv.kernels.ops` (eagerly their kernels, under ``torch.compile`` the ops themselves).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hinerv.kernels import built, cpu_float32, ops

__all__ = ["gelu", "layer_norm", "ssim_terms", "upsample_add"]


def layer_norm(x: Tensor) -> Tensor | None:
    """LayerNorm over the last axis without affine parameters (eps :data:`LN_EPS`); ``x`` ``[..., C]``."""
    if not cpu_float32(x) or not built("portable"):
        return None
    return ops.layer_norm(x)


def gelu(x: Tensor) -> Tensor | None:
    """The exact (erf) GELU; with a gradient the forward also writes GELU'(x), which the backward
    multiplies by (instead of keeping x and re-evaluating erf and exp)."""
    if not cpu_float32(x) or not built("portable"):
        return None
    return ops.gelu(x)


def upsample_add(x: Tensor, scale: int, table: Tensor) -> Tensor | None:
    """Bilinear x ``scale`` up-sampling of NHWC frames ``x`` ``[N, H, W, C]`` plus the ``[N, s, s, C]``
    sub-pixel ``table``, in one pass (see :func:`hinerv.model.layers.upsample_add`)."""
    if not cpu_float32(x, table) or not built("portable"):
        return None
    return ops.upsample_add(x, scale, table)


def ssim_terms(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor] | None:
    """Per-plane mean SSIM and contrast-structure terms ``[N, C]`` of ``x`` against a constant ``y``
    (``[N, C, H, W]``), differentiable in ``x`` (see :func:`hinerv.metrics.ssim_terms_torch`): each
    output row of the five moment maps is made and consumed in cache, and the backward's three adjoint
    blurs run in one pass."""
    if not cpu_float32(x, y) or not built("portable"):
        return None
    return ops.ssim_terms(x, y, win.to(torch.float32), c1, c2)
