"""Quantizer: axis rule, fp16-consistent scales, range, Quant-Noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hinerv.errors import ConfigError
from hinerv.quant import compute_scales, dequantize, fake_quant, quant_noise, quantize, scale_axes_for


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((1120, 280), (1,)),  # fc1 [4C, C]: reduce over the longest axis -> one scale per input channel
        ((280, 1120), (0,)),  # fc2 [C, 4C]: one per output channel
        ((280, 1, 3, 3), (1, 2, 3)),  # depth-wise conv: 9 per-tap scales (the reference's rule)
        ((280, 6, 3, 3), (1, 2, 3)),  # stem: C_b * 9 scales
        ((86400, 2), (1,)),  # base grid [T*H*W, C]: one per channel
        ((150, 400), (0,)),  # a local grid whose longest axis is the channel axis: one per time step
        ((3, 20), ()),  # no axis longer than 20: a single scale
    ],
)
def test_reference_axis_rule(shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    assert scale_axes_for(shape, mode="reference") == axes


def test_channel_and_tensor_modes() -> None:
    assert scale_axes_for((1120, 280), mode="channel") == (0,)
    assert scale_axes_for((86400, 2), mode="channel", layer=False) == (1,)
    assert scale_axes_for((1120, 280), mode="tensor") == ()
    with pytest.raises(ConfigError):
        scale_axes_for((4, 4), mode="bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize("bits", [6, 7, 8])
def test_quantize_range_and_error(bits: int) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 40, generator=g) * 0.05
    axes = scale_axes_for(w.shape)
    q, s = quantize(w, bits, axes)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    assert q.dtype == np.int32 and q.min() >= lo and q.max() <= hi
    assert s.dtype == np.float16 and s.shape == (1, 40)  # reduce over the longest axis (64)
    # the extreme of every slice maps to +-(2^(b-1)-1) (or the clamp)
    assert np.all(np.abs(q).max(axis=0) >= hi - 1)
    w_hat = dequantize(q, s)
    err = (w_hat - w).abs() / torch.from_numpy(s.astype(np.float32))
    assert float(err.max()) <= 0.5 + 1e-3  # at most half a step (fp16 scale rounding aside)


def test_scales_are_fp16_values_and_match_fake_quant() -> None:
    w = torch.randn(32, 48) * 1e-4  # tiny grid-like values: no +1e-6 distortion
    axes = scale_axes_for(w.shape)
    s = compute_scales(w, 6, axes)
    assert torch.equal(s, s.half().float())
    q, s16 = quantize(w, 6, axes)
    assert torch.allclose(fake_quant(w, 6, axes), dequantize(q, s16), atol=0, rtol=0)
    rel = (dequantize(q, s16) - w).abs().max() / w.abs().max()
    assert rel < 0.02


def test_zero_tensor() -> None:
    q, s = quantize(torch.zeros(30, 30), 6, (0,))
    assert not q.any() and np.all(s == 1)


def test_quant_noise_mix_and_gradient() -> None:
    torch.manual_seed(0)
    w = torch.randn(100, 100, requires_grad=True)
    out = quant_noise(w, 6, (0,), p=0.9)
    fq = fake_quant(w, 6, (0,))
    frac_q = float((out == fq).float().mean())
    assert 0.85 < frac_q < 0.95 or frac_q > 0.95  # ~90 % replaced (float values may coincide)
    out.sum().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0
    assert quant_noise(w, 6, (0,), p=0.0) is w
