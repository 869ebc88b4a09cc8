"""The hinerv bitstream container: the only module that lays out bytes.

A bitstream holds everything a decoder needs to rebuild the quantized network of one video:
the :class:`~hinerv.types.VideoInfo`, the model configuration fields, free-form meta fields,
the quantized tensors (shapes, bit depths, fp16 scales, optional keep-masks, entropy-coded
integers) and a few raw float16 vectors (biases). Tensor *names* are not stored: the decoder
rebuilds the model from the config and knows the canonical order; shapes are stored and
checked.

Layout (format version 1; all multi-byte fixed-size numbers little-endian; ``varint`` is
unsigned LEB128, at most 10 bytes; the full field-by-field description is in
``docs/bitstream.md``)::

    "HNRV"  u8 version
    section*:  u8 kind | varint length | body[length] | u32 CRC32(kind, length, body)
        1 HEAD     video header, model fields, meta fields, tensor descriptors, vector lengths
        2 TABLES   entropy tables (mask table, then value table, per tensor), one bit string
        3 SCALES   all fp16 scales, tensor by tensor
        4 MASKS    one range-coded stream of all keep-masks
        5 PAYLOAD  one range-coded stream of all kept quantized values
        6 VECTORS  all fp16 vectors
        >=128      ancillary sections, skipped by readers that do not know them
    u8 0 (END) | u32 CRC32 of every byte before it

Reading is defensive: every size is validated against ``max_elements`` and against the bytes
actually present before anything is allocated or decoded, and every problem raises
:class:`~hinerv.errors.BitstreamError` with a one-line message.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from hinerv import entropy
from hinerv.config import FieldValue
from hinerv.entropy import CTX_BUCKETS
from hinerv.errors import BitstreamError, HinervError
from hinerv.types import VideoInfo

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "QuantTensor",
    "Stream",
    "TensorSpec",
    "StreamSummary",
    "pack",
    "unpack",
    "peek",
]

MAGIC = b"HNRV"
FORMAT_VERSION = 2
"""The newest version this module reads (it reads every older one too)."""

_HEAD, _TABLES, _SCALES, _MASKS, _PAYLOAD, _VECTORS, _MODELS, _END = 1, 2, 3, 4, 5, 6, 7, 0
_REQUIRED = (_HEAD, _TABLES, _SCALES, _MASKS, _PAYLOAD, _VECTORS)
_REQUIRED_BY_VERSION = {1: _REQUIRED, 2: (_HEAD, _MODELS, _SCALES, _PAYLOAD, _VECTORS)}
SECTION_NAMES = {
    _HEAD: "header",
    _MODELS: "models",
    _TABLES: "tables",
    _SCALES: "scales",
    _MASKS: "masks",
    _PAYLOAD: "payload",
    _VECTORS: "vectors",
}

_CHROMA = ("420", "444")
_MATRIX = ("bt601", "bt709")
MAX_DIM = 1 << 16  # width/height
MAX_FRAMES = 1 << 20
MAX_NDIM = 7
MAX_BITS = 16
_MAX_FIELDS = 1024
_MAX_TUPLE = 4096
_MAX_STR = 1 << 16
_MAX_KEY = 64
_MAX_INT = 1 << 63  # field ints must fit int64

# Format-v1 key dictionary: a field name found here is stored as one byte 0x80 + index.
# Append-only within a format version (never reorder): old streams must keep their meaning.
_KEYS = (
    "channels", "depths", "scales", "base_grid_channels", "enc_channels", "base_grid_frames",
    "exps", "kernels", "stem_kernel", "channels_reduce", "base_grid_levels", "enc_levels",
    "enc_depth_scale", "upsample_norm", "encoder", "preset", "bits", "seed",
)  # fmt: skip
_KEY_INDEX = {k: i for i, k in enumerate(_KEYS)}

# field type tags
_T_INT, _T_F32, _T_F64, _T_STR, _T_INTS, _T_F32S, _T_F64S, _T_BOOL = range(8)


# ----------------------------------------------------------------------------------------
# data model


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


@dataclass(frozen=True, eq=False)
class Stream:
    """Everything a bitstream carries.

    Attributes:
        info: the video geometry and colour format.
        model: model config fields (``ModelConfig.to_fields()``), in a stable order.
        meta: free-form fields (encoder version, training settings, ...).
        tensors: quantized tensors in the decoder's canonical order.
        vectors: 1-D float16 arrays (biases), in canonical order.
    """

    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue] = field(default_factory=dict)
    tensors: list[QuantTensor] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class TensorSpec:
    """What the header says about a tensor (no values).

    Format v1 tensors have ``bits`` and ``has_mask``; format v2 tensors have ``bits == 0``,
    ``coding`` (``"tensor"``, ``"channel"`` or ``"context"``), ``max_abs`` and, for context
    coding, the ``context`` view ``(T, R)``.
    """

    shape: tuple[int, ...]
    bits: int
    scale_axes: tuple[int, ...]
    has_mask: bool
    coding: str = "table"
    max_abs: int = 0
    context: tuple[int, int] | None = None

    @property
    def n_models(self) -> int:
        """Entropy models the tensor carries (format v2)."""
        if self.max_abs == 0 or self.size == 0:
            return 0
        return {"tensor": 1, "channel": self.shape[0] if self.shape else 1, "context": CTX_BUCKETS}.get(
            self.coding, 0
        )

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def n_scales(self) -> int:
        """Number of fp16 scales."""
        return math.prod(self.shape[a] for a in self.scale_axes)


@dataclass(frozen=True)
class StreamSummary:
    """What :func:`peek` reports, without entropy-decoding anything.

    Attributes:
        version: format version of the stream.
        info, model, meta: as in :class:`Stream`.
        tensors: header descriptors, in order.
        vector_lengths: length of each fp16 vector.
        section_bytes: bytes per section kind (``header``, ``tables``, ``scales``, ``masks``,
            ``payload``, ``vectors``, ``ancillary``) with each section's own framing (kind,
            length, CRC) included; ``framing`` is magic + version + END + overall CRC.
        total_bytes: ``len(data)``.
    """

    version: int
    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue]
    tensors: list[TensorSpec]
    vector_lengths: list[int]
    section_bytes: dict[str, int]
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (fps as a string ``"num/den"``)."""
        i = self.info
        return {
            "version": self.version,
            "pipeline": str(self.meta.get("pipeline", "paper" if self.version == 1 else "rd")),
            "video": {
                "width": i.width,
                "height": i.height,
                "frames": i.frames,
                "fps": f"{i.fps.numerator}/{i.fps.denominator}",
                "bit_depth": i.bit_depth,
                "chroma": i.chroma,
                "matrix": i.matrix,
                "full_range": i.full_range,
            },
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in self.model.items()},
            "meta": {k: list(v) if isinstance(v, tuple) else v for k, v in self.meta.items()},
            "tensors": len(self.tensors),
            "elements": sum(t.size for t in self.tensors),
            "scales": sum(t.n_scales for t in self.tensors),
            "vectors": len(self.vector_lengths),
            "section_bytes": dict(self.section_bytes),
            "total_bytes": self.total_bytes,
        }


# ----------------------------------------------------------------------------------------
# primitive writers / readers


def _varint(v: int) -> bytes:
    if v < 0:
        raise ValueError("varint must be >= 0")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zz(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


class _Reader:
    """Cursor over a bytes object; every read checks the bytes are there."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise BitstreamError(f"truncated bitstream ({self.what} needs {n} more bytes)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        v = 0
        for i in range(10):
            b = self.u8()
            v |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return v
        raise BitstreamError(f"corrupt bitstream (varint longer than 10 bytes in {self.what})")

    def svarint(self) -> int:
        u = self.varint()
        return u >> 1 if u % 2 == 0 else -((u + 1) >> 1)

    def f32(self) -> float:
        return float(struct.unpack("<f", self.take(4))[0])

    def f64(self) -> float:
        return float(struct.unpack("<d", self.take(8))[0])

    def done(self) -> None:
        if self.remaining():
            raise BitstreamError(f"corrupt bitstream ({self.remaining()} stray bytes in {self.what})")


# ----------------------------------------------------------------------------------------
# typed key/value fields


def _is_f32(v: float) -> bool:
    with np.errstate(over="ignore"):  # a float beyond the f32 range becomes inf: not f32-exact
        return float(np.float32(v)) == v


def _write_fields(fields: dict[str, FieldValue], what: str) -> bytes:
    if len(fields) > _MAX_FIELDS:
        raise ValueError(f"too many {what} fields ({len(fields)} > {_MAX_FIELDS})")
    out = bytearray(_varint(len(fields)))
    for k, v in fields.items():
        kb = k.encode("ascii", "strict") if isinstance(k, str) and k.isascii() else None
        if kb is None or not 1 <= len(kb) <= _MAX_KEY or not k.isprintable():
            raise ValueError(f"{what} field name {k!r} must be 1..{_MAX_KEY} printable ASCII chars")
        out += bytes([0x80 + _KEY_INDEX[k]]) if k in _KEY_INDEX else bytes([len(kb)]) + kb
        out += _write_value(v, f"{what} field {k!r}")
    return bytes(out)


def _write_value(v: Any, what: str) -> bytes:
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return bytes([_T_BOOL, int(v)])
    if isinstance(v, (int, np.integer)):
        v = int(v)
        if not -_MAX_INT <= v < _MAX_INT:
            raise ValueError(f"{what} does not fit in int64")
        return bytes([_T_INT]) + _varint(_zz(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{what} must be finite")
        if _is_f32(v):
            return bytes([_T_F32]) + struct.pack("<f", v)
        return bytes([_T_F64]) + struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        if len(b) > _MAX_STR:
            raise ValueError(f"{what} is longer than {_MAX_STR} bytes")
        return bytes([_T_STR]) + _varint(len(b)) + b
    if isinstance(v, (tuple, list)):
        if len(v) > _MAX_TUPLE:
            raise ValueError(f"{what} has more than {_MAX_TUPLE} entries")
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            if any(not -_MAX_INT <= int(x) < _MAX_INT for x in v):
                raise ValueError(f"{what} does not fit in int64")
            return bytes([_T_INTS]) + _varint(len(v)) + b"".join(_varint(_zz(int(x))) for x in v)
        if all(isinstance(x, (int, float, np.integer, np.floating)) for x in v) and not any(
            isinstance(x, bool) for x in v
        ):
            fs = [float(x) for x in v]
            if not all(math.isfinite(x) for x in fs):
                raise ValueError(f"{what} must be finite")
            if all(_is_f32(x) for x in fs):
                return bytes([_T_F32S]) + _varint(len(fs)) + struct.pack(f"<{len(fs)}f", *fs)
            return bytes([_T_F64S]) + _varint(len(fs)) + struct.pack(f"<{len(fs)}d", *fs)
    raise ValueError(f"{what} has unsupported type {type(v).__name__}")


def _read_fields(r: _Reader, what: str) -> dict[str, FieldValue]:
    n = r.varint()
    if n > _MAX_FIELDS:
        raise BitstreamError(f"corrupt bitstream ({n} {what} fields)")
    out: dict[str, FieldValue] = {}
    for _ in range(n):
        klen = r.u8()
        if klen >= 0x80:
            if klen - 0x80 >= len(_KEYS):
                raise BitstreamError(f"corrupt bitstream (unknown {what} field key {klen})")
            k = _KEYS[klen - 0x80]
        else:
            try:
                k = r.take(klen).decode("ascii")
            except UnicodeDecodeError:
                raise BitstreamError(f"corrupt bitstream (non-ASCII {what} field name)") from None
        if not 1 <= len(k) <= _MAX_KEY or not k.isprintable() or k in out:
            raise BitstreamError(f"corrupt bitstream (bad or repeated {what} field name {k!r})")
        out[k] = _read_value(r, what)
    return out


def _read_value(r: _Reader, what: str) -> FieldValue:
    tag = r.u8()
    if tag == _T_BOOL:
        b = r.u8()
        if b > 1:
            raise BitstreamError(f"corrupt bitstream (bool {what} field is {b})")
        return bool(b)  # type: ignore[return-value]
    if tag == _T_INT:
        return r.svarint()
    if tag == _T_F32:
        return r.f32()
    if tag == _T_F64:
        return r.f64()
    if tag == _T_STR:
        n = r.varint()
        if n > _MAX_STR:
            raise BitstreamError(f"corrupt bitstream ({what} string of {n} bytes)")
        try:
            return r.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"corrupt bitstream (invalid UTF-8 in a {what} field)") from None
    if tag in (_T_INTS, _T_F32S, _T_F64S):
        n = r.varint()
        if n > _MAX_TUPLE:
            raise BitstreamError(f"corrupt bitstream ({what} tuple of {n} entries)")
        if tag == _T_INTS:
            return tuple(r.svarint() for _ in range(n))
        size = 4 if tag == _T_F32S else 8
        raw = r.take(size * n)
        vals = struct.unpack(f"<{n}{'f' if size == 4 else 'd'}", raw)
        return tuple(float(x) for x in vals)
    raise BitstreamError(f"corrupt bitstream (unknown {what} field type {tag})")


# ----------------------------------------------------------------------------------------
# validation


def _check_info(info: VideoInfo) -> None:
    fps = Fraction(info.fps)
    if not (1 <= info.width <= MAX_DIM and 1 <= info.height <= MAX_DIM):
        raise ValueError(f"frame size {info.width}x{info.height} outside 1..{MAX_DIM}")
    if not 1 <= info.frames <= MAX_FRAMES:
        raise ValueError(f"frame count {info.frames} outside 1..{MAX_FRAMES}")
    if fps <= 0 or fps.numerator >= 1 << 32 or fps.denominator >= 1 << 32:
        raise ValueError(f"fps {fps} must be positive with 32-bit numerator and denominator")
    if not 8 <= info.bit_depth <= 16:
        raise ValueError(f"bit depth {info.bit_depth} outside 8..16")
    if info.chroma not in _CHROMA or info.matrix not in _MATRIX:
        raise ValueError(f"unsupported chroma {info.chroma!r} or matrix {info.matrix!r}")


def _checked_shape(shape: Sequence[int], where: str) -> tuple[int, ...]:
    """A tensor's shape as ints, at most MAX_NDIM non-negative sizes (both format versions)."""
    out = tuple(int(n) for n in shape)
    if len(out) > MAX_NDIM or any(n < 0 for n in out):
        raise ValueError(f"{where}: shape {out} needs <= {MAX_NDIM} non-negative sizes")
    return out


def _checked_arrays(t: QuantTensor | CodedTensor, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
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


def _spec_of(t: QuantTensor, i: int) -> TensorSpec:
    """Validate one tensor for packing and return its descriptor."""
    where = f"tensor {i}"
    shape = _checked_shape(t.shape, where)
    if not 2 <= t.bits <= MAX_BITS:
        raise ValueError(f"{where}: bits {t.bits} outside 2..{MAX_BITS}")
    axes = _checked_arrays(t, shape, where)
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


# ----------------------------------------------------------------------------------------
# pack


def _section(kind: int, body: bytes) -> bytes:
    head = bytes([kind]) + _varint(len(body))
    return head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head)))


def _write_video_and_fields(stream: Stream) -> bytearray:
    """The start of every HEAD body (both versions): video header, model fields, meta fields."""
    i = stream.info
    fps = Fraction(i.fps)
    out = bytearray()
    for v in (i.width, i.height, i.frames, fps.numerator, fps.denominator):
        out += _varint(int(v))
    out += bytes([i.bit_depth, _CHROMA.index(i.chroma), _MATRIX.index(i.matrix), int(bool(i.full_range))])
    out += _write_fields(stream.model, "model")
    out += _write_fields(stream.meta, "meta")
    return out


def _seal(version: int, sections: Sequence[tuple[int, bytes]]) -> bytes:
    """Magic, version byte, the framed sections in order, END and the overall CRC32."""
    out = bytearray(MAGIC + bytes([version]))
    for kind, body in sections:
        out += _section(kind, body)
    out += bytes([_END])
    out += struct.pack("<I", zlib.crc32(bytes(out)))
    return bytes(out)


def _vector_lengths(stream: Stream) -> list[int]:
    """Validate the fp16 vectors (1-D, float16, finite) and return their lengths."""
    lens = []
    for i, v in enumerate(stream.vectors):
        if not isinstance(v, np.ndarray) or v.dtype != np.float16 or v.ndim != 1:
            raise ValueError(f"vector {i} must be a 1-D float16 array")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"vector {i} must be finite")
        lens.append(v.size)
    return lens


def _vector_bytes(stream: Stream) -> bytes:
    return b"".join(v.astype("<f2").tobytes() for v in stream.vectors)


def _head_body(stream: Stream, specs: Sequence[TensorSpec], vec_lens: Sequence[int]) -> bytes:
    out = _write_video_and_fields(stream)
    out += _varint(len(specs))
    for s in specs:
        out += bytes([(s.bits - 1) | s.has_mask << 4 | len(s.shape) << 5])
        out += bytes([sum(1 << a for a in s.scale_axes)])
        out += b"".join(_varint(n) for n in s.shape)
    out += _varint(len(vec_lens)) + b"".join(_varint(n) for n in vec_lens)
    return bytes(out)


def pack(stream: Stream) -> bytes:
    """Serialize a :class:`Stream` (deterministic: the same stream gives the same bytes).

    Args:
        stream: the content; every tensor is validated (dtypes, shapes, value ranges,
            ``q == 0`` off-mask, finite scales and vectors).

    Returns:
        The bitstream bytes.

    Raises:
        ValueError: invalid content (a programming error of the caller, not a user error).
    """
    _check_info(stream.info)
    vec_lens = _vector_lengths(stream)
    if any(isinstance(t, CodedTensor) for t in stream.tensors):
        return _pack_v2(stream, vec_lens)
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

    return _seal(
        1,
        [
            (_HEAD, _head_body(stream, specs, vec_lens)),
            (_TABLES, entropy.encode_tables(tables)),
            (_SCALES, bytes(scales)),
            (_MASKS, masks_enc.finish()),
            (_PAYLOAD, vals_enc.finish()),
            (_VECTORS, _vector_bytes(stream)),
        ],
    )


# ----------------------------------------------------------------------------------------
# unpack / peek


@dataclass
class _Parsed:
    version: int
    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue]
    specs: list[TensorSpec]
    vec_lens: list[int]
    bodies: dict[int, bytes]
    section_bytes: dict[str, int]


def _read_video_and_fields(r: _Reader) -> tuple[VideoInfo, dict, dict]:
    width, height, frames, num, den = (r.varint() for _ in range(5))
    bit_depth, chroma, matrix, full = r.u8(), r.u8(), r.u8(), r.u8()
    if not (1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM):
        raise BitstreamError(f"invalid bitstream: frame size {width}x{height} out of range")
    if not 1 <= frames <= MAX_FRAMES:
        raise BitstreamError(f"invalid bitstream: {frames} frames (at most {MAX_FRAMES})")
    if not (1 <= num < 1 << 32 and 1 <= den < 1 << 32):
        raise BitstreamError(f"invalid bitstream: frame rate {num}/{den}")
    if not 8 <= bit_depth <= 16 or chroma >= len(_CHROMA) or matrix >= len(_MATRIX) or full > 1:
        raise BitstreamError("invalid bitstream: bad bit depth, chroma, matrix or range code")
    info = VideoInfo(
        width,
        height,
        frames,
        Fraction(num, den),
        bit_depth,
        _CHROMA[chroma],
        _MATRIX[matrix],
        bool(full),  # type: ignore[arg-type]
    )
    model = _read_fields(r, "model")
    meta = _read_fields(r, "meta")
    return info, model, meta


def _read_head(body: bytes, max_elements: int) -> tuple[VideoInfo, dict, dict, list, list]:
    r = _Reader(body, "header")
    info, model, meta = _read_video_and_fields(r)
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


def _parse(data: bytes, max_elements: int, check_crc: bool) -> _Parsed:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("bitstream must be bytes")
    data = bytes(data)
    if len(data) < 5 or data[:4] != MAGIC:
        raise BitstreamError("not a hinerv bitstream (bad magic)")
    version = data[4]
    if version > FORMAT_VERSION or version == 0:
        raise BitstreamError(
            f"unsupported bitstream version {version} (this hinerv reads up to {FORMAT_VERSION})"
        )
    r = _Reader(data, "bitstream")
    r.pos = 5
    bodies: dict[int, bytes] = {}
    expected = list(_REQUIRED_BY_VERSION[version])
    sizes = {SECTION_NAMES[k]: 0 for k in expected}
    sizes["ancillary"] = 0
    while True:
        start = r.pos
        kind = r.u8()
        if kind == _END:
            if expected:
                raise BitstreamError(f"truncated bitstream ({SECTION_NAMES[expected[0]]} missing)")
            body_end = r.pos
            crc = struct.unpack("<I", r.take(4))[0]
            if check_crc and crc != zlib.crc32(data[:body_end]):
                raise BitstreamError("corrupt bitstream (overall CRC32 mismatch)")
            r.done()
            break
        length = r.varint()
        if length > r.remaining():
            raise BitstreamError(f"truncated bitstream (section of {length} bytes, {r.remaining()} left)")
        body = r.take(length)
        crc = struct.unpack("<I", r.take(4))[0]
        if check_crc and crc != zlib.crc32(data[start : r.pos - 4]):
            what = SECTION_NAMES.get(kind, f"kind {kind}")
            raise BitstreamError(f"corrupt bitstream (CRC32 mismatch in {what} section)")
        if kind >= 0x80:
            if expected:
                raise BitstreamError("corrupt bitstream (ancillary section before the data)")
            sizes["ancillary"] += r.pos - start
            continue
        if not expected or kind != expected[0]:
            raise BitstreamError(f"corrupt bitstream (unexpected section kind {kind})")
        expected.pop(0)
        bodies[kind] = body
        sizes[SECTION_NAMES[kind]] = r.pos - start
    sizes["framing"] = len(data) - sum(sizes.values())
    read_head = _read_head if version == 1 else _read_head_v2
    info, model, meta, specs, vec_lens = read_head(bodies[_HEAD], max_elements)
    return _Parsed(version, info, model, meta, specs, vec_lens, bodies, sizes)


ShapesFn = Callable[[VideoInfo, dict[str, FieldValue]], Sequence[tuple[int, ...]]]


def peek(data: bytes, *, max_elements: int = 2**28, expected_shapes: ShapesFn | None = None) -> StreamSummary:
    """Read the header and section sizes (CRCs checked) without decoding any tensor.

    Args:
        data: a whole bitstream.
        max_elements: limit on the total number of tensor elements.
        expected_shapes: as in :func:`unpack`: the same header checks a decoder applies.

    Raises:
        BitstreamError: anything malformed.
    """
    p = _parse(data, max_elements, True)
    _check_expected_shapes(p, expected_shapes)
    return StreamSummary(p.version, p.info, p.model, p.meta, p.specs, p.vec_lens, p.section_bytes, len(data))


def unpack(
    data: bytes,
    *,
    max_elements: int = 2**28,
    expected_shapes: ShapesFn | None = None,
    check_crc: bool = True,
) -> Stream:
    """Parse and entropy-decode a bitstream.

    Args:
        data: a whole bitstream as written by :func:`pack`.
        max_elements: limit on the total number of tensor elements (checked before any
            allocation; a one-symbol table codes any number of elements in 0 bytes).
        expected_shapes: optional cheap callback ``(info, model_fields) -> tensor shapes`` (e.g.
            the analytic shapes of the model the config describes). When given, the stored
            shapes must equal it before anything is decoded; a :class:`HinervError` it raises
            (e.g. ``ConfigError`` for a nonsense config) becomes a :class:`BitstreamError`.
        check_crc: verify the CRC32s (only fuzz tests turn this off, to reach the parser).

    Returns:
        The :class:`Stream`; ``q`` int32, masks bool, scales and vectors float16.

    Raises:
        BitstreamError: bad magic, unsupported version, truncation, CRC mismatch, sizes over
            the limits or inconsistent with the bytes present, invalid tables or fields.
    """
    p = _parse(data, max_elements, check_crc)
    specs = p.specs
    _check_expected_shapes(p, expected_shapes)
    if p.version == 2:
        return _unpack_v2(p)

    # sizes that must match the bytes present exactly
    _check_raw_sizes(p)

    ranges: list[tuple[int, int]] = []
    for s in specs:
        if s.has_mask:
            ranges.append((0, 1))
        ranges.append(_value_range(s.bits))
    tables, used = entropy.decode_tables(p.bodies[_TABLES], ranges)
    if used != len(p.bodies[_TABLES]):
        raise BitstreamError("corrupt bitstream (stray bytes after the entropy tables)")
    it = iter(tables)
    mtabs, vtabs = [], []
    for s in specs:
        mtabs.append(next(it) if s.has_mask else None)
        vtabs.append(next(it))

    # masks: bound the work by what the bytes can hold, then decode
    mask_bound = sum(entropy.min_coded_bits(mt, s.size) for s, mt in zip(specs, mtabs, strict=True) if mt)
    _check_bound(mask_bound, p.bodies[_MASKS], "masks")
    mdec = entropy.StreamDecoder(p.bodies[_MASKS])
    masks: list[np.ndarray | None] = []
    counts: list[int] = []
    for s, mt, vt in zip(specs, mtabs, vtabs, strict=True):
        m = None if mt is None else _take(mdec, mt, s.size).astype(bool).reshape(s.shape)
        n = s.size if m is None else int(np.count_nonzero(m))
        if (n == 0) != (vt.n_symbols == 0):
            raise BitstreamError("corrupt bitstream (entropy table does not fit its tensor)")
        masks.append(m)
        counts.append(n)
    _check_canonical(
        p.bodies[_MASKS],
        lambda enc: [enc.add(m, mt) for m, mt in zip(masks, mtabs, strict=True) if mt is not None],
        "masks",
    )
    val_bound = sum(entropy.min_coded_bits(vt, n) for vt, n in zip(vtabs, counts, strict=True))
    _check_bound(val_bound, p.bodies[_PAYLOAD], "payload")

    vdec = entropy.StreamDecoder(p.bodies[_PAYLOAD])
    scales, vectors = _raw_values(p)
    tensors: list[QuantTensor] = []
    kept: list[np.ndarray] = []
    for s, sc, vt, m, n in zip(specs, scales, vtabs, masks, counts, strict=True):
        vals = _take(vdec, vt, n)
        kept.append(vals)
        if m is None:
            q = vals.reshape(s.shape)
        else:
            q = np.zeros(s.shape, dtype=np.int32)
            q[m] = vals
        tensors.append(QuantTensor(s.shape, s.bits, s.scale_axes, sc, q, m))
    _check_canonical(
        p.bodies[_PAYLOAD], lambda enc: [enc.add(v, vt) for v, vt in zip(kept, vtabs, strict=True)], "payload"
    )
    return Stream(p.info, p.model, p.meta, tensors, vectors)


def _check_canonical(body: bytes, replay: Callable[[entropy.StreamEncoder], object], what: str) -> None:
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


def _raw_values(p: _Parsed) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The fp16 scales (one array per tensor, shaped to broadcast) and vectors; all finite."""
    sbuf = np.frombuffer(p.bodies[_SCALES], dtype="<f2").astype(np.float16)
    vbuf = np.frombuffer(p.bodies[_VECTORS], dtype="<f2").astype(np.float16)
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


def _check_raw_sizes(p: _Parsed) -> None:
    """The fp16 SCALES and VECTORS sections must hold exactly what the header announces."""
    n_scales = sum(s.n_scales for s in p.specs)
    if len(p.bodies[_SCALES]) != 2 * n_scales:
        raise BitstreamError(
            f"corrupt bitstream (scales section has {len(p.bodies[_SCALES])} bytes, expected {2 * n_scales})"
        )
    n_vec = sum(p.vec_lens)
    if len(p.bodies[_VECTORS]) != 2 * n_vec:
        raise BitstreamError(
            f"corrupt bitstream (vectors section has {len(p.bodies[_VECTORS])} bytes, expected {2 * n_vec})"
        )


def _check_expected_shapes(p: _Parsed, expected_shapes: ShapesFn | None) -> None:
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


def _check_bound(bits: float, payload: bytes, what: str) -> None:
    # 64 bits of slack for the coder's flush and state, 1 % for probability rounding
    if 0.99 * bits - 64 > 8 * len(payload):
        raise BitstreamError(
            f"corrupt bitstream ({what} section of {len(payload)} bytes cannot hold the "
            f"symbols the header announces)"
        )


def _take(dec: entropy.StreamDecoder, table: entropy.Table, n: int) -> np.ndarray:
    try:
        return dec.take(table, n)
    except BitstreamError:
        raise
    except Exception as e:  # constriction reports exhausted/invalid data as plain errors
        raise BitstreamError(f"corrupt bitstream (entropy decoding failed: {e})") from None


# ----------------------------------------------------------------------------------------
# format version 2: learned steps, parametric and context entropy models (the rd pipeline)

_CODINGS = ("tensor", "channel", "context")
_MAX_CONTEXT_ROWS = 1 << 16  # rows of one context-coded tensor (bounds the decoder's row loop)
_MAX_TOTAL_ROWS = 1 << 18


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


def _coding_options(t: CodedTensor, q: np.ndarray, max_abs: int) -> dict[str, tuple[float, list]]:
    """For each allowed coding: (payload bits + model side bits, models)."""
    opts: dict[str, tuple[float, list]] = {}
    allowed = _CODINGS if t.coding == "auto" else (t.coding,)
    if "tensor" in allowed:
        m, bits = entropy.fit_geom(entropy.abs_histogram(q, max_abs), max_abs)
        opts["tensor"] = (bits + 16, [m])
    if "channel" in allowed and q.ndim >= 1 and q.shape[0] > 1:
        fits = [entropy.fit_geom(entropy.abs_histogram(q[i], max_abs), max_abs) for i in range(q.shape[0])]
        opts["channel"] = (sum(b for _, b in fits) + 16 * len(fits), [m for m, _ in fits])
    if "context" in allowed and t.context is not None:
        ctx = entropy.context_map(q.reshape(t.context[0], t.context[1], -1))
        qv = q.reshape(ctx.shape)
        fits = [
            entropy.fit_geom(entropy.abs_histogram(qv[ctx == k], max_abs), max_abs)
            for k in range(CTX_BUCKETS)
        ]
        opts["context"] = (sum(b for _, b in fits) + 16 * CTX_BUCKETS, [m for m, _ in fits])
    if not opts:
        raise ValueError(f"coding {t.coding!r} is not possible for a tensor of shape {t.shape}")
    return opts


def _spec_v2(t: CodedTensor, i: int) -> TensorSpec:
    where = f"tensor {i}"
    shape = _checked_shape(t.shape, where)
    axes = _checked_arrays(t, shape, where)
    if t.context is not None:
        T, R = t.context
        if T < 1 or R < 1 or math.prod(shape) % (T * R) or T * R > _MAX_CONTEXT_ROWS:
            raise ValueError(f"{where}: context view {t.context} does not divide shape {shape}")
    max_abs = int(np.abs(t.q).max()) if t.q.size else 0
    if max_abs > entropy.GEOM_MAX_ABS:
        raise ValueError(f"{where}: |q| up to {max_abs} exceeds {entropy.GEOM_MAX_ABS}")
    return TensorSpec(shape, 0, axes, False, "tensor", max_abs, t.context)


def _pack_v2(stream: Stream, vec_lens: Sequence[int]) -> bytes:
    tensors = stream.tensors
    if not all(isinstance(t, CodedTensor) for t in tensors):
        raise ValueError("a stream cannot mix format-v1 and format-v2 tensors")
    specs: list[TensorSpec] = []
    models: list[list[entropy.GeomModel]] = []
    for i, t in enumerate(tensors):
        base = _spec_v2(t, i)  # type: ignore[arg-type]
        if base.max_abs == 0 or base.size == 0:
            specs.append(base)
            models.append([])
            continue
        opts = _coding_options(t, t.q, base.max_abs)  # type: ignore[arg-type]
        coding = min(opts, key=lambda k: (opts[k][0], _CODINGS.index(k)))
        specs.append(TensorSpec(base.shape, 0, base.scale_axes, False, coding, base.max_abs, t.context))  # type: ignore[union-attr]
        models.append(opts[coding][1])

    head = _write_video_and_fields(stream)
    head += _varint(len(specs))
    for sp in specs:
        head += bytes([len(sp.shape) | _CODINGS.index(sp.coding) << 3])
        head += bytes([sum(1 << a for a in sp.scale_axes)])
        head += b"".join(_varint(n) for n in sp.shape)
        head += _varint(sp.max_abs)
        if sp.coding == "context":
            assert sp.context is not None
            head += _varint(sp.context[0]) + _varint(sp.context[1])
    head += _varint(len(vec_lens)) + b"".join(_varint(n) for n in vec_lens)

    model_bytes = bytearray()
    enc = entropy.StreamEncoder()
    scales = bytearray()
    for t, ms in zip(tensors, models, strict=True):
        for m in ms:
            model_bytes += bytes([m.r, m.z])
        scales += t.scales.astype("<f2").tobytes()
    _encode_v2(enc, tensors, specs, models)  # type: ignore[arg-type]

    return _seal(
        2,
        [
            (_HEAD, bytes(head)),
            (_MODELS, bytes(model_bytes)),
            (_SCALES, bytes(scales)),
            (_PAYLOAD, enc.finish()),
            (_VECTORS, _vector_bytes(stream)),
        ],
    )


def _read_head_v2(body: bytes, max_elements: int) -> tuple[VideoInfo, dict, dict, list, list]:
    r = _Reader(body, "header")
    info, model, meta = _read_video_and_fields(r)
    n_t = r.varint()
    if n_t > r.remaining() // 3:  # each descriptor takes >= 3 bytes
        raise BitstreamError(f"invalid bitstream: {n_t} tensors in a {len(body)}-byte header")
    specs: list[TensorSpec] = []
    total = rows = 0
    for i in range(n_t):
        desc, axes_bits = r.u8(), r.u8()
        ndim, coding = desc & 7, desc >> 3
        if coding >= len(_CODINGS) or axes_bits >> ndim:
            raise BitstreamError(f"invalid bitstream: bad descriptor for tensor {i}")
        shape = tuple(r.varint() for _ in range(ndim))
        size = math.prod(shape)
        total += size
        if total > max_elements:
            raise BitstreamError(f"bitstream tensors exceed the element limit ({total} > {max_elements})")
        max_abs = r.varint()
        if max_abs > entropy.GEOM_MAX_ABS:
            raise BitstreamError(f"invalid bitstream: tensor {i} range {max_abs} too large")
        ctx = None
        if _CODINGS[coding] == "context":
            T, R = r.varint(), r.varint()
            if T < 1 or R < 1 or T * R > _MAX_CONTEXT_ROWS or size % (T * R):
                raise BitstreamError(f"invalid bitstream: bad context view for tensor {i}")
            rows += T * R
            if rows > _MAX_TOTAL_ROWS:
                raise BitstreamError("invalid bitstream: too many context rows")
            ctx = (T, R)
        elif _CODINGS[coding] == "channel" and ndim == 0:
            raise BitstreamError(f"invalid bitstream: channel coding of a scalar (tensor {i})")
        axes = tuple(a for a in range(ndim) if axes_bits >> a & 1)
        specs.append(TensorSpec(shape, 0, axes, False, _CODINGS[coding], max_abs, ctx))
    n_v = r.varint()
    if n_v > r.remaining():
        raise BitstreamError(f"invalid bitstream: {n_v} vectors in a {len(body)}-byte header")
    vec_lens = [r.varint() for _ in range(n_v)]
    r.done()
    return info, model, meta, specs, vec_lens


def _unpack_v2(p: _Parsed) -> Stream:
    specs = p.specs
    _check_raw_sizes(p)
    n_models = sum(s.n_models for s in specs)
    mb = p.bodies[_MODELS]
    if len(mb) != 2 * n_models:
        raise BitstreamError(
            f"corrupt bitstream (models section has {len(mb)} bytes, expected {2 * n_models})"
        )
    models: list[list[entropy.GeomModel]] = []
    off = 0
    try:
        for s in specs:
            ms = []
            for _ in range(s.n_models):
                ms.append(entropy.GeomModel(s.max_abs, mb[off], mb[off + 1]))
                off += 2
            models.append(ms)
    except ValueError:
        raise BitstreamError("corrupt bitstream (entropy model codes out of range)") from None
    bound = 0.0
    for s, ms in zip(specs, models, strict=True):
        if ms:
            bound += min(entropy.min_coded_bits(m, s.size) for m in ms)
    _check_bound(bound, p.bodies[_PAYLOAD], "payload")
    scales, vectors = _raw_values(p)
    dec = entropy.StreamDecoder(p.bodies[_PAYLOAD])
    tensors: list[Any] = []
    try:
        for s, sc, ms in zip(specs, scales, models, strict=True):
            if not ms:
                q = np.zeros(s.shape, dtype=np.int32)
            elif s.coding == "tensor":
                q = _take(dec, ms[0], s.size).reshape(s.shape)
            elif s.coding == "channel":
                per = s.size // s.shape[0] if s.shape[0] else 0
                q = (
                    np.stack([_take(dec, m, per) for m in ms]).reshape(s.shape)
                    if per
                    else np.zeros(s.shape, dtype=np.int32)
                )
            else:
                assert s.context is not None
                T, R = s.context
                q = entropy.decode_context(dec, (T, R, s.size // (T * R)), ms).reshape(s.shape)
            tensors.append(CodedTensor(s.shape, s.scale_axes, sc, q.astype(np.int32), s.coding, s.context))
    except BitstreamError:
        raise
    except Exception as e:  # constriction reports exhausted/invalid data as plain errors
        raise BitstreamError(f"corrupt bitstream (entropy decoding failed: {e})") from None
    _check_canonical(p.bodies[_PAYLOAD], lambda enc: _encode_v2(enc, tensors, specs, models), "payload")
    return Stream(p.info, p.model, p.meta, tensors, vectors)


def _encode_v2(
    enc: entropy.StreamEncoder,
    tensors: Sequence[CodedTensor],
    specs: Sequence[TensorSpec],
    models: Sequence[Sequence[entropy.GeomModel]],
) -> None:
    """Range-code the integers of every tensor with its models (the PAYLOAD of format 2)."""
    for t, sp, ms in zip(tensors, specs, models, strict=True):
        if not ms:
            continue
        if sp.coding == "tensor":
            enc.add(t.q, ms[0])
        elif sp.coding == "channel":
            for row, m in zip(t.q, ms, strict=True):
                enc.add(row, m)
        else:
            assert sp.context is not None
            entropy.encode_context(enc, t.q.reshape(sp.context[0], sp.context[1], -1), ms)
