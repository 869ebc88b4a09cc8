"""Tests for hinerv.bitstream: round trips, determinism, size targets and hostile inputs."""

from __future__ import annotations

import math
import struct
import time
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hinerv import bitstream as B
from hinerv import entropy
from hinerv.bitstream import fields, v1
from hinerv.config import ModelConfig
from hinerv.errors import BitstreamError, ConfigError
from hinerv.types import VideoInfo

INFO = VideoInfo(64, 48, 5)


def _axis_rule(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Reference §7.2: reduce over the longest axis longer than 20, a scale per other index."""
    cand = [a for a, n in enumerate(shape) if n > 20]
    if not cand:
        return ()
    red = max(cand, key=lambda a: (shape[a], -a))
    return tuple(a for a in range(len(shape)) if a != red)


def _tensor(shape, bits, rng, prune=0.0, axes=None) -> B.QuantTensor:
    """Gaussian weights, symmetric b-bit quantizer with fp16 scales, magnitude pruning."""
    shape = tuple(shape)
    axes = _axis_rule(shape) if axes is None else axes
    w = rng.standard_normal(shape).astype(np.float32)
    red = tuple(a for a in range(len(shape)) if a not in axes)
    sshape = tuple(n if a in axes else 1 for a, n in enumerate(shape))
    if w.size == 0:
        mx = np.ones(sshape, np.float32)
    else:
        mx = np.abs(w).max(axis=red, keepdims=True) if red else np.abs(w)
    scales = (2 * mx / (2**bits - 1) + 1e-3).astype(np.float16).reshape(sshape)
    lim = 1 << (bits - 1)
    q = np.clip(np.rint(w / scales.astype(np.float32)), -lim, lim - 1).astype(np.int32)
    mask = None
    if prune > 0:
        mask = np.abs(w) > np.quantile(np.abs(w), prune) if w.size else np.ones(shape, bool)
        q[~mask] = 0
    return B.QuantTensor(shape, bits, axes, scales, q, mask)


def _stream(tensors, vectors=(), info=INFO, model=None, meta=None) -> B.Stream:
    model = {"channels": 8, "depths": (1, 2)} if model is None else model
    return B.Stream(info, model, dict(meta or {}), list(tensors), list(vectors))


def _assert_same(a: B.Stream, b: B.Stream) -> None:
    assert a.info == b.info and a.model == b.model and a.meta == b.meta
    assert len(a.tensors) == len(b.tensors) and len(a.vectors) == len(b.vectors)
    for x, y in zip(a.tensors, b.tensors, strict=True):
        assert (x.shape, x.bits, x.scale_axes) == (y.shape, y.bits, y.scale_axes)
        assert y.q.dtype == np.int32 and np.array_equal(x.q, y.q)
        assert y.scales.dtype == np.float16 and np.array_equal(x.scales, y.scales)
        assert (x.mask is None) == (y.mask is None)
        if x.mask is not None:
            assert y.mask.dtype == np.bool_ and np.array_equal(x.mask, y.mask)
    for x, y in zip(a.vectors, b.vectors, strict=True):
        assert y.dtype == np.float16 and np.array_equal(x, y)


def _small(rng=None) -> B.Stream:
    rng = rng or np.random.default_rng(0)
    ts = [
        _tensor((24, 4, 3, 3), 6, rng, prune=0.18),
        _tensor((96, 24), 7, rng, prune=0.18),
        _tensor((300, 2), 8, rng),
        _tensor((0, 5), 6, rng),
        B.QuantTensor((4, 4), 6, (), np.ones((1, 1), np.float16), np.full((4, 4), 3, np.int32)),
    ]
    vecs = [np.arange(24, dtype=np.float16) / 7, np.zeros(0, np.float16)]
    return _stream(ts, vecs, meta={"encoder": "hinerv test", "psnr": 31.25})


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("bits", [2, 6, 7, 8, 12])
@pytest.mark.parametrize("prune", [0.0, 0.18])
def test_round_trip_bits_and_masks(bits: int, prune: float) -> None:
    rng = np.random.default_rng(bits)
    ts = [_tensor(s, bits, rng, prune) for s in [(40, 30), (7, 1, 3, 3), (5,), (1, 2, 3, 4, 5)]]
    s = _stream(ts)
    _assert_same(s, B.unpack(B.pack(s)))


def test_round_trip_edge_tensors() -> None:
    rng = np.random.default_rng(3)
    z = np.zeros((6, 6), np.int32)
    ts = [
        _tensor((0,), 6, rng),
        _tensor((3, 0, 2), 6, rng, axes=(0,)),
        B.QuantTensor((), 8, (), np.ones((), np.float16), np.array(-128, np.int32)),
        B.QuantTensor((6, 6), 6, (), np.ones((1, 1), np.float16), z, np.zeros((6, 6), bool)),
        B.QuantTensor((6, 6), 6, (1,), np.ones((1, 6), np.float16), z + 5, np.ones((6, 6), bool)),
    ]
    s = _stream(ts)
    data = B.pack(s)
    _assert_same(s, B.unpack(data))
    assert B.peek(data).section_bytes["payload"] == 6  # every array is free: an empty stream
    t = B.unpack(data).tensors[4]
    assert np.array_equal(t.dequantize(), np.full((6, 6), 5.0, np.float32))


def test_header_fields_round_trip() -> None:
    info = VideoInfo(1920, 1080, 600, Fraction(30000, 1001), 10, "444", "bt709", True)
    cfg = ModelConfig(channels=280, depths=(3, 3, 3, 1), scales=(5, 3, 2, 2),
                      base_grid_channels=2, enc_channels=4, base_grid_frames=150)  # fmt: skip
    meta = {"encoder": "hinerv 0.1 é", "neg": -(2**62), "f64": 0.1, "f32": 0.5, "flag": True,
            "empty": (), "fl": (0.1, 2.0), "big_key_" * 8: 1}  # fmt: skip
    s = _stream([], info=info, model=cfg.to_fields(), meta=meta)
    u = B.unpack(B.pack(s))
    assert u.info == info and u.meta == meta and u.model == cfg.to_fields()
    assert ModelConfig.from_fields(u.model) == cfg
    summary = B.peek(B.pack(s)).to_dict()
    assert summary["video"]["fps"] == "30000/1001" and summary["model"]["depths"] == [3, 3, 3, 1]


def test_deterministic() -> None:
    a, b = B.pack(_small()), B.pack(_small())
    assert a == b
    assert B.pack(B.unpack(a)) == a


def test_peek_reports_sections() -> None:
    s = _small()
    data = B.pack(s)
    p = B.peek(data)
    assert sum(p.section_bytes.values()) == p.total_bytes == len(data)
    assert [t.shape for t in p.tensors] == [t.shape for t in s.tensors]
    assert p.vector_lengths == [24, 0]
    assert p.section_bytes["scales"] == 2 * sum(t.scales.size for t in s.tensors) + 7


def test_pack_validates() -> None:
    rng = np.random.default_rng(0)
    good = _tensor((8, 30), 6, rng, prune=0.2)
    bad = [
        B.QuantTensor(good.shape, 6, good.scale_axes, good.scales, good.q + 40, None),
        B.QuantTensor(good.shape, 6, good.scale_axes, good.scales, good.q + 1, good.mask),
        B.QuantTensor(good.shape, 6, good.scale_axes, good.scales, good.q.astype(np.int64)),
        B.QuantTensor(good.shape, 6, (1,), good.scales, good.q),
        B.QuantTensor(good.shape, 6, good.scale_axes, good.scales * np.float16(np.inf), good.q),
        B.QuantTensor(good.shape, 1, good.scale_axes, good.scales, good.q),
    ]
    for t in bad:
        with pytest.raises(ValueError):
            B.pack(_stream([t]))
    for info in [VideoInfo(0, 48, 5), VideoInfo(64, 48, 10**9), VideoInfo(64, 48, 5, bit_depth=7)]:
        with pytest.raises(ValueError):
            B.pack(_stream([], info=info))
    for model in [{"x": float("nan")}, {"": 1}, {"x": [1, "a"]}, {"x": 2**70}]:
        with pytest.raises(ValueError):
            B.pack(_stream([], model=model))


# ---------------------------------------------------------------------------- size targets


def uvg_hinerv_s_shapes(frames: int = 600) -> list[tuple[tuple[int, ...], bool]]:
    """(shape, prunable) of every quantized tensor of uvg-hinerv-s (reference §3-4)."""
    c, depths, scales, exps = 280, (3, 3, 3, 1), (5, 3, 2, 2), (4, 4, 4, 1)
    tg, cg, ce, hw = 150, 2, 4, 18 * 32
    out = [((tg * hw, cg), False), ((tg // 2 * hw, 2 * cg), False), ((c, 3 * cg, 3, 3), True)]
    c1 = c
    for i, (d, s, e) in enumerate(zip(depths, scales, exps, strict=True)):
        c2 = c if i == 0 else c1 // 2
        cei = max(int(ce * 0.5**i), 1)
        out += [((max(1, frames >> j), s * s * cei * 2**j), False) for j in range(3)]
        out.append(((c1, 7 * cei), False))
        for k in range(d):
            cin, h = (c1 if k == 0 else c2), int(c2 * e)
            out += [((cin, 1, 3, 3), True), ((h, cin), True), ((c2, h), True)]
        c1 = c2
    return out + [((3, c1), True)]


def _size_report(shapes, bits: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    ts = [_tensor(s, bits, rng, prune=0.18 if p else 0.0) for s, p in shapes]
    cfg = ModelConfig(channels=280, depths=(3, 3, 3, 1), scales=(5, 3, 2, 2),
                      base_grid_channels=2, enc_channels=4, base_grid_frames=150)  # fmt: skip
    vecs = [np.zeros(n, np.float16) for n in (280, 280, 280, 140, 70, 3)]
    s = _stream(ts, vecs, VideoInfo(1920, 1080, 600), cfg.to_fields(), {"encoder": "hinerv"})
    data = B.pack(s)
    sb = B.peek(data).section_bytes
    kept = [t.q[t.mask] if t.mask is not None else t.q for t in ts]
    return {
        "total": len(data),
        "params": sum(t.q.size for t in ts),
        "entropy": sum(entropy.entropy_bits(k) for k in kept) / 8,
        "mask_entropy": sum(entropy.entropy_bits(t.mask) for t in ts if t.mask is not None) / 8,
        "fixed": sb["header"] + sb["tables"] + sb["framing"],
        **sb,
    }


def test_uvg_s_overhead_and_entropy_targets() -> None:
    shapes = uvg_hinerv_s_shapes()
    r = _size_report(shapes, bits=6)
    assert r["params"] == sum(math.prod(s) for s, _ in shapes) == 3_187_880  # §4 total - biases
    assert r["fixed"] <= 2048  # header + config + tables, scales excluded
    assert r["payload"] <= 1.01 * r["entropy"] + 16
    assert r["masks"] <= 1.01 * r["mask_entropy"] + 16
    side = r["fixed"] + r["scales"] + r["vectors"]
    assert r["total"] <= 1.001 * (r["entropy"] + r["mask_entropy"]) + side


def test_small_set_overhead() -> None:
    rng = np.random.default_rng(5)
    shapes = [((70, 1, 3, 3), True), ((140, 70), True), ((70, 140), True), ((600, 36), False)]
    ts = [_tensor(s, 6, rng, 0.18 if p else 0.0) for s, p in shapes]
    sb = B.peek(B.pack(_stream(ts))).section_bytes
    ent = sum(entropy.entropy_bits(t.q[t.mask] if t.mask is not None else t.q) for t in ts) / 8
    assert sb["payload"] <= 1.01 * ent + 8
    assert sb["header"] + sb["tables"] + sb["framing"] <= 200


# ---------------------------------------------------------------------------- hostile input


def _sections(data: bytes) -> list[tuple[int, bytes]]:
    """Split a stream into (kind, body) using the documented layout."""
    pos, out = 5, []
    while data[pos] != 0:
        kind, pos = data[pos], pos + 1
        length, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((kind, data[pos : pos + length]))
        pos += length + 4
    return out


def _seal(sections: list[tuple[int, bytes]], version: int = 1) -> bytes:
    """Assemble sections with valid CRCs (what a lying but well-formed encoder would write)."""
    out = bytearray(B.MAGIC + bytes([version]))
    for kind, body in sections:
        head = bytes([kind]) + fields.varint_bytes(len(body))
        out += head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head)))
    out += b"\x00"
    return bytes(out + struct.pack("<I", zlib.crc32(bytes(out))))


def _with_head(data: bytes, specs, vec_lens=(), info=INFO, model=None) -> bytes:
    secs = _sections(data)
    s = _stream([], info=info, model=model)
    secs[0] = (1, v1.head_body(s, specs, list(vec_lens)))
    return _seal(secs)


def _raises(data: bytes, match: str | None = None, **kw) -> None:
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match=match) as e:
        B.unpack(data, **kw)
    assert time.perf_counter() - t0 < 2.0
    assert "\n" not in str(e.value)


def test_seal_helper_matches_pack() -> None:
    data = B.pack(_small())
    assert _seal(_sections(data)) == data


def test_magic_version_truncation_crc() -> None:
    data = B.pack(_small())
    _raises(b"", "not a hinerv bitstream")
    _raises(b"RIFF" + data[4:], "not a hinerv bitstream")
    _raises(data[:4] + b"\x07" + data[5:], r"unsupported bitstream version 7 \(this hinerv reads up to 2\)")
    _raises(data[:4] + b"\x00" + data[5:], "unsupported bitstream version 0")
    for cut in range(len(data)):
        _raises(data[:cut])
    _raises(data + b"\x00", "stray")
    for i in range(5, len(data), 7):
        for bit in (0, 5):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            _raises(bytes(flipped))
    with pytest.raises(BitstreamError, match="CRC"):
        B.peek(data[:-1] + bytes([data[-1] ^ 1]))


def test_lying_headers() -> None:
    data = B.pack(_small())
    spec = B.TensorSpec((10, 10), 6, (0,), False)
    _raises(_with_head(data, [spec], info=VideoInfo(64, 48, 10**9)), "frames")
    _raises(_with_head(data, [spec], info=VideoInfo(10**6, 48, 5)), "frame size")
    huge = B.TensorSpec((10**6, 10**6), 6, (), False)
    _raises(_with_head(data, [huge]), "element limit")
    _raises(_with_head(data, [B.TensorSpec((2**14, 2**14 + 1), 6, (), False)]), "element limit")
    # scale / vector counts that do not match the bytes present
    _raises(_with_head(data, [B.TensorSpec((1000, 1000), 6, (0,), False)]), "scales section")
    _raises(_with_head(data, [], vec_lens=[10**9]), "scales section|vectors section")
    # section length past the end
    secs = _sections(data)
    sealed = _seal(secs)
    idx = 5 + 1  # length varint of HEAD
    _raises(sealed[:idx] + b"\xff\xff\xff\x7f" + sealed[idx + 1 :], "truncated")
    # over-long varint (no negative sizes exist: all counts are unsigned varints)
    _raises(_seal([(1, b"\xff" * 11)] + secs[1:]), "varint")
    # unknown required section, ancillary section skipped, missing section
    _raises(_seal(secs[:3] + [(9, b"")] + secs[3:]), "unexpected section")
    _raises(_seal(secs[:-1]), "missing")
    ok = B.unpack(_seal(secs + [(0x90, b"future extension")]))
    _assert_same(_small(), ok)
    assert B.peek(_seal(secs + [(0x90, b"x")])).section_bytes["ancillary"] == 7


def test_payload_too_short_for_announced_symbols() -> None:
    # a 2-symbol tensor that claims 2**26 elements but ships 8 payload bytes
    rng = np.random.default_rng(0)
    q = (rng.random((2**13,)) > 0.5).astype(np.int32)
    t = B.QuantTensor(q.shape, 6, (), np.ones((1,), np.float16), q)
    secs = _sections(B.pack(_stream([t])))
    secs[0] = (1, v1.head_body(_stream([]), [B.TensorSpec((2**26,), 6, (), False)], []))
    t0 = time.perf_counter()
    _raises(_seal(secs), "cannot hold")
    assert time.perf_counter() - t0 < 0.5
    # a one-symbol table codes any number of elements in 0 bytes: max_elements bounds it
    one = B.QuantTensor((4,), 6, (), np.ones((1,), np.float16), np.zeros(4, np.int32))
    secs = _sections(B.pack(_stream([one])))
    secs[0] = (1, v1.head_body(_stream([]), [B.TensorSpec((2**30,), 6, (), False)], []))
    _raises(_seal(secs), "element limit")
    secs[0] = (1, v1.head_body(_stream([]), [B.TensorSpec((2**20,), 6, (), False)], []))
    _raises(_seal(secs), "element limit", max_elements=2**19)
    assert B.unpack(_seal(secs)).tensors[0].q.shape == (2**20,)


def test_expected_shapes_callback() -> None:
    s = _small()
    data = B.pack(s)

    def shapes(info: VideoInfo, fields: dict) -> list[tuple[int, ...]]:
        if fields["channels"] > 4096:
            raise ConfigError(f"{fields['channels']} channels is not a model")
        return [t.shape for t in s.tensors]

    B.unpack(data, expected_shapes=shapes)
    liar = _seal([(1, v1.head_body(_stream([], model={"channels": 10**6, "depths": (1, 2)}),
                  [B.TensorSpec(t.shape, t.bits, t.scale_axes, t.mask is not None)
                   for t in s.tensors], [24, 0]))] + _sections(data)[1:])  # fmt: skip
    B.unpack(liar)  # the container alone cannot know; the callback can
    _raises(liar, "model config is invalid", expected_shapes=shapes)
    _raises(data, "do not match", expected_shapes=lambda i, f: [(1, 2)])


_VALID = B.pack(_small())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255), st.sampled_from("xid")),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(0, len(_VALID)),
    check_crc=st.booleans(),
)
def test_fuzz_never_crashes(edits, cut, check_crc) -> None:
    data = bytearray(_VALID[:cut] if cut > 5 else _VALID)
    for pos, val, op in edits:
        pos = min(pos, len(data) - 1)
        if op == "x":
            data[pos] ^= val or 1
        elif op == "i":
            data.insert(pos, val)
        elif len(data) > 1:
            del data[pos]
    t0 = time.perf_counter()
    try:
        B.unpack(bytes(data), max_elements=2**20, check_crc=check_crc)
    except BitstreamError as e:
        assert "\n" not in str(e)
    assert time.perf_counter() - t0 < 2.0


_KINDS = {**{k: B.SECTION_NAMES[k] for k in B.FORMATS[1].sections}, 0x90: "ancillary"}


def _mutate(body: bytes, rng: np.random.Generator) -> bytes:
    """1..4 random edits of a section body: flip, set, insert, delete, truncate, extend."""
    data = bytearray(body)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        pos = int(rng.integers(0, len(data) + 1))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and data:
            data[min(pos, len(data) - 1)] = int(rng.integers(0, 256))
        elif op == 2:
            data[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif op == 3 and data:
            del data[pos : pos + int(rng.integers(1, 9))]
        elif op == 4:
            del data[pos:]
        else:
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 33)), dtype=np.uint8))
    return bytes(data)


@pytest.mark.slow
def test_fuzz_every_section_kind_2000_cases() -> None:
    """Hostile streams, section by section: each case edits the body of one section kind (header,
    tables, scales, masks, payload, vectors, an ancillary section) and re-seals it with valid
    CRCs, so the parser gets past the checksums into that section's own validation; a sixth of
    the cases instead edit the raw bytes (framing, END, CRCs). Every case must decode or raise a
    one-line BitstreamError, fast, and never anything else."""
    rng = np.random.default_rng(2024)
    base = _sections(B.pack(_small())) + [(0x90, b"future extension")]
    sealed = _seal(base)
    counts = {k: 0 for k in _KINDS} | {"raw": 0}
    outcomes = {"ok": 0, "error": 0}
    for case in range(5600):  # 700 per section kind and 700 raw
        which = case % (len(base) + 1)
        if which == len(base):
            data = _mutate(sealed, rng)
            counts["raw"] += 1
        else:
            kind, body = base[which]
            secs = list(base)
            secs[which] = (kind, _mutate(body, rng))
            data = _seal(secs)
            counts[kind] += 1
        t0 = time.perf_counter()
        try:
            B.unpack(data, max_elements=2**20)
            B.peek(data)
            outcomes["ok"] += 1
        except BitstreamError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
        assert time.perf_counter() - t0 < 2.0, f"case {case} took too long"
    assert sum(counts.values()) >= 2000
    assert all(n >= 700 for n in counts.values()), counts  # every section kind is covered
    assert outcomes["error"] > 1000  # most edits are caught, not silently decoded
