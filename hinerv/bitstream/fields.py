"""Byte-level primitives of the container: varints, a bounds-checked reader, typed key/value fields.

Used by both format versions for the HEAD's model and meta fields (``docs/bitstream.md``, "HEAD").
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from hinerv.config import FieldValue
from hinerv.errors import BitstreamError

__all__ = ["Reader", "varint_bytes", "zigzag", "write_fields", "read_fields"]

_MAX_FIELDS = 1024
_MAX_TUPLE = 4096
_MAX_STR = 1 << 16
_MAX_KEY = 64
_MAX_INT = 1 << 63  # field ints must fit int64

# Key dictionary (format v1, also used by v2): a field name found here is stored as one byte 0x80 + index.
# Append-only within a format version (never reorder): old streams must keep their meaning.
_KEYS = (
    "channels", "depths", "scales", "base_grid_channels", "enc_channels", "base_grid_frames",
    "exps", "kernels", "stem_kernel", "channels_reduce", "base_grid_levels", "enc_levels",
    "enc_depth_scale", "upsample_norm", "encoder", "preset", "bits", "seed",
)  # fmt: skip
_KEY_INDEX = {k: i for i, k in enumerate(_KEYS)}

# field type tags
_T_INT, _T_F32, _T_F64, _T_STR, _T_INTS, _T_F32S, _T_F64S, _T_BOOL = range(8)


def varint_bytes(v: int) -> bytes:
    """Unsigned LEB128 of ``v >= 0`` (7 bits per byte, low group first)."""
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


def zigzag(v: int) -> int:
    """Zig-zag map of a signed int to an unsigned one (``v >= 0 -> 2v``, ``v < 0 -> -2v-1``)."""
    return 2 * v if v >= 0 else -2 * v - 1


class Reader:
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


def write_fields(fields: dict[str, FieldValue], what: str) -> bytes:
    """``varint count`` then key and typed value per field; ValueError for what cannot be stored."""
    if len(fields) > _MAX_FIELDS:
        raise ValueError(f"too many {what} fields ({len(fields)} > {_MAX_FIELDS})")
    out = bytearray(varint_bytes(len(fields)))
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
        return bytes([_T_INT]) + varint_bytes(zigzag(v))
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
        return bytes([_T_STR]) + varint_bytes(len(b)) + b
    if isinstance(v, (tuple, list)):
        if len(v) > _MAX_TUPLE:
            raise ValueError(f"{what} has more than {_MAX_TUPLE} entries")
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            if any(not -_MAX_INT <= int(x) < _MAX_INT for x in v):
                raise ValueError(f"{what} does not fit in int64")
            return bytes([_T_INTS]) + varint_bytes(len(v)) + b"".join(varint_bytes(zigzag(int(x))) for x in v)
        if all(isinstance(x, (int, float, np.integer, np.floating)) for x in v) and not any(
            isinstance(x, bool) for x in v
        ):
            fs = [float(x) for x in v]
            if not all(math.isfinite(x) for x in fs):
                raise ValueError(f"{what} must be finite")
            if all(_is_f32(x) for x in fs):
                return bytes([_T_F32S]) + varint_bytes(len(fs)) + struct.pack(f"<{len(fs)}f", *fs)
            return bytes([_T_F64S]) + varint_bytes(len(fs)) + struct.pack(f"<{len(fs)}d", *fs)
    raise ValueError(f"{what} has unsupported type {type(v).__name__}")


def read_fields(r: Reader, what: str) -> dict[str, FieldValue]:
    """Inverse of :func:`write_fields`; BitstreamError for anything malformed."""
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


def _read_value(r: Reader, what: str) -> FieldValue:
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
