"""Raw-sequence file names -> geometry, frame rate, bit depth and chroma format.

Accepted families (tokens are separated by ``_``, ``-``, ``.`` or spaces; case-insensitive):

* UVG: ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``
* MCL-JCV: ``videoSRC01_1920x1080_30.yuv`` (a bare integer after the size is the fps)
* JCT-VC / CTC: ``BQTerrace_1920x1080_60.yuv``, ``Foo_1920x1080_50_10bit.yuv``
* Vooya / CompressAI: ``name_416x240_60Hz_8bit_P420.yuv``
* ffmpeg / GStreamer pixel formats: ``yuv420p``, ``yuv420p10le``, ``yuv444p``, ``I420``,
  ``I420_10LE``, ``P420``, ``P444``, ``I444``

Only what the name states is returned; the defaults (8 bit, 4:2:0, 30 fps) are applied by the readers.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import PurePath
from typing import Any

__all__ = ["parse_video_name"]

_SIZE = re.compile(r"(?<![0-9])([1-9][0-9]{0,4})[xX]([1-9][0-9]{0,4})(?![0-9])")
_FPS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(?:fps|hz)$")
_BITS = re.compile(r"^([0-9]{1,2})-?bits?$")
_PIXFMT = re.compile(r"^yuvj?(420|422|444)p(?:([0-9]{1,2})(le|be)?)?$")
_PLANAR = re.compile(r"^[ip](420|422|444)$")
_ENDIAN_DEPTH = re.compile(r"^([0-9]{1,2})(le|be)$")
_BARE_INT = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")

#: NTSC-style rates written as decimals.
_NTSC = {
    "23.976": Fraction(24000, 1001),
    "23.98": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "59.94": Fraction(60000, 1001),
    "119.88": Fraction(120000, 1001),
}


def _fps(text: str) -> Fraction:
    return _NTSC.get(text, Fraction(text))


def parse_video_name(name: str) -> dict[str, Any]:
    """Parse geometry and format hints from a raw-video file name.

    Args:
        name: a file name or path (only the last component is used; the extension is ignored).

    Returns:
        A dict with the keys that the name states, among ``width`` (int), ``height`` (int),
        ``fps`` (:class:`fractions.Fraction`), ``bit_depth`` (int) and ``chroma``
        (``"420"``, ``"422"`` or ``"444"``). ``"422"`` is reported but no reader supports it.
        Unknown tokens are ignored; an empty dict means nothing was recognised.
    """
    stem = PurePath(name).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    out: dict[str, Any] = {}
    m = _SIZE.search(stem)
    after_size: list[str] = []
    if m:
        out["width"], out["height"] = int(m.group(1)), int(m.group(2))
        after_size = [t for t in re.split(r"[_\-\s]+", stem[m.end() :].lower()) if t]
    tokens = [t for t in re.split(r"[_\-\s]+", stem.lower()) if t]
    prev = ""
    for tok in tokens:
        if (f := _FPS.match(tok)) is not None:
            out["fps"] = _fps(f.group(1))
        elif (b := _BITS.match(tok)) is not None:
            out["bit_depth"] = int(b.group(1))
        elif (p := _PIXFMT.match(tok)) is not None:
            out["chroma"] = p.group(1)
            out["bit_depth"] = int(p.group(2)) if p.group(2) else out.get("bit_depth", 8)
        elif (p := _PLANAR.match(tok)) is not None:
            out["chroma"] = p.group(1)
        elif (e := _ENDIAN_DEPTH.match(tok)) is not None and _PLANAR.match(prev):
            out["bit_depth"] = int(e.group(1))  # GStreamer I420_10LE
        elif tok in ("420", "422", "444"):
            out["chroma"] = tok
        prev = tok
    # a bare number after the size token that is not a chroma tag is the frame rate
    if "fps" not in out:
        for tok in after_size:
            if _BARE_INT.match(tok) and tok not in ("420", "422", "444"):
                if Fraction(tok) > 0:
                    out["fps"] = _fps(tok)
                break
    return out
