from __future__ import annotations

import importlib
import math
from fractions import Fraction

import numpy as np
import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

from hinerv import metrics
from hinerv.errors import InputError
from hinerv.io.frames import FrameBatch
from hinerv.metrics import (
    MS_SSIM_WEIGHTS,
    PSNR_CAP,
    MetricsAccumulator,
    compare_videos,
    ieee_fp32,
    ms_ssim,
    ms_ssim_scales,
    ms_ssim_y,
    psnr,
    rate,
    ssim,
)
from hinerv.types import VideoInfo

# the module (the package re-exports a function of the same name)
pm_ssim_module = importlib.import_module("pytorch_msssim.ssim")

# ------------------------------------------------------------------------------------------
# PSNR
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_psnr_matches_skimage_on_integers(bit_depth: int) -> None:
    rng = np.random.default_rng(bit_depth)
    peak = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    a = rng.integers(0, peak + 1, size=(3, 24, 40)).astype(dtype)
    noise = rng.integers(-6, 7, size=a.shape)
    b = np.clip(a.astype(np.int64) + noise, 0, peak).astype(dtype)
    expected = peak_signal_noise_ratio(a, b, data_range=peak)
    assert psnr(a, b, peak) == pytest.approx(expected, abs=1e-9)
    # torch tensors give the same value
    assert psnr(
        torch.from_numpy(a.astype(np.int32)), torch.from_numpy(b.astype(np.int32)), peak
    ) == pytest.approx(expected, abs=1e-9)


def test_psnr_matches_skimage_on_floats() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((17, 33)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    expected = peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1.0)
    assert psnr(a, b, 1.0) == pytest.approx(expected, abs=1e-6)


def test_psnr_cap_and_errors() -> None:
    a = np.full((4, 4), 7, np.uint8)
    assert psnr(a, a, 255) == PSNR_CAP == 100.0
    # tiny but non-zero error would exceed 100 dB: clipped, so the metric stays monotonic
    big = np.zeros((1000, 1000), np.float64)
    tiny = big.copy()
    tiny[0, 0] = 1e-6
    assert psnr(big, tiny, 1.0) == PSNR_CAP
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((2, 3)), np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="peak"):
        psnr(a, a, 0)


# ------------------------------------------------------------------------------------------
# (MS-)SSIM against pytorch_msssim 1.0
# ------------------------------------------------------------------------------------------


def _pair(shape: tuple[int, ...], seed: int, noise: float = 0.08) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    # smooth-ish content so the SSIM values are not all near zero
    x = F.avg_pool2d(x, 3, stride=1, padding=1)
    y = (x + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize(
    ("h", "w", "win"),
    [(161, 161, 11), (170, 203, 11), (65, 65, 5), (120, 120, 5), (97, 130, 5), (81, 67, 5)],
)
def test_ms_ssim_matches_pytorch_msssim(h: int, w: int, win: int) -> None:
    x, y = _pair((2, 3, h, w), seed=h * w + win)
    ours = ms_ssim(x, y, data_range=1.0, win_size=win)
    ref = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win)
    assert ours.shape == (2,)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert 0.3 < float(ours.min()) < 1.0  # a meaningful, non-degenerate comparison


def test_ms_ssim_matches_pytorch_msssim_other_range_and_float64() -> None:
    x, y = _pair((1, 1, 180, 170), seed=3)
    x, y = (x * 255).double(), (y * 255).double()
    ours = ms_ssim(x, y, data_range=255.0)
    ref = pytorch_msssim.ms_ssim(x, y, data_range=255.0, size_average=False)
    assert ours.dtype == torch.float64
    # pytorch_msssim builds its window in float32, ours in float64: agree to ~3e-7
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("h", "w", "win"), [(40, 51, 11), (24, 24, 5)])
def test_ssim_matches_pytorch_msssim(h: int, w: int, win: int) -> None:
    x, y = _pair((3, 3, h, w), seed=h + w)
    ours = ssim(x, y, win_size=win)
    ref = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False, win_size=win)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_ms_ssim_identical_is_one_and_gradients_flow() -> None:
    x, y = _pair((2, 3, 72, 80), seed=7)
    torch.testing.assert_close(ms_ssim(x, x, win_size=5), torch.ones(2), atol=1e-6, rtol=0)

    xr = x.clone().requires_grad_(True)
    loss = (1.0 - ms_ssim(xr, y, win_size=5)).mean()
    loss.backward()
    assert xr.grad is not None
    assert torch.isfinite(xr.grad).all()
    assert xr.grad.abs().sum() > 0
    # gradient agrees with pytorch_msssim's
    xp = x.clone().requires_grad_(True)
    (1.0 - pytorch_msssim.ms_ssim(xp, y, data_range=1.0, size_average=False, win_size=5)).mean().backward()
    torch.testing.assert_close(xr.grad, xp.grad, atol=1e-6, rtol=1e-3)


def test_ms_ssim_scale_count() -> None:
    # pytorch_msssim's precondition for 5 scales: min side > (win - 1) * 16
    assert ms_ssim_scales(161, 300, 11) == 5
    assert ms_ssim_scales(160, 300, 11) == 4
    assert ms_ssim_scales(300, 81, 11) == 4
    assert ms_ssim_scales(80, 80, 11) == 3
    assert ms_ssim_scales(65, 65, 5) == 5
    assert ms_ssim_scales(64, 64, 5) == 4
    assert ms_ssim_scales(11, 11, 11) == 1
    assert ms_ssim_scales(10, 64, 11) == 0


def _reference_ms_ssim_reduced(x: torch.Tensor, y: torch.Tensor, win: int, scales: int):
    """Reduced-scale MS-SSIM assembled from pytorch_msssim's own per-scale routine."""
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = (weights / weights.sum()).float()
    g = pm_ssim_module._fspecial_gauss_1d(win, 1.5).repeat([x.shape[1], 1, 1, 1])
    terms = []
    for i in range(scales):
        s, cs = pm_ssim_module._ssim(x, y, data_range=1.0, win=g, size_average=False)
        if i < scales - 1:
            terms.append(torch.relu(cs))
            pad = [d % 2 for d in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    terms.append(torch.relu(s))
    return torch.prod(torch.stack(terms) ** weights.view(-1, 1, 1), dim=0).mean(1)


@pytest.mark.parametrize(("h", "w", "win", "scales"), [(150, 175, 11, 4), (45, 60, 11, 3), (40, 99, 5, 4)])
def test_ms_ssim_small_frame_fallback(h: int, w: int, win: int, scales: int) -> None:
    assert ms_ssim_scales(h, w, win) == scales
    x, y = _pair((2, 3, h, w), seed=h)
    with pytest.raises(AssertionError):  # pytorch_msssim refuses these sizes
        pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win)
    ours = ms_ssim(x, y, win_size=win)
    torch.testing.assert_close(ours, _reference_ms_ssim_reduced(x, y, win, scales), atol=1e-5, rtol=0)
    # HM's exponent table row for 4 scales
    if scales == 4:
        w4 = np.array(MS_SSIM_WEIGHTS[:4]) / sum(MS_SSIM_WEIGHTS[:4])
        np.testing.assert_allclose(w4, [0.0517, 0.3295, 0.3462, 0.2726], atol=6e-5)


def test_ms_ssim_single_scale_is_clamped_ssim_and_too_small_raises() -> None:
    x, y = _pair((2, 3, 15, 19), seed=5, noise=0.3)
    expected = torch.relu(
        pm_ssim_module._ssim(
            x,
            y,
            data_range=1.0,
            win=pm_ssim_module._fspecial_gauss_1d(11, 1.5).repeat([3, 1, 1, 1]),
            size_average=False,
        )[0]
    ).mean(1)
    torch.testing.assert_close(ms_ssim(x, y), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="smaller than"):
        ms_ssim(x[..., :10], y[..., :10])
    with pytest.raises(ValueError, match="shapes differ"):
        ms_ssim(x, y[..., 1:])
    with pytest.raises(ValueError, match="odd"):
        ms_ssim(x, y, win_size=4)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ms_ssim(x[0], y[0])


def test_ms_ssim_y_scales_integer_planes() -> None:
    rng = np.random.default_rng(2)
    ya = rng.integers(16, 236, size=(48, 56)).astype(np.uint8)
    yb = np.clip(ya.astype(int) + rng.integers(-9, 10, ya.shape), 0, 255).astype(np.uint8)
    got = ms_ssim_y(ya, yb, bit_depth=8)
    expected = ms_ssim(
        torch.from_numpy(ya).float()[None, None] / 255, torch.from_numpy(yb).float()[None, None] / 255
    )
    assert got.shape == (1,)
    torch.testing.assert_close(got, expected)
    got10 = ms_ssim_y(ya.astype(np.uint16) * 4, yb.astype(np.uint16) * 4, bit_depth=10)
    torch.testing.assert_close(got10, expected, atol=2e-3, rtol=0)  # 1020/1023 vs 255/255 scale


# ------------------------------------------------------------------------------------------
# compare_videos (on a small in-test reader implementing the VideoReader methods it uses)
# ------------------------------------------------------------------------------------------


class _ArrayReader:
    """In-memory stand-in for hinerv.io.VideoReader: lists of YUV planes and integer RGB."""

    def __init__(self, yuv: list[tuple[np.ndarray, ...]], rgb: list[np.ndarray], bit_depth: int):
        h, w = yuv[0][0].shape
        self.info = VideoInfo(width=w, height=h, frames=len(yuv), bit_depth=bit_depth)
        self._yuv, self._rgb = yuv, rgb
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self._yuv)

    def read_yuv(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.reads.append(t)
        return self._yuv[t]  # type: ignore[return-value]

    def read_rgb(self, t: int) -> np.ndarray:
        return self._rgb[t]

    def read_rgb_float(self, t: int) -> np.ndarray:
        return (self._rgb[t] / float(self.info.peak)).astype(np.float32)


def _video(t: int, h: int, w: int, bit_depth: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    lo, hi = 16 << (bit_depth - 8), 235 << (bit_depth - 8)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    yuv = [
        (
            rng.integers(lo, hi, size=(h, w)).astype(dtype),
            rng.integers(lo, hi, size=(h // 2, w // 2)).astype(dtype),
            rng.integers(lo, hi, size=(h // 2, w // 2)).astype(dtype),
        )
        for _ in range(t)
    ]
    rgb = [rng.integers(0, 1 << bit_depth, size=(3, h, w)).astype(dtype) for _ in range(t)]
    return yuv, rgb


def test_compare_videos_known_noise_and_mean_over_frames() -> None:
    t, h, w = 3, 48, 64
    yuv, rgb = _video(t, h, w)
    # frame i: Y + (i + 1) LSB everywhere; U, V untouched; RGB channel 0 of frame 1 + 3 LSB
    yuv_d = [(y + np.uint8(i + 1), u.copy(), v.copy()) for i, (y, u, v) in enumerate(yuv)]
    rgb_d = [r.astype(np.int64) for r in rgb]
    rgb_d[1][0] = np.clip(rgb_d[1][0] + 3, 0, 255)
    rgb_d = [r.astype(np.uint8) for r in rgb_d]
    ref, dist = _ArrayReader(yuv, rgb, 8), _ArrayReader(yuv_d, rgb_d, 8)
    calls: list[tuple[int, int]] = []
    m = compare_videos(ref, dist, progress=lambda d, n: calls.append((d, n)))

    py = [20 * math.log10(255 / (i + 1)) for i in range(t)]
    assert py[0] == pytest.approx(20 * math.log10(255))
    assert m.per_frame["psnr-y"] == pytest.approx(py, abs=1e-9)
    assert m.psnr_y == pytest.approx(np.mean(py), abs=1e-9)  # mean of per-frame, not pooled MSE
    assert m.psnr_y != pytest.approx(10 * math.log10(255**2 / np.mean([1, 4, 9])), abs=1e-3)
    assert m.psnr_u == m.psnr_v == PSNR_CAP
    assert m.psnr_yuv == pytest.approx((6 * m.psnr_y + 2 * PSNR_CAP) / 8)
    assert m.psnr_yuv_411 == pytest.approx((4 * m.psnr_y + 2 * PSNR_CAP) / 6)

    mse1 = np.mean((rgb_d[1].astype(float) - rgb[1].astype(float)) ** 2)
    assert m.per_frame["psnr-rgb"][1] == pytest.approx(10 * math.log10(255**2 / mse1), abs=1e-9)
    assert m.per_frame["psnr-rgb"][0] == m.per_frame["psnr-rgb"][2] == PSNR_CAP
    assert m.psnr_rgb == pytest.approx(np.mean(m.per_frame["psnr-rgb"]))

    assert m.per_frame["ms-ssim-rgb"][0] == pytest.approx(1.0, abs=1e-6)
    assert m.per_frame["ms-ssim-rgb"][1] < 1.0
    exp_y = [float(ms_ssim_y(yuv[i][0], yuv_d[i][0])[0]) for i in range(t)]
    assert m.per_frame["ms-ssim-y"] == pytest.approx(exp_y, abs=1e-6)
    assert m.ms_ssim_y == pytest.approx(np.mean(exp_y), abs=1e-6)
    assert m.frames == t
    assert calls == [(1, t), (2, t), (3, t)]

    d = m.as_dict()
    assert list(d) == [
        "psnr-rgb",
        "psnr-y",
        "psnr-u",
        "psnr-v",
        "psnr-yuv",
        "psnr-yuv-411",
        "ms-ssim-rgb",
        "ms-ssim-y",
        "frames",
    ]
    assert d["psnr-yuv"] == m.psnr_yuv and d["frames"] == 3
    d = m.as_dict(per_frame=True)
    assert set(d["per_frame"]) == {"psnr-rgb", "psnr-y", "psnr-u", "psnr-v", "ms-ssim-rgb", "ms-ssim-y"}
    assert all(len(v) == t for v in d["per_frame"].values())


def test_compare_videos_10bit_peak_and_frame_limit() -> None:
    yuv, rgb = _video(4, 32, 48, bit_depth=10, seed=1)
    yuv_d = [(y + np.uint16(1), u, v) for y, u, v in yuv]
    m = compare_videos(_ArrayReader(yuv, rgb, 10), _ArrayReader(yuv_d, rgb, 10), frames=2)
    assert m.frames == 2
    assert m.psnr_y == pytest.approx(20 * math.log10(1023), abs=1e-9)
    assert compare_videos(_ArrayReader(yuv, rgb, 10), _ArrayReader(yuv_d, rgb, 10), frames=99).frames == 4


def test_compare_videos_batching_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    yuv, rgb = _video(5, 32, 40, seed=2)
    rng = np.random.default_rng(9)
    rgb_d = [np.clip(r + rng.integers(-20, 21, r.shape), 0, 255).astype(np.uint8) for r in rgb]
    yuv_d = [(np.clip(y + rng.integers(-20, 21, y.shape), 0, 255).astype(np.uint8), u, v) for y, u, v in yuv]
    big = compare_videos(_ArrayReader(yuv, rgb, 8), _ArrayReader(yuv_d, rgb_d, 8))
    monkeypatch.setattr(metrics, "_MSSSIM_BATCH_PIXELS", 2 * 32 * 40)  # batches of 2, 2, 1
    small = compare_videos(_ArrayReader(yuv, rgb, 8), _ArrayReader(yuv_d, rgb_d, 8))
    for k in ("ms-ssim-rgb", "ms-ssim-y"):
        assert len(small.per_frame[k]) == 5
        assert small.per_frame[k] == pytest.approx(big.per_frame[k], abs=1e-6)
    assert 0.0 < big.ms_ssim_rgb < 1.0


def test_compare_videos_mismatch_errors() -> None:
    yuv, rgb = _video(2, 32, 48)
    ref = _ArrayReader(yuv, rgb, 8)
    yuv_s, rgb_s = _video(2, 32, 64)
    with pytest.raises(InputError, match="frame size mismatch.*48x32.*64x32"):
        compare_videos(ref, _ArrayReader(yuv_s, rgb_s, 8))
    with pytest.raises(InputError, match="frame count mismatch.*2 frames.*1"):
        compare_videos(ref, _ArrayReader(yuv[:1], rgb[:1], 8))
    yuv10, rgb10 = _video(2, 32, 48, bit_depth=10)
    with pytest.raises(InputError, match="bit depth mismatch"):
        compare_videos(ref, _ArrayReader(yuv10, rgb10, 10))
    with pytest.raises(InputError, match="frames must be at least 1"):
        compare_videos(ref, ref, frames=0)
    yuv_c = [(y, u[:, :-1], v) for y, u, v in yuv]
    with pytest.raises(InputError, match="U plane shape mismatch at frame 0"):
        compare_videos(ref, _ArrayReader(yuv_c, rgb, 8))
    tiny, tiny_rgb = _video(1, 8, 8)
    with pytest.raises(InputError, match="too small for MS-SSIM"):
        compare_videos(_ArrayReader(tiny, tiny_rgb, 8), _ArrayReader(tiny, tiny_rgb, 8))


def _batch(yuv: list[tuple[np.ndarray, ...]], rgb: list[np.ndarray], ts: range) -> FrameBatch:
    y, u, v = (torch.from_numpy(np.stack([yuv[t][k] for t in ts]).astype(np.int32)) for k in range(3))
    return FrameBatch(y, u, v, torch.from_numpy(np.stack([rgb[t] for t in ts]).astype(np.int32)))


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_accumulator_equals_compare_videos_whatever_the_batches(
    bit_depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    yuv, rgb = _video(7, 32, 40, bit_depth=bit_depth, seed=3)
    rng = np.random.default_rng(4)
    peak = (1 << bit_depth) - 1
    noisy = [np.clip(r + rng.integers(-30, 31, r.shape), 0, peak).astype(r.dtype) for r in rgb]
    yuv_d = [
        tuple(np.clip(p + rng.integers(-9, 10, p.shape), 0, peak).astype(p.dtype) for p in f) for f in yuv
    ]
    monkeypatch.setattr(metrics, "_MSSSIM_BATCH_PIXELS", 3 * 32 * 40)  # MS-SSIM groups of 3, 3, 1 frames
    ref = compare_videos(_ArrayReader(yuv, rgb, bit_depth), _ArrayReader(yuv_d, noisy, bit_depth))
    for sizes in ([7], [1] * 7, [2, 4, 1], [4, 3]):
        acc = MetricsAccumulator(40, 32, bit_depth)
        t = 0
        for n in sizes:
            acc.add(_batch(yuv, rgb, range(t, t + n)), _batch(yuv_d, noisy, range(t, t + n)))
            t += n
        got = acc.result()
        assert got == ref and got.per_frame == ref.per_frame  # exactly, per frame too
    # PSNR is the float64 numpy PSNR of the same frames, to the last bit
    for t in range(7):
        assert ref.per_frame["psnr-rgb"][t] == metrics.psnr(rgb[t], noisy[t], peak)
        assert ref.per_frame["psnr-u"][t] == metrics.psnr(yuv[t][1], yuv_d[t][1], peak)


def test_accumulator_checks() -> None:
    with pytest.raises(InputError, match="too small for MS-SSIM"):
        MetricsAccumulator(8, 8, 8)
    acc = MetricsAccumulator(40, 32, 8)
    with pytest.raises(InputError, match="no frames"):
        acc.result()
    yuv, rgb = _video(2, 32, 40)
    bad = [(y, u[:, :-1], v) for y, u, v in yuv]
    with pytest.raises(InputError, match="U plane shape mismatch at frame 0"):
        acc.add(_batch(yuv, rgb, range(2)), _batch(bad, rgb, range(2)))


def test_cuda_decodes_run_without_tf32_and_restore_the_settings() -> None:
    knobs = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [k.fp32_precision for k in knobs]
    with ieee_fp32(torch.device("cuda")):  # only flags: no CUDA device needed
        assert [k.fp32_precision for k in knobs] == ["ieee", "ieee"]
    assert [k.fp32_precision for k in knobs] == before
    with ieee_fp32(torch.device("cpu")):
        assert [k.fp32_precision for k in knobs] == before


# ------------------------------------------------------------------------------------------
# rate
# ------------------------------------------------------------------------------------------


def test_rate() -> None:
    r = rate(12_000, frames=10, width=64, height=48, fps=30)
    assert r == {
        "bytes": 12_000,
        "bpp": pytest.approx(8 * 12_000 / (10 * 64 * 48)),
        "bitrate": pytest.approx(8 * 12_000 * 30 / (10 * 1000)),
    }
    assert r["bitrate"] == pytest.approx(288.0)
    r = rate(1000, frames=3, width=2, height=2, fps=Fraction(30000, 1001))
    assert r["bitrate"] == pytest.approx(8 * 1000 * 30000 / 1001 / 3 / 1000)
    assert rate(0, frames=1, width=1, height=1, fps=1)["bpp"] == 0.0
    with pytest.raises(ValueError):
        rate(-1, frames=1, width=1, height=1, fps=1)
    with pytest.raises(ValueError):
        rate(10, frames=0, width=1, height=1, fps=1)
    with pytest.raises(ValueError):
        rate(10, frames=1, width=1, height=1, fps=0)


@pytest.mark.parametrize("win", [3, 5, 7, 11])
def test_blur_is_the_valid_gaussian_filter(win: int) -> None:
    """Both the one-pass 2-D kernel (small windows) and the separable passes (large ones) filter every
    channel with the valid ``g g^T`` window (float64: equal to a direct sum of shifted slices)."""
    from hinerv.metrics import _blur, _gauss_1d

    g = _gauss_1d(win, 1.5)
    x = torch.rand(2, 4, 23, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ho, wo = 23 - win + 1, 30 - win + 1
    ref = sum(g[i] * g[j] * x[..., i : i + ho, j : j + wo] for i in range(win) for j in range(win))
    torch.testing.assert_close(_blur(x, g), ref, rtol=1e-12, atol=1e-12)
    x32 = x.float().requires_grad_(True)
    out = _blur(x32, g)
    assert out.dtype == torch.float32 and out.shape == (2, 4, ho, wo)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-6)
    out.sum().backward()  # gradient flows to the maps
    assert x32.grad is not None and x32.grad.shape == x32.shape


@pytest.mark.parametrize("win", [3, 5, 11])
def test_blur_adjoint_is_the_transpose(win: int) -> None:
    """<blur(x), g> == <x, blur_adjoint(g)> for every window size (float64)."""
    from hinerv.metrics import _blur, _gauss_1d

    gen = torch.Generator().manual_seed(1)
    g1 = _gauss_1d(win, 1.5)
    x = torch.rand(2, 3, 21, 26, dtype=torch.float64, generator=gen)
    g = torch.rand(2, 3, 21 - win + 1, 26 - win + 1, dtype=torch.float64, generator=gen)
    adj = _blur(g, g1, adjoint=True)
    assert adj.shape == x.shape
    torch.testing.assert_close((_blur(x, g1) * g).sum(), (x * adj).sum(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("win", [5, 11])
@pytest.mark.parametrize("shape", [(2, 3, 40, 48), (1, 1, 23, 37)])
def test_ms_ssim_closed_form_gradient_matches_autograd(win: int, shape: tuple[int, ...]) -> None:
    """The training loss's hand-written SSIM backward (x needs a gradient, the target does not) gives
    the same value and gradient as autograd through the composition (which runs when the target
    needs a gradient too), and passes gradcheck in float64."""
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(shape, dtype=torch.float64, generator=gen).requires_grad_(True)
    y = torch.rand(shape, dtype=torch.float64, generator=gen)
    out = ms_ssim(x, y, win_size=win)
    (gx,) = torch.autograd.grad(out.sum(), x)
    y2 = y.clone().requires_grad_(True)
    out2 = ms_ssim(x, y2, win_size=win)
    (gx2,) = torch.autograd.grad(out2.sum(), x)
    torch.testing.assert_close(out, out2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx2, rtol=1e-9, atol=1e-12)
    # a small crop: gradcheck costs two evaluations per input pixel
    xs, ys = x[:1, :1, :17, :19].detach().requires_grad_(True), y[:1, :1, :17, :19]
    assert torch.autograd.gradcheck(lambda t: ms_ssim(t, ys, win_size=win), (xs,), eps=1e-6, atol=1e-7)
    with torch.no_grad():  # and the no-grad path (metrics) gives the same value
        torch.testing.assert_close(ms_ssim(x, y, win_size=win), out.detach(), rtol=1e-12, atol=1e-12)
