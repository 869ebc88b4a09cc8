"""Rate control: λ adaptation and the final step-factor fit."""

from __future__ import annotations

import pytest

from hinerv.pipelines.rd import adapt_lambda
from hinerv.ratecontrol import fit_step_factor


def test_fit_step_factor_lands_on_a_decreasing_size_curve() -> None:
    calls: list[float] = []

    def size_at(f: float) -> int:
        calls.append(f)
        return int(20000 / f**0.8)

    for target in (9000, 20000, 41000):
        f, n = fit_step_factor(size_at, target, tolerance=0.02)
        assert abs(n - target) <= 0.02 * target
    assert len(calls) < 50


def test_fit_step_factor_returns_the_closest_when_unreachable() -> None:
    f, n = fit_step_factor(lambda f: 1000 if f < 1 else 900, 5000, max_octaves=1.0)
    assert n == 1000 and f < 1


def test_adapt_lambda_moves_towards_the_target_and_is_bounded() -> None:
    assert adapt_lambda(1.0, 0.2, 0.1) > 1.0  # too many bits: rate costs more
    assert adapt_lambda(1.0, 0.05, 0.1) < 1.0
    assert adapt_lambda(1.0, 100.0, 0.1) == pytest.approx(1.5)
    assert adapt_lambda(1.0, 1e-6, 0.1) == pytest.approx(1 / 1.5)
    assert adapt_lambda(1.0, 0.1, 0.1) == pytest.approx(1.0)
