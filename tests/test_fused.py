"""The fused CPU kernels (hinerv.fused) against the PyTorch compositions they replace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hinerv import fused, metrics
from hinerv.kernels import portable
from hinerv.model import layers


@pytest.fixture(scope="module")
def k():
    mod = fused.kernels()
    if mod is None:
        pytest.skip(f"fused kernels unavailable here: {fused.build_error() or 'disabled'}")
    return mod


@pytest.fixture
def same_at_1_and_2_threads():
    """A check that ``run()`` gives the same tensors, bit for bit, at 1 and at 2 intra-op threads (the
    thread count is restored afterwards)."""
    n = torch.get_num_threads()

    def check(run) -> None:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        for a, b in zip(one, run(), strict=True):
            assert torch.equal(a, b)

    yield check
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


def test_results_do_not_depend_on_threads(k, same_at_1_and_2_threads) -> None:
    torch.manual_seed(0)
    x = torch.randn(70_000, 24)
    img, tgt = torch.rand(1, 3, 120, 160), torch.rand(1, 3, 120, 160)
    win = metrics._gauss_1d(5, 1.5).float()

    def run() -> list[torch.Tensor]:
        s, cs, maps = k.ssim_forward(img, tgt, win, 1e-4, 9e-4)
        gx = k.ssim_backward(img, tgt, win, maps, torch.ones(1, 3), torch.ones(1, 3))
        return [*k.layer_norm_forward(x, 1e-6), *k.gelu_forward(x, True), s, cs, gx]

    same_at_1_and_2_threads(run)


@pytest.mark.parametrize(
    "shape, win_size", [((1, 3, 144, 256), 5), ((2, 3, 20, 17), 5), ((1, 3, 9, 16), 5), ((1, 2, 30, 40), 11)]
)
def test_ssim_terms_match_the_pytorch_path(k, shape: tuple[int, ...], win_size: int) -> None:
    torch.manual_seed(sum(shape))
    x = torch.rand(shape, requires_grad=True)
    y = torch.rand(shape)
    win = metrics._gauss_1d(win_size, 1.5)
    s_ref, cs_ref = metrics._SSIMTerms.apply(x, y, win, 1e-4, 9e-4)
    s, cs = portable.ssim_terms(x, y, win, 1e-4, 9e-4)
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
    assert not fused.loaded()  # tried, but nothing loaded
    assert fused.build_error() == "RuntimeError: error: g++ not found"
    x = torch.randn(4, 6, requires_grad=True)
    y = layers.layer_norm(x)  # the PyTorch composition
    torch.testing.assert_close(y, F.layer_norm(x, (6,), eps=layers.LN_EPS))


def test_loaded_after_a_successful_load(k) -> None:
    assert fused.loaded() and fused.build_error() is None


def test_build_name_depends_on_cpu_and_ninja(monkeypatch) -> None:
    a = fused._build_name()
    assert a == fused._build_name()
    monkeypatch.setattr(fused, "_cpu_fingerprint", lambda: "another cpu")
    b = fused._build_name()
    assert b != a
    monkeypatch.setattr(fused.shutil, "which", lambda _: "/elsewhere/ninja")
    assert fused._build_name() not in (a, b)


def test_build_directory_is_torchs_default(monkeypatch) -> None:
    """The folder passed to ``load`` is the one torch would pick on its own (the cache stays put)."""
    import torch.utils.cpp_extension as ext

    if not hasattr(ext, "_get_build_directory"):
        pytest.skip("this torch has no _get_build_directory to compare with")
    name = fused._build_name()
    assert fused.build_directory() == Path(ext._get_build_directory(name, False))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/some/where")
    assert fused.build_directory("x") == Path("/some/where/x")


def test_a_killed_builds_lock_file_does_not_hang_the_next(k, tmp_path: Path) -> None:
    """torch's ``lock`` file, left in the build folder by a process killed while loading, used to make every
    later process wait on it forever; a fresh process now clears it under its OS lock and loads."""
    folder = fused.build_directory()
    (folder / "lock").touch()
    code = "from hinerv import fused; import sys; sys.exit(0 if fused.kernels() is not None else 3)"
    try:
        run = subprocess.run([sys.executable, "-c", code], timeout=300, capture_output=True, text=True)
        left = (folder / "lock").exists()
    finally:
        (folder / "lock").unlink(missing_ok=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not left


@pytest.fixture(scope="module")
def km(k):
    mod = fused.avx512_kernels()
    if mod is None:
        pytest.skip("the fused MLP needs an AVX-512 build")
    return mod


def _mlp_ref(z, w1, w2, residual=None, mask=None, normalize=True):
    """The block MLP in float64 by PyTorch: [residual +] [mask *] fc2(GELU(fc1(LN(z))))."""
    x = F.layer_norm(z, (z.shape[-1],), eps=layers.LN_EPS) if normalize else z
    y = F.linear(F.gelu(F.linear(x, w1)), w2)
    if mask is not None:
        y = y * mask.reshape(*y.shape[:-1], 1)
    return y if residual is None else y + residual


@pytest.mark.parametrize(
    "m, k_in, hidden, n_out",
    [
        (576, 96, 384, 96),
        (1000, 24, 96, 24),
        (97, 48, 96, 24),
        (300, 24, 12, 12),
        (13, 7, 9, 5),
        (1, 4, 70, 17),
    ],
)
def test_mlp_forward_and_backward_against_float64(km, m: int, k_in: int, hidden: int, n_out: int) -> None:
    """Odd row counts (tiles of 6, blocks of 48), widths off the vector size and outside the LayerNorm
    dispatch list, with and without residual and mask; outputs, saved tensors and input gradients."""
    torch.manual_seed(m + k_in + hidden)
    z = (torch.randn(m, k_in, dtype=torch.float64) * 2 + 1).requires_grad_()
    w1 = (torch.randn(hidden, k_in, dtype=torch.float64) / k_in**0.5).requires_grad_()
    w2 = (torch.randn(n_out, hidden, dtype=torch.float64) / hidden**0.5).requires_grad_()
    res = torch.randn(m, n_out, dtype=torch.float64)
    mask = (torch.rand(m) > 0.3).double()
    for r, mk in ((None, None), (res, None), (res, mask), (None, mask)):
        ref = _mlp_ref(z, w1, w2, r, mk)
        f = [t.float() if t is not None else None for t in (z.detach(), w1.detach(), w2.detach(), r, mk)]
        (out,) = km.mlp_forward(*f, True, layers.LN_EPS, False)
        out_s, xn, rstd, y, d = km.mlp_forward(*f, True, layers.LN_EPS, True)
        assert torch.equal(out, out_s)
        scale = ref.abs().max().item()
        torch.testing.assert_close(out.double(), ref.detach(), rtol=0, atol=2e-6 * scale)
    torch.testing.assert_close(
        xn.double(), F.layer_norm(z, (k_in,), eps=layers.LN_EPS).detach(), rtol=0, atol=3e-6
    )
    h = F.linear(F.layer_norm(z, (k_in,), eps=layers.LN_EPS), w1)
    torch.testing.assert_close(y.double(), F.gelu(h).detach(), rtol=0, atol=2e-6 * h.abs().max().item())
    # gradients (no mask or residual: the caller applies those)
    out64 = F.linear(F.gelu(h), w2)
    g = torch.randn(m, n_out, dtype=torch.float64)
    out64.backward(g)
    gz, gw1, gw2 = km.mlp_backward(g.float(), w1.detach().float(), w2.detach().float(), xn, rstd, y, d, True)
    for got, ref in ((gz, z.grad), (gw1, w1.grad), (gw2, w2.grad)):
        assert got.shape == ref.shape
        torch.testing.assert_close(got.double(), ref, rtol=0, atol=5e-6 * ref.abs().max().item())


def test_mlp_without_normalisation(km) -> None:
    torch.manual_seed(5)
    z, w1, w2 = torch.randn(50, 8), torch.randn(32, 8) / 3, torch.randn(8, 32) / 6
    (out,) = km.mlp_forward(z, w1, w2, None, None, False, layers.LN_EPS, False)
    ref = _mlp_ref(z.double(), w1.double(), w2.double(), normalize=False)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    _, xn, rstd, y, d = km.mlp_forward(z, w1, w2, None, None, False, layers.LN_EPS, True)
    assert xn is None and rstd is None
    g = torch.randn(50, 8)
    gz, _, _ = km.mlp_backward(g, w1, w2, z, None, y, d, False)
    z64 = z.double().requires_grad_()
    _mlp_ref(z64, w1.double(), w2.double(), normalize=False).backward(g.double())
    torch.testing.assert_close(gz.double(), z64.grad, rtol=0, atol=1e-5)


def test_mlp_refuses_mismatched_shapes(km) -> None:
    z, w1, w2 = torch.randn(10, 8), torch.randn(16, 8), torch.randn(4, 16)
    with pytest.raises(RuntimeError, match="fc1 takes 7 inputs"):
        km.mlp_forward(z, torch.randn(16, 7), w2, None, None, True, 1e-6, False)
    with pytest.raises(RuntimeError, match="fc2 takes"):
        km.mlp_forward(z, w1, torch.randn(4, 15), None, None, True, 1e-6, False)
    with pytest.raises(RuntimeError, match="residual has"):
        km.mlp_forward(z, w1, w2, torch.randn(10, 5), None, True, 1e-6, False)
    with pytest.raises(RuntimeError, match="mask has"):
        km.mlp_forward(z, w1, w2, None, torch.ones(9), True, 1e-6, False)
    with pytest.raises(RuntimeError, match="float32"):
        km.mlp_forward(z.double(), w1, w2, None, None, True, 1e-6, False)
    with pytest.raises(RuntimeError, match="needs rstd"):
        km.mlp_backward(torch.randn(10, 4), w1, w2, z, None, torch.randn(10, 16), torch.randn(10, 16), True)


def test_mlp_does_not_depend_on_threads(km, same_at_1_and_2_threads) -> None:
    torch.manual_seed(2)
    z, w1, w2, r = (
        torch.randn(5000, 24),
        torch.randn(96, 24) / 5,
        torch.randn(24, 96) / 10,
        torch.randn(5000, 24),
    )

    def run() -> list[torch.Tensor]:
        out, xn, rstd, y, d = km.mlp_forward(z, w1, w2, r, None, True, 1e-6, True)
        return [out, xn, rstd, y, d, *km.mlp_backward(r, w1, w2, xn, rstd, y, d, True)]

    same_at_1_and_2_threads(run)


@pytest.mark.parametrize(
    "shape, ks",
    [((1, 18, 32, 96), 3), ((2, 7, 5, 13), 3), ((1, 9, 16, 24), 3), ((1, 6, 9, 48), 3), ((1, 5, 4, 100), 3),
     ((2, 7, 5, 13), 5), ((1, 1, 1, 8), 3), ((1, 2, 3, 16), 3), ((1, 3, 17, 64), 3)],
)  # fmt: skip
def test_dwconv_matches_onednn(km, shape: tuple[int, ...], ks: int) -> None:
    """Interior runs of every vector count, borders, images narrower than the kernel, other kernel sizes."""
    torch.manual_seed(sum(shape) + ks)
    x, w = torch.randn(shape), torch.randn(shape[-1], 1, ks, ks)
    ref = layers.conv_nhwc(x, w, None, groups=shape[-1])
    torch.testing.assert_close(km.dwconv_forward(x, w), ref, rtol=1e-6, atol=1e-6)


def test_dwconv_refuses_bad_weights(km) -> None:
    x = torch.randn(1, 4, 4, 8)
    with pytest.raises(RuntimeError, match="odd k"):
        km.dwconv_forward(x, torch.randn(8, 1, 2, 2))
    with pytest.raises(RuntimeError, match="odd k"):
        km.dwconv_forward(x, torch.randn(4, 1, 3, 3))
    with pytest.raises(RuntimeError, match="one shape"):
        km.dwconv_weight_grad(x, torch.randn(1, 4, 4, 7), 3)
    with pytest.raises(RuntimeError, match="odd k"):
        km.dwconv_weight_grad(x, x, 2)


def test_dwconv_does_not_depend_on_threads(km, same_at_1_and_2_threads) -> None:
    torch.manual_seed(3)
    x, w = torch.randn(2, 40, 50, 24), torch.randn(24, 1, 3, 3)
    same_at_1_and_2_threads(lambda: [km.dwconv_forward(x, w)])


@pytest.mark.parametrize("shape", [(1, 144, 256, 12), (2, 5, 7, 13), (1, 1, 1, 4), (3, 4, 4, 40)])
def test_head_matches_the_composition(km, shape: tuple[int, ...]) -> None:
    """Planes whose size is not a multiple of 16 (blocks never span two frames), several frames."""
    torch.manual_seed(sum(shape))
    y, w, b = torch.randn(shape) * 3, torch.randn(3, shape[-1]), torch.randn(3)
    ref = torch.sigmoid(F.linear(y.double(), w.double(), b.double())).permute(0, 3, 1, 2)
    out = km.head_forward(y, w, b)
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="weight"):
        km.head_forward(y, torch.randn(2, shape[-1]), b)


@pytest.mark.parametrize(
    "shape, ks", [((1, 20, 30, 24), 3), ((2, 7, 5, 13), 3), ((1, 6, 9, 40), 5), ((1, 1, 2, 8), 3)]
)
def test_dwconv_gradients_match_aten(km, shape: tuple[int, ...], ks: int) -> None:
    torch.manual_seed(sum(shape))
    x, w, g = (
        torch.randn(shape, dtype=torch.float64),
        torch.randn(shape[-1], 1, ks, ks, dtype=torch.float64),
        torch.randn(shape, dtype=torch.float64),
    )
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    gx_ref, gw_ref = torch.autograd.grad(layers.conv_nhwc(xr, wr, None, groups=shape[-1]), (xr, wr), g)
    gx = km.dwconv_forward(g.float(), w.float().flip(-1, -2).contiguous())
    gw = km.dwconv_weight_grad(x.float(), g.float(), ks)
    torch.testing.assert_close(gx.double(), gx_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(gw.double(), gw_ref, rtol=0, atol=2e-6 * gw_ref.abs().max().item())


def test_dwconv_weight_grad_does_not_depend_on_threads(km, same_at_1_and_2_threads) -> None:
    torch.manual_seed(4)
    x, g = torch.randn(2, 37, 41, 24), torch.randn(2, 37, 41, 24)
    same_at_1_and_2_threads(lambda: [km.dwconv_weight_grad(x, g, 3)])
