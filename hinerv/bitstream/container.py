"""The container: magic, version byte, framed sections with CRC32s, END, and the video header.

Layout (all multi-byte fixed-size numbers little-endian; ``varint`` is unsigned LEB128, at most 10
bytes; the full description is in ``docs/bitstream.md``)::

    "HNRV"  u8 version
    section*:  u8 kind | varint length | body[length] | u32 CRC32(kind, length, body)
        the required sections of the version, in its order (see each version module),
        then >=128: ancillary sections, skipped by readers that do not know them
    u8 0 (END) | u32 CRC32 of every byte before it
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from fractions import Fraction

from hinerv.bitstream.fields import Reader, read_fields, varint_bytes, write_fields
from hinerv.bitstream.stream import Stream
from hinerv.errors import BitstreamError
from hinerv.types import VideoInfo

__all__ = [
    "MAGIC",
    "HEAD", "TABLES", "SCALES", "MASKS", "PAYLOAD", "VECTORS", "MODELS", "END",
    "SECTION_NAMES",
    "MAX_DIM", "MAX_FRAMES",
    "check_info",
    "write_video_and_fields",
    "read_video_and_fields",
    "section",
    "seal",
    "read_sections",
]  # fmt: skip

MAGIC = b"HNRV"

HEAD, TABLES, SCALES, MASKS, PAYLOAD, VECTORS, MODELS, END = 1, 2, 3, 4, 5, 6, 7, 0
SECTION_NAMES = {
    HEAD: "header",
    MODELS: "models",
    TABLES: "tables",
    SCALES: "scales",
    MASKS: "masks",
    PAYLOAD: "payload",
    VECTORS: "vectors",
}

CHROMA = ("420", "444")
MATRIX = ("bt601", "bt709")
MAX_DIM = 1 << 16  # width/height
MAX_FRAMES = 1 << 20


def check_info(info: VideoInfo) -> None:
    fps = Fraction(info.fps)
    if not (1 <= info.width <= MAX_DIM and 1 <= info.height <= MAX_DIM):
        raise ValueError(f"frame size {info.width}x{info.height} outside 1..{MAX_DIM}")
    if not 1 <= info.frames <= MAX_FRAMES:
        raise ValueError(f"frame count {info.frames} outside 1..{MAX_FRAMES}")
    if fps <= 0 or fps.numerator >= 1 << 32 or fps.denominator >= 1 << 32:
        raise ValueError(f"fps {fps} must be positive with 32-bit numerator and denominator")
    if not 8 <= info.bit_depth <= 16:
        raise ValueError(f"bit depth {info.bit_depth} outside 8..16")
    if info.chroma not in CHROMA or info.matrix not in MATRIX:
        raise ValueError(f"unsupported chroma {info.chroma!r} or matrix {info.matrix!r}")


def section(kind: int, body: bytes) -> bytes:
    head = bytes([kind]) + varint_bytes(len(body))
    return head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head)))


def write_video_and_fields(stream: Stream) -> bytearray:
    """The start of every HEAD body (both versions): video header, model fields, meta fields."""
    i = stream.info
    fps = Fraction(i.fps)
    out = bytearray()
    for v in (i.width, i.height, i.frames, fps.numerator, fps.denominator):
        out += varint_bytes(int(v))
    out += bytes([i.bit_depth, CHROMA.index(i.chroma), MATRIX.index(i.matrix), int(bool(i.full_range))])
    out += write_fields(stream.model, "model")
    out += write_fields(stream.meta, "meta")
    return out


def seal(version: int, sections: Sequence[tuple[int, bytes]]) -> bytes:
    """Magic, version byte, the framed sections in order, END and the overall CRC32."""
    out = bytearray(MAGIC + bytes([version]))
    for kind, body in sections:
        out += section(kind, body)
    out += bytes([END])
    out += struct.pack("<I", zlib.crc32(bytes(out)))
    return bytes(out)


def read_video_and_fields(r: Reader) -> tuple[VideoInfo, dict, dict]:
    width, height, frames, num, den = (r.varint() for _ in range(5))
    bit_depth, chroma, matrix, full = r.u8(), r.u8(), r.u8(), r.u8()
    if not (1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM):
        raise BitstreamError(f"invalid bitstream: frame size {width}x{height} out of range")
    if not 1 <= frames <= MAX_FRAMES:
        raise BitstreamError(f"invalid bitstream: {frames} frames (at most {MAX_FRAMES})")
    if not (1 <= num < 1 << 32 and 1 <= den < 1 << 32):
        raise BitstreamError(f"invalid bitstream: frame rate {num}/{den}")
    if not 8 <= bit_depth <= 16 or chroma >= len(CHROMA) or matrix >= len(MATRIX) or full > 1:
        raise BitstreamError("invalid bitstream: bad bit depth, chroma, matrix or range code")
    info = VideoInfo(
        width,
        height,
        frames,
        Fraction(num, den),
        bit_depth,
        CHROMA[chroma],
        MATRIX[matrix],
        bool(full),  # type: ignore[arg-type]
    )
    model = read_fields(r, "model")
    meta = read_fields(r, "meta")
    return info, model, meta


def read_sections(
    data: bytes, versions: Mapping[int, Sequence[int]], check_crc: bool
) -> tuple[int, dict[int, bytes], dict[str, int]]:
    """Split a whole stream into its sections, checking magic, version, order, lengths and CRCs.

    Args:
        data: the stream.
        versions: the readable versions and their required section kinds, in order.
        check_crc: verify the CRC32s (only fuzz tests turn this off).

    Returns:
        ``(version, {kind: body}, bytes per section name)``; ancillary sections are skipped (their
        bytes counted under ``ancillary``), ``framing`` is magic + version + END + overall CRC.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("bitstream must be bytes")
    data = bytes(data)
    if len(data) < 5 or data[:4] != MAGIC:
        raise BitstreamError("not a hinerv bitstream (bad magic)")
    version = data[4]
    if version not in versions:
        raise BitstreamError(
            f"unsupported bitstream version {version} (this hinerv reads up to {max(versions)})"
        )
    r = Reader(data, "bitstream")
    r.pos = 5
    bodies: dict[int, bytes] = {}
    expected = list(versions[version])
    sizes = {SECTION_NAMES[k]: 0 for k in expected}
    sizes["ancillary"] = 0
    while True:
        start = r.pos
        kind = r.u8()
        if kind == END:
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
    return version, bodies, sizes
