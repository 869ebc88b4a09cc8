"""Quality and rate metrics: PSNR, (MS-)SSIM, bpp / kbps, and whole-video comparison.

Conventions (see ``docs/architecture.md``):

* Metrics are computed on decoded *integer* frames, the ones a user gets from ``hinerv decode``.
* Sequence values are the **mean over frames of per-frame values** (the rule of the video-coding
  community, HiNeRV and DCVC), not a PSNR of the pooled MSE.
* ``psnr-yuv`` is the 6:1:1 weighting ``(6 Y + U + V) / 8`` (JVET / DCVC); ``psnr-yuv-411`` is
  CompressAI's ``(4 Y + U + V) / 6``. Both are formed from the sequence-mean plane PSNRs.
* PSNR is capped at :data:`PSNR_CAP` (100 dB); identical inputs (MSE = 0) give exactly the cap.
* MS-SSIM follows pytorch_msssim 1.0 (Gaussian window, valid convolution, 2x2 average pooling with
  padding for odd sizes, ReLU on the contrast-structure terms and on the last-scale SSIM), with one
  extension for small inputs, see :func:`ms_ssim`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from hinerv import kernels
from hinerv.color import rgb_to_yuv
from hinerv.errors import InputError
from hinerv.model.layers import constant
from hinerv.types import VideoInfo

__all__ = [
    "MS_SSIM_WEIGHTS",
    "MetricsAccumulator",
    "PSNR_CAP",
    "VideoMetrics",
    "compare_videos",
    "ieee_fp32",
    "ms_ssim",
    "ms_ssim_scales",
    "ms_ssim_y",
    "psnr",
    "rate",
    "ssim",
    "yuv_psnr_411",
    "yuv_psnr_611",
]

#: PSNR value (dB) reported for identical inputs; larger values are clipped to it.
PSNR_CAP = 100.0

#: Per-scale exponents of Wang et al. 2003 (finest scale first), as in pytorch_msssim and HM.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: Keys of :meth:`VideoMetrics.as_dict`, in output order.
_KEYS = (
    "psnr-rgb",
    "psnr-y",
    "psnr-u",
    "psnr-v",
    "psnr-yuv",
    "psnr-yuv-411",
    "ms-ssim-rgb",
    "ms-ssim-y",
    "frames",
)
_PER_FRAME_KEYS = ("psnr-rgb", "psnr-y", "psnr-u", "psnr-v", "ms-ssim-rgb", "ms-ssim-y")

# compare_videos batches frames for MS-SSIM up to about this many pixels (per plane).
_MSSSIM_BATCH_PIXELS = 1 << 21


# --------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, peak: float) -> float:
    """PSNR of two equally shaped arrays, ``10 log10(peak^2 / MSE)`` with MSE over all elements.

    The MSE is computed in float64. The result is capped at :data:`PSNR_CAP` (100 dB), which is
    also the value for identical inputs (MSE = 0), so the metric stays finite and monotonic.

    Args:
        a, b: arrays or tensors of any equal shape (e.g. one frame ``[3, H, W]`` or one plane
            ``[H, W]``), integer or float, in ``[0, peak]``.
        peak: largest possible sample value, e.g. ``2**bit_depth - 1`` or ``1.0``.

    Returns:
        PSNR in dB, in ``(-inf, 100]``.

    Raises:
        ValueError: if the shapes differ, the arrays are empty or ``peak <= 0``.
    """
    x = _as_f64(a)
    y = _as_f64(b)
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.size == 0:
        raise ValueError("psnr: empty input")
    if not peak > 0:
        raise ValueError(f"psnr: peak must be positive, got {peak}")
    return _psnr_from_mse(float(np.mean(np.square(x - y))), peak)


def _as_f64(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# SSIM / MS-SSIM (own implementation, differentiable)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _gauss_1d(win_size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``win_size`` taps centred on the middle tap, float64 ``[win]``."""
    c = torch.arange(win_size, dtype=torch.float64) - (win_size // 2)
    g = torch.exp(-(c**2) / (2.0 * sigma**2))
    return g / g.sum()


def _check_pair(x: torch.Tensor, y: torch.Tensor, win_size: int, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: expected torch tensors")
    if x.shape != y.shape:
        raise ValueError(f"{name}: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"{name}: expected [N, C, H, W] tensors, got shape {tuple(x.shape)}")
    if not x.is_floating_point() or not y.is_floating_point():
        raise TypeError(f"{name}: expected floating-point tensors, got {x.dtype} and {y.dtype}")
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"{name}: window size must be odd and positive, got {win_size}")


#: windows up to this size are applied as one k x k depth-wise conv (fewer passes over the maps, faster
#: on CPU for the 5-tap training loss); larger ones as two separable k-tap passes (2k vs k^2 taps).
_FULL_2D_WINDOW = 7


def _blur_kernels(
    win: torch.Tensor, groups: int, like: torch.Tensor, adjoint: bool
) -> tuple[torch.Tensor, ...]:
    """Depth-wise conv weights of the Gaussian filter (or of its adjoint), applied in order.

    Built once per window, group count, device and dtype and kept (:func:`hinerv.model.layers.constant`;
    the window comes from the cached :func:`_gauss_1d`, so its identity is a stable key): a training step
    would otherwise rebuild them with a few small ops per blur.
    """
    return constant(_build_blur_kernels, win, groups, like.device, like.dtype, adjoint)


def _build_blur_kernels(
    win: torch.Tensor, groups: int, device: torch.device, dtype: torch.dtype, adjoint: bool
) -> tuple[torch.Tensor, ...]:
    """One ``[G, 1, k, k]`` kernel for small windows, else ``[G, 1, k, 1]`` then ``[G, 1, 1, k]``; the
    adjoint applies the flipped kernels in reverse order."""
    k = win.numel()
    if k <= _FULL_2D_WINDOW:
        k2 = (win[:, None] * win[None, :]).to(device=device, dtype=dtype)
        kernels = [k2.view(1, 1, k, k).expand(groups, 1, k, k)]
    else:
        kern = win.to(device=device, dtype=dtype)
        kernels = [kern.view(1, 1, k, 1).expand(groups, 1, k, 1)]
        kernels.append(kern.view(1, 1, 1, k).expand(groups, 1, 1, k))
    if adjoint:
        kernels = [kn.flip(-2, -1) for kn in reversed(kernels)]
    return tuple(kernels)


def _blur(maps: torch.Tensor, win: torch.Tensor, *, adjoint: bool = False) -> torch.Tensor:
    """Valid Gaussian filtering of every channel: ``[N, G, H, W] -> [N, G, H - k + 1, W - k + 1]``.

    Args:
        maps: ``[N, G, H, W]`` float.
        win: ``[k]`` normalised 1-D window (any dtype; cast to the maps').
        adjoint: apply the adjoint instead (the input gradient of the filter, a 'full' convolution
            with the flipped kernel): ``[N, G, h, w] -> [N, G, h + k - 1, w + k - 1]``.

    Returns:
        The filtered maps (contiguous); small windows use the 2-D outer-product kernel in one pass,
        larger ones two separable passes (H then W). Both are the same filter up to float rounding.
    """
    groups = maps.shape[1]
    kernels = _blur_kernels(win, groups, maps, adjoint)
    # oneDNN's depth-wise conv is 2-5x faster on channels-last memory than on NCHW, backward included;
    # the maps go back to NCHW because the SSIM arithmetic on channel slices of it is slower
    out = maps.contiguous(memory_format=torch.channels_last)
    for kern in kernels:
        pad = (kern.shape[-2] - 1, kern.shape[-1] - 1) if adjoint else 0
        out = F.conv2d(out, kern, padding=pad, groups=groups)
    return out.contiguous()


def _moments(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The blurred local moments ``mu_x, e_xx, e_xy, mu_y, e_yy``, each ``[N, C, h, w]``.

    The maps of ``x`` (x, x^2, xy) and of ``y`` alone (y, y^2) are filtered in two grouped convs.
    """
    c = x.shape[1]
    xs = torch.cat([x, x * x, x * y], dim=1)
    ys = torch.cat([y, y * y], dim=1)
    return (*_blur(xs, win).split(c, dim=1), *_blur(ys, win).split(c, dim=1))


def _ssim_maps(
    mu_x: torch.Tensor, e_xx: torch.Tensor, e_xy: torch.Tensor, mu_y: torch.Tensor, e_yy: torch.Tensor,
    c1: float, c2: float,
) -> tuple[torch.Tensor, ...]:
    """Luminance ``l = a1 / b1`` and contrast-structure ``cs = a2 / b2`` maps, with ``b1`` and ``b2``."""
    mu_xy = mu_x * mu_y
    b1 = mu_x * mu_x + mu_y * mu_y + c1
    l_map = (2.0 * mu_xy + c1) / b1
    b2 = (e_xx + e_yy) - b1 + (c1 + c2)  # var_x + var_y + c2
    cs_map = (2.0 * (e_xy - mu_xy) + c2) / b2
    return l_map, cs_map, b1, b2


class _SSIMTerms(torch.autograd.Function):
    """Per-channel mean SSIM and mean cs of ``x`` against a constant ``y``, with a closed-form backward.

    The same values as the autograd composition (:func:`_ssim_terms`'s other branch); the backward
    differentiates the SSIM formula by hand (about a dozen map-sized operations instead of the ~30
    autograd records) and pushes the three moment gradients through the adjoint blur at once.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, c1: float, c2: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu_x, e_xx, e_xy, mu_y, e_yy = _moments(x, y, win)
        l_map, cs_map, b1, b2 = _ssim_maps(mu_x, e_xx, e_xy, mu_y, e_yy, c1, c2)
        ctx.save_for_backward(x, y, win, mu_x, mu_y, l_map, cs_map, b1, b2)
        return (l_map * cs_map).flatten(2).mean(-1), cs_map.flatten(2).mean(-1)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_s: torch.Tensor, g_cs: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, y, win, mu_x, mu_y, l_map, cs_map, b1, b2 = ctx.saved_tensors  # type: ignore[attr-defined]
        c = x.shape[1]
        inv_p = 1.0 / (l_map.shape[-2] * l_map.shape[-1])
        w_s = (g_s * inv_p)[:, :, None, None]
        w_cs = (g_cs * inv_p)[:, :, None, None]
        g_a2 = (l_map * w_s + w_cs).div_(b2)  # d/d a2 (numerator of cs)
        g_b2 = -g_a2 * cs_map  # d/d b2
        g_a1 = (cs_map * w_s).div_(b1)  # d/d a1
        g_b1 = -g_a1 * l_map  # d/d b1
        n, _, h, w = l_map.shape
        g = l_map.new_empty((n, 3 * c, h, w))
        # a1 = 2 mu_x mu_y + c1, b1 = mu_x^2 + mu_y^2 + c1, a2 = 2 (e_xy - mu_x mu_y) + c2,
        # b2 = e_xx + e_yy - mu_x^2 - mu_y^2 + c2
        torch.mul(mu_y, g_a1 - g_a2, out=g[:, :c]).addcmul_(mu_x, g_b1 - g_b2).mul_(2.0)
        g[:, c : 2 * c].copy_(g_b2)
        torch.mul(g_a2, 2.0, out=g[:, 2 * c :])
        g_mu, g_xx, g_xy = _blur(g, win, adjoint=True).split(c, dim=1)
        gx = torch.addcmul(g_mu, x, g_xx, value=2.0).addcmul_(y, g_xy)
        return gx, None, None, None, None


def ssim_terms_torch(
    x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``torch`` tier of the ``ssim_terms`` kernel op (:mod:`hinerv.kernels`): :class:`_SSIMTerms`."""
    return _SSIMTerms.apply(x, y, win.to(device=x.device), c1, c2)  # type: ignore[no-any-return]


_SSIM_TERMS = kernels.op("ssim_terms")


def _ssim_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    win: torch.Tensor,
    c1: float,
    c2: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and mean contrast-structure term, each ``[N, C]``.

    The five local moments (x, y, x^2, y^2, xy) are filtered by grouped valid convolutions
    (:func:`_blur`), in two batches: those of ``x`` (x, x^2, xy) and those of ``y`` alone (y, y^2).
    When only ``x`` needs a gradient (the training loss: ``y`` is the target), the ``ssim_terms`` op of
    :mod:`hinerv.kernels` computes it in closed form (the fused kernels on float32 CPU tensors where they
    are built, else :class:`_SSIMTerms`); otherwise autograd differentiates the composition.
    """
    if x.requires_grad and not y.requires_grad and torch.is_grad_enabled():
        return _SSIM_TERMS(x, y, win, c1, c2)  # type: ignore[no-any-return]
    l_map, cs_map, _, _ = _ssim_maps(*_moments(x, y, win), c1, c2)
    return (l_map * cs_map).flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k: tuple[float, float] = (0.01, 0.03),
) -> torch.Tensor:
    """Single-scale SSIM per sample (Gaussian window, valid convolution; as pytorch_msssim 1.0).

    Args:
        x, y: float tensors ``[N, C, H, W]`` in ``[0, data_range]``, ``H, W >= win_size``.
        data_range: dynamic range of the inputs (1.0 for ``[0, 1]`` images).
        win_size: odd Gaussian window size.
        sigma: Gaussian standard deviation in pixels.
        k: the stabilising constants ``(K1, K2)``.

    Returns:
        ``[N]`` tensor (dtype of ``x``): SSIM averaged over pixels and channels. Differentiable.

    Raises:
        ValueError / TypeError: on mismatched shapes, non-4-D or non-float inputs, or frames
            smaller than the window.
    """
    _check_pair(x, y, win_size, "ssim")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"ssim: input {x.shape[-2]}x{x.shape[-1]} is smaller than the {win_size}-tap window")
    c1 = (k[0] * data_range) ** 2
    c2 = (k[1] * data_range) ** 2
    s, _ = _ssim_terms(x, y, _gauss_1d(win_size, float(sigma)), c1, c2)
    return s.mean(1)


def ms_ssim_scales(height: int, width: int, win_size: int = 11, max_scales: int = 5) -> int:
    """Number of MS-SSIM scales used for a ``height x width`` input.

    The largest ``L <= max_scales`` with ``min(height, width) > (win_size - 1) * 2**(L - 1)``,
    i.e. every scale (each 2x2 average pooling rounds odd sizes up) is at least ``win_size``
    wide. For ``L = 5`` this is exactly pytorch_msssim's precondition. Returns 0 when even one
    scale does not fit (``min side < win_size``).
    """
    side = min(height, width)
    for scales in range(max_scales, 0, -1):
        if side > (win_size - 1) * (1 << (scales - 1)):
            return scales
    return 0


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k: tuple[float, float] = (0.01, 0.03),
) -> torch.Tensor:
    """Multi-scale SSIM per sample, following pytorch_msssim 1.0's definition.

    At each scale the per-channel mean SSIM and contrast-structure (cs) terms are computed with a
    separable Gaussian window and valid convolution; between scales both images are 2x2
    average-pooled (zero padding of one pixel on each side of an odd dimension, counted in the
    average, as pytorch_msssim). The value per channel is
    ``prod_{i<L-1} relu(cs_i)**w_i * relu(ssim_{L-1})**w_{L-1}``, then averaged over channels.
    With ``len(weights) == 5`` and ``min(H, W) > (win_size - 1) * 16`` the result equals
    ``pytorch_msssim.ms_ssim(x, y, data_range, size_average=False, win_size, ...)``.

    Small inputs (an extension; pytorch_msssim asserts instead): if the input is too small for
    all scales, the largest number of scales ``L`` that fits (:func:`ms_ssim_scales`) is used
    with the first ``L`` weights renormalised to sum to one. This is HM's rule for its
    ``exponentWeights`` table (e.g. 4 scales: 0.0517, 0.3295, 0.3462, 0.2726); HM switches to 4
    scales below 176 px, the pytorch_msssim precondition used here below 161 px (11-tap window).

    Args:
        x, y: float tensors ``[N, C, H, W]`` in ``[0, data_range]`` (the trainer passes
            float32 RGB ``[N, 3, h, w]`` in ``[0, 1]``), ``min(H, W) >= win_size``.
        data_range: dynamic range of the inputs.
        win_size: odd Gaussian window size (11 for evaluation, 5 in the training loss).
        sigma: Gaussian standard deviation in pixels.
        weights: per-scale exponents, finest scale first; their count is the maximum number of
            scales.
        k: the stabilising constants ``(K1, K2)``.

    Returns:
        ``[N]`` tensor (dtype of ``x``) in ``[0, 1]``. Differentiable (note: like pytorch_msssim,
        the gradient is not finite where a clamped term is exactly 0).

    Raises:
        ValueError / TypeError: on mismatched shapes, non-4-D or non-float inputs, an even window,
            empty weights, or ``min(H, W) < win_size``.
    """
    _check_pair(x, y, win_size, "ms_ssim")
    if len(weights) == 0:
        raise ValueError("ms_ssim: weights must not be empty")
    h, w = x.shape[-2:]
    scales = ms_ssim_scales(h, w, win_size, len(weights))
    if scales == 0:
        raise ValueError(f"ms_ssim: input {h}x{w} is smaller than the {win_size}-tap window")
    wts = x.new_tensor(list(weights[:scales]), dtype=torch.float64)
    if scales < len(weights):
        wts = wts / wts.sum()
    wts = wts.to(x.dtype)

    c1 = (k[0] * data_range) ** 2
    c2 = (k[1] * data_range) ** 2
    win = _gauss_1d(win_size, float(sigma))
    terms = []
    for i in range(scales):
        s, cs = _ssim_terms(x, y, win, c1, c2)
        if i < scales - 1:
            terms.append(torch.relu(cs))
            pad = (x.shape[-2] % 2, x.shape[-1] % 2)
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        else:
            terms.append(torch.relu(s))
    stacked = torch.stack(terms, dim=0)  # [L, N, C]
    per_channel = torch.prod(stacked ** wts.view(-1, 1, 1), dim=0)
    return per_channel.mean(1)


def ms_ssim_y(
    y_ref: np.ndarray | torch.Tensor,
    y_dist: np.ndarray | torch.Tensor,
    *,
    bit_depth: int = 8,
    win_size: int = 11,
) -> torch.Tensor:
    """MS-SSIM of luma planes, on ``Y / (2**bit_depth - 1)`` with data range 1.

    Args:
        y_ref, y_dist: integer (or float, same scale) luma planes ``[H, W]`` or ``[N, H, W]``,
            values in ``[0, 2**bit_depth - 1]``.
        bit_depth: bits per sample of the planes.
        win_size: Gaussian window size (11 for evaluation).

    Returns:
        ``[N]`` float32 tensor (``N = 1`` for a single plane) in ``[0, 1]``.
    """
    peak = float((1 << bit_depth) - 1)
    a = _plane_batch(y_ref) / peak
    b = _plane_batch(y_dist) / peak
    return ms_ssim(a, b, data_range=1.0, win_size=win_size)


def _plane_batch(p: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[H, W]`` or ``[N, H, W]`` array -> float32 tensor ``[N, 1, H, W]`` (values unscaled)."""
    t = p if isinstance(p, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(p))
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"expected a plane [H, W] or planes [N, H, W], got {tuple(t.shape)}")
    return t.to(torch.float32).unsqueeze(1)


@contextlib.contextmanager
def ieee_fp32(device: torch.device | str | None) -> Iterator[None]:
    """Full float32 precision for CUDA matmuls and convolutions inside the block (no TF32: cuDNN uses it
    for float32 convolutions by default), so a CUDA decode gives the CPU's frames and MS-SSIM its values
    within float rounding; the settings are restored after. A no-op on other devices."""
    if device is None or torch.device(device).type != "cuda":
        yield
        return
    knobs = [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision")]
    if not all(hasattr(obj, name) for obj, name in knobs):  # torch before the fp32_precision settings
        knobs = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")]
    old = [getattr(obj, name) for obj, name in knobs]
    try:
        for obj, name in knobs:
            setattr(obj, name, "ieee" if name == "fp32_precision" else False)
        yield
    finally:
        for (obj, name), value in zip(knobs, old, strict=True):
            setattr(obj, name, value)


# --------------------------------------------------------------------------------------------
# Whole-video comparison
# --------------------------------------------------------------------------------------------


class _Reader(Protocol):
    """The part of :class:`hinerv.io.VideoReader` that :func:`compare_videos` uses."""

    info: VideoInfo

    def __len__(self) -> int: ...

    def read_yuv(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def read_rgb(self, t: int) -> np.ndarray: ...

    def read_rgb_float(self, t: int) -> np.ndarray: ...


@dataclass(frozen=True)
class VideoMetrics:
    """Quality of a distorted video against its reference (sequence values: mean over frames).

    Attributes:
        psnr_rgb: mean per-frame PSNR (dB) of integer RGB, MSE over the 3 channels.
        psnr_y, psnr_u, psnr_v: mean per-frame PSNR (dB) of the integer YUV planes.
        psnr_yuv: ``(6 psnr_y + psnr_u + psnr_v) / 8`` (JVET / DCVC 6:1:1 weighting).
        psnr_yuv_411: ``(4 psnr_y + psnr_u + psnr_v) / 6`` (CompressAI weighting).
        ms_ssim_rgb: mean per-frame MS-SSIM of RGB in ``[0, 1]`` (11x11 window, data range 1).
        ms_ssim_y: mean per-frame MS-SSIM of the luma plane scaled to ``[0, 1]``.
        frames: number of frames compared.
        per_frame: per-frame values under the keys ``psnr-rgb, psnr-y, psnr-u, psnr-v,
            ms-ssim-rgb, ms-ssim-y`` (lists of length ``frames``).
    """

    psnr_rgb: float
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    psnr_yuv_411: float
    ms_ssim_rgb: float
    ms_ssim_y: float
    frames: int
    per_frame: dict[str, list[float]] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self, *, per_frame: bool = False) -> dict[str, Any]:
        """Plain dict with keys ``psnr-rgb, psnr-y, psnr-u, psnr-v, psnr-yuv, psnr-yuv-411,
        ms-ssim-rgb, ms-ssim-y, frames`` (floats, and an int for ``frames``); with
        ``per_frame=True`` also ``per_frame`` mapping each per-frame key to a list of floats."""
        d: dict[str, Any] = {k: getattr(self, k.replace("-", "_")) for k in _KEYS}
        if per_frame:
            d["per_frame"] = {k: list(v) for k, v in self.per_frame.items()}
        return d


def yuv_psnr_611(psnr_y: float, psnr_u: float, psnr_v: float) -> float:
    """``(6 Y + U + V) / 8`` weighted YUV PSNR (dB)."""
    return (6.0 * psnr_y + psnr_u + psnr_v) / 8.0


def yuv_psnr_411(psnr_y: float, psnr_u: float, psnr_v: float) -> float:
    """``(4 Y + U + V) / 6`` weighted YUV PSNR (dB)."""
    return (4.0 * psnr_y + psnr_u + psnr_v) / 6.0


def compare_videos(
    ref: _Reader,
    dist: _Reader,
    *,
    frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str | torch.device | None = None,
) -> VideoMetrics:
    """Compare two videos frame by frame.

    Per frame: PSNR-RGB on ``read_rgb`` integers (peak ``2**b - 1``, MSE over all 3 channels),
    PSNR of each integer YUV plane from ``read_yuv`` (peak ``2**b - 1``; when one video is 4:2:0 and
    the other RGB, e.g. a source and its decoded PNG folder, the RGB one's planes are taken at 4:2:0 by
    :func:`hinerv.color.rgb_to_yuv`, as a 4:2:0 writer would store its frames), MS-SSIM-RGB on
    ``read_rgb_float`` (11x11 window, data range 1) and MS-SSIM-Y on ``Y / (2**b - 1)``.
    Sequence values are the **mean over frames of the per-frame values** (as HiNeRV and DCVC
    report); ``psnr-yuv`` and ``psnr-yuv-411`` are weighted from the sequence-mean plane PSNRs.
    Frames are read one at a time; MS-SSIM runs on small batches of frames (about 2 Mpixel).

    Args:
        ref, dist: :class:`hinerv.io.VideoReader` objects of equal size and bit depth, and of equal
            frame count unless ``frames`` is given.
        frames: compare only the first ``min(frames, T)`` frames (all frames when None); the two
            videos may then differ in length (a reference and the decoded first N frames of it) as
            long as both hold the frames compared.
        progress: called as ``progress(done, total)`` after each frame.
        device: torch device for MS-SSIM (default CPU); e.g. ``"cuda"`` on a GPU machine.

    Returns:
        A :class:`VideoMetrics`.

    Raises:
        InputError: if width, height, bit depth, frame count (without ``frames``, or too few for
            ``frames``) or plane shapes differ, if
            ``frames < 1``, or if the frames are smaller than the 11x11 MS-SSIM window.
    """
    ri, di = ref.info, dist.info
    if (ri.width, ri.height) != (di.width, di.height):
        raise InputError(
            f"frame size mismatch: reference is {ri.width}x{ri.height}, distorted is {di.width}x{di.height}"
        )
    if frames is not None and frames < 1:
        raise InputError(f"frames must be at least 1, got {frames}")
    if frames is None and len(ref) != len(dist):
        raise InputError(f"frame count mismatch: reference has {len(ref)} frames, distorted has {len(dist)}")
    if frames is not None and len(ref) != len(dist) and frames > min(len(ref), len(dist)):
        raise InputError(
            f"cannot compare {frames} frames: reference has {len(ref)} frames, distorted has {len(dist)}"
        )
    if ri.bit_depth != di.bit_depth:
        raise InputError(
            f"bit depth mismatch: reference is {ri.bit_depth}-bit, distorted is {di.bit_depth}-bit"
        )
    acc = MetricsAccumulator(ri.width, ri.height, ri.bit_depth, device=device)
    total = len(ref) if frames is None else min(frames, len(ref))
    if total < 1:
        raise InputError("no frames to compare")

    def frame(reader: _Reader, t: int) -> _Frames:
        y, u, v = _yuv_420(reader, t) if ri.chroma != di.chroma else reader.read_yuv(t)
        planes = [torch.from_numpy(np.ascontiguousarray(p)).to(torch.int32)[None] for p in (y, u, v)]
        rgb = torch.from_numpy(np.ascontiguousarray(reader.read_rgb(t))).to(torch.int32)[None]
        return _Batch(planes[0], planes[1], planes[2], rgb)

    for t in range(total):
        acc.add(frame(ref, t), frame(dist, t))
        if progress is not None:
            progress(t + 1, total)
    return acc.result()


class _Frames(Protocol):
    """Frames as a reader returns them (e.g. :class:`hinerv.io.frames.FrameBatch`), on one device:
    integer planes ``y [N, H, W]``, ``u, v [N, hc, wc]`` and integer RGB ``rgb [N, 3, H, W]``."""

    @property
    def y(self) -> torch.Tensor: ...
    @property
    def u(self) -> torch.Tensor: ...
    @property
    def v(self) -> torch.Tensor: ...
    @property
    def rgb(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class _Batch:
    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    rgb: torch.Tensor


class MetricsAccumulator:
    """The per-frame measurements of :func:`compare_videos`, fed batches of integer frames on any device.

    PSNR sums squared integer differences exactly (int64) on the frames' device and forms
    ``10 log10(peak^2 / MSE)`` per frame on the host, so it equals :func:`psnr` on the same frames;
    MS-SSIM runs on the device on float frames ``rgb / peak`` and ``y / peak`` in groups of frames of
    about 2 Mpixel, the same groups whatever batches the frames arrive in (so a result does not depend on
    how a caller batches them). The per-frame numbers stay on the device until :meth:`result` reads
    them back, once, so feeding it never waits for the device.

    Args:
        width, height: frame size (at least 11x11, the MS-SSIM window).
        bit_depth: bits per sample of both videos.
        device: where MS-SSIM runs when the frames come from the host (default: the frames' device).

    Raises:
        InputError: frames smaller than the 11x11 MS-SSIM window.
    """

    def __init__(
        self, width: int, height: int, bit_depth: int, *, device: str | torch.device | None = None
    ) -> None:
        if ms_ssim_scales(height, width, 11) == 0:
            raise InputError(f"frames of {width}x{height} are too small for MS-SSIM (need at least 11x11)")
        self.peak = float((1 << bit_depth) - 1)
        self.device = device
        self._group = max(1, _MSSSIM_BATCH_PIXELS // (width * height))
        # per key, per batch: the frames' values as device tensors (squared-error sums for PSNR), read
        # back to the host once, in result()
        self._pf: dict[str, list[torch.Tensor]] = {k: [] for k in _PER_FRAME_KEYS}
        self._sizes: dict[str, int] = {}  # samples per frame of each PSNR key
        self._frames = 0
        self._pending: list[tuple[torch.Tensor, ...]] = []  # per frame: rgb_a, rgb_b, y_a, y_b (float)

    @property
    def frames(self) -> int:
        """Frames measured so far."""
        return self._frames

    def add(self, ref: _Frames, dist: _Frames) -> None:
        """Measure ``dist`` against ``ref`` (the same ``N`` frames, equally shaped, on one device).

        Raises:
            InputError: a plane shape differs between the two.
        """
        n0 = self.frames
        for name in ("y", "u", "v"):
            pa, pb = getattr(ref, name), getattr(dist, name)
            if pa.shape != pb.shape:
                raise InputError(
                    f"{name.upper()} plane shape mismatch at frame {n0}: "
                    f"{tuple(pa.shape[1:])} vs {tuple(pb.shape[1:])}"
                )
            self._sse(f"psnr-{name}", pa, pb)
        self._sse("psnr-rgb", ref.rgb, dist.rgb)
        self._frames += int(ref.y.shape[0])
        dev = self.device if self.device is not None else ref.rgb.device
        f32 = torch.float32
        for i in range(ref.y.shape[0]):
            self._pending.append(
                (
                    _dequantize(ref.rgb[i], self.peak).to(dev),
                    _dequantize(dist.rgb[i], self.peak).to(dev),
                    (ref.y[i].to(f32)[None] / self.peak).to(dev),
                    (dist.y[i].to(f32)[None] / self.peak).to(dev),
                )
            )
            if len(self._pending) >= self._group:
                self._flush()

    def _sse(self, key: str, a: torch.Tensor, b: torch.Tensor) -> None:
        d = a.to(torch.int64) - b.to(torch.int64)
        self._pf[key].append((d * d).flatten(1).sum(1))  # exact: integers
        self._sizes[key] = a[0].numel()

    def _flush(self) -> None:
        if not self._pending:
            return
        cols = list(zip(*self._pending, strict=True))
        with torch.no_grad(), ieee_fp32(cols[0][0].device):
            for key, a, b in (("ms-ssim-rgb", cols[0], cols[1]), ("ms-ssim-y", cols[2], cols[3])):
                self._pf[key].append(ms_ssim(torch.stack(a), torch.stack(b), data_range=1.0))
        self._pending.clear()

    def result(self) -> VideoMetrics:
        """The sequence values (means over the frames added so far) and the per-frame values."""
        self._flush()
        if self.frames == 0:
            raise InputError("no frames to compare")
        pf: dict[str, list[float]] = {}
        for k, parts in self._pf.items():
            values = [x for p in parts for x in p.tolist()]
            if k.startswith("psnr"):  # 10 log10(peak^2 / MSE) per frame, MSE = SSE / n as in psnr()
                values = [_psnr_from_mse(sse / self._sizes[k], self.peak) for sse in values]
            pf[k] = values
        means = {k: float(np.mean(v)) for k, v in pf.items()}
        return VideoMetrics(
            psnr_rgb=means["psnr-rgb"],
            psnr_y=means["psnr-y"],
            psnr_u=means["psnr-u"],
            psnr_v=means["psnr-v"],
            psnr_yuv=yuv_psnr_611(means["psnr-y"], means["psnr-u"], means["psnr-v"]),
            psnr_yuv_411=yuv_psnr_411(means["psnr-y"], means["psnr-u"], means["psnr-v"]),
            ms_ssim_rgb=means["ms-ssim-rgb"],
            ms_ssim_y=means["ms-ssim-y"],
            frames=self.frames,
            per_frame=pf,
        )


def _dequantize(q: torch.Tensor, peak: float) -> torch.Tensor:
    """:func:`hinerv.color.dequantize_rgb` as a tensor: float32 ``q / peak`` (a true division)."""
    x = q.to(torch.float32)
    return x / torch.tensor(peak, dtype=torch.float32, device=x.device)


def _psnr_from_mse(mse: float, peak: float) -> float:
    if mse == 0.0:
        return PSNR_CAP
    return min(10.0 * math.log10(float(peak) ** 2 / mse), PSNR_CAP)


def _yuv_420(reader: _Reader, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t`` as 4:2:0 integer planes: ``read_yuv`` of a 4:2:0 video; an RGB (4:4:4) one converted
    from ``read_rgb_float`` at its matrix, range and bit depth."""
    i = reader.info
    if i.chroma == "420":
        return reader.read_yuv(t)
    return rgb_to_yuv(
        reader.read_rgb_float(t),
        bit_depth=i.bit_depth,
        matrix=i.matrix,
        full_range=i.full_range,
        chroma="420",
    )


# --------------------------------------------------------------------------------------------
# Rate
# --------------------------------------------------------------------------------------------


def rate(
    num_bytes: int,
    *,
    frames: int,
    width: int,
    height: int,
    fps: float | Fraction,
) -> dict[str, int | float]:
    """Rate of a compressed video of ``num_bytes`` bytes.

    Args:
        num_bytes: compressed size in bytes (the whole file, container included).
        frames, width, height: T, and the luma size W, H in pixels.
        fps: frame rate.

    Returns:
        ``{"bytes": num_bytes, "bpp": 8 * bytes / (T * H * W), "bitrate": kbps}`` where pixels are
        luma pixels counted once (not x3 channels) and ``kbps = 8 * bytes * fps / (T * 1000)``.

    Raises:
        ValueError: if ``num_bytes < 0`` or any of frames, width, height, fps is not positive.
    """
    if num_bytes < 0:
        raise ValueError(f"rate: num_bytes must be >= 0, got {num_bytes}")
    if frames <= 0 or width <= 0 or height <= 0 or not fps > 0:
        raise ValueError(
            f"rate: frames, width, height and fps must be positive, got {frames}, {width}, {height}, {fps}"
        )
    bits = 8.0 * num_bytes
    return {
        "bytes": int(num_bytes),
        "bpp": bits / (frames * width * height),
        "bitrate": bits * float(fps) / (frames * 1000.0),
    }
