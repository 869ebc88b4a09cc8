"""Format version 2 (rd pipeline): round trip, coding choice, and hostile input."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from hinerv import bitstream as B
from hinerv.bitstream import container, registry
from hinerv.errors import BitstreamError
from hinerv.types import VideoInfo

INFO = VideoInfo(64, 48, 4, Fraction(25), 8, "420", "bt601", False)


def _stream() -> B.Stream:
    rng = np.random.default_rng(0)
    grid = np.cumsum(np.round(rng.laplace(0, 2, size=(4, 6, 10))), axis=0).astype(np.int32).reshape(24, 10)
    w = np.round(rng.laplace(0, 3, size=(6, 5))).astype(np.int32)
    w[rng.random(w.shape) < 0.4] = 0
    w[0] *= 8  # a channel of its own scale
    b = np.zeros(6, dtype=np.int32)
    return B.Stream(
        info=INFO,
        model={"channels": 8, "depths": (1, 2)},
        meta={"pipeline": "rd", "lambda": 0.5},
        tensors=[
            B.CodedTensor((24, 10), (), np.array([[0.001]], dtype=np.float16), grid, "auto", (4, 6)),
            B.CodedTensor((6, 5), (0,), np.linspace(0.01, 0.02, 6).astype(np.float16).reshape(6, 1), w),
            B.CodedTensor((6,), (), np.array([0.5], dtype=np.float16), b),
        ],
    )


def test_round_trip_is_exact() -> None:
    s = _stream()
    data = B.pack(s)
    assert data[4] == 2
    out = B.unpack(data)
    for a, b in zip(s.tensors, out.tensors, strict=True):
        assert np.array_equal(a.q, b.q) and np.array_equal(a.scales, b.scales) and a.shape == b.shape
        assert np.array_equal(a.dequantize(), b.dequantize())
    assert out.meta == s.meta and out.model == s.model
    assert B.pack(s) == data  # deterministic


def test_peek_reports_pipeline_codings_and_sections() -> None:
    data = B.pack(_stream())
    p = B.peek(data)
    assert p.version == 2
    d = p.to_dict()
    assert d["pipeline"] == "rd"
    assert set(d["section_bytes"]) >= {"header", "models", "scales", "payload", "vectors"}
    assert "masks" not in d["section_bytes"]
    assert sum(d["section_bytes"].values()) == len(data)
    assert [t.coding for t in p.tensors][2] == "tensor"  # all-zero bias: nothing coded
    assert p.tensors[2].max_abs == 0


def test_forced_codings_all_round_trip() -> None:
    s = _stream()
    for coding in ("tensor", "channel", "context"):
        t0 = s.tensors[0]
        forced = B.CodedTensor(t0.shape, t0.scale_axes, t0.scales, t0.q, coding, t0.context)
        s2 = B.Stream(s.info, s.model, s.meta, [forced, *s.tensors[1:]])
        out = B.unpack(B.pack(s2))
        assert np.array_equal(out.tensors[0].q, t0.q)
        assert B.peek(B.pack(s2)).tensors[0].coding == coding


def test_v1_streams_still_read_and_mixing_is_refused() -> None:
    q = np.zeros((2, 3), dtype=np.int32)
    v1 = B.Stream(INFO, {}, {}, [B.QuantTensor((2, 3), 6, (), np.ones((1, 1), np.float16), q)])
    data = B.pack(v1)
    assert data[4] == 1 and B.peek(data).to_dict()["pipeline"] == "paper"
    assert np.array_equal(B.unpack(data).tensors[0].q, q)
    mixed = B.Stream(INFO, {}, {}, [*_stream().tensors, *v1.tensors])
    with pytest.raises(ValueError):
        B.pack(mixed)


def _fuzz_cases(data: bytes, n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        b = bytearray(data)
        kind = i % 4
        if kind == 0:  # truncation
            b = b[: rnd.randrange(len(b))]
        elif kind == 1:  # bit flips
            for _ in range(rnd.randint(1, 4)):
                j = rnd.randrange(len(b))
                b[j] ^= 1 << rnd.randrange(8)
        elif kind == 2:  # random bytes over a span
            j = rnd.randrange(len(b))
            for k in range(j, min(len(b), j + rnd.randint(1, 8))):
                b[k] = rnd.randrange(256)
        else:  # insertion
            j = rnd.randrange(len(b))
            b[j:j] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        out.append(bytes(b))
    return out


def _check_hostile(cases: list[bytes]) -> None:
    for c in cases:
        for crc in (True, False):
            try:
                B.unpack(c, check_crc=crc, max_elements=1 << 20)
            except BitstreamError:
                pass


def test_hostile_v2_streams_raise_only_bitstream_errors() -> None:
    _check_hostile(_fuzz_cases(B.pack(_stream()), 300, 0))


@pytest.mark.slow
def test_hostile_v2_streams_many() -> None:
    _check_hostile(_fuzz_cases(B.pack(_stream()), 2500, 1))


def test_lying_context_view_and_models_are_refused() -> None:
    data = B.pack(_stream())
    p = registry.parse(data, 1 << 20, True)
    # models section of the wrong size
    body = p.bodies[container.MODELS] + b"\x00\x00"
    with pytest.raises(BitstreamError):
        B.unpack(_reseal(data, container.MODELS, body))


def _reseal(data: bytes, kind: int, body: bytes) -> bytes:
    p = registry.parse(data, 1 << 20, True)
    out = bytearray(B.MAGIC + bytes([p.version]))
    for k in B.FORMATS[p.version].sections:
        out += container.section(k, body if k == kind else p.bodies[k])
    out += bytes([container.END])
    import struct
    import zlib

    out += struct.pack("<I", zlib.crc32(bytes(out)))
    return bytes(out)
