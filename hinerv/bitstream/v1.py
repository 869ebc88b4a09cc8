"""Format version 1 (the ``paper`` pipeline): fixed bit depths, keep-masks, histogram tables.

Sections, in order: HEAD (1), TABLES (2), SCALES (3), MASKS (4), PAYLOAD (5), VECTORS (6)
(``docs/bitstream.md``, "Format version 1").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hinerv import entropy
from hinerv.bitstream.checks import (
    check_bound,
    check_canonical,
    check_raw_sizes,
    checked_arrays,
    checked_shape,
    raw_values,
    take,
    vector_bytes,
)
from hinerv.bitstream.container import (
    HEAD,
    MASKS,
    PAYLOAD,
    SCALES,
    TABLES,
    VECTORS,
    read_video_and_fields,
    seal,
    write_video_and_fields,
)
from hinerv.bitstream.fields import Reader, varint_bytes
from hinerv.bitstream.stream import Format, Head, Parsed, Stream
from hinerv.errors import BitstreamError

__all__ = ["QuantTensor", "TensorSpec", "FORMAT", "MAX_BITS", "head_body"]

MAX_BITS = 16
SECTIONS = (HEAD, TABLES, SCALES, MASKS, PAYLOAD, VECTORS)


@dataclass(frozen=True, eq=False)
class QuantTensor:
    """One quantized tensor (a conv/linear weight or a feature grid).

    Attributes:
        shape: tensor shape, at most 7 axes (a 0 size is allowed: an empty tensor).
        bits: quantizer bit depth b (2..16; the codec uses 6, 7, 8).
        scale_axes: strictly increasing axes that carry their own scale; ``()`` = one scale.
        scales: float16, shape ``shape`` with size 1 on every axis not in ``scale_axes``;
            finite values.
        q: int32 ``shape``, values in ``[-2**(b-1), 2**(b-1) - 1]``.
        mask: bool ``shape`` keep-mask (False = pruned, and ``q == 0`` there) or None.

    The dequantized tensor is ``q.astype(float32) * scales.astype(float32)`` (broadcast).
    """

    shape: tuple[int, ...]
    bits: int
    scale_axes: tuple[int, ...]
    scales: np.ndarray
    q: np.ndarray
    mask: np.ndarray | None = None

    @property
    def scale_shape(self) -> tuple[int, ...]:
        """Shape of ``scales``: ``shape`` with 1 on the axes not in ``scale_axes``."""
        return tuple(n if a in self.scale_axes else 1 for a, n in enumerate(self.shape))

    def dequantize(self) -> np.ndarray:
        """float32 ``shape``: ``q * scales`` computed in float32 from the fp16 scales."""
        return self.q.astype(np.float32) * self.scales.astype(np.float32)


@dataclass(frozen=True)
class TensorSpec:
    """What a format-1 header says about a tensor (no values): shape, bit depth, scale axes, mask flag."""

    shape: tuple[int, ...]
    bits: int
    scale_axes: tuple[int, ...]
    has_mask: bool

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def n_scales(self) -> int:
        """Number of fp16 scales."""
        return math.prod(self.shape[a] for a in self.scale_axes)


def _spec_of(t: QuantTensor, i: int) -> TensorSpec:
    """Validate one tensor for packing and return its descriptor."""
    where = f"tensor {i}"
    shape = checked_shape(t.shape, where)
    if not 2 <= t.bits <= MAX_BITS:
        raise ValueError(f"{where}: bits {t.bits} outside 2..{MAX_BITS}")
    axes = checked_arrays(t, shape, where)
    lo, hi = _value_range(t.bits)
    if t.q.size and (int(t.q.min()) < lo or int(t.q.max()) > hi):
        raise ValueError(f"{where}: values outside [{lo}, {hi}] for {t.bits} bits")
    if t.mask is not None:
        m = t.mask
        if not isinstance(m, np.ndarray) or m.dtype != np.bool_ or m.shape != shape:
            raise ValueError(f"{where}: mask must be a bool array of shape {shape}")
        if np.any(t.q[~m] != 0):
            raise ValueError(f"{where}: q must be 0 wherever mask is False")
    return TensorSpec(shape, t.bits, axes, t.mask is not None)


def _value_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def head_body(stream: Stream, specs: Sequence[TensorSpec], vec_lens: Sequence[int]) -> bytes:
    """The HEAD body: video header and fields, tensor descriptors, vector lengths."""
    out = write_video_and_fields(stream)
    out += varint_bytes(len(specs))
    for s in specs:
        out += bytes([(s.bits - 1) | s.has_mask << 4 | len(s.shape) << 5])
        out += bytes([sum(1 << a for a in s.scale_axes)])
        out += b"".join(varint_bytes(n) for n in s.shape)
    out += varint_bytes(len(vec_lens)) + b"".join(varint_bytes(n) for n in vec_lens)
    return bytes(out)


def pack(stream: Stream, vec_lens: Sequence[int]) -> bytes:
    """Format-1 bytes of ``stream`` (all tensors :class:`QuantTensor`; info and vectors validated)."""
    specs = [_spec_of(t, i) for i, t in enumerate(stream.tensors)]
    tables: list[entropy.Table] = []
    masks_enc, vals_enc = entropy.StreamEncoder(), entropy.StreamEncoder()
    scales = bytearray()
    for t in stream.tensors:
        if t.mask is not None:
            mt = entropy.histogram(t.mask)
            tables.append(mt)
            masks_enc.add(t.mask, mt)
            kept = t.q[t.mask]
        else:
            kept = t.q.ravel()
        vt = entropy.histogram(kept)
        tables.append(vt)
        vals_enc.add(kept, vt)
        scales += t.scales.astype("<f2").tobytes()
    return seal(
        1,
        [
            (HEAD, head_body(stream, specs, vec_lens)),
            (TABLES, entropy.encode_tables(tables)),
            (SCALES, bytes(scales)),
            (MASKS, masks_enc.finish()),
            (PAYLOAD, vals_enc.finish()),
            (VECTORS, vector_bytes(stream)),
        ],
    )


def read_head(body: bytes, max_elements: int) -> Head:
    """Read a format-1 HEAD body (limits checked, consumed exactly)."""
    r = Reader(body, "header")
    info, model, meta = read_video_and_fields(r)
    n_t = r.varint()
    if n_t > r.remaining() // 2:  # each descriptor takes >= 2 bytes
        raise BitstreamError(f"invalid bitstream: {n_t} tensors in a {len(body)}-byte header")
    specs: list[TensorSpec] = []
    total = 0
    for i in range(n_t):
        desc, axes_bits = r.u8(), r.u8()
        bits, flags, ndim = (desc & 15) + 1, desc >> 4 & 1, desc >> 5
        shape = tuple(r.varint() for _ in range(ndim))
        size = math.prod(shape)
        total += size
        if total > max_elements:
            raise BitstreamError(f"bitstream tensors exceed the element limit ({total} > {max_elements})")
        if bits < 2 or axes_bits >> ndim:
            raise BitstreamError(f"invalid bitstream: bad descriptor for tensor {i}")
        axes = tuple(a for a in range(ndim) if axes_bits >> a & 1)
        specs.append(TensorSpec(shape, bits, axes, bool(flags)))
    n_v = r.varint()
    if n_v > r.remaining():
        raise BitstreamError(f"invalid bitstream: {n_v} vectors in a {len(body)}-byte header")
    vec_lens = [r.varint() for _ in range(n_v)]
    r.done()
    return info, model, meta, specs, vec_lens


def _read_tables(p: Parsed) -> tuple[list[entropy.Table | None], list[entropy.Table]]:
    """The mask table (or None) and value table of every tensor, each within its tensor's range."""
    ranges: list[tuple[int, int]] = []
    for s in p.specs:
        if s.has_mask:
            ranges.append((0, 1))
        ranges.append(_value_range(s.bits))
    tables, used = entropy.decode_tables(p.bodies[TABLES], ranges)
    if used != len(p.bodies[TABLES]):
        raise BitstreamError("corrupt bitstream (stray bytes after the entropy tables)")
    it = iter(tables)
    mtabs: list[entropy.Table | None] = []
    vtabs: list[entropy.Table] = []
    for s in p.specs:
        mtabs.append(next(it) if s.has_mask else None)
        vtabs.append(next(it))
    return mtabs, vtabs


def _decode_masks(
    p: Parsed, mtabs: list[entropy.Table | None], vtabs: list[entropy.Table]
) -> tuple[list[np.ndarray | None], list[int]]:
    """Keep-masks (or None) and kept-value counts; the work is bounded by the bytes first."""
    specs = p.specs
    mask_bound = sum(entropy.min_coded_bits(mt, s.size) for s, mt in zip(specs, mtabs, strict=True) if mt)
    check_bound(mask_bound, p.bodies[MASKS], "masks")
    mdec = entropy.StreamDecoder(p.bodies[MASKS])
    masks: list[np.ndarray | None] = []
    counts: list[int] = []
    for s, mt, vt in zip(specs, mtabs, vtabs, strict=True):
        m = None if mt is None else take(mdec, mt, s.size).astype(bool).reshape(s.shape)
        n = s.size if m is None else int(np.count_nonzero(m))
        if (n == 0) != (vt.n_symbols == 0):
            raise BitstreamError("corrupt bitstream (entropy table does not fit its tensor)")
        masks.append(m)
        counts.append(n)
    check_canonical(
        p.bodies[MASKS],
        lambda enc: [enc.add(m, mt) for m, mt in zip(masks, mtabs, strict=True) if mt is not None],
        "masks",
    )
    return masks, counts


def unpack(p: Parsed) -> Stream:
    """Entropy-decode a parsed format-1 stream."""
    check_raw_sizes(p)  # sizes that must match the bytes present exactly
    mtabs, vtabs = _read_tables(p)
    masks, counts = _decode_masks(p, mtabs, vtabs)
    val_bound = sum(entropy.min_coded_bits(vt, n) for vt, n in zip(vtabs, counts, strict=True))
    check_bound(val_bound, p.bodies[PAYLOAD], "payload")

    vdec = entropy.StreamDecoder(p.bodies[PAYLOAD])
    scales, vectors = raw_values(p)
    tensors: list[QuantTensor] = []
    kept: list[np.ndarray] = []
    for s, sc, vt, m, n in zip(p.specs, scales, vtabs, masks, counts, strict=True):
        vals = take(vdec, vt, n)
        kept.append(vals)
        if m is None:
            q = vals.reshape(s.shape)
        else:
            q = np.zeros(s.shape, dtype=np.int32)
            q[m] = vals
        tensors.append(QuantTensor(s.shape, s.bits, s.scale_axes, sc, q, m))
    check_canonical(
        p.bodies[PAYLOAD], lambda enc: [enc.add(v, vt) for v, vt in zip(kept, vtabs, strict=True)], "payload"
    )
    return Stream(p.info, p.model, p.meta, tensors, vectors)


FORMAT = Format(
    version=1,
    sections=SECTIONS,
    tensor_type=QuantTensor,
    pipeline="paper",
    codes_every_parameter=False,
    read_head=read_head,
    pack=pack,
    unpack=unpack,
)
