"""Symmetric uniform quantization of weights and grids, and Quant-Noise for QAT.

Every tensor with ``ndim >= 2`` (conv / linear weights, feature grids) is quantized as

    delta = fp16(max|w| / (2**(b-1) - 1))          one delta per slice (see :func:`scale_axes_for`)
    q     = clamp(round(w / delta), -2**(b-1), 2**(b-1) - 1)      integers, what the bitstream carries
    w_hat = q * delta                                              in float32, from the fp16 delta

Differences from the reference implementation (hinerv-reference.md §7.2, pitfall 6):

* ``delta`` is rounded to float16 *before* quantizing, so the encoder's preview, the QAT forward and the
  decoder all use bit-identical scales (the reference quantizes with an fp32 delta and decodes with fp16).
* No ``+1e-6`` on delta (it distorts grids whose values are ~1e-4); an all-zero slice gets delta = 1.
* QAT runs at the bit depth that will be coded, not always at 6 bits.

The per-slice axis rule is selectable: ``"reference"`` reproduces the authors' rule (reduce over the
longest axis longer than 20); ``"channel"`` uses one scale per output channel for layer weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from hinerv.errors import ConfigError

__all__ = [
    "ScaleMode",
    "scale_axes_for",
    "compute_scales",
    "quantize",
    "dequantize",
    "fake_quant",
    "quant_noise",
]

ScaleMode = Literal["reference", "channel", "tensor"]


def scale_axes_for(
    shape: Sequence[int], *, mode: ScaleMode = "reference", layer: bool = True
) -> tuple[int, ...]:
    """The axes along which the quantization scale varies (one scale per index combination).

    Args:
        shape: tensor shape (``len >= 2``).
        mode: ``"reference"`` (reduce max over the longest axis of length > 20; every other axis keeps
            its own scales; a single scale when no axis qualifies), ``"channel"`` (layer weights: one scale
            per output channel, axis 0; grids fall back to the reference rule), ``"tensor"`` (one scale).
        layer: True for conv / linear weights, False for feature grids.

    Returns:
        Sorted tuple of axes; ``()`` means one scale for the whole tensor.
    """
    nd = len(shape)
    if mode == "tensor":
        return ()
    if mode == "channel" and layer:
        return (0,)
    if mode not in ("reference", "channel"):
        raise ConfigError(f"unknown scale mode {mode!r} (choose reference, channel or tensor)")
    candidates = [a for a in range(nd) if shape[a] > 20]
    if not candidates:
        return ()
    longest = max(candidates, key=lambda a: (shape[a], -a))
    return tuple(a for a in range(nd) if a != longest)


def _reduce_axes(nd: int, scale_axes: Sequence[int]) -> tuple[int, ...]:
    return tuple(a for a in range(nd) if a not in set(scale_axes))


def compute_scales(w: torch.Tensor, bits: int, scale_axes: Sequence[int]) -> torch.Tensor:
    """Per-slice step sizes, rounded to float16 and returned as float32 (differentiable w.r.t. ``w``).

    Args:
        w: float tensor of any shape.
        bits: 2..16.
        scale_axes: axes that keep their own scale (see :func:`scale_axes_for`).

    Returns:
        float32 tensor broadcastable to ``w`` (size 1 on the reduced axes), every entry a float16 value > 0.
    """
    if not 2 <= bits <= 16:
        raise ConfigError(f"quantization bits must be in 2..16, got {bits}")
    red = _reduce_axes(w.ndim, scale_axes)
    m = w.abs().amax(dim=red, keepdim=True) if red else w.abs()
    qmax = (1 << (bits - 1)) - 1
    delta = m / qmax
    # fp16 rounding keeps the gradient (cast is differentiable); tiny or zero slices get delta 1
    d16 = delta.to(torch.float16).to(torch.float32)
    return torch.where(d16 > 0, d16, torch.ones_like(d16))


def quantize(w: torch.Tensor, bits: int, scale_axes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a tensor for coding.

    Returns:
        ``(q, scales)``: ``q`` int32 numpy array of ``w.shape`` in ``[-2**(b-1), 2**(b-1)-1]``;
        ``scales`` float16 numpy array broadcastable to ``w.shape``.
    """
    with torch.no_grad():
        w = w.detach().to(torch.float32).cpu()
        s = compute_scales(w, bits, scale_axes)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        q = torch.clamp(torch.round(w / s), lo, hi).to(torch.int32)
    return q.numpy(), s.to(torch.float16).numpy()


def dequantize(q: np.ndarray, scales: np.ndarray) -> torch.Tensor:
    """``q * scales`` in float32 (the decoder's reconstruction); shapes broadcast."""
    return torch.from_numpy(q.astype(np.float32) * scales.astype(np.float32))


def fake_quant(w: torch.Tensor, bits: int, scale_axes: Sequence[int]) -> torch.Tensor:
    """Quantize-dequantize with the rounding detached (no straight-through estimator).

    Gradients reach ``w`` only through the scale (``max|w|``), as in the reference Quant-Noise.
    """
    s = compute_scales(w, bits, scale_axes)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.clamp(torch.round(w.detach() / s.detach()), lo, hi)
    return q * s


def quant_noise(
    w: torch.Tensor,
    bits: int,
    scale_axes: Sequence[int],
    p: float = 0.9,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Quant-Noise (Fan et al. 2020): each element is replaced by its fake-quantized value with
    probability ``p``; the other elements stay float and carry the gradient."""
    if p <= 0:
        return w
    fq = fake_quant(w, bits, scale_axes)
    if p >= 1:
        return fq
    keep_q = torch.rand(w.shape, generator=generator, device=w.device) < p
    return torch.where(keep_q, fq, w)
