"""The kernel registry (hinerv.kernels): every tier of every op against the PyTorch reference, the choice
with and without forcing, and the block configurations the kernels refuse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from hinerv import fused, kernels, metrics
from hinerv.kernels import LN_EPS, KernelError
from hinerv.model import layers


@dataclass(frozen=True)
class Case:
    """Inputs of one op (float32, a fixed seed), its float64 PyTorch reference and tolerances."""

    make: Callable[[torch.Generator], tuple]
    ref: Callable[..., object]
    atol: float
    grad: bool = True  # whether the op is run (and checked) with a gradient


def _ln_ref(x):
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


def _upsample_ref(x, s, table):
    n, h, w, c = x.shape
    up = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=s, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1) + table.repeat(1, h, w, 1)


def _ssim_ref(x, y, win, c1, c2):
    l_map, cs_map, _, _ = metrics._ssim_maps(*metrics._moments(x, y, win), c1, c2)
    return (l_map * cs_map).flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _mlp_ref(z, w1, w2, residual, mask):
    return F.linear(F.gelu(F.linear(_ln_ref(z), w1)), w2) * mask + residual


def _r(g, *shape, scale=1.0, grad=True):
    return (torch.randn(shape, generator=g) * scale).requires_grad_(grad)


CASES = {
    "layer_norm": Case(lambda g: (_r(g, 2, 5, 7, 24, scale=3),), _ln_ref, 2e-5),
    "gelu": Case(lambda g: (_r(g, 3, 7, 40, scale=3),), F.gelu, 2e-6),
    "upsample_add": Case(lambda g: (_r(g, 2, 5, 7, 13), 3, _r(g, 2, 3, 3, 13)), _upsample_ref, 1e-5),
    "ssim_terms": Case(
        lambda g: (
            torch.rand(1, 3, 40, 50, generator=g).requires_grad_(),
            torch.rand(1, 3, 40, 50, generator=g),
            metrics._gauss_1d(5, 1.5),
            1e-4,
            9e-4,
        ),
        _ssim_ref,
        1e-6,
    ),
    "dwconv": Case(lambda g: (_r(g, 2, 7, 9, 24), _r(g, 24, 1, 3, 3)), layers.dwconv_torch, 1e-5),
    "block_mlp": Case(
        lambda g: (
            _r(g, 2, 6, 7, 24),
            _r(g, 96, 24, scale=0.2),
            _r(g, 24, 96, scale=0.1),
            _r(g, 2, 6, 7, 24),
            torch.rand(2, 6, 7, 1, generator=g) > 0.3,
        ),
        _mlp_ref,
        2e-5,
    ),
    "head": Case(
        lambda g: (_r(g, 2, 5, 7, 12), _r(g, 3, 12), _r(g, 3)),
        lambda x, w, b: torch.sigmoid(F.linear(x, w, b)).permute(0, 3, 1, 2),
        1e-6,
        grad=False,  # the AVX-512 head is an inference kernel
    ),
}

PAIRS = [(op, impl.tier) for op, impls in kernels._REGISTRY.items() for impl in impls]


def test_every_op_has_a_case_and_a_torch_tier() -> None:
    assert set(CASES) == set(kernels.OPS)
    assert all(("torch" in {i.tier for i in impls}) for impls in kernels._REGISTRY.values())


def _to64(a):
    if isinstance(a, torch.Tensor) and a.is_floating_point():
        return a.detach().double().requires_grad_(a.requires_grad)
    return a.double() if isinstance(a, torch.Tensor) else a


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize(("op", "tier"), PAIRS, ids=[f"{o}-{t}" for o, t in PAIRS])
def test_tier_matches_the_pytorch_reference(op: str, tier: str) -> None:
    """Each tier available here, values and gradients, against the float64 PyTorch composition; under
    ``force(tier)`` the op's call-site handle runs exactly that implementation."""
    if not kernels.available(tier):
        pytest.skip(f"tier {tier} is not available here")
    case = CASES[op]
    g = torch.Generator().manual_seed(len(op))
    args = case.make(g)
    args64 = tuple(_to64(a) for a in args)
    with torch.set_grad_enabled(case.grad), kernels.force(tier):  # forced: the ops a torch tier composes too
        out = kernels.implementation(op, tier)(*args)
        via_registry = kernels.op(op)(*args)
        ref = case.ref(*args64)
    assert out is not None, f"the {tier} {op} does not apply to float32 CPU tensors"
    for a, b, c in zip(_outputs(out), _outputs(ref), _outputs(via_registry), strict=True):
        assert a.dtype == torch.float32 and a.shape == b.shape
        torch.testing.assert_close(a.double(), b.detach(), rtol=0, atol=case.atol)
        assert torch.equal(a, c)
    if not case.grad:
        return
    leaves = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    cot = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in _outputs(ref)]
    got = torch.autograd.grad(_outputs(out), [args[i] for i in leaves], [c.float() for c in cot])
    want = torch.autograd.grad(_outputs(ref), [args64[i] for i in leaves], cot)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=case.atol * max(1.0, b.abs().max().item()))


def test_unforced_choice_is_the_best_tier_available() -> None:
    """No forcing = forcing the best tier available (bit for bit), and HINERV_FUSED_CPU=0 = forcing torch."""
    best = kernels.active_tier()
    assert best == next(t for t in reversed(kernels.TIERS) if kernels.available(t))
    torch.manual_seed(0)
    blk = layers.ConvNeXtBlock(24, 24, 96, 3)
    x = torch.randn(1, 9, 11, 24, requires_grad=True)

    def run() -> list[torch.Tensor]:
        y = layers.upsample_add(blk(x), 2, torch.ones(1, 2, 2, 24))
        return [y, *torch.autograd.grad(y.square().sum(), (x, *blk.parameters()))]

    default = run()
    with kernels.force(best):
        forced = run()
    for a, b in zip(default, forced, strict=True):
        assert torch.equal(a, b)
    with kernels.force("torch"):
        as_torch = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(fused.FUSED_ENV, "0")
        assert kernels.active_tier() == "torch"
        for a, b in zip(as_torch, run(), strict=True):
            assert torch.equal(a, b)


def test_force_caps_the_tier_and_is_restored(monkeypatch) -> None:
    x = torch.randn(2, 5, 8, requires_grad=True)
    with kernels.force("torch"):
        assert kernels.active_tier() == "torch"
        assert "_LayerNormFnBackward" in type(layers.layer_norm(x).grad_fn).__name__
        monkeypatch.setenv(kernels.KERNELS_ENV, "avx512")  # the context manager takes precedence
        assert "_LayerNormFnBackward" in type(layers.layer_norm(x).grad_fn).__name__
    monkeypatch.setenv(kernels.KERNELS_ENV, "torch")
    assert kernels.active_tier() == "torch"
    assert type(layers.gelu(x).grad_fn).__name__ == "GeluBackward0"
    monkeypatch.delenv(kernels.KERNELS_ENV)
    if kernels.available("portable"):
        assert type(layers.gelu(x).grad_fn).__name__ == "_FusedGELUFnBackward"


def test_forcing_an_unknown_or_unavailable_tier_is_a_clear_error(monkeypatch) -> None:
    with pytest.raises(KernelError, match="unknown kernel tier 'fast'"):
        with kernels.force("fast"):
            pass
    monkeypatch.setenv(kernels.KERNELS_ENV, "fast")
    with pytest.raises(KernelError, match="HINERV_KERNELS: unknown kernel tier 'fast'"):
        layers.layer_norm(torch.randn(3, 4))
    monkeypatch.setenv(kernels.KERNELS_ENV, "portable")
    monkeypatch.setenv(fused.FUSED_ENV, "0")
    with pytest.raises(KernelError, match="'portable' is not available on this machine .HINERV_FUSED_CPU=0"):
        layers.layer_norm(torch.randn(3, 4))
    monkeypatch.delenv(kernels.KERNELS_ENV)
    with pytest.raises(KernelError, match="'avx512' is not available"):
        with kernels.force("avx512"):
            pass


def test_fused_tiers_apply_to_cpu_only() -> None:
    assert kernels.fused_applies("cpu") and kernels.fused_applies(torch.device("cpu"))
    assert not kernels.fused_applies("cuda") and not kernels.fused_applies("meta")
    x = torch.randn(2, 3, 8, device="meta")  # not a CPU tensor: the torch tier, whatever is forced
    assert kernels.implementation("layer_norm", "portable")(x) is None
    assert layers.layer_norm(x).device.type == "meta"
    assert kernels.implementation("gelu", "portable")(torch.randn(4, dtype=torch.float64)) is None


def test_a_handle_resolves_once_per_forcing_state(monkeypatch) -> None:
    calls = []
    resolve = kernels.Op._resolve

    def counting(self, key):
        calls.append(key)
        return resolve(self, key)

    monkeypatch.setattr(kernels.Op, "_resolve", counting)
    handle = kernels.op("gelu")
    x = torch.randn(5)
    for _ in range(3):
        handle(x)
    with kernels.force("torch"):
        for _ in range(3):
            handle(x)
    assert calls == [(None, None), ("torch", None)]


@pytest.mark.parametrize(
    ("c_in", "c_out", "hidden", "kernel", "match"),
    [(8, 8, 32, 2, "kernel=2"), (8, 8, 32, 0, "kernel=0"), (8, 8, 0, 3, "hidden=0"), (0, 4, 8, 3, "c_in=0")],
)
def test_block_refuses_what_the_kernels_do_not_compute(c_in, c_out, hidden, kernel, match) -> None:
    """An even kernel's 'same' padding is not symmetric (the conv would return a larger map), empty widths
    have no MLP: refused at construction on every machine, whichever tier would run."""
    with pytest.raises(KernelError, match=match):
        layers.ConvNeXtBlock(c_in, c_out, hidden, kernel)


def test_register_refuses_a_second_implementation_of_a_tier() -> None:
    with pytest.raises(ValueError, match="already has"):
        kernels.register("gelu", "portable", "hinerv.kernels.portable:gelu")
    with pytest.raises(KeyError):
        kernels.op("no_such_op")
