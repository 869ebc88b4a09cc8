"""Batches of frames as tensors on any device: the colour conversions of :mod:`hinerv.color`, batched.

The codec's decoder produces float RGB on its device; what a writer stores (integer YUV planes, or integer
RGB for a PNG folder) and what a reader of that file returns are computed here, on the same device, so a
GPU decode neither copies float frames to the host nor converts them there one at a time.

Every function here gives the **same integers** as its :mod:`hinerv.color` counterpart applied frame by
frame (``tests/io/test_frames.py`` checks it bit for bit on the CPU): the same float width (float64 for
RGB -> YUV, float32 for YUV -> RGB and quantization), the same operations in the same order, each one a
separate correctly rounded torch operation (no fused multiply-add), and divisions by a tensor on the
frames' device (CUDA turns a division by a Python scalar into a multiplication by its reciprocal, which
rounds differently).

Shapes: RGB ``[N, 3, H, W]``; planes ``y [N, H, W]``, ``u, v [N, H/2, W/2]`` (4:2:0) or ``[N, H, W]``
(4:4:4). Integer tensors are int32 (any bit depth up to 16 fits), floats in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hinerv.color import _code_range, _coefs, _levels
from hinerv.types import VideoInfo

__all__ = [
    "FrameBatch",
    "as_read",
    "dequantize_rgb_t",
    "quantize_rgb_t",
    "rgb_to_yuv_t",
    "yuv_to_rgb_t",
]


@dataclass(frozen=True)
class FrameBatch:
    """``N`` frames as a :class:`~hinerv.io.VideoReader` returns them, on one device.

    Attributes:
        y, u, v: integer planes (``read_yuv``), int32 ``[N, H, W]`` / ``[N, hc, wc]``.
        rgb: integer RGB at the video's bit depth (``read_rgb``), int32 ``[N, 3, H, W]``.
    """

    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    rgb: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _div(x: torch.Tensor, d: float) -> torch.Tensor:
    """``x / d`` as a true division on every device (see the module docstring)."""
    return x / torch.tensor(d, dtype=x.dtype, device=x.device)


def _upsample_420(c: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`hinerv.color.upsample_420` of ``[N, H/2, W/2]`` chroma -> float32 ``[N, H, W]``."""
    c = c.to(torch.float32)
    n, hc, wc = c.shape
    up = torch.cat([c[:, :1], c[:, :-1]], dim=1)
    down = torch.cat([c[:, 1:], c[:, -1:]], dim=1)
    rows = torch.empty((n, height, wc), dtype=torch.float32, device=c.device)
    rows[:, 0::2] = 0.75 * c + 0.25 * up
    rows[:, 1::2] = 0.75 * c + 0.25 * down
    right = torch.cat([rows[:, :, 1:], rows[:, :, -1:]], dim=2)
    out = torch.empty((n, height, width), dtype=torch.float32, device=c.device)
    out[:, :, 0::2] = rows
    out[:, :, 1::2] = 0.5 * (rows + right)
    return out


def _downsample_420(c: torch.Tensor) -> torch.Tensor:
    """:func:`hinerv.color.downsample_420` of float64 ``[N, H, W]`` -> ``[N, H/2, W/2]``."""
    rows = 0.5 * (c[:, 0::2] + c[:, 1::2])
    even = rows[:, :, 0::2]
    odd = rows[:, :, 1::2]
    left = torch.cat([even[:, :, :1], odd[:, :, :-1]], dim=2)
    return 0.25 * left + 0.5 * even + 0.25 * odd


def yuv_to_rgb_t(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, info: VideoInfo) -> torch.Tensor:
    """:func:`hinerv.color.yuv_to_rgb` at ``info``'s bit depth, matrix and range: float32 ``[N, 3, H, W]``
    in ``[0, 1]`` from integer planes (4:2:0 chroma up-sampled bilinearly)."""
    kr, kg, kb = _coefs(info.matrix)
    yo, ys, co, cs = _levels(info.bit_depth, info.full_range)
    n, h, w = y.shape
    if u.shape[-2:] == (h, w):
        uf, vf = u.to(torch.float32), v.to(torch.float32)
    else:
        uf, vf = _upsample_420(u, h, w), _upsample_420(v, h, w)
    f32 = torch.float32
    yn = (y.to(f32) - yo) * torch.tensor(1.0 / ys, dtype=f32).item()  # float32(1/ys), as numpy
    inv_c = torch.tensor(1.0 / cs, dtype=f32).item()
    cb = (uf - co) * inv_c
    cr = (vf - co) * inv_c
    c_r = torch.tensor(2.0 * (1.0 - kr), dtype=f32).item()
    c_b = torch.tensor(2.0 * (1.0 - kb), dtype=f32).item()
    g_r = torch.tensor(2.0 * kr * (1.0 - kr) / kg, dtype=f32).item()
    g_b = torch.tensor(2.0 * kb * (1.0 - kb) / kg, dtype=f32).item()
    out = torch.empty((n, 3, h, w), dtype=f32, device=y.device)
    out[:, 0] = yn + c_r * cr
    out[:, 2] = yn + c_b * cb
    out[:, 1] = yn - g_r * cr - g_b * cb
    return out.clamp_(0.0, 1.0)


def rgb_to_yuv_t(
    rgb: torch.Tensor, info: VideoInfo, chroma: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`hinerv.color.rgb_to_yuv` of float RGB ``[N, 3, H, W]`` (clipped to [0, 1]) at ``info``'s
    bit depth, matrix, range and chroma (or ``chroma``): int32 planes, rounded half up and clipped to the
    legal range."""
    kr, kg, kb = _coefs(info.matrix)
    yo, ys, co, cs = _levels(info.bit_depth, info.full_range)
    x = rgb.to(torch.float64).clamp(0.0, 1.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    yn = kr * r + kg * g + kb * b
    cb = _div(b - yn, 2.0 * (1.0 - kb))
    cr = _div(r - yn, 2.0 * (1.0 - kr))
    if (chroma or info.chroma) == "420":
        cb, cr = _downsample_420(cb), _downsample_420(cr)
    lo_y, hi_y, lo_c, hi_c = _code_range(info.bit_depth, info.full_range)

    def q(p: torch.Tensor, off: float, scale: float, lo: float, hi: float) -> torch.Tensor:
        return torch.floor(off + scale * p + 0.5).clamp_(lo, hi).to(torch.int32)

    return q(yn, yo, ys, lo_y, hi_y), q(cb, co, cs, lo_c, hi_c), q(cr, co, cs, lo_c, hi_c)


def quantize_rgb_t(rgb: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """:func:`hinerv.color.quantize_rgb` of float32 RGB: ``floor(clip(rgb) * (2**b - 1) + 0.5)``, int32."""
    x = rgb.to(torch.float32).clamp(0.0, 1.0)
    x = x * float((1 << bit_depth) - 1)
    return torch.floor(x + 0.5).to(torch.int32)


def dequantize_rgb_t(q: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """:func:`hinerv.color.dequantize_rgb`: float32 ``q / (2**b - 1)``."""
    return _div(q.to(torch.float32), float((1 << bit_depth) - 1))


def as_read(rgb: torch.Tensor, info: VideoInfo, stores: str) -> FrameBatch:
    """The frames a reader returns after a writer stored float RGB ``rgb`` ``[N, 3, H, W]``.

    Args:
        rgb: float RGB in ``[0, 1]`` (clipped), any device.
        info: the written video's format.
        stores: what the writer keeps (:attr:`hinerv.io.VideoWriter.stores`): ``"yuv"`` (integer planes
            from :func:`rgb_to_yuv_t`; ``read_rgb`` converts them back) or ``"rgb"`` (integer RGB from
            :func:`quantize_rgb_t`; ``read_yuv`` is its 4:4:4 conversion).

    Returns:
        A :class:`FrameBatch` on ``rgb``'s device.
    """
    if stores == "yuv":
        y, u, v = rgb_to_yuv_t(rgb, info)
        return FrameBatch(y, u, v, quantize_rgb_t(yuv_to_rgb_t(y, u, v, info), info.bit_depth))
    if stores == "rgb":
        q = quantize_rgb_t(rgb, info.bit_depth)
        y, u, v = rgb_to_yuv_t(dequantize_rgb_t(q, info.bit_depth), info, chroma="444")
        return FrameBatch(y, u, v, q)
    raise ValueError(f"as_read: a writer that stores {stores!r} is not read back exactly")
