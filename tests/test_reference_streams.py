"""Stored reference bitstreams of both formats (tests/data/reference, made before the formats became
packages; see make_reference.py there): today's code must read them to the same tensors and frames,
and pack what it read to the same bytes. A format or decoder regression fails here."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from hinerv.bitstream import pack, peek, unpack

REF = Path(__file__).parent / "data" / "reference"
sys.path.insert(0, str(REF))
EXPECTED = json.loads((REF / "reference.json").read_text())

from make_reference import digests  # noqa: E402


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_stream_decodes_to_the_same_tensors_and_frames(name: str) -> None:
    data = (REF / name).read_bytes()
    want = EXPECTED[name]
    assert peek(data).version == want["version"]
    got = digests(data)
    assert got["stream"] == want["stream"]
    assert got["tensors"] == want["tensors"]
    assert got["frames"] == want["frames"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_stream_repacks_to_the_same_bytes(name: str) -> None:
    data = (REF / name).read_bytes()
    assert hashlib.sha256(pack(unpack(data))).hexdigest() == EXPECTED[name]["stream"]


def test_registries_pin_the_stored_codes() -> None:
    from hinerv.bitstream import FORMAT_VERSION, FORMATS
    from hinerv.entropy import coding_names

    assert sorted(FORMATS) == [1, 2] and FORMAT_VERSION == 2
    assert coding_names() == ("tensor", "channel", "context")  # a coding's index is its stored code
