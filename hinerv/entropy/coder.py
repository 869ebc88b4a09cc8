"""The range coder: the only module of hinerv that imports :mod:`constriction`.

Every entropy model (a :class:`~hinerv.entropy.tables.Table`, a
:class:`~hinerv.entropy.parametric.GeomModel`, ...) is a static categorical distribution over an
integer range ``[min_symbol, max_symbol]`` defined by integer weights; :func:`categorical` turns its
float64 probabilities into constriction's deterministic fixed-point model (``perfect=False``), and
:class:`StreamEncoder` / :class:`StreamDecoder` range-code several arrays, each with its own model,
into one byte string (``constriction.stream.queue``, 32-bit words, one flush).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import constriction
import numpy as np

from hinerv.errors import BitstreamError

__all__ = [
    "EntropyModel",
    "StreamEncoder",
    "StreamDecoder",
    "categorical",
    "cost_from_counts",
    "min_coded_bits",
]


class EntropyModel(Protocol):
    """What the coder needs of a model: an integer range, integer weights and the constriction model."""

    @property
    def min_symbol(self) -> int: ...

    @property
    def max_symbol(self) -> int: ...

    @property
    def n_symbols(self) -> int: ...

    @property
    def weights(self) -> np.ndarray: ...

    def probabilities(self) -> np.ndarray: ...

    def _model(self) -> Any: ...


def categorical(probabilities: np.ndarray) -> Any:
    """constriction's ``Categorical`` of float64 ``probabilities`` (deterministic, ``perfect=False``)."""
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def cost_from_counts(counts: np.ndarray, weights: np.ndarray) -> float:
    """Ideal bits of symbols with ``counts`` under integer ``weights`` (inf if a used weight is 0)."""
    w = weights.astype(np.float64)
    nz = counts > 0
    if np.any(w[nz] == 0):
        return math.inf
    return float(np.sum(counts[nz] * np.log2(w.sum() / w[nz])))


def min_coded_bits(table: EntropyModel, n: int) -> float:
    """A lower bound on the payload bits needed to range-code ``n`` symbols with ``table``.

    Every symbol costs at least ``-log2(p_max)`` bits, where ``p_max`` is the largest
    probability after constriction's 24-bit quantization (bounded from above here). Used to
    reject bitstreams that claim many symbols in too few bytes *before* decoding them.
    """
    if n <= 0 or table.n_symbols <= 1:
        return 0.0
    p = table.probabilities()
    p_max = min(1.0, float(p.max()) + (table.n_symbols + 1) * 2.0**-24)
    return n * -math.log2(p_max) if p_max < 1.0 else 0.0


def _check_in_table(s: np.ndarray, table: EntropyModel) -> None:
    if s.size == 0:
        return
    if table.n_symbols == 0:
        raise ValueError("an empty table cannot code symbols")
    lo, hi = int(s.min()), int(s.max())
    if lo < table.min_symbol or hi > table.max_symbol:
        raise ValueError(f"symbols [{lo}, {hi}] outside table range [{table.min_symbol}, {table.max_symbol}]")
    if table.n_symbols > 1:
        w = table.weights
        if np.any(w[np.unique(s - table.min_symbol)] == 0):
            raise ValueError("a symbol has zero weight in the table")


class StreamEncoder:
    """Range-codes several arrays, each with its own table, into one byte string."""

    def __init__(self) -> None:
        self._enc = constriction.stream.queue.RangeEncoder()

    def add(self, symbols: np.ndarray, table: EntropyModel) -> None:
        """Append the symbols of an array (flattened row-major).

        Args:
            symbols: integer or bool array; all values inside ``table``'s range with non-zero
                weight. With a one-symbol table nothing is written (zero cost).
        """
        s = np.asarray(symbols).ravel().astype(np.int64)
        _check_in_table(s, table)
        if s.size == 0 or table.n_symbols <= 1:
            return
        self._enc.encode((s - table.min_symbol).astype(np.int32), table._model())

    def finish(self) -> bytes:
        """The compressed bytes (a whole number of little-endian uint32 words)."""
        return self._enc.get_compressed().astype("<u4").tobytes()


class StreamDecoder:
    """Reads arrays back from a :class:`StreamEncoder` payload, in the same order."""

    def __init__(self, payload: bytes) -> None:
        if len(payload) % 4:
            raise BitstreamError("range-coded payload length is not a multiple of 4 bytes")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self._dec = constriction.stream.queue.RangeDecoder(words)

    def take(self, table: EntropyModel, n: int) -> np.ndarray:
        """Decode the next ``n`` symbols.

        Returns:
            int32 ``[n]``, values inside the table's range.

        Raises:
            BitstreamError: ``n > 0`` with an empty table.
        """
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        if table.n_symbols == 0:
            raise BitstreamError("empty entropy table for a non-empty array")
        if table.n_symbols == 1:
            return np.full(n, table.min_symbol, dtype=np.int32)
        out = np.asarray(self._dec.decode(table._model(), n), dtype=np.int32)
        return out + np.int32(table.min_symbol)
