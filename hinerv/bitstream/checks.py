"""Validation and raw-value helpers shared by the format versions (shapes, fp16 sections, bounds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hinerv import entropy
from hinerv.bitstream.container import SCALES, VECTORS
from hinerv.bitstream.stream import Parsed, ShapesFn, Stream
from hinerv.errors import BitstreamError, HinervError

__all__ = [
    "MAX_NDIM",
    "checked_shape",
    "checked_arrays",
    "vector_lengths",
    "vector_bytes",
    "raw_values",
    "check_raw_sizes",
    "check_expected_shapes",
    "check_bound",
    "check_canonical",
    "take",
]

MAX_NDIM = 7


def checked_shape(shape: Sequence[int], where: str) -> tuple[int, ...]:
    """A tensor's shape as ints, at most MAX_NDIM non-negative sizes (both format versions)."""
    out = tuple(int(n) for n in shape)
    if len(out) > MAX_NDIM or any(n < 0 for n in out):
        raise ValueError(f"{where}: shape {out} needs <= {MAX_NDIM} non-negative sizes")
    return out


def checked_arrays(t: Any, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """Check a tensor's scale axes, int32 ``q`` and finite float16 ``scales``; return the axes."""
    axes = tuple(int(a) for a in t.scale_axes)
    if any(not 0 <= a < len(shape) for a in axes) or list(axes) != sorted(set(axes)):
        raise ValueError(f"{where}: scale_axes {axes} must be increasing axes of {shape}")
    if not isinstance(t.q, np.ndarray) or t.q.dtype != np.int32 or t.q.shape != shape:
        raise ValueError(f"{where}: q must be an int32 array of shape {shape}")
    sshape = tuple(n if a in axes else 1 for a, n in enumerate(shape))
    sc = t.scales
    if not isinstance(sc, np.ndarray) or sc.dtype != np.float16 or sc.shape != sshape:
        raise ValueError(f"{where}: scales must be a float16 array of shape {sshape}")
    if not np.all(np.isfinite(sc)):
        raise ValueError(f"{where}: scales must be finite")
    return axes


def vector_lengths(stream: Stream) -> list[int]:
    """Validate the fp16 vectors (1-D, float16, finite) and return their lengths."""
    lens = []
    for i, v in enumerate(stream.vectors):
        if not isinstance(v, np.ndarray) or v.dtype != np.float16 or v.ndim != 1:
            raise ValueError(f"vector {i} must be a 1-D float16 array")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"vector {i} must be finite")
        lens.append(v.size)
    return lens


def vector_bytes(stream: Stream) -> bytes:
    return b"".join(v.astype("<f2").tobytes() for v in stream.vectors)


def check_canonical(body: bytes, replay: Callable[[entropy.StreamEncoder], object], what: str) -> None:
    """A range-coded body must be exactly what the encoder writes for the symbols it decodes to.

    The range coder cannot tell where its data ends (a truncated body decodes to other symbols, extra
    words are never read), so the decoded symbols are coded again with the same models (``replay``)
    and the bytes compared: truncated, padded or altered bodies are refused, every stream an encoder
    wrote passes (coding is deterministic).
    """
    enc = entropy.StreamEncoder()
    try:
        replay(enc)
    except Exception:  # a decoded symbol its model gives zero weight
        raise BitstreamError(
            f"corrupt bitstream ({what} section decodes to symbols its models cannot code)"
        ) from None
    if enc.finish() != body:
        raise BitstreamError(
            f"corrupt bitstream ({what} section is not the exact coding of its symbols: "
            "truncated, extended or altered)"
        )


def raw_values(p: Parsed) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The fp16 scales (one array per tensor, shaped to broadcast) and vectors; all finite."""
    sbuf = np.frombuffer(p.bodies[SCALES], dtype="<f2").astype(np.float16)
    vbuf = np.frombuffer(p.bodies[VECTORS], dtype="<f2").astype(np.float16)
    if not (np.all(np.isfinite(sbuf)) and np.all(np.isfinite(vbuf))):
        raise BitstreamError("corrupt bitstream (non-finite scale or vector value)")
    scales, off = [], 0
    for s in p.specs:
        sshape = tuple(n if a in s.scale_axes else 1 for a, n in enumerate(s.shape))
        scales.append(sbuf[off : off + s.n_scales].reshape(sshape).copy())
        off += s.n_scales
    vectors, off = [], 0
    for n in p.vec_lens:
        vectors.append(vbuf[off : off + n].copy())
        off += n
    return scales, vectors


def check_raw_sizes(p: Parsed) -> None:
    """The fp16 SCALES and VECTORS sections must hold exactly what the header announces."""
    n_scales = sum(s.n_scales for s in p.specs)
    if len(p.bodies[SCALES]) != 2 * n_scales:
        raise BitstreamError(
            f"corrupt bitstream (scales section has {len(p.bodies[SCALES])} bytes, expected {2 * n_scales})"
        )
    n_vec = sum(p.vec_lens)
    if len(p.bodies[VECTORS]) != 2 * n_vec:
        raise BitstreamError(
            f"corrupt bitstream (vectors section has {len(p.bodies[VECTORS])} bytes, expected {2 * n_vec})"
        )


def check_expected_shapes(p: Parsed, expected_shapes: ShapesFn | None) -> None:
    if expected_shapes is None:
        return
    try:
        want = [tuple(int(n) for n in s) for s in expected_shapes(p.info, p.model)]
    except HinervError as e:
        raise BitstreamError(f"bitstream model config is invalid: {e}") from None
    got = [s.shape for s in p.specs]
    if want != got:
        raise BitstreamError(
            f"bitstream tensor shapes do not match its model config "
            f"({len(got)} tensors stored, {len(want)} expected)"
            if len(want) != len(got)
            else "bitstream tensor shapes do not match its model config"
        )


def check_bound(bits: float, payload: bytes, what: str) -> None:
    # 64 bits of slack for the coder's flush and state, 1 % for probability rounding
    if 0.99 * bits - 64 > 8 * len(payload):
        raise BitstreamError(
            f"corrupt bitstream ({what} section of {len(payload)} bytes cannot hold the "
            f"symbols the header announces)"
        )


def take(dec: entropy.StreamDecoder, table: Any, n: int) -> np.ndarray:
    try:
        return dec.take(table, n)
    except BitstreamError:
        raise
    except Exception as e:  # constriction reports exhausted/invalid data as plain errors
        raise BitstreamError(f"corrupt bitstream (entropy decoding failed: {e})") from None
