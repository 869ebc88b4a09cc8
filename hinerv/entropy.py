"""Entropy coding of integer arrays with static, integer-defined probability tables.

This is the only module that imports :mod:`constriction`. It turns integer arrays into bytes
with a range coder (``constriction.stream.queue``) and back, using *static zeroth-order* models.

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

import constriction
import numpy as np

from hinerv.errors import BitstreamError

__all__ = [
    "Table",
    "histogram",
    "encode",
    "decode",
    "entropy_bits",
    "cross_entropy_bits",
    "min_coded_bits",
    "encode_tables",
    "decode_tables",
    "StreamEncoder",
    "StreamDecoder",
    "MAX_STEP",
    "GeomModel",
    "fit_geom",
    "abs_histogram",
    "CTX_BUCKETS",
    "context_map",
    "context_buckets",
    "encode_context",
    "decode_context",
    "GEOM_R_MAX",
    "GEOM_Z_MAX",
    "GEOM_MAX_ABS",
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

    def _model(self) -> constriction.stream.model.Categorical:
        return constriction.stream.model.Categorical(self.probabilities(), perfect=False)


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
    return _cost_from_counts(counts.astype(np.float64), table.weights)


def _cost_from_counts(counts: np.ndarray, weights: np.ndarray) -> float:
    w = weights.astype(np.float64)
    nz = counts > 0
    if np.any(w[nz] == 0):
        return math.inf
    return float(np.sum(counts[nz] * np.log2(w.sum() / w[nz])))


def min_coded_bits(table: Table, n: int) -> float:
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
        total = _cost_from_counts(counts.astype(np.float64), t.weights) + _table_bits(t)
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


def _table_bits(t: Table) -> int:
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


# ----------------------------------------------------------------------------------------
# range coding


def _check_in_table(s: np.ndarray, table: Table) -> None:
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

    def add(self, symbols: np.ndarray, table: Table) -> None:
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

    def take(self, table: Table, n: int) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------
# parametric models (bitstream format v2): a zero-adjusted two-sided geometric distribution
#
# A GeomModel over [-M, M] has integer weights
#     w(k) = W1 * rho**(|k| - 1)   for k != 0   (computed by integer recursion, floored, >= 1)
#     w(0) = W1 * 2**(z/8 - 8)                   (a separate mass for zero)
# with rho = 1 - 2**(-r/8) in 24-bit fixed point. Two small integers (r, z) and M travel in the
# stream; the weights are pure integer arithmetic, so encoder and decoder build identical models.
# It is the discretised Laplace (rate-trained weights are close to Laplace) with a free zero
# mass (rate training piles values on zero: pruning falls out of the rate term).

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

    def _model(self) -> constriction.stream.model.Categorical:
        return _categorical(self.max_abs, self.r, self.z)

    def cost_bits(self, symbols: np.ndarray) -> float:
        """Ideal cost in bits of ``symbols`` (all inside the range) under this model."""
        s = np.asarray(symbols).ravel()
        if s.size == 0 or self.max_abs == 0:
            return 0.0
        counts = np.bincount(s.astype(np.int64) + self.max_abs, minlength=self.n_symbols)
        return _cost_from_counts(counts.astype(np.float64), self.weights)


@lru_cache(maxsize=1024)
def _categorical(max_abs: int, r: int, z: int) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(GeomModel(max_abs, r, z).probabilities(), perfect=False)


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
# causal context for feature grids (format v2)
#
# A grid is viewed as [T, R, X] (time slices, rows, the rest). The context of a cell is
# min(CTX_BUCKETS - 1, bit_length(|q[t-1, r, x]| + |q[t, r-1, x]|)) (missing neighbours count 0):
# both neighbours are decoded before the row that holds the cell, so a whole row is decoded at
# once, bucket by bucket, each bucket with its own GeomModel.

CTX_BUCKETS = 6


def context_buckets(prev_slice: np.ndarray | None, prev_row: np.ndarray | None, width: int) -> np.ndarray:
    """int64 ``[width]`` context buckets of one row from its decoded neighbours (or None)."""
    s = np.zeros(width, dtype=np.int64)
    if prev_slice is not None:
        s += np.abs(prev_slice.astype(np.int64))
    if prev_row is not None:
        s += np.abs(prev_row.astype(np.int64))
    b = np.zeros(width, dtype=np.int64)
    nz = s > 0
    b[nz] = np.floor(np.log2(s[nz])).astype(np.int64) + 1  # bit_length
    return np.minimum(b, CTX_BUCKETS - 1)


def context_map(q: np.ndarray) -> np.ndarray:
    """int64 ``[T, R, X]``: the context bucket of every cell of a ``[T, R, X]`` integer grid."""
    a = np.abs(q.astype(np.int64))
    s = np.zeros_like(a)
    s[1:] += a[:-1]
    s[:, 1:] += a[:, :-1]
    b = np.zeros_like(a)
    nz = s > 0
    b[nz] = np.floor(np.log2(s[nz])).astype(np.int64) + 1
    return np.minimum(b, CTX_BUCKETS - 1)


def encode_context(enc: StreamEncoder, q: np.ndarray, models: Sequence[GeomModel]) -> None:
    """Append a ``[T, R, X]`` grid in context order (row by row, bucket by bucket)."""
    ctx = context_map(q)
    for t in range(q.shape[0]):
        for r in range(q.shape[1]):
            row, crow = q[t, r], ctx[t, r]
            for k, m in enumerate(models):
                enc.add(row[crow == k], m)


def decode_context(
    dec: StreamDecoder, shape: tuple[int, int, int], models: Sequence[GeomModel]
) -> np.ndarray:
    """Inverse of :func:`encode_context`: int32 ``[T, R, X]``."""
    T, R, X = shape
    q = np.zeros(shape, dtype=np.int32)
    for t in range(T):
        for r in range(R):
            crow = context_buckets(q[t - 1, r] if t else None, q[t, r - 1] if r else None, X)
            row = q[t, r]
            for k, m in enumerate(models):
                sel = crow == k
                n = int(np.count_nonzero(sel))
                if n:
                    row[sel] = dec.take(m, n)
    return q
