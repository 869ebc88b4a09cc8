"""Learned quantizers, rounding proxies and the Laplace rate estimate (hinerv.rate)."""

from __future__ import annotations

import math

import pytest
import torch

from hinerv.errors import ConfigError
from hinerv.rate import RateModel, laplace_bits, round_ste


def _exact_bits(x: float, b: float) -> float:
    a = abs(x)
    if a >= 0.5:  # both bin edges in one tail: 0.5 e^{-lo/b} - 0.5 e^{-hi/b}
        return -(math.log(0.5) - (a - 0.5) / b + math.log1p(-math.exp(-1 / b))) / math.log(2)

    def cdf(v: float) -> float:
        return 0.5 * math.exp(v / b) if v < 0 else 1 - 0.5 * math.exp(-v / b)

    return -math.log2(cdf(x + 0.5) - cdf(x - 0.5))


@pytest.mark.parametrize("b", [0.1, 0.7, 3.0, 40.0])
@pytest.mark.parametrize("x", [0.0, 0.3, -0.49, 0.5, 1.0, -2.0, 7.0, 30.0])
def test_laplace_bits_matches_the_integral(x: float, b: float) -> None:
    got = float(laplace_bits(torch.tensor([x], dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    want = _exact_bits(x, b)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert got >= 0


def test_laplace_bits_sums_to_one_over_the_integers() -> None:
    b = torch.tensor(2.5, dtype=torch.float64)
    k = torch.arange(-400, 401, dtype=torch.float64)
    p = torch.exp2(-laplace_bits(k, b))
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)


def test_laplace_bits_is_finite_far_in_the_tail_and_differentiable() -> None:
    x = torch.tensor([1e4, -1e4, 0.0], requires_grad=True)
    b = torch.tensor(0.05, requires_grad=True)
    bits = laplace_bits(x, b)
    assert torch.isfinite(bits).all()
    bits.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(b.grad)


def test_round_ste_forward_rounds_backward_passes() -> None:
    x = torch.tensor([0.4, 1.6, -2.5], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0.0, 2.0, -2.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def _params() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "grid": torch.nn.Parameter(torch.rand(8, 6, generator=g) * 2e-3 - 1e-3),
        "w": torch.nn.Parameter(torch.randn(5, 4, 3, 3, generator=g) * 0.2),
        "b": torch.nn.Parameter(torch.zeros(5)),
    }


def test_ste_and_round_forward_equal_the_exported_integers() -> None:
    params = _params()
    rm = RateModel(params, grids=["grid"], granularity="channel")
    out_ste, _ = rm(params, "ste")
    out_round, _ = rm(params, "round")
    for (q, step), n in zip(rm.export(params), rm.names, strict=True):
        deq = torch.from_numpy(q).float() * torch.from_numpy(step).float()
        assert torch.equal(deq, out_ste[n].detach())
        assert torch.equal(deq, out_round[n])
        assert step.dtype.name == "float16"
    # channel granularity: one step per output channel of the conv weight, one for the grid
    assert tuple(rm.log2_step[1].shape) == (5, 1, 1, 1)
    assert tuple(rm.log2_step[0].shape) == (1, 1)


def test_noise_proxy_is_within_half_a_step_and_rate_gets_gradients() -> None:
    params = _params()
    rm = RateModel(params, grids=["grid"])
    out, bits = rm(params, "noise", torch.Generator().manual_seed(1))
    for i, n in enumerate(rm.names):
        d = rm.step(i)
        assert float(((out[n] - params[n]) / d).detach().abs().max()) <= 0.5 + 1e-5
    bits.backward()
    assert all(p.grad is not None for p in rm.log2_step)
    assert all(p.grad is not None for p in rm.log2_scale)
    assert params["w"].grad is not None


def test_rate_falls_when_steps_grow() -> None:
    params = _params()
    rm = RateModel(params)
    _, b1 = rm(params, "round")
    rm.scale_steps(4.0)
    _, b2 = rm(params, "round")
    assert float(b2.detach()) < float(b1.detach())


def test_export_factor_scales_steps_and_bad_granularity_is_refused() -> None:
    params = _params()
    rm = RateModel(params)
    (q1, s1), *_ = rm.export(params)
    (q2, s2), *_ = rm.export(params, factor=2.0)
    assert float(s2.astype("float32").max()) == pytest.approx(2 * float(s1.astype("float32").max()), rel=2e-3)
    assert abs(q2).max() <= abs(q1).max()
    with pytest.raises(ConfigError):
        RateModel(params, granularity="row")  # type: ignore[arg-type]


def _loop_reference(
    rm: RateModel, params: dict[str, torch.Tensor], proxy: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The rate model written tensor by tensor, as the definition the flat forward must equal."""
    out, total = {}, torch.zeros(())
    for i, n in enumerate(rm.names):
        w, d = params[n], rm.step(i)
        x = round_ste(w / d) if proxy == "ste" else torch.round((w / d).detach())
        b = torch.exp2(rm.log2_scale[i].clamp(-4.3, 24.0))
        total = total + laplace_bits(x, b).sum()
        out[n] = x * d
    return out, total


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("proxy", ["ste", "round"])
def test_flat_forward_equals_the_per_tensor_definition(granularity: str, proxy: str) -> None:
    params = _params()
    params["empty"] = torch.nn.Parameter(torch.zeros(0, 3))
    rm = RateModel(params, grids=["grid"], granularity=granularity)  # type: ignore[arg-type]
    with torch.no_grad():  # distinct steps and scales, so a wrong gather shows
        for i, p in enumerate(rm.log2_step):
            p.add_(torch.linspace(-1.0, 1.0, p.numel()).reshape(p.shape) + 0.1 * i)
        for i, p in enumerate(rm.log2_scale):
            p.add_(0.3 * i - 0.5)
    got, bits = rm(params, proxy)  # type: ignore[arg-type]
    want, ref_bits = _loop_reference(rm, params, proxy)
    for n in rm.names:
        assert got[n].shape == params[n].shape
        assert torch.equal(got[n], want[n]), n
    assert float(bits.detach()) == pytest.approx(float(ref_bits.detach()), rel=1e-6)
    if proxy == "round":
        return
    grads = torch.autograd.grad(
        bits + sum(v.square().sum() for v in got.values()), [*params.values(), *rm.parameters()]
    )
    ref = torch.autograd.grad(
        ref_bits + sum(v.square().sum() for v in want.values()), [*params.values(), *rm.parameters()]
    )
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_float_forward_returns_the_parameters_themselves() -> None:
    params = _params()
    rm = RateModel(params, grids=["grid"])
    out, bits = rm(params, "ste", float_forward=True)
    assert all(out[n] is params[n] for n in rm.names)
    assert float(bits.detach()) > 0
