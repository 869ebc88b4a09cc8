"""Hostile bitstreams for the fuzz tests and ``tools/fuzz_streams.py``.

Two real streams (format 1 and 2) of a tiny random-initialised network, and the edit family that found
issue #16 item 1: header, model-field and section-body edits written back with *every CRC recomputed*,
so they reach the field checks, the model rebuild and the entropy decoder instead of stopping at a CRC.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from hinerv import bitstream as B
from hinerv.bitstream import fields
from hinerv.codec import _header_checks, decode_frames, load_decoder
from hinerv.config import ModelConfig
from hinerv.errors import HinervError
from hinerv.model import HiNeRV
from hinerv.pipelines.paper import export_stream
from hinerv.pipelines.rd import export_rd_stream, grid_names
from hinerv.rate import RateModel
from hinerv.types import VideoInfo

INFO = VideoInfo(32, 32, 2, Fraction(25), 8, "420", "bt601", False)
CFG = ModelConfig(
    channels=16,
    depths=(1, 1, 1, 1),
    scales=(2, 2, 2, 2),
    exps=(2.0, 2.0, 2.0, 1.0),
    base_grid_channels=2,
    enc_channels=2,
    base_grid_frames=1,
)


def real_streams() -> dict[int, bytes]:
    """{format version: stream} of one tiny network (32x32, 2 frames; v1 with one pruning mask)."""
    torch.manual_seed(0)
    model = HiNeRV(CFG, INFO.frames, 32, 32)
    params = dict(model.named_parameters())
    name = next(n for n in model.quantizable_names() if n.endswith("weight"))
    mask = torch.rand(params[name].shape, generator=torch.Generator().manual_seed(1)) > 0.3
    v1 = B.pack(export_stream(model, {name: mask}, INFO, CFG, 6, "reference", {"encoder": "fuzz"}))
    rate = RateModel(params, grids=grid_names(model))
    v2 = B.pack(export_rd_stream(model, rate, INFO, CFG, {"pipeline": "rd"}))
    return {1: v1, 2: v2}


# ------------------------------------------------------------------------------------ container helpers


def split(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """(version, [(kind, body)]) of a well-formed stream."""
    pos, out = 5, []
    while data[pos] != 0:
        kind = data[pos]
        r = fields.Reader(data, "split")
        r.pos = pos + 1
        length = r.varint()
        out.append((kind, data[r.pos : r.pos + length]))
        pos = r.pos + length + 4
    return data[4], out


def seal(version: int, sections: list[tuple[int, bytes]]) -> bytes:
    """Magic, version, sections and END with every CRC32 recomputed."""
    out = bytearray(B.MAGIC + bytes([version]))
    for kind, body in sections:
        head = bytes([kind]) + fields.varint_bytes(len(body))
        out += head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head)))
    out += b"\x00"
    return bytes(out + struct.pack("<I", zlib.crc32(bytes(out))))


def _head_parts(body: bytes) -> tuple[list[int], dict, dict, bytes]:
    r = fields.Reader(body, "header")
    video = [r.varint() for _ in range(5)] + [r.u8() for _ in range(4)]
    model = fields.read_fields(r, "model")
    meta = fields.read_fields(r, "meta")
    return video, model, meta, body[r.pos :]


def _head_body(video: list[int], model: dict, meta: dict, tail: bytes) -> bytes:
    out = b"".join(fields.varint_bytes(v) for v in video[:5]) + bytes(video[5:9])
    return out + fields.write_fields(model, "model") + fields.write_fields(meta, "meta") + tail


# ------------------------------------------------------------------------------------ the edit family

_INTS = (2**62, 2**31, 2**31 - 1, 2**63 - 1, -(2**62), 2**20, 2**16 + 1, 10**6, 4097, 65, 17, -1, 0, 1, 2, 3)


def _hostile_int(rnd: random.Random, old: Any) -> int:
    r = rnd.random()
    if r < 0.6:
        return rnd.choice(_INTS)
    if r < 0.8 and isinstance(old, int):
        return old + rnd.choice((-1, 1, old, 2 ** rnd.randrange(1, 40)))
    return rnd.randrange(-10, 10_000)


def _hostile_value(rnd: random.Random, old: Any) -> Any:
    r = rnd.random()
    if isinstance(old, tuple) and old and r < 0.6:
        v = list(old)
        op = rnd.randrange(4)
        if op == 0:
            i = rnd.randrange(len(v))
            v[i] = (
                _hostile_int(rnd, v[i])
                if isinstance(v[i], int)
                else rnd.choice((1e300, 1e-300, -2.0, 0.0, 65.0))
            )
        elif op == 1:
            v.append(v[-1])
        elif op == 2:
            v.pop()
        else:
            v = v * rnd.choice((2, 1000))
        return tuple(v)
    if r < 0.85:
        return _hostile_int(rnd, old)
    return rnd.choice(("x", 1e300, -1e300, 0.5, 2.000001, (), (1.5, 2.5), True, (2**62,) * 4))


def _edit_fields(rnd: random.Random, model: dict) -> None:
    op = rnd.random()
    if op < 0.8 and model:
        k = rnd.choice(sorted(model))
        model[k] = _hostile_value(rnd, model[k])
    elif op < 0.9 and model:
        del model[rnd.choice(sorted(model))]
    else:
        model[rnd.choice(("bogus", "levels", "channels2"))] = _hostile_int(rnd, 0)


def _edit_video(rnd: random.Random, video: list[int]) -> None:
    i = rnd.randrange(9)
    if i < 5:
        video[i] = rnd.choice((0, 1, 2, 31, 33, 2**14, 2**16, 2**20, 2**20 + 1, 2**32, 2**63, 2**64 - 1))
    else:
        video[i] = rnd.randrange(256)


def _edit_body(rnd: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    op = rnd.randrange(4)
    if op == 0 and b:  # truncate (often by whole 32-bit words, as a lost tail would be)
        return bytes(b[: len(b) - rnd.choice((4, 8, 1, rnd.randrange(1, len(b) + 1)))])
    if op == 1:  # trailing bytes
        return bytes(b + bytes(rnd.randrange(256) for _ in range(rnd.choice((4, 8, 1, 3)))))
    if op == 2 and b:  # random bytes over a span
        j = rnd.randrange(len(b))
        for k in range(j, min(len(b), j + rnd.randint(1, 8))):
            b[k] = rnd.randrange(256)
        return bytes(b)
    j = rnd.randrange(len(b) + 1)  # insertion
    return bytes(b[:j] + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4))) + b[j:])


def crc_cases(data: bytes, n: int, seed: int) -> list[bytes]:
    """``n`` edits of ``data``, 1..3 each, with all CRCs recomputed.

    Edits: a model field set to a hostile integer (2^62, 2^31, -1, ...), a tuple entry, length or type
    changed, a field deleted or added; a video header number or code byte; a byte span of the tensor
    descriptors; a section body truncated, extended, overwritten or grown (payload, masks, tables,
    models, scales, vectors).
    """
    version, secs = split(data)
    out = []
    rnd = random.Random(seed)
    for _ in range(n):
        video, model, meta, tail = _head_parts(secs[0][1])
        video, model, meta = list(video), dict(model), dict(meta)
        bodies = [list(s) for s in secs]
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            r = rnd.random()
            if r < 0.45:
                _edit_fields(rnd, model)
            elif r < 0.55:
                _edit_fields(rnd, meta)
            elif r < 0.7:
                _edit_video(rnd, video)
            elif r < 0.8:
                tail = _edit_body(rnd, tail)
            else:
                i = rnd.randrange(1, len(bodies))
                bodies[i][1] = _edit_body(rnd, bodies[i][1])
        bodies[0][1] = _head_body(video, model, meta, tail)
        out.append(seal(version, [(k, b) for k, b in bodies]))
    return out


def raw_cases(data: bytes, n: int, seed: int) -> list[bytes]:
    """The raw family (CRCs left as they are): truncation, bit flips, random spans, insertions."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        b = bytearray(data)
        kind = i % 4
        if kind == 0:
            b = b[: rnd.randrange(len(b))]
        elif kind == 1:
            for _ in range(rnd.randint(1, 4)):
                j = rnd.randrange(len(b))
                b[j] ^= 1 << rnd.randrange(8)
        elif kind == 2:
            j = rnd.randrange(len(b))
            for k in range(j, min(len(b), j + rnd.randint(1, 8))):
                b[k] = rnd.randrange(256)
        else:
            j = rnd.randrange(len(b))
            b[j:j] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        out.append(bytes(b))
    return out


# ------------------------------------------------------------------------------------ running a case


def run_case(data: bytes) -> tuple[str, str]:
    """Run ``hinerv info`` and ``hinerv decode`` (to the first frame) on a stream, in process.

    Returns:
        (outcome, detail): ``"refused"`` (a one-line HinervError from both), ``"decoded"`` (info
        accepted, the first frame came out finite), ``"info-only"`` (info accepted, decode refused while
        entropy decoding: the only difference allowed), or ``"other"`` with the exception type.
    """
    try:
        B.peek(data, expected_shapes=_header_checks(data))
        info_ok = True
    except HinervError as e:
        if "\n" in str(e):
            return "other", f"multi-line {type(e).__name__}"
        info_ok = False
    except Exception as e:  # noqa: BLE001 - reported, never swallowed silently
        return "other", f"info: {type(e).__name__}: {e}"[:200]
    try:
        model, info, _ = load_decoder(data)
        frame = next(decode_frames(model, info, range(1)))
    except HinervError as e:
        if "\n" in str(e):
            return "other", f"multi-line {type(e).__name__}"
        return ("info-only" if info_ok else "refused"), type(e).__name__
    except Exception as e:  # noqa: BLE001
        return "other", f"decode: {type(e).__name__}: {e}"[:200]
    if not info_ok:
        return "other", "info refused a stream that decodes"
    if frame.shape != (3, info.height, info.width) or not np.all(np.isfinite(frame)):
        return "other", "bad first frame"
    return "decoded", ""


Family = Callable[[bytes, int, int], list[bytes]]
FAMILIES: dict[str, Family] = {"crc": crc_cases, "raw": raw_cases}
