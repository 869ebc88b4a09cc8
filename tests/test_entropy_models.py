"""Parametric (zero-adjusted geometric) and context entropy models of format v2 (hinerv.entropy)."""

from __future__ import annotations

import numpy as np
import pytest

from hinerv import entropy as E


def _laplace_ints(n: int, b: float, zeros: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(rng.laplace(0, b, size=n)).astype(np.int64)
    x[rng.random(n) < zeros] = 0
    return x


def test_weights_are_integers_from_the_codes_only() -> None:
    m = E.GeomModel(5, r=12, z=70)
    w = m.weights
    assert w.dtype == np.int64 and w.shape == (11,) and (w >= 1).all()
    assert (w[:5] == w[6:][::-1]).all()  # symmetric
    assert (np.diff(w[6:]) <= 0).all()  # decreasing tails
    # golden values pin the integer recursion (any change breaks old bitstreams)
    assert w.tolist() == [
        12000810774, 18564271100, 28717406513, 44423475200, 68719476736, 115570900992,
        68719476736, 44423475200, 28717406513, 18564271100, 12000810774,
    ]  # fmt: skip


def test_fit_is_close_to_the_empirical_entropy_and_codes_exactly() -> None:
    x = _laplace_ints(20000, 3.0, 0.3)
    M = int(np.abs(x).max())
    m, bits = E.fit_geom(E.abs_histogram(x, M), M)
    assert bits == pytest.approx(m.cost_bits(x), rel=1e-9)
    assert bits <= 1.01 * E.entropy_bits(x) + 64  # within 1 % of the zeroth-order entropy
    enc = E.StreamEncoder()
    enc.add(x, m)
    data = enc.finish()
    assert 8 * len(data) <= bits * 1.002 + 64
    assert (E.StreamDecoder(data).take(m, x.size) == x).all()


def test_degenerate_models() -> None:
    m, bits = E.fit_geom(np.array([10.0]), 0)
    assert m.n_symbols == 1 and bits == 0.0
    enc = E.StreamEncoder()
    enc.add(np.zeros(7, dtype=np.int64), m)
    assert enc.finish() == b""
    with pytest.raises(ValueError):
        E.GeomModel(3, r=E.GEOM_R_MAX + 1)
    with pytest.raises(ValueError):
        E.GeomModel(-1)


def test_context_coding_round_trips_and_helps_correlated_grids() -> None:
    rng = np.random.default_rng(3)
    scale = np.exp(rng.normal(size=(1, 1, 40)) * 1.5)  # columns of very different magnitude
    g = np.round(rng.laplace(0, 1, size=(6, 9, 40)) * scale).astype(np.int32)
    M = int(np.abs(g).max())
    ctx = E.context_map(g)
    models = [E.fit_geom(E.abs_histogram(g[ctx == k], M), M)[0] for k in range(E.CTX_BUCKETS)]
    enc = E.StreamEncoder()
    E.encode_context(enc, g, models)
    data = enc.finish()
    assert (E.decode_context(E.StreamDecoder(data), g.shape, models) == g).all()
    _, flat_bits = E.fit_geom(E.abs_histogram(g, M), M)
    assert 8 * len(data) < flat_bits


def test_context_buckets_match_the_map() -> None:
    g = np.array([[[0, 1, -3, 9]], [[2, 0, 40, -1]]], dtype=np.int32)  # [T=2, R=1, X=4]
    ctx = E.context_map(g)
    assert ctx[0, 0].tolist() == [0, 0, 0, 0]
    assert ctx[1, 0].tolist() == E.context_buckets(g[0, 0], None, 4).tolist() == [0, 1, 2, 4]
