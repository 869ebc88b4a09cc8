"""torch.compile of the HiNeRV forward: no graph breaks (frame, patch, functional_call overrides) and
compiled == eager within float rounding. CPU only. With the ``torch`` tier forced every op takes its plain
ATen form, so that graph is the one CUDA compiles; unforced, the fused kernels built here run as the
``hinerv::`` custom ops (:mod:`hinerv.kernels.ops`), opaque nodes of the same single graph."""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch
import torch._dynamo as dynamo
from torch.func import functional_call

from hinerv import kernels
from hinerv.config import ModelConfig
from hinerv.model import HiNeRV, padded_size
from hinerv.model.sizes import ladder_config

W, H, T = 128, 96, 4  # xxs: scales (2, 2, 2, 2), base 8x6, so a 2x2 grid gives 64x48 tiles
IDX = {
    "frame": (torch.tensor([[0, 0, 0], [3, 0, 0]]), (1, 1)),
    "patch": (torch.tensor([[0, 0, 0], [3, 1, 1], [2, 0, 1]]), (2, 2)),
}


def _model(cfg: ModelConfig) -> HiNeRV:
    torch.manual_seed(0)
    hp, wp = padded_size(H, W, cfg)
    m = HiNeRV(cfg, T, hp, wp)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # O(1) grids and biases, so every path carries signal
        for name, p in m.named_parameters():
            if "grids" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return m


def _overrides(m: HiNeRV) -> dict[str, torch.Tensor]:
    """Parameter overrides as the rd / paper transforms make them: masked and rounded weights."""
    out = {}
    for name, p in m.named_parameters():
        if name in m.prunable_names():
            out[name] = p * (p.abs() > 0.01)
        elif p.ndim >= 2:
            out[name] = p + (torch.round(p * 64) / 64 - p).detach()
    return out


def _tier(tier: str) -> contextlib.AbstractContextManager[None]:
    return kernels.force(tier) if tier == "torch" else contextlib.nullcontext()


@pytest.mark.parametrize("tier", ["torch", "default"])
@pytest.mark.parametrize("mode", ["frame", "patch"])
def test_forward_traces_without_graph_breaks(mode: str, tier: str) -> None:
    m = _model(ladder_config("xxs", W, H, T))
    idx, grid = IDX[mode]
    params = _overrides(m)
    with _tier(tier):
        for fn in (lambda i: m(i, grid), lambda i: functional_call(m, params, (i, grid))):
            dynamo.reset()
            e = dynamo.explain(fn)(idx)
            reasons = [str(b.reason).splitlines()[0] for b in e.break_reasons]
            assert (e.graph_break_count, e.graph_count) == (0, 1), reasons
            fused = {str(n.target).split(".")[1] for g in e.graphs for n in g.graph.nodes if _is_fused(n)}
            if tier == "torch" or not kernels.available("portable"):
                assert not fused
            else:  # the block kernels where AVX-512 is built, else the portable LayerNorm and GELU
                want = {"layer_norm", "upsample_add"} if mode == "frame" else {"layer_norm"}
                want |= {"dwconv", "block_mlp_train"} if kernels.available("avx512") else {"gelu_train"}
                assert fused == want
    dynamo.reset()


def _is_fused(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and str(node.target).startswith("hinerv.")


@functools.cache
def _inductor_works() -> str | None:
    """None where inductor compiles on this CPU (it needs a C++ compiler), else why not."""
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as e:  # noqa: BLE001 - any failure of the toolchain means: skip
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def _small() -> HiNeRV:
    return _model(
        ModelConfig(
            channels=8,
            depths=(1, 1, 1),
            scales=(4, 2, 2),
            exps=(4.0, 4.0, 1.0),
            kernels=(3, 3, 3),
            base_grid_channels=2,
            enc_channels=4,
            base_grid_frames=2,
        )
    )


def _check_compiled_equals_eager(m: HiNeRV, mode: str, backend: str) -> None:
    """Output and parameter gradients through ``functional_call`` overrides, then a no-grad forward,
    of ``torch.compile(m, backend=backend)`` against eager ``m`` (on this machine's best kernels)."""
    idx, grid = IDX[mode]
    compiled = torch.compile(m, backend=backend, dynamic=False)
    dynamo.reset()
    try:
        outs, grads = [], []
        for fwd in (m, compiled):
            for p in m.parameters():
                p.grad = None
            y = functional_call(fwd, _overrides(m), (idx, grid))
            (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
            outs.append(y.detach())
            grads.append([p.grad.clone() for p in m.parameters()])
        with torch.no_grad():  # the inference path (no overrides: the memo is skipped when traced)
            outs += [m(idx, grid), compiled(idx, grid)]
    finally:
        dynamo.reset()
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[3], outs[2], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1], grads[0], strict=True):  # sums over whole frames: tolerance by magnitude
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize("mode", ["frame", "patch"])
def test_traced_forward_and_gradients_equal_eager(mode: str) -> None:
    """The graph dynamo captures (run by AOT autograd without code generation) computes the model."""
    _check_compiled_equals_eager(_small(), mode, "aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["frame", "patch"])
def test_inductor_forward_and_gradients_equal_eager(mode: str) -> None:
    """Inductor's C++ code for the CPU (minutes on a loaded machine: marked slow)."""
    why = _inductor_works()
    if why is not None:
        pytest.skip(f"inductor unavailable on this CPU: {why}")
    _check_compiled_equals_eager(_small(), mode, "inductor")


@pytest.mark.parametrize("compile_arg, mode", [(True, None), ("reduce-overhead", "reduce-overhead")])
def test_step_runner_compiles_the_forward_with_overrides(
    monkeypatch: pytest.MonkeyPatch, compile_arg: bool | str, mode: str | None
) -> None:
    """StepRunner(compile=...) compiles its override forward statically with the given mode; a step
    through it (run by AOT autograd here: inductor's CPU build takes minutes) updates the parameters
    as the eager step does."""
    from hinerv.device import DevicePolicy
    from hinerv.step import StepRunner

    seen: list[dict[str, object]] = []
    real_compile = torch.compile

    def recording_compile(fn, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw)
        return real_compile(fn, backend="aot_eager", dynamic=kw["dynamic"])

    monkeypatch.setattr(torch, "compile", recording_compile)
    frames = torch.randint(
        0, 256, (T, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    after = []
    dynamo.reset()
    try:
        for arg in (False, compile_arg):
            m = _small()
            runner = StepRunner(m, frames, 255, DevicePolicy(torch.device("cpu")), compile=arg)
            opt = torch.optim.SGD(m.parameters(), lr=0.1)  # Adam's first step is sign(g): flaky near 0
            idx, tgt = runner.batch(torch.arange(T), 1)

            def transform(m: HiNeRV = m) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
                return _overrides(m), None

            def loss_fn(out: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return (out - tgt).abs().mean(), ((out - tgt) ** 2).mean().detach()

            runner.step(idx, tgt, transform, loss_fn, opt, list(m.parameters()), 1.0)
            after.append([p.detach().clone() for p in m.parameters()])
    finally:
        dynamo.reset()
    assert seen == [{"mode": mode, "dynamic": False}]
    for a, b in zip(after[1], after[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
