"""Hostile streams with valid CRCs (issue #16 item 1): absurd header and model fields, truncated or
extended range-coded bodies. Both ``decode`` and ``info`` must refuse them quickly with one line."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile_streams import _head_body, _head_parts, crc_cases, raw_cases, real_streams, run_case, seal, split

from hinerv import bitstream as B
from hinerv.bitstream import container
from hinerv.codec import inspect_file, load_decoder
from hinerv.config import ModelConfig
from hinerv.errors import BitstreamError, ConfigError

STREAMS = real_streams()


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def _alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _with_model(data: bytes, **fields: object) -> bytes:
    version, secs = split(data)
    video, model, meta, tail = _head_parts(secs[0][1])
    model.update(fields)
    return seal(version, [(1, _head_body(video, model, meta, tail)), *secs[1:]])


def _with_body(data: bytes, kind: int, edit) -> bytes:
    version, secs = split(data)
    return seal(version, [(k, edit(b) if k == kind else b) for k, b in secs])


@pytest.mark.parametrize(
    "field", ["base_grid_levels", "enc_levels", "channels", "base_grid_frames", "depths"]
)
@pytest.mark.parametrize("value", [2**62, 2**31, 2**63 - 1])
def test_model_field_bounds(field: str, value: int) -> None:
    fields = dict(real_model_fields())
    fields[field] = (value, 1, 1, 1) if field == "depths" else value
    with _deadline(2), pytest.raises(ConfigError, match=field):
        ModelConfig.from_fields(fields)


def real_model_fields() -> dict:
    return B.peek(STREAMS[1]).model


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "fields",
    [{"base_grid_levels": 2**62}, {"enc_levels": 2**62}, {"base_grid_levels": 2**31}, {"channels": 4096}],
)
def test_absurd_model_fields_are_refused_by_decode_and_info(
    version: int, fields: dict, tmp_path: Path
) -> None:
    data = _with_model(STREAMS[version], **fields)
    p = tmp_path / "hostile.hnrv"
    p.write_bytes(data)
    with _deadline(5):
        with pytest.raises(BitstreamError) as e:
            load_decoder(data)
        assert "\n" not in str(e.value)
        with pytest.raises(BitstreamError):
            inspect_file(p)


def test_small_stream_cannot_declare_a_large_model() -> None:
    # 4096 channels passes the field bounds, but a 3 KB stream cannot hold its ~10^8 parameters
    with pytest.raises(BitstreamError, match="can hold"):
        load_decoder(_with_model(STREAMS[2], channels=4096))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "edit", [lambda b: b[:-4], lambda b: b[:-1], lambda b: b + b"\x00\x00\x00\x00", lambda b: b + b"\x01"]
)
def test_truncated_or_extended_payload_is_refused(version: int, edit) -> None:
    with pytest.raises(BitstreamError):
        B.unpack(_with_body(STREAMS[version], container.PAYLOAD, edit))


@pytest.mark.parametrize("edit", [lambda b: b[:-4], lambda b: b + b"\x00\x00\x00\x00"])
def test_truncated_or_extended_masks_are_refused(edit) -> None:
    with pytest.raises(BitstreamError, match="masks"):
        B.unpack(_with_body(STREAMS[1], container.MASKS, edit))


@pytest.mark.parametrize("version", [1, 2])
def test_real_streams_decode(version: int) -> None:
    assert run_case(STREAMS[version]) == ("decoded", "")
    assert B.pack(B.unpack(STREAMS[version])) == STREAMS[version]


def _fuzz(version: int, n: int, seed: int, seconds: float = 3.0) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    cases = crc_cases(STREAMS[version], n, seed) + raw_cases(STREAMS[version], n // 4, seed)
    for i, c in enumerate(cases):
        t0 = time.perf_counter()
        with _deadline(4 * seconds):
            outcome, detail = run_case(c)
        dt = time.perf_counter() - t0
        assert outcome != "other", f"case {i}: {detail}"
        assert dt < seconds, f"case {i} took {dt:.1f} s"
        counts[outcome] += 1
    return counts


@pytest.mark.parametrize("version", [1, 2])
def test_crc_recomputing_fuzz(version: int) -> None:
    counts = _fuzz(version, 120, 0)
    assert counts["refused"] > 0 and counts["decoded"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_crc_recomputing_fuzz_2000_cases(version: int) -> None:
    counts = _fuzz(version, 2000, 1)
    assert counts["refused"] > 0 and counts["decoded"] > 0
