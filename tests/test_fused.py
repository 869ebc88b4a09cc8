"""The fused CPU kernels (hinerv.fused) against the PyTorch compositions they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hinerv import fused, metrics
from hinerv.model import layers


@pytest.fixture(scope="module")
def k():
    mod = fused.kernels()
    if mod is None:
        pytest.skip(f"fused kernels unavailable here: {fused.build_error() or 'disabled'}")
    return mod


@pytest.fixture
def threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("c", [1, 4, 5, 8, 12, 13, 24, 32, 40, 96, 100])
@pytest.mark.parametrize("rows", [1, 15, 16, 37, 1000])
def test_layer_norm_matches_aten(k, c: int, rows: int) -> None:
    torch.manual_seed(c * 1000 + rows)
    x = (torch.randn(rows, c) * 3 + 2).requires_grad_()
    y, rstd = k.layer_norm_forward(x.detach(), layers.LN_EPS)
    ref = F.layer_norm(x, (c,), eps=layers.LN_EPS)
    assert rstd.shape == (rows,)
    torch.testing.assert_close(y, ref.detach(), rtol=0, atol=2e-6)
    g = torch.randn(rows, c)
    (gref,) = torch.autograd.grad(ref, x, g)
    # the backward subtracts two means from g: cancellation, so a relative tolerance
    torch.testing.assert_close(k.layer_norm_backward(g, y, rstd), gref, rtol=1e-4, atol=2e-5)


def test_layer_norm_keeps_leading_shape(k) -> None:
    x = torch.randn(2, 3, 5, 24)
    y, rstd = k.layer_norm_forward(x, 1e-6)
    assert y.shape == x.shape and rstd.shape == (2, 3, 5)


def test_kernels_refuse_bad_tensors(k) -> None:
    with pytest.raises(RuntimeError, match="float32"):
        k.layer_norm_forward(torch.randn(4, 8, dtype=torch.float64), 1e-6)
    with pytest.raises(RuntimeError, match="contiguous"):
        k.gelu_forward(torch.randn(8, 4).t(), False)
    with pytest.raises(RuntimeError, match="odd window"):
        k.ssim_forward(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.ones(4) / 4, 1e-4, 9e-4)


def test_gelu_and_derivative_against_float64(k) -> None:
    x = torch.linspace(-12, 12, 100_001)
    y, d = k.gelu_forward(x, True)
    (y_only,) = k.gelu_forward(x, False)
    assert torch.equal(y, y_only)
    x64 = x.double().requires_grad_()
    ref = F.gelu(x64)
    (dref,) = torch.autograd.grad(ref.sum(), x64)
    assert (y.double() - ref.detach()).abs().max() < 1e-6  # torch's own float32 GELU: ~1.2e-6
    assert (d.double() - dref).abs().max() < 1e-6


def test_gelu_special_values(k) -> None:
    y, d = k.gelu_forward(torch.tensor([0.0, -200.0, 200.0, 1e-30]), True)
    assert y.tolist()[:3] == [0.0, 0.0, 200.0] and y[3] == pytest.approx(5e-31)
    assert d.tolist()[0] == 0.5 and abs(d[1]) < 1e-30 and d[2] == 1.0


def test_results_do_not_depend_on_threads(k, threads) -> None:
    torch.manual_seed(0)
    x = torch.randn(70_000, 24)
    img, tgt = torch.rand(1, 3, 120, 160), torch.rand(1, 3, 120, 160)
    win = metrics._gauss_1d(5, 1.5).float()

    def run() -> list[torch.Tensor]:
        s, cs, maps = k.ssim_forward(img, tgt, win, 1e-4, 9e-4)
        gx = k.ssim_backward(img, tgt, win, maps, torch.ones(1, 3), torch.ones(1, 3))
        return [*k.layer_norm_forward(x, 1e-6), *k.gelu_forward(x, True), s, cs, gx]

    torch.set_num_threads(1)
    one = run()
    torch.set_num_threads(2)
    for a, b in zip(one, run(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "shape, win_size", [((1, 3, 144, 256), 5), ((2, 3, 20, 17), 5), ((1, 3, 9, 16), 5), ((1, 2, 30, 40), 11)]
)
def test_ssim_terms_match_the_pytorch_path(k, shape: tuple[int, ...], win_size: int) -> None:
    torch.manual_seed(sum(shape))
    x = torch.rand(shape, requires_grad=True)
    y = torch.rand(shape)
    win = metrics._gauss_1d(win_size, 1.5)
    s_ref, cs_ref = metrics._SSIMTerms.apply(x, y, win, 1e-4, 9e-4)
    s, cs = metrics._FusedSSIMTerms.apply(x, y, win.float(), 1e-4, 9e-4)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=2e-7)
    torch.testing.assert_close(cs, cs_ref, rtol=0, atol=2e-7)
    gs, gcs = torch.randn(shape[:2]), torch.randn(shape[:2])
    (g_ref,) = torch.autograd.grad((s_ref * gs).sum() + (cs_ref * gcs).sum(), x)
    (g,) = torch.autograd.grad((s * gs).sum() + (cs * gcs).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-8)


def test_training_loss_same_on_both_paths(k, monkeypatch) -> None:
    """ms_ssim and the block layers give the same loss and gradients with and without the kernels."""
    torch.manual_seed(1)
    out = torch.rand(1, 3, 176, 200, requires_grad=True)
    tgt = torch.rand(1, 3, 176, 200)
    h = torch.randn(2, 9, 11, 24, requires_grad=True)

    def run() -> list[torch.Tensor]:
        loss = (1 - metrics.ms_ssim(out, tgt, win_size=5)).mean()
        act = layers.gelu(layers.layer_norm(h)).square().mean()
        return [loss, act, *torch.autograd.grad(loss + act, (out, h))]

    fused_run = run()
    monkeypatch.setenv(fused.FUSED_ENV, "0")
    assert fused.kernels() is None
    for a, b in zip(fused_run, run(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_no_grad_paths(k) -> None:
    x = torch.randn(3, 7, 12)
    ref = F.layer_norm(x, (12,), eps=layers.LN_EPS)
    torch.testing.assert_close(layers.layer_norm(x), ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(layers.gelu(x), F.gelu(x), rtol=0, atol=2e-6)
    assert layers.gelu(x.double()).dtype == torch.float64  # other dtypes: PyTorch's own


def test_failed_build_falls_back(monkeypatch) -> None:
    import torch.utils.cpp_extension as ext

    def broken(**_: object) -> None:
        raise RuntimeError("no compiler\nerror: g++ not found")

    monkeypatch.setattr(fused, "_tried", False)
    monkeypatch.setattr(fused, "_module", None)
    monkeypatch.setattr(ext, "load", broken)
    assert fused.kernels() is None
    assert fused.loaded()
    assert fused.build_error() == "RuntimeError: error: g++ not found"
    x = torch.randn(4, 6, requires_grad=True)
    y = layers.layer_norm(x)  # the PyTorch composition
    torch.testing.assert_close(y, F.layer_norm(x, (6,), eps=layers.LN_EPS))


def test_build_name_depends_on_cpu_and_ninja(monkeypatch) -> None:
    a = fused._build_name()
    assert a == fused._build_name()
    monkeypatch.setattr(fused, "_cpu_fingerprint", lambda: "another cpu")
    b = fused._build_name()
    assert b != a
    monkeypatch.setattr(fused.shutil, "which", lambda _: "/elsewhere/ninja")
    assert fused._build_name() not in (a, b)
