"""Parametric models (bitstream format 2): a zero-adjusted two-sided geometric distribution.

A :class:`GeomModel` over ``[-M, M]`` has integer weights

    w(k) = W1 * rho**(|k| - 1)   for k != 0   (computed by integer recursion, floored, >= 1)
    w(0) = W1 * 2**(z/8 - 8)                   (a separate mass for zero)

with rho = 1 - 2**(-r/8) in 24-bit fixed point. Two small integers (r, z) and M travel in the
stream; the weights are pure integer arithmetic, so encoder and decoder build identical models.
It is the discretised Laplace (rate-trained weights are close to Laplace) with a free zero
mass (rate training piles values on zero: pruning falls out of the rate term).

The codings ``tensor`` (one model) and ``channel`` (one model per index of axis 0) use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from hinerv.entropy.coder import StreamDecoder, StreamEncoder, categorical, cost_from_counts
from hinerv.entropy.coding import Coding, View

__all__ = [
    "GEOM_R_MAX",
    "GEOM_Z_MAX",
    "GEOM_MAX_ABS",
    "GeomModel",
    "fit_geom",
    "abs_histogram",
    "GeomCoding",
    "TensorCoding",
    "ChannelCoding",
]

GEOM_R_MAX = 191
"""Largest rho code: ``1 - rho = 2**(-r/8)``, r in 0..191."""
GEOM_Z_MAX = 255
"""Largest zero code: ``w(0) / w(1) = 2**(z/8 - 8)``, z in 0..255."""
GEOM_MAX_ABS = 1 << 20
"""Largest ``M`` a model may cover (alphabet ``2M + 1``)."""
_W1_SHIFT = 36
_RHO_BITS = 24


def _root8_floor(exp2: int) -> int:
    """``floor(2 ** (exp2 / 8))`` for ``exp2 >= 0``, by three nested integer square roots."""
    v = 1 << exp2
    for _ in range(3):
        v = math.isqrt(v)
    return v


@lru_cache(maxsize=GEOM_R_MAX + 1)
def _rho_fixed(r: int) -> int:
    """``rho`` of code r in 24-bit fixed point: ``2**24 - floor(2**(24 - r/8))``."""
    return (1 << _RHO_BITS) - _root8_floor(8 * _RHO_BITS - r)


@lru_cache(maxsize=4096)
def _geom_tail(r: int, max_abs: int) -> np.ndarray:
    """int64 ``[max_abs]``: ``w(1) .. w(max_abs)`` of rho code r (integer recursion, floor 1)."""
    rho = _rho_fixed(r)
    out = np.empty(max_abs, dtype=np.int64)
    w = 1 << _W1_SHIFT
    for k in range(max_abs):
        out[k] = max(1, w)
        w = (w * rho) >> _RHO_BITS
    out.setflags(write=False)
    return out


def _zero_weight(z: int) -> int:
    return max(1, ((1 << _W1_SHIFT) * _root8_floor(z + 64)) >> 16)


@dataclass(frozen=True)
class GeomModel:
    """A zero-adjusted two-sided geometric model over ``[-max_abs, max_abs]`` (see above).

    Attributes:
        max_abs: ``M >= 0``; ``M == 0`` makes 0 certain (nothing is coded).
        r: rho code, ``0..GEOM_R_MAX`` (larger = heavier tails).
        z: zero code, ``0..GEOM_Z_MAX`` (larger = more mass on 0).
    """

    max_abs: int
    r: int = 0
    z: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.max_abs <= GEOM_MAX_ABS:
            raise ValueError(f"max_abs must be in 0..{GEOM_MAX_ABS}")
        if not (0 <= self.r <= GEOM_R_MAX and 0 <= self.z <= GEOM_Z_MAX):
            raise ValueError("geometric model codes out of range")

    @property
    def min_symbol(self) -> int:
        return -self.max_abs

    @property
    def max_symbol(self) -> int:
        return self.max_abs

    @property
    def n_symbols(self) -> int:
        return 2 * self.max_abs + 1

    @property
    def weights(self) -> np.ndarray:
        """int64 ``[2M + 1]`` for symbols ``-M .. M``."""
        if self.max_abs == 0:
            return np.ones(1, dtype=np.int64)
        tail = _geom_tail(self.r, self.max_abs)
        return np.concatenate([tail[::-1], np.array([_zero_weight(self.z)], dtype=np.int64), tail])

    def probabilities(self) -> np.ndarray:
        """float64 ``[2M + 1]``: weights over their exact integer sum (one rounding each)."""
        w = self.weights
        total = float(sum(int(v) for v in w))
        return w.astype(np.float64) / total

    def _model(self) -> Any:
        return _categorical(self.max_abs, self.r, self.z)

    def cost_bits(self, symbols: np.ndarray) -> float:
        """Ideal cost in bits of ``symbols`` (all inside the range) under this model."""
        s = np.asarray(symbols).ravel()
        if s.size == 0 or self.max_abs == 0:
            return 0.0
        counts = np.bincount(s.astype(np.int64) + self.max_abs, minlength=self.n_symbols)
        return cost_from_counts(counts.astype(np.float64), self.weights)


@lru_cache(maxsize=1024)
def _categorical(max_abs: int, r: int, z: int) -> Any:
    return categorical(GeomModel(max_abs, r, z).probabilities())


@lru_cache(maxsize=256)
def _geom_log_tables(max_abs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 tables for the fit: log2 tail weights ``[R, M]``, tail sums ``[R]``, log2 w(0) ``[Z]``."""
    logs = np.empty((GEOM_R_MAX + 1, max_abs))
    sums = np.empty(GEOM_R_MAX + 1)
    for r in range(GEOM_R_MAX + 1):
        t = _geom_tail(r, max_abs).astype(np.float64)
        logs[r] = np.log2(t)
        sums[r] = 2.0 * t.sum()
    zw = np.log2(np.array([float(_zero_weight(z)) for z in range(GEOM_Z_MAX + 1)]))
    return logs, sums, zw


def fit_geom(abs_counts: np.ndarray, max_abs: int) -> tuple[GeomModel, float]:
    """The cheapest :class:`GeomModel` for a histogram of magnitudes (exhaustive over r and z).

    Args:
        abs_counts: ``[K]`` counts of ``|symbol| = 0 .. K-1`` (``K - 1 <= max_abs``).
        max_abs: the range ``M`` the model must cover (shared by all models of a tensor).

    Returns:
        ``(model, bits)``: the model and its ideal payload cost in bits.
    """
    c = np.zeros(max_abs + 1)
    c[: len(abs_counts)] = np.asarray(abs_counts, dtype=np.float64)
    n = c.sum()
    if max_abs == 0 or n == 0:
        return GeomModel(max_abs), 0.0
    logs, sums, zw = _geom_log_tables(max_abs)
    tail_bits = logs @ c[1:]  # [R]: sum_k c_k log2 w(k)
    zero_w = np.exp2(zw)  # [Z]
    # cost[r, z] = n log2(S) - c0 log2 w0 - tail_bits[r], with S = w0 + sums[r]
    cost = n * np.log2(zero_w[None, :] + sums[:, None]) - c[0] * zw[None, :] - tail_bits[:, None]
    r, z = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return GeomModel(max_abs, int(r), int(z)), float(cost[r, z])


def abs_histogram(symbols: np.ndarray, max_abs: int) -> np.ndarray:
    """float64 ``[max_abs + 1]`` counts of ``|symbols|``."""
    a = np.abs(np.asarray(symbols).ravel().astype(np.int64))
    return np.bincount(a, minlength=max_abs + 1).astype(np.float64)


# ----------------------------------------------------------------------------------------
# codings


class GeomCoding(Coding):
    """A coding whose models are :class:`GeomModel` s, stored as two bytes ``(r, z)``."""

    model_bytes = 2

    def write_model(self, model: GeomModel) -> bytes:
        return bytes([model.r, model.z])

    def read_model(self, max_abs: int, data: bytes) -> GeomModel:
        return GeomModel(max_abs, data[0], data[1])


class TensorCoding(GeomCoding):
    """One model for the whole tensor, values in row-major order."""

    name = "tensor"

    def n_models(self, shape: tuple[int, ...]) -> int:
        return 1

    def fit(self, q: np.ndarray, max_abs: int, view: View) -> tuple[float, list[Any]] | None:
        m, bits = fit_geom(abs_histogram(q, max_abs), max_abs)
        return bits + 16, [m]

    def encode(self, enc: StreamEncoder, q: np.ndarray, models: list[Any], view: View) -> None:
        enc.add(q, models[0])

    def decode(self, dec: StreamDecoder, shape: tuple[int, ...], models: list[Any], view: View) -> np.ndarray:
        return dec.take(models[0], math.prod(shape)).reshape(shape)


class ChannelCoding(GeomCoding):
    """One model per index ``i`` of axis 0; slice ``q[i]`` (row-major) is coded with model ``i``."""

    name = "channel"

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) > 0

    def n_models(self, shape: tuple[int, ...]) -> int:
        return shape[0] if shape else 1

    def fit(self, q: np.ndarray, max_abs: int, view: View) -> tuple[float, list[Any]] | None:
        if q.ndim < 1 or q.shape[0] <= 1:
            return None
        fits = [fit_geom(abs_histogram(q[i], max_abs), max_abs) for i in range(q.shape[0])]
        return sum(b for _, b in fits) + 16 * len(fits), [m for m, _ in fits]

    def encode(self, enc: StreamEncoder, q: np.ndarray, models: list[Any], view: View) -> None:
        for row, m in zip(q, models, strict=True):
            enc.add(row, m)

    def decode(self, dec: StreamDecoder, shape: tuple[int, ...], models: list[Any], view: View) -> np.ndarray:
        per = math.prod(shape) // shape[0] if shape[0] else 0
        if not per:
            return np.zeros(shape, dtype=np.int32)
        return np.stack([dec.take(m, per) for m in models]).reshape(shape)
