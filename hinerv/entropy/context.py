"""Causal context coding of feature grids (bitstream format 2).

A grid is viewed as ``[T, R, X]`` (time slices, rows, the rest). The context of a cell is
``min(CTX_BUCKETS - 1, bit_length(|q[t-1, r, x]| + |q[t, r-1, x]|))`` (missing neighbours count 0):
both neighbours are decoded before the row that holds the cell, so a whole row is decoded at
once, bucket by bucket, each bucket with its own :class:`~hinerv.entropy.parametric.GeomModel`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hinerv.entropy.coder import StreamDecoder, StreamEncoder
from hinerv.entropy.coding import View
from hinerv.entropy.parametric import GeomCoding, GeomModel, abs_histogram, fit_geom

__all__ = [
    "CTX_BUCKETS",
    "context_buckets",
    "context_map",
    "encode_context",
    "decode_context",
    "ContextCoding",
]

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


class ContextCoding(GeomCoding):
    """One model per context bucket; the tensor carries its ``(T, R)`` view."""

    name = "context"
    needs_view = True

    def n_models(self, shape: tuple[int, ...]) -> int:
        return CTX_BUCKETS

    def fit(self, q: np.ndarray, max_abs: int, view: View) -> tuple[float, list[Any]] | None:
        if view is None:
            return None
        ctx = context_map(q.reshape(view[0], view[1], -1))
        qv = q.reshape(ctx.shape)
        fits = [fit_geom(abs_histogram(qv[ctx == k], max_abs), max_abs) for k in range(CTX_BUCKETS)]
        return sum(b for _, b in fits) + 16 * CTX_BUCKETS, [m for m, _ in fits]

    def encode(self, enc: StreamEncoder, q: np.ndarray, models: list[Any], view: View) -> None:
        assert view is not None
        encode_context(enc, q.reshape(view[0], view[1], -1), models)

    def decode(self, dec: StreamDecoder, shape: tuple[int, ...], models: list[Any], view: View) -> np.ndarray:
        assert view is not None
        T, R = view
        size = math.prod(shape)
        return decode_context(dec, (T, R, size // (T * R)), models).reshape(shape)
