"""Layers: the oneDNN linear (and its fused GELU) against the plain PyTorch composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hinerv import kernels
from hinerv.model import layers
from hinerv.model.layers import _LinearFn, _use_onednn, linear, linear_gelu

needs_onednn = pytest.mark.skipif(
    layers._ONEDNN_LINEAR is None or not torch.backends.mkldnn.is_available(), reason="no oneDNN linear"
)


def _graph_names(y: torch.Tensor, depth: int = 3) -> str:
    """Names of the autograd nodes up to ``depth`` steps behind ``y``."""
    names, todo = [], [(y.grad_fn, 0)]
    while todo:
        node, d = todo.pop()
        if node is None or d > depth:
            continue
        names.append(type(node).__name__)
        todo += [(nxt, d + 1) for nxt, _ in node.next_functions]
    return " ".join(names)


def _inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 7, 24, generator=g, dtype=dtype)  # [N, H, W, K]
    w = torch.randn(40, 24, generator=g, dtype=dtype) / 5  # [N_out, K]
    return x, w


@needs_onednn
def test_linear_takes_onednn_for_float32_cpu_only() -> None:
    x, w = _inputs()
    assert _use_onednn(x, w)
    assert not _use_onednn(x.double(), w.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _use_onednn(x, w)


@needs_onednn
@pytest.mark.parametrize("shape", [(2, 9, 7, 24), (300, 24), (1, 1, 1, 24)])
def test_linear_forward_and_gradients_match_f_linear(shape: tuple[int, ...]) -> None:
    """Values and both gradients of the custom Function equal the float64 F.linear ones (float32 rounding)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g).requires_grad_(True)
    w = (torch.randn(40, 24, generator=g) / 5).requires_grad_(True)
    gy = torch.randn(*shape[:-1], 40, generator=g)
    y = linear(x, w)
    assert y.shape == (*shape[:-1], 40)
    assert "LinearFn" in _graph_names(y)  # the custom Function ran
    y.backward(gy)
    x64, w64 = x.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    y64 = F.linear(x64, w64)
    y64.backward(gy.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad.double(), w64.grad, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_linear_function_gradients_only_where_needed() -> None:
    x, w = _inputs()
    x2 = x.reshape(-1, 24).requires_grad_(True)
    y = _LinearFn.apply(x2, w)  # weight frozen
    y.sum().backward()
    assert x2.grad is not None and w.grad is None
    torch.testing.assert_close(x2.grad, torch.ones(x2.shape[0], 40) @ w)


@needs_onednn
def test_linear_gelu_fused_in_inference_matches_the_composition() -> None:
    x, w = _inputs()
    ref = F.gelu(F.linear(x.double(), w.double()))  # exact (erf) GELU
    with torch.no_grad():
        fused = linear_gelu(x, w)
    torch.testing.assert_close(fused.double(), ref, rtol=1e-5, atol=1e-6)
    # with a gradient it is the unfused composition, differentiable
    wg = w.clone().requires_grad_(True)
    y = linear_gelu(x, wg)
    torch.testing.assert_close(y.detach().double(), ref, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert wg.grad is not None


def test_linear_falls_back_to_f_linear_exactly() -> None:
    x, w = _inputs(torch.float64)  # float64: the plain path, so gradcheck holds
    torch.testing.assert_close(linear(x, w), F.linear(x, w), rtol=0, atol=0)
    torch.testing.assert_close(linear_gelu(x, w), F.gelu(F.linear(x, w)), rtol=0, atol=0)
    xs = x[:1, :2, :2].clone().requires_grad_(True)
    ws = w[:5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(linear, (xs, ws))


@pytest.mark.parametrize("use_fused", [False, True])
@pytest.mark.parametrize("shape", [(1, 12, 16, 8), (2, 5, 7, 32), (3, 4)])
def test_layer_norm_matches_f_layer_norm(shape: tuple[int, ...], use_fused: bool, monkeypatch) -> None:
    """The CPU LayerNorm (fused kernels, or own forward and ATen backward) equals F.layer_norm within
    float rounding, with and without a gradient, and is exactly F.layer_norm's gradient in float64."""
    from hinerv import fused

    if not use_fused:
        monkeypatch.setenv(fused.FUSED_ENV, "0")
    elif fused.kernels() is None:
        pytest.skip("fused kernels unavailable")
    g = torch.Generator().manual_seed(3)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        x = (torch.randn(shape, generator=g, dtype=dtype) * 3 + 1).requires_grad_(True)
        gy = torch.randn(shape, generator=g, dtype=dtype)
        y = layers.layer_norm(x)
        (gx,) = torch.autograd.grad(y, x, gy)
        x2 = x.detach().clone().requires_grad_(True)
        y2 = F.layer_norm(x2, (shape[-1],), eps=layers.LN_EPS)
        (gx2,) = torch.autograd.grad(y2, x2, gy)
        torch.testing.assert_close(y, y2, rtol=tol, atol=tol)
        torch.testing.assert_close(gx, gx2, rtol=tol, atol=tol)
        with torch.no_grad():
            torch.testing.assert_close(layers.layer_norm(x), y2, rtol=tol, atol=tol)
    name = "_FusedLayerNormFnBackward" if use_fused else "_LayerNormFnBackward"
    assert name in _graph_names(layers.layer_norm(x.float()))


@pytest.mark.parametrize(("n_out", "k"), [(32, 8), (8, 32), (40, 24), (4, 4)])
def test_weight_grad_is_the_plain_product(n_out: int, k: int) -> None:
    """Both orders of the weight-gradient product give gy^T x (float64: to rounding)."""
    g = torch.Generator().manual_seed(4)
    gy = torch.randn(300, n_out, generator=g, dtype=torch.float64)
    x = torch.randn(300, k, generator=g, dtype=torch.float64)
    out = layers._weight_grad(gy, x)
    assert out.shape == (n_out, k)
    torch.testing.assert_close(out, gy.t() @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("c_in", "c_out", "hidden"), [(24, 24, 96), (48, 24, 96), (12, 12, 12)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_block_same_on_fused_and_unfused_paths(c_in: int, c_out: int, hidden: int, with_mask: bool) -> None:
    """ConvNeXtBlock through the fused MLP kernels (where built) and through the separate layers: same
    output and gradients within float rounding, with and without a gradient, in patch mode too."""
    from hinerv import fused

    if fused.avx512_kernels() is None:
        pytest.skip("fused MLP unavailable")
    torch.manual_seed(c_in + hidden)
    blk = layers.ConvNeXtBlock(c_in, c_out, hidden, 3)
    x = torch.randn(2, 10, 13, c_in, requires_grad=True)
    mask = torch.rand(2, 10, 13, 1) > 0.3 if with_mask else None
    g = torch.randn(2, 10, 13, c_out)

    def run() -> list[torch.Tensor]:
        blk.zero_grad()
        y = blk(x, mask)
        grads = torch.autograd.grad(y, (x, *blk.parameters()), g)
        with torch.no_grad():
            y_ng = blk(x, mask)
        return [y, y_ng, *grads]

    y = blk(x, mask)
    assert "_FusedMLPFnBackward" in _graph_names(y, 0)
    fast = run()
    with kernels.force("portable"):  # the separate layers (LayerNorm and GELU still on their kernels)
        assert "_FusedMLPFnBackward" not in _graph_names(blk(x, mask))
        slow = run()
    for a, b in zip(fast, slow, strict=True):  # weight gradients: long sums in another order
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6 * max(1.0, b.abs().max().item()))


@pytest.mark.parametrize(
    ("shape", "scale"), [((1, 9, 16, 24), 2), ((2, 5, 7, 13), 3), ((1, 4, 6, 8), 5), ((1, 3, 3, 4), 1)]
)
def test_upsample_add_matches_the_composition(shape: tuple[int, ...], scale: int, monkeypatch) -> None:
    """Bilinear up-sampling plus the tiled table: the fused kernel (where built) against F.interpolate and
    an explicit tiling, values and gradients, with and without a gradient."""
    from hinerv import fused

    g = torch.Generator().manual_seed(sum(shape) + scale)
    x = torch.randn(shape, generator=g, requires_grad=True)
    table = torch.randn(shape[0], scale, scale, shape[-1], generator=g, requires_grad=True)
    n, h, w, c = shape
    up = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear", align_corners=False)
    ref = up.permute(0, 2, 3, 1) + table.repeat(1, h, w, 1)
    gy = torch.randn(ref.shape, generator=g)
    ref_grads = torch.autograd.grad(ref, (x, table), gy)
    paths = [False] + ([True] if fused.kernels() is not None else [])
    for use_fused in paths:
        if not use_fused:
            monkeypatch.setenv(fused.FUSED_ENV, "0")
        else:
            monkeypatch.delenv(fused.FUSED_ENV, raising=False)
        y = layers.upsample_add(x, scale, table)
        assert y.is_contiguous() and y.shape == (n, h * scale, w * scale, c)
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-6)
        for a, b in zip(torch.autograd.grad(y, (x, table), gy), ref_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(layers.upsample_add(x, scale, table), ref, rtol=0, atol=1e-6)


def test_dwconv_same_as_conv_nhwc_with_gradients() -> None:
    """layers.dwconv (the AVX-512 kernel where built) against the oneDNN conv, values and gradients."""
    g = torch.Generator().manual_seed(7)
    for shape in ((1, 9, 16, 24), (2, 7, 5, 13)):
        x = torch.randn(shape, generator=g, requires_grad=True)
        w = torch.randn(shape[-1], 1, 3, 3, generator=g, requires_grad=True)
        gy = torch.randn(shape, generator=g)
        y = layers.dwconv(x, w)
        ref = layers.conv_nhwc(x, w, None, groups=shape[-1])
        torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
        for a, b in zip(
            torch.autograd.grad(y, (x, w), gy), torch.autograd.grad(ref, (x, w), gy), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(layers.dwconv(x, w), ref, rtol=1e-6, atol=1e-6)
        xd, wd = x.detach().double(), w.detach().double()  # other dtypes: the PyTorch conv
        torch.testing.assert_close(layers.dwconv(xd, wd), layers.conv_nhwc(xd, wd, None, groups=shape[-1]))
