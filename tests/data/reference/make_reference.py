#!/usr/bin/env python
"""Write the reference bitstreams and their hashes (run once; the files are committed).

    python tests/data/reference/make_reference.py

Made with hinerv at commit fbc8ea0 (before the formats became packages, issue #18 item 4): the tiny
random-initialised network of ``tests/hostile_streams.py`` (32x32, 2 frames, C=16, one pruning mask
in format 1), packed as format 1 (``export_stream``, 6 bits) and format 2 (``export_rd_stream``).
``reference.json`` holds, per stream, the sha256 of the file, of every dequantized tensor (float32
bytes, exact integer/fp16 arithmetic) and of every decoded frame as 8-bit RGB
(``round(255 * x)``, ``[3, H, W]`` uint8, CPU). Never regenerate them to make a test pass: a failing
test means the format (or the decoder) changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def digests(data: bytes) -> dict:
    """sha256 of the stream, its dequantized tensors and its decoded 8-bit frames."""
    import numpy as np

    from hinerv.bitstream import unpack
    from hinerv.codec import decode_frames, load_decoder

    def h(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()

    model, info, _ = load_decoder(data)
    frames = [
        np.round(255 * f).clip(0, 255).astype(np.uint8)
        for f in decode_frames(model, info, range(info.frames))
    ]
    return {
        "stream": h(data),
        "tensors": [h(t.dequantize().astype("<f4").tobytes()) for t in unpack(data).tensors],
        "frames": [h(f.tobytes()) for f in frames],
    }


def main() -> None:
    from hostile_streams import real_streams

    out = {}
    for version, data in real_streams().items():
        name = f"format{version}.hnrv"
        (HERE / name).write_bytes(data)
        out[name] = {"version": version, "bytes": len(data), **digests(data)}
    (HERE / "reference.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
