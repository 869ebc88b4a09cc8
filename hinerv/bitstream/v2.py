"""Format version 2 (the ``rd`` pipeline): learned steps, parametric and context entropy models.

Sections, in order: HEAD (1), MODELS (7), SCALES (3), PAYLOAD (5), VECTORS (6)
(``docs/bitstream.md``, "Format version 2"). How a tensor's integers are coded is one of the codings
registered in :data:`hinerv.entropy.registry.CODINGS`; its index there is stored in the header.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hinerv import entropy
from hinerv.bitstream.checks import (
    check_bound,
    check_canonical,
    check_raw_sizes,
    checked_arrays,
    checked_shape,
    raw_values,
    vector_bytes,
)
from hinerv.bitstream.container import (
    HEAD,
    MODELS,
    PAYLOAD,
    SCALES,
    VECTORS,
    read_video_and_fields,
    seal,
    write_video_and_fields,
)
from hinerv.bitstream.fields import Reader, varint_bytes
from hinerv.bitstream.stream import Format, Head, Parsed, Stream
from hinerv.entropy.coding import Coding
from hinerv.entropy.registry import CODINGS
from hinerv.errors import BitstreamError

__all__ = ["CodedTensor", "CodedSpec", "FORMAT"]

SECTIONS = (HEAD, MODELS, SCALES, PAYLOAD, VECTORS)
_MAX_CONTEXT_ROWS = 1 << 16  # rows of one context-coded tensor (bounds the decoder's row loop)
_MAX_TOTAL_ROWS = 1 << 18
_BY_NAME = {c.name: c for c in CODINGS}


@dataclass(frozen=True, eq=False)
class CodedTensor:
    """One tensor of a format-v2 stream: integers, learned steps, and how to entropy-code them.

    Attributes:
        shape: tensor shape, at most 7 axes.
        scale_axes: increasing axes that carry their own step (``()`` = one step).
        scales: float16 steps, shape ``shape`` with 1 on the other axes; finite.
        q: int32 ``shape``, ``|q| <= 2**20``.
        coding: ``"auto"`` (the encoder picks the cheapest allowed model), ``"tensor"`` (one
            parametric model), ``"channel"`` (one per index of axis 0) or ``"context"``.
        context: ``(T, R)``: view the tensor as ``[T, R, size / (T R)]`` for context coding (feature
            grids: time slices and rows); None forbids context coding.

    The dequantized tensor is ``q.astype(float32) * scales.astype(float32)`` (broadcast).
    """

    shape: tuple[int, ...]
    scale_axes: tuple[int, ...]
    scales: np.ndarray
    q: np.ndarray
    coding: str = "auto"
    context: tuple[int, int] | None = None

    def dequantize(self) -> np.ndarray:
        """float32 ``shape``."""
        return self.q.astype(np.float32) * self.scales.astype(np.float32)


@dataclass(frozen=True)
class CodedSpec:
    """What a format-2 header says about a tensor (no values).

    Attributes:
        shape, scale_axes: as in :class:`CodedTensor`.
        coding: the name of a registered coding (``"tensor"``, ``"channel"``, ``"context"``).
        max_abs: ``M``, the largest ``|q|``; 0 means all zeros (nothing coded, no models).
        context: the ``(T, R)`` view, for codings that need one (else None).
    """

    shape: tuple[int, ...]
    scale_axes: tuple[int, ...]
    coding: str
    max_abs: int
    context: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def n_scales(self) -> int:
        """Number of fp16 steps."""
        return math.prod(self.shape[a] for a in self.scale_axes)

    @property
    def n_models(self) -> int:
        """Entropy models the tensor carries."""
        if self.max_abs == 0 or self.size == 0:
            return 0
        return _BY_NAME[self.coding].n_models(self.shape)


def _spec_of(t: CodedTensor, i: int) -> CodedSpec:
    """Validate one tensor for packing; the spec of an all-zero tensor (else the coding is chosen later)."""
    where = f"tensor {i}"
    shape = checked_shape(t.shape, where)
    axes = checked_arrays(t, shape, where)
    if t.context is not None:
        T, R = t.context
        if T < 1 or R < 1 or math.prod(shape) % (T * R) or T * R > _MAX_CONTEXT_ROWS:
            raise ValueError(f"{where}: context view {t.context} does not divide shape {shape}")
    max_abs = int(np.abs(t.q).max()) if t.q.size else 0
    if max_abs > entropy.GEOM_MAX_ABS:
        raise ValueError(f"{where}: |q| up to {max_abs} exceeds {entropy.GEOM_MAX_ABS}")
    return CodedSpec(shape, axes, CODINGS[0].name, max_abs, t.context)


def _choose(t: CodedTensor, base: CodedSpec) -> tuple[CodedSpec, list[Any]]:
    """The cheapest allowed coding (payload + model bits; ties: the lower code) and its models."""
    allowed = CODINGS if t.coding == "auto" else tuple(c for c in CODINGS if c.name == t.coding)
    opts: dict[str, tuple[float, list]] = {}
    for c in allowed:
        fit = c.fit(t.q, base.max_abs, t.context)
        if fit is not None:
            opts[c.name] = fit
    if not opts:
        raise ValueError(f"coding {t.coding!r} is not possible for a tensor of shape {t.shape}")
    order = [c.name for c in CODINGS]
    coding = min(opts, key=lambda k: (opts[k][0], order.index(k)))
    return CodedSpec(base.shape, base.scale_axes, coding, base.max_abs, t.context), opts[coding][1]


def _head_body(stream: Stream, specs: Sequence[CodedSpec], vec_lens: Sequence[int]) -> bytes:
    head = write_video_and_fields(stream)
    head += varint_bytes(len(specs))
    for sp in specs:
        coding = _BY_NAME[sp.coding]
        head += bytes([len(sp.shape) | CODINGS.index(coding) << 3])
        head += bytes([sum(1 << a for a in sp.scale_axes)])
        head += b"".join(varint_bytes(n) for n in sp.shape)
        head += varint_bytes(sp.max_abs)
        if coding.needs_view:
            assert sp.context is not None
            head += varint_bytes(sp.context[0]) + varint_bytes(sp.context[1])
    head += varint_bytes(len(vec_lens)) + b"".join(varint_bytes(n) for n in vec_lens)
    return bytes(head)


def pack(stream: Stream, vec_lens: Sequence[int]) -> bytes:
    """Format-2 bytes of ``stream`` (all tensors :class:`CodedTensor`; info and vectors validated)."""
    specs: list[CodedSpec] = []
    models: list[list[Any]] = []
    for i, t in enumerate(stream.tensors):
        base = _spec_of(t, i)
        if base.max_abs == 0 or base.size == 0:
            specs.append(base)
            models.append([])
        else:
            spec, ms = _choose(t, base)
            specs.append(spec)
            models.append(ms)
    model_bytes = bytearray()
    scales = bytearray()
    for t, sp, ms in zip(stream.tensors, specs, models, strict=True):
        for m in ms:
            model_bytes += _BY_NAME[sp.coding].write_model(m)
        scales += t.scales.astype("<f2").tobytes()
    enc = entropy.StreamEncoder()
    _encode(enc, stream.tensors, specs, models)
    return seal(
        2,
        [
            (HEAD, _head_body(stream, specs, vec_lens)),
            (MODELS, bytes(model_bytes)),
            (SCALES, bytes(scales)),
            (PAYLOAD, enc.finish()),
            (VECTORS, vector_bytes(stream)),
        ],
    )


def _encode(
    enc: entropy.StreamEncoder,
    tensors: Sequence[CodedTensor],
    specs: Sequence[CodedSpec],
    models: Sequence[Sequence[Any]],
) -> None:
    """Range-code the integers of every tensor with its models (the PAYLOAD)."""
    for t, sp, ms in zip(tensors, specs, models, strict=True):
        if ms:
            _BY_NAME[sp.coding].encode(enc, t.q, list(ms), sp.context)


def _read_spec(r: Reader, i: int) -> tuple[CodedSpec, int]:
    """One tensor descriptor and its context rows (0 without a view); checks everything but the totals."""
    desc, axes_bits = r.u8(), r.u8()
    ndim, code = desc & 7, desc >> 3
    if code >= len(CODINGS) or axes_bits >> ndim:
        raise BitstreamError(f"invalid bitstream: bad descriptor for tensor {i}")
    coding: Coding = CODINGS[code]
    shape = tuple(r.varint() for _ in range(ndim))
    return CodedSpec(shape, tuple(a for a in range(ndim) if axes_bits >> a & 1), coding.name, 0), code


def read_head(body: bytes, max_elements: int) -> Head:
    """Read a format-2 HEAD body (limits checked, consumed exactly)."""
    r = Reader(body, "header")
    info, model, meta = read_video_and_fields(r)
    n_t = r.varint()
    if n_t > r.remaining() // 3:  # each descriptor takes >= 3 bytes
        raise BitstreamError(f"invalid bitstream: {n_t} tensors in a {len(body)}-byte header")
    specs: list[CodedSpec] = []
    total = rows = 0
    for i in range(n_t):
        base, code = _read_spec(r, i)
        coding = CODINGS[code]
        size = base.size
        total += size
        if total > max_elements:
            raise BitstreamError(f"bitstream tensors exceed the element limit ({total} > {max_elements})")
        max_abs = r.varint()
        if max_abs > entropy.GEOM_MAX_ABS:
            raise BitstreamError(f"invalid bitstream: tensor {i} range {max_abs} too large")
        ctx = None
        if coding.needs_view:
            T, R = r.varint(), r.varint()
            if T < 1 or R < 1 or T * R > _MAX_CONTEXT_ROWS or size % (T * R):
                raise BitstreamError(f"invalid bitstream: bad context view for tensor {i}")
            rows += T * R
            if rows > _MAX_TOTAL_ROWS:
                raise BitstreamError("invalid bitstream: too many context rows")
            ctx = (T, R)
        elif not coding.accepts(base.shape):
            raise BitstreamError(f"invalid bitstream: {coding.name} coding of a scalar (tensor {i})")
        specs.append(CodedSpec(base.shape, base.scale_axes, coding.name, max_abs, ctx))
    n_v = r.varint()
    if n_v > r.remaining():
        raise BitstreamError(f"invalid bitstream: {n_v} vectors in a {len(body)}-byte header")
    vec_lens = [r.varint() for _ in range(n_v)]
    r.done()
    return info, model, meta, specs, vec_lens


def _read_models(p: Parsed) -> list[list[Any]]:
    """The models of every tensor from the MODELS section (its size must match exactly)."""
    mb = p.bodies[MODELS]
    need = sum(s.n_models * _BY_NAME[s.coding].model_bytes for s in p.specs)
    if len(mb) != need:
        raise BitstreamError(f"corrupt bitstream (models section has {len(mb)} bytes, expected {need})")
    models: list[list[Any]] = []
    off = 0
    try:
        for s in p.specs:
            coding = _BY_NAME[s.coding]
            ms = []
            for _ in range(s.n_models):
                ms.append(coding.read_model(s.max_abs, mb[off : off + coding.model_bytes]))
                off += coding.model_bytes
            models.append(ms)
    except ValueError:
        raise BitstreamError("corrupt bitstream (entropy model codes out of range)") from None
    return models


def unpack(p: Parsed) -> Stream:
    """Entropy-decode a parsed format-2 stream."""
    specs = p.specs
    check_raw_sizes(p)
    models = _read_models(p)
    bound = 0.0
    for s, ms in zip(specs, models, strict=True):
        if ms:
            bound += min(entropy.min_coded_bits(m, s.size) for m in ms)
    check_bound(bound, p.bodies[PAYLOAD], "payload")
    scales, vectors = raw_values(p)
    dec = entropy.StreamDecoder(p.bodies[PAYLOAD])
    tensors: list[CodedTensor] = []
    try:
        for s, sc, ms in zip(specs, scales, models, strict=True):
            if ms:
                q = _BY_NAME[s.coding].decode(dec, s.shape, ms, s.context)
            else:
                q = np.zeros(s.shape, dtype=np.int32)
            tensors.append(CodedTensor(s.shape, s.scale_axes, sc, q.astype(np.int32), s.coding, s.context))
    except BitstreamError:
        raise
    except Exception as e:  # constriction reports exhausted/invalid data as plain errors
        raise BitstreamError(f"corrupt bitstream (entropy decoding failed: {e})") from None
    check_canonical(p.bodies[PAYLOAD], lambda enc: _encode(enc, tensors, specs, models), "payload")
    return Stream(p.info, p.model, p.meta, tensors, vectors)


FORMAT = Format(
    version=2,
    sections=SECTIONS,
    tensor_type=CodedTensor,
    pipeline="rd",
    codes_every_parameter=True,
    read_head=read_head,
    pack=pack,
    unpack=unpack,
)
