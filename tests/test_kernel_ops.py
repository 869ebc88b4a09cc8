"""The fused CPU kernels as torch custom ops (hinerv.kernels.ops): each op's schema, fake function and
autograd registration (torch.library.opcheck), and a small network compiled through them: its graphs
hold the ops (forward and backward) and it computes what eager does, and what the torch tier does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import torch
import torch._dynamo as dynamo
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func
from torch.fx import GraphModule

from hinerv import kernels, metrics
from hinerv.kernels import ops
from hinerv.model import layers

pytestmark = pytest.mark.skipif(not kernels.available("portable"), reason="fused kernels unavailable here")
needs_avx512 = pytest.mark.skipif(not kernels.available("avx512"), reason="no AVX-512 build here")


def _r(g: torch.Generator, *shape: int, scale: float = 1.0, grad: bool = False) -> torch.Tensor:
    return (torch.randn(shape, generator=g) * scale).requires_grad_(grad)


def _ln(g: torch.Generator, grad: bool) -> tuple:
    return (_r(g, 2, 3, 5, 12, scale=3, grad=grad),)


def _ssim(g: torch.Generator, grad: bool) -> tuple:
    x = torch.rand(1, 2, 14, 15, generator=g).requires_grad_(grad)
    return x, torch.rand(1, 2, 14, 15, generator=g), metrics._gauss_1d(5, 1.5).float(), 1e-4, 9e-4


def _mlp(g: torch.Generator, grad: bool) -> tuple:
    mask = (torch.rand(2 * 4 * 5, generator=g) > 0.3).float()
    return (
        _r(g, 2, 4, 5, 8, grad=grad),
        _r(g, 32, 8, scale=0.3, grad=grad),
        _r(g, 8, 32, scale=0.2, grad=grad),
        _r(g, 2, 4, 5, 8, grad=grad),
        mask,
    )


def _mlp_saved(g: torch.Generator, grad: bool) -> tuple:
    z, w1, w2, res, mask = _mlp(g, False)
    _, xn, rstd, y, d = ops._block_mlp_train(z, w1, w2, res, mask)
    return _r(g, 2, 4, 5, 8), w1, w2, xn, rstd, y, d


def _ssim_saved(g: torch.Generator, grad: bool) -> tuple:
    x, y, win, c1, c2 = _ssim(g, False)
    maps = ops._ssim_terms(x, y, win, c1, c2)[2]
    return x, y, win, maps, _r(g, 1, 2), _r(g, 1, 2)


def _ln_saved(g: torch.Generator, grad: bool) -> tuple:
    y, rstd = ops._layer_norm(_ln(g, False)[0])
    return _r(g, *y.shape), y, rstd


#: op name -> (inputs made with or without requires_grad, whether the op is differentiated, AVX-512 only)
OP_INPUTS: dict[str, tuple[Callable[[torch.Generator, bool], tuple], bool, bool]] = {
    "layer_norm": (_ln, True, False),
    "layer_norm_backward": (_ln_saved, False, False),
    "gelu": (lambda g, grad: (_r(g, 3, 17, scale=3),), False, False),
    "gelu_train": (lambda g, grad: (_r(g, 3, 17, scale=3, grad=grad),), True, False),
    "upsample_add": (
        lambda g, grad: (_r(g, 2, 3, 4, 6, grad=grad), 2, _r(g, 2, 2, 2, 6, grad=grad)),
        True,
        False,
    ),
    "ssim_terms": (_ssim, True, False),
    "ssim_terms_backward": (_ssim_saved, False, False),
    "dwconv": (lambda g, grad: (_r(g, 2, 5, 6, 16, grad=grad), _r(g, 16, 1, 3, 3, grad=grad)), True, True),
    "dwconv_weight_grad": (lambda g, grad: (_r(g, 2, 5, 6, 16), _r(g, 2, 5, 6, 16), 3), False, True),
    "block_mlp": (_mlp, False, True),
    "block_mlp_train": (_mlp, True, True),
    "block_mlp_backward": (_mlp_saved, False, True),
    "head": (lambda g, grad: (_r(g, 2, 3, 5, 8), _r(g, 3, 8), _r(g, 3)), False, True),
}


def test_every_op_has_inputs_here() -> None:
    assert set(OP_INPUTS) == set(ops.OP_NAMES)
    assert all(hasattr(torch.ops.hinerv, name) for name in ops.OP_NAMES)


@pytest.mark.parametrize("name", list(OP_INPUTS))
def test_opcheck(name: str) -> None:
    """Schema (no mutation, no aliasing), fake function against the kernel's outputs, autograd
    registration and AOT dispatch (the compiled op's values and gradients) of each op."""
    make, differentiated, avx512 = OP_INPUTS[name]
    if avx512 and not kernels.available("avx512"):
        pytest.skip("no AVX-512 build here")
    args = make(torch.Generator().manual_seed(len(name)), differentiated)
    utils = torch.library._OPCHECK_DEFAULT_UTILS
    if name == "upsample_add":
        # its backward is ATen's upsample_bilinear2d_backward, which has no meta function for symbolic
        # sizes in torch 2.13 (an internal assert): static shapes only, as hinerv compiles (dynamic=False)
        utils = tuple(u.replace("dynamic", "static") for u in utils)
    torch.library.opcheck(getattr(torch.ops.hinerv, name).default, args, test_utils=utils)


@pytest.mark.parametrize(
    "name", ["layer_norm", "gelu_train", "upsample_add", "ssim_terms", "dwconv", "block_mlp_train"]
)
def test_op_gradients_equal_the_eager_functions(name: str) -> None:
    """The op's registered backward (on the backward ops) and the eager autograd.Function (on the
    kernels) are one formula: the same gradients, bit for bit."""
    make, _, avx512 = OP_INPUTS[name]
    if avx512 and not kernels.available("avx512"):
        pytest.skip("no AVX-512 build here")
    args = make(torch.Generator().manual_seed(3), True)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    eager_fn = {
        "layer_norm": ops._FusedLayerNormFn,
        "gelu_train": ops._FusedGELUFn,
        "upsample_add": ops._UpsampleAddFn,
        "ssim_terms": ops._FusedSSIMTerms,
        "dwconv": ops._DWConvFn,
        "block_mlp_train": ops._FusedMLPFn,
    }[name]
    results = []
    for fn in (getattr(torch.ops.hinerv, name), eager_fn.apply):
        out = fn(*args)
        first = out[0] if isinstance(out, tuple) else out
        cot = torch.linspace(-1, 1, first.numel()).view_as(first)
        results.append([first.detach(), *torch.autograd.grad(first, leaves, cot)])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


class _Tiny(torch.nn.Module):
    """Every differentiated op of the model and the loss: LayerNorm, up-sampling plus a table, two
    ConvNeXt blocks (depth-wise conv, MLP; one masked, with a residual), GELU, the MS-SSIM terms."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.gain = torch.nn.Parameter(1.0 + 0.1 * torch.randn(16, generator=g))
        self.table = torch.nn.Parameter(0.1 * torch.randn(1, 2, 2, 16, generator=g))
        self.b1 = layers.ConvNeXtBlock(16, 16, 32, 3)
        self.b2 = layers.ConvNeXtBlock(16, 3, 32, 3)
        self.win = metrics._gauss_1d(5, 1.5)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        h = layers.upsample_add(layers.layer_norm(x * self.gain), 2, self.table)
        h = layers.gelu(self.b1(h, mask))
        out = torch.sigmoid(self.b2(h)).permute(0, 3, 1, 2)
        s, cs = metrics._ssim_terms(out, tgt, self.win, 1e-4, 9e-4)
        return s.mean() + cs.mean() + out.square().mean()


def _inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 9, 16, generator=g)
    mask = torch.rand(1, 16, 18, 1, generator=g) > 0.2
    return x, mask, torch.rand(1, 3, 16, 18, generator=g)


def _step(fn: Callable[..., torch.Tensor], m: _Tiny) -> list[torch.Tensor]:
    loss = fn(*_inputs())
    return [loss.detach(), *torch.autograd.grad(loss, list(m.parameters()))]


def _recording_backend(graphs: dict[str, list[str]]) -> Callable[..., object]:
    """AOT autograd without code generation, keeping the call targets of its forward and backward graphs."""

    def keep(kind: str) -> Callable[[GraphModule, list], Callable[..., object]]:
        def compiler(gm: GraphModule, example_inputs: list) -> Callable[..., object]:
            graphs[kind] += [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
            return make_boxed_func(gm)

        return compiler

    return aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward"))


def _compiled_step(m: _Tiny, tier: str | None) -> tuple[list[torch.Tensor], dict[str, list[str]]]:
    graphs: dict[str, list[str]] = {"forward": [], "backward": []}
    dynamo.reset()
    try:
        with kernels.force(tier) if tier else contextlib.nullcontext():
            compiled = torch.compile(m, backend=_recording_backend(graphs), dynamic=False, fullgraph=True)
            got = _step(compiled, m)
    finally:
        dynamo.reset()
    return got, graphs


def _hinerv_ops(targets: list[str]) -> set[str]:
    return {t.split(".")[1] for t in targets if t.startswith("hinerv.")}


@needs_avx512
def test_compiled_network_runs_the_ops_and_equals_eager() -> None:
    """fullgraph: no graph break. The forward graph holds the fused ops, the backward graph their backward
    ops; loss and gradients are eager's within float rounding, and the torch tier's within tolerance."""
    m = _Tiny()
    eager = _step(m, m)
    got, graphs = _compiled_step(m, None)
    assert _hinerv_ops(graphs["forward"]) == {
        "layer_norm",
        "upsample_add",
        "dwconv",
        "block_mlp_train",
        "gelu_train",
        "ssim_terms",
    }
    assert _hinerv_ops(graphs["backward"]) == {
        "layer_norm_backward",
        "dwconv",  # the input gradient: the conv with the turned kernel
        "dwconv_weight_grad",
        "block_mlp_backward",
        "ssim_terms_backward",
    }
    with kernels.force("torch"):
        plain = _step(m, m)
    for a, b, c in zip(got, eager, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5 * max(1.0, float(c.abs().max())))


def test_compiled_torch_tier_and_portable_tier() -> None:
    """Forced to the torch tier the compiled graphs hold no hinerv op (what CUDA compiles); forced to
    the portable tier only its ops (LayerNorm, GELU, up-sampling, SSIM), the blocks in ATen."""
    m = _Tiny()
    _, graphs = _compiled_step(m, "torch")
    assert not _hinerv_ops(graphs["forward"] + graphs["backward"])
    with kernels.force("portable"):
        eager = _step(m, m)
    got, graphs = _compiled_step(m, "portable")
    assert _hinerv_ops(graphs["forward"]) == {"layer_norm", "upsample_add", "gelu_train", "ssim_terms"}
    assert _hinerv_ops(graphs["backward"]) == {"layer_norm_backward", "ssim_terms_backward"}
    for a, b in zip(got, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_ops_stay_out_of_other_dtypes() -> None:
    """float64 (and, the same way, CUDA) tensors take the plain ATen ops when compiled."""
    graphs: dict[str, list[str]] = {"forward": [], "backward": []}
    x = torch.randn(2, 4, 5, 8, dtype=torch.float64, requires_grad=True)
    dynamo.reset()
    try:
        fn = torch.compile(lambda t: layers.gelu(layers.layer_norm(t)), backend=_recording_backend(graphs))
        fn(x).sum().backward()
    finally:
        dynamo.reset()
    assert graphs["forward"] and not _hinerv_ops(graphs["forward"] + graphs["backward"])
