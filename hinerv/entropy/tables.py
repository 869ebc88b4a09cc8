"""Histogram tables (bitstream format 1): static, integer-defined zeroth-order probability tables.

The range coding itself is in :mod:`hinerv.entropy.coder` (the only importer of constriction).

Determinism. A model is never built from floats computed by the encoder: it is a :class:`Table`
of small integer *codes* that travels in the bitstream. Each code ``e`` maps to an integer weight
``w(e) = floor(2 ** ((e - 1) / 2**step + 8))`` computed with integer square roots only, the
weights become float64 probabilities by one correctly rounded division (exact integer sum,
then ``float(w) / float(total)``), and constriction's deterministic fixed-point quantization
(``perfect=False``) does the rest. Encoder and decoder therefore see bit-identical models on
any machine.

Why log-domain codes. A histogram quantized to a small *linear* total destroys the tails
(their relative error is what costs bits). Rounding ``log2(count)`` to ``1/2**step`` octave
keeps the relative error of every probability below ``2**(1 / 2**(step+1)) - 1`` (4.4 % at
``step=3``), i.e. at most ~0.0005 bits/symbol of redundancy at ``step=3``, while the codes of
a smooth histogram differ little from their neighbours and are sent as exp-Golomb coded first
or second differences (a few bits per symbol). :func:`histogram` picks the step that minimises
table bits + ideal payload bits for the array at hand.

Typical use::

    table = histogram(q)                 # q: any-shape integer array
    payload = encode(q.ravel(), table)   # bytes
    q2 = decode(payload, table, q.size)  # int32 [q.size]
    tbytes = encode_tables([table])      # the table's own compact serialization

Several arrays can share one range-coder stream (one flush, no per-array padding) with
:class:`StreamEncoder` / :class:`StreamDecoder`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from hinerv.entropy.coder import StreamDecoder, StreamEncoder, categorical, cost_from_counts
from hinerv.errors import BitstreamError

__all__ = [
    "MAX_STEP",
    "Table",
    "histogram",
    "entropy_bits",
    "cross_entropy_bits",
    "encode_tables",
    "decode_tables",
    "encode",
    "decode",
    "table_bits",
]

MAX_STEP = 3
"""Largest ``step``: codes in units of 1/8 octave."""

_OCTAVES = 32  # codes span at most 2**32 between the rarest and the commonest symbol
_BASE_BITS = 8  # w(1) = 2**8, so every weight is an integer >= 256
_MAX_EG_ZEROS = 40  # exp-Golomb prefixes longer than this are corrupt


def _e_max(step: int) -> int:
    return _OCTAVES << step


@lru_cache(maxsize=MAX_STEP + 1)
def _weight_lut(step: int) -> np.ndarray:
    """int64 [e_max + 1]: weight of each code; w(0) = 0, w(e) = floor(2**((e-1)/2**step + 8))."""
    lut = [0]
    for e in range(1, _e_max(step) + 1):
        v = 1 << (e - 1 + (_BASE_BITS << step))
        for _ in range(step):  # nested integer square roots = floor of the 2**step-th root
            v = math.isqrt(v)
        lut.append(v)
    return np.asarray(lut, dtype=np.int64)


@dataclass(frozen=True)
class Table:
    """A static probability model over the integer range ``[min_symbol, min_symbol + n)``.

    Attributes:
        min_symbol: smallest symbol of the range (any int; the offset subtracted before coding).
        codes: one log-domain code per symbol of the range, ``0`` (symbol absent) to
            ``32 * 2**step``. Empty for an empty array. For ``n == 1`` the only symbol is
            certain and its code is irrelevant (stored as ``(1,)``, never sent).
        step: resolution of the codes, ``0..3``: one code unit is ``1 / 2**step`` octave.
    """

    min_symbol: int
    codes: tuple[int, ...]
    step: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.step <= MAX_STEP:
            raise ValueError(f"table step must be in 0..{MAX_STEP}, got {self.step}")
        emax = _e_max(self.step)
        if any(not 0 <= e <= emax for e in self.codes):
            raise ValueError(f"table codes must be in 0..{emax}")
        if len(self.codes) >= 2 and (self.codes[0] == 0 or self.codes[-1] == 0):
            raise ValueError("first and last symbol of a table must have non-zero weight")

    @property
    def n_symbols(self) -> int:
        """Size of the symbol range (0 for the table of an empty array)."""
        return len(self.codes)

    @property
    def max_symbol(self) -> int:
        """Largest symbol of the range (``min_symbol - 1`` when empty)."""
        return self.min_symbol + len(self.codes) - 1

    @property
    def weights(self) -> np.ndarray:
        """int64 ``[n_symbols]``: the integer weights the model is built from."""
        if len(self.codes) == 1:
            return np.ones(1, dtype=np.int64)
        return _weight_lut(self.step)[np.asarray(self.codes, dtype=np.int64)]

    def probabilities(self) -> np.ndarray:
        """float64 ``[n_symbols]``: ``weights / sum(weights)``, computed deterministically."""
        w = self.weights
        total = float(sum(int(v) for v in w))  # exact integer sum, one rounding
        return w.astype(np.float64) / total

    def _model(self) -> Any:
        return categorical(self.probabilities())


# ----------------------------------------------------------------------------------------
# statistics


def entropy_bits(symbols: np.ndarray) -> float:
    """Empirical zeroth-order entropy of an array, in bits (total, not per symbol).

    Args:
        symbols: integer (or bool) array of any shape.

    Returns:
        ``sum_i n_i * log2(N / n_i)`` over the distinct values; 0.0 for empty or constant arrays.
    """
    s = np.asarray(symbols).ravel()
    if s.size == 0:
        return 0.0
    _, counts = np.unique(s, return_counts=True)
    c = counts.astype(np.float64)
    return float(np.sum(c * np.log2(s.size / c)))


def cross_entropy_bits(symbols: np.ndarray, table: Table) -> float:
    """Ideal cost in bits of coding ``symbols`` with ``table`` (ignores coder rounding).

    Args:
        symbols: integer array, every value inside the table's range.
        table: the model.
    """
    s = np.asarray(symbols).ravel()
    if s.size == 0 or table.n_symbols <= 1:
        return 0.0
    counts = np.bincount(s.astype(np.int64) - table.min_symbol, minlength=table.n_symbols)
    return cost_from_counts(counts.astype(np.float64), table.weights)


# ----------------------------------------------------------------------------------------
# table construction


def _codes_for(counts: np.ndarray, step: int) -> np.ndarray:
    c = counts.astype(np.float64)
    codes = np.zeros(c.shape, dtype=np.int64)
    nz = c > 0
    codes[nz] = 1 + np.rint(np.log2(c[nz]) * (1 << step)).astype(np.int64)
    return np.clip(codes, 0, _e_max(step)) * nz


def histogram(symbols: np.ndarray) -> Table:
    """Build the cheapest :class:`Table` for an integer array.

    For each code resolution ``step`` in 0..3 the counts are rounded to log-domain codes, and
    the step minimising *table bits + ideal payload bits* is kept (small arrays get coarse,
    cheap tables; large arrays get precise ones).

    Args:
        symbols: integer or bool array of any shape (values must fit in int64).

    Returns:
        A table whose range is exactly ``[min(symbols), max(symbols)]``; empty for an empty array.
    """
    s = np.asarray(symbols)
    if s.dtype == np.bool_:
        s = s.astype(np.int64)
    if not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"histogram needs an integer array, got {s.dtype}")
    s = s.ravel()
    if s.size == 0:
        return Table(0, ())
    lo, hi = int(s.min()), int(s.max())
    if lo == hi:
        return Table(lo, (1,))
    counts = np.bincount((s.astype(np.int64) - lo), minlength=hi - lo + 1)
    best: tuple[float, Table] | None = None
    for step in range(MAX_STEP + 1):
        t = Table(lo, tuple(int(e) for e in _codes_for(counts, step)), step)
        total = cost_from_counts(counts.astype(np.float64), t.weights) + table_bits(t)
        if best is None or total < best[0]:
            best = (total, t)
    assert best is not None
    return best[1]


# ----------------------------------------------------------------------------------------
# table serialization: exp-Golomb codes in one MSB-first bit string


def _zz(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzz(u: int) -> int:
    return u >> 1 if u % 2 == 0 else -((u + 1) >> 1)


def _eg_len(u: int) -> int:
    return 2 * (u + 1).bit_length() - 1


class _BitWriter:
    def __init__(self) -> None:
        self._parts: list[str] = []

    def bits(self, value: int, n: int) -> None:
        if n:
            self._parts.append(format(value, f"0{n}b"))

    def eg(self, u: int) -> None:
        x = u + 1
        nb = x.bit_length()
        self._parts.append("0" * (nb - 1) + format(x, "b"))

    def seg(self, v: int) -> None:
        self.eg(_zz(v))

    def to_bytes(self) -> bytes:
        s = "".join(self._parts)
        if not s:
            return b""
        s += "0" * (-len(s) % 8)
        return int(s, 2).to_bytes(len(s) // 8, "big")


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._end = 8 * len(data)

    def bit(self) -> int:
        if self._pos >= self._end:
            raise BitstreamError("entropy table data is truncated")
        p = self._pos
        self._pos += 1
        return (self._data[p >> 3] >> (7 - (p & 7))) & 1

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def eg(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > _MAX_EG_ZEROS:
                raise BitstreamError("corrupt entropy table (exp-Golomb prefix too long)")
        return ((1 << zeros) | self.bits(zeros)) - 1

    def seg(self) -> int:
        return _unzz(self.eg())

    @property
    def consumed_bytes(self) -> int:
        return (self._pos + 7) // 8


def _predict(prev: Sequence[int], order: int) -> int:
    if order == 1 or len(prev) < 2:
        return prev[-1]
    return 2 * prev[-1] - prev[-2]


def _body_tokens(codes: Sequence[int], mode: int) -> list[tuple[bool, int]]:
    """Tokens ``(signed, value)`` coding ``codes`` in ``mode`` (bit 0: order 2, bit 1: sparse)."""
    order = 2 if mode & 1 else 1
    toks: list[tuple[bool, int]] = []
    vals: Sequence[int] = codes
    if mode & 2:
        runs: list[int] = []  # present, absent, present, absent, ..., present (last implied)
        cur, length = True, 0
        for e in codes:
            if (e > 0) == cur:
                length += 1
            else:
                runs.append(length)
                cur, length = not cur, 1
        toks.append((False, len(runs) // 2))
        toks.extend((False, r - 1) for r in runs)
        vals = [e for e in codes if e > 0]
    toks.append((False, vals[0] - 1))
    for i in range(1, len(vals)):
        toks.append((True, vals[i] - _predict(vals[:i], order)))
    return toks


def _tokens_bits(toks: Sequence[tuple[bool, int]]) -> int:
    return sum(_eg_len(_zz(v) if signed else v) for signed, v in toks)


def _best_mode(codes: Sequence[int]) -> tuple[int, list[tuple[bool, int]]]:
    modes = (0, 1, 2, 3) if 0 in codes else (0, 1)
    options = [(_tokens_bits(t), m, t) for m in modes for t in [_body_tokens(codes, m)]]
    _, mode, toks = min(options, key=lambda o: (o[0], o[1]))
    return mode, toks


def table_bits(t: Table) -> int:
    """Bits :func:`encode_tables` spends on ``t`` (before the final byte padding)."""
    n = t.n_symbols
    bits = 2 + _eg_len(n)
    if n >= 1:
        bits += _eg_len(_zz(t.min_symbol))
    if n >= 2:
        bits += 2 + _tokens_bits(_best_mode(t.codes)[1])
    return bits


def encode_tables(tables: Sequence[Table]) -> bytes:
    """Serialize tables into one bit string (byte-padded once at the end).

    Per table: ``step`` (2 bits), ``n`` (exp-Golomb), ``min_symbol`` (signed exp-Golomb, if
    ``n >= 1``), and if ``n >= 2``: a 2-bit mode (bit 0: predict each code by second instead of
    first differences; bit 1: "sparse", the present/absent run lengths are sent first and only
    non-zero codes follow), then ``codes[0] - 1`` (exp-Golomb) and signed exp-Golomb prediction
    residuals for the remaining codes. The cheapest mode is chosen per table.

    Args:
        tables: the tables, in the order :func:`decode_tables` will read them.

    Returns:
        The packed bytes (``b""`` for no tables).
    """
    w = _BitWriter()
    for t in tables:
        n = t.n_symbols
        w.bits(t.step, 2)
        w.eg(n)
        if n >= 1:
            w.seg(t.min_symbol)
        if n >= 2:
            mode, toks = _best_mode(t.codes)
            w.bits(mode, 2)
            for signed, v in toks:
                if signed:
                    w.seg(v)
                else:
                    w.eg(v)
    return w.to_bytes()


def _read_codes(r: _BitReader, n: int, step: int) -> tuple[int, ...]:
    mode = r.bits(2)
    order = 2 if mode & 1 else 1
    present = [True] * n
    if mode & 2:
        k = r.eg()
        if 2 * k + 1 > n:
            raise BitstreamError("corrupt entropy table (too many runs)")
        pos = 0
        for _ in range(k):
            pos += r.eg() + 1  # present run
            gap = r.eg() + 1  # absent run
            if pos + gap >= n:
                raise BitstreamError("corrupt entropy table (runs past the range)")
            present[pos : pos + gap] = [False] * gap
            pos += gap
    emax = _e_max(step)
    lo = 1 if mode & 2 else 0
    vals = [r.eg() + 1]
    for _ in range(sum(present) - 1):
        e = _predict(vals, order) + r.seg()
        if not lo <= e <= emax:
            raise BitstreamError("corrupt entropy table (code out of range)")
        vals.append(e)
    if vals[0] > emax or vals[-1] == 0:
        raise BitstreamError("corrupt entropy table (zero weight at the range ends)")
    it = iter(vals)
    return tuple(next(it) if p else 0 for p in present)


def decode_tables(data: bytes, ranges: Sequence[tuple[int, int]]) -> tuple[list[Table], int]:
    """Read ``len(ranges)`` tables written by :func:`encode_tables`.

    Args:
        data: the packed bytes (may be longer than needed).
        ranges: for each table, the inclusive ``(lo, hi)`` symbol range it may cover (for a
            b-bit tensor ``(-2**(b-1), 2**(b-1) - 1)``, for a mask ``(0, 1)``).

    Returns:
        ``(tables, consumed_bytes)``.

    Raises:
        BitstreamError: truncated data, a table outside its range, codes out of range.
    """
    r = _BitReader(data)
    out: list[Table] = []
    for lo, hi in ranges:
        step = r.bits(2)
        n = r.eg()
        if n > hi - lo + 1:
            raise BitstreamError(f"entropy table has {n} symbols, more than the {hi - lo + 1} allowed")
        if n == 0:
            out.append(Table(0, (), step))
            continue
        m = r.seg()
        if m < lo or m + n - 1 > hi:
            raise BitstreamError(f"entropy table range [{m}, {m + n - 1}] outside [{lo}, {hi}]")
        out.append(Table(m, (1,) if n == 1 else _read_codes(r, n, step), step))
    return out, r.consumed_bytes


def encode(symbols: np.ndarray, table: Table) -> bytes:
    """Range-code one array with ``table``.

    Args:
        symbols: integer or bool array of any shape (coded in row-major order).
        table: model covering every value (e.g. ``histogram(symbols)``).

    Returns:
        The payload; ``b""`` for empty arrays and one-symbol tables.
    """
    enc = StreamEncoder()
    enc.add(symbols, table)
    return enc.finish()


def decode(payload: bytes, table: Table, n: int) -> np.ndarray:
    """Inverse of :func:`encode`.

    Returns:
        int32 ``[n]``.

    Raises:
        BitstreamError: malformed payload.
    """
    return StreamDecoder(payload).take(table, n)
