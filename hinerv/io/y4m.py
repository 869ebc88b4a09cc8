"""YUV4MPEG2 (``.y4m``) reader and writer (own parser; no ffmpeg).

Header: ``YUV4MPEG2 W<w> H<h> F<num>:<den> I<p|t|b|m|?> A<n>:<d> C<tag> X<ext>...`` then, per frame,
``FRAME[ params]\\n`` followed by the planes (samples above 8 bits are little-endian uint16).

Accepted colourspaces: ``C420``, ``C420jpeg``, ``C420mpeg2``, ``C420paldv`` (8-bit 4:2:0; the tags
differ only in chroma siting, which we do not model per file), ``C420p9``..``C420p16`` and
``C444`` / ``C444p9``..``C444p16``. Mono, 4:2:2, 4:1:1 and alpha are rejected, as is interlaced
content (``It``, ``Ib``, ``Im``). ``XCOLORRANGE=FULL`` marks full range. A missing ``C`` means
``C420``; a missing ``F`` means 30 fps.

Frames are located by byte offset: when every frame marker is the plain ``FRAME\\n`` (as all common
writers emit) frame t starts at ``header + t * (6 + frame_bytes)`` and opening is O(1); otherwise
the markers are scanned once at open (seeking over the frame data) into an offset table.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hinerv.errors import InputError
from hinerv.io.base import AtomicFile, Planes, VideoReader, VideoWriter, _check_info
from hinerv.io.yuv import _dtype, _split, plane_shapes
from hinerv.types import VideoInfo

__all__ = ["Y4mReader", "Y4mWriter", "parse_y4m_header"]

_MAGIC = b"YUV4MPEG2"
_MARKER = b"FRAME\n"
_MAX_HEADER = 4096
_CSP = re.compile(r"^(420|444)(?:jpeg|mpeg2|paldv|p(9|1[0-6]))?$")


def parse_y4m_header(line: bytes, path: Path | str = "<y4m>") -> dict[str, Any]:
    """Parse a stream header line (without the newline).

    Args:
        line: the bytes before the first ``\\n``.
        path: used in error messages only.

    Returns:
        dict with ``width``, ``height``, ``fps`` (Fraction), ``chroma`` (``"420"``/``"444"``),
        ``bit_depth`` (int), ``full_range`` (bool or None when not stated), ``colorspace`` (the raw
        ``C`` tag).

    Raises:
        InputError: bad magic or field, interlaced content, unsupported colourspace.
    """
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"bad y4m header in {path}: not ASCII") from None
    tokens = text.split(" ")
    if tokens[0] != _MAGIC.decode():
        raise InputError(f"bad y4m header in {path}: does not start with YUV4MPEG2")
    out: dict[str, Any] = {"fps": Fraction(30), "full_range": None, "colorspace": "420"}
    for tok in tokens[1:]:
        if not tok:
            continue
        tag, val = tok[0], tok[1:]
        try:
            if tag == "W":
                out["width"] = int(val)
            elif tag == "H":
                out["height"] = int(val)
            elif tag == "F":
                num, den = (int(x) for x in val.split(":"))
                if num > 0 and den > 0:
                    out["fps"] = Fraction(num, den)
            elif tag == "I":
                if val not in ("p", "?"):
                    raise InputError(
                        f"interlaced y4m (I{val}) is not supported: {path}; deinterlace it first"
                    )
            elif tag == "C":
                out["colorspace"] = val
            elif tag == "X" and val.upper().startswith("COLORRANGE="):
                out["full_range"] = val.split("=", 1)[1].upper() == "FULL"
        except ValueError:
            raise InputError(f"bad y4m header in {path}: field {tok!r}") from None
    if "width" not in out or "height" not in out:
        raise InputError(f"bad y4m header in {path}: missing W or H")
    if out["width"] < 1 or out["height"] < 1:
        raise InputError(f"bad y4m header in {path}: size {out['width']}x{out['height']}")
    m = _CSP.match(out["colorspace"])
    if m is None:
        raise InputError(
            f"unsupported y4m colourspace C{out['colorspace']} in {path} "
            "(supported: C420, C420jpeg, C420mpeg2, C420paldv, C420p10.., C444, C444p10..)"
        )
    out["chroma"] = m.group(1)
    out["bit_depth"] = int(m.group(2)) if m.group(2) else 8
    return out


def _read_line(f: BinaryIO, pos: int, limit: int) -> bytes | None:
    f.seek(pos)
    buf = f.read(limit)
    nl = buf.find(b"\n")
    return None if nl < 0 else buf[: nl + 1]


class Y4mReader(VideoReader):
    """Random-access y4m reader (one ``seek`` + ``read`` per frame)."""

    def __init__(
        self,
        path: Path,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: Fraction | None = None,
        bit_depth: int | None = None,
        matrix: str | None = None,
        full_range: bool | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.path = path
        self._f: BinaryIO | None = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._open(width, height, fps, bit_depth, matrix, full_range, max_frames)
        except BaseException:
            self.close()
            raise

    def _open(
        self,
        width: int | None,
        height: int | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        full_range: bool | None,
        max_frames: int | None,
    ) -> None:
        f = self._f
        assert f is not None
        path = self.path
        line = _read_line(f, 0, _MAX_HEADER)
        if line is None:
            raise InputError(f"bad y4m header in {path}: no header line")
        hdr = parse_y4m_header(line[:-1], path)
        for name, given in (("width", width), ("height", height), ("bit_depth", bit_depth)):
            if given is not None and given != hdr[name]:
                raise InputError(f"{path}: {name}={given} contradicts the y4m header ({hdr[name]})")
        fr = hdr["full_range"] if full_range is None else full_range
        info = VideoInfo(
            width=hdr["width"],
            height=hdr["height"],
            frames=0,
            fps=Fraction(fps) if fps is not None else hdr["fps"],
            bit_depth=hdr["bit_depth"],
            chroma=hdr["chroma"],
            matrix=matrix or "bt601",  # type: ignore[arg-type]
            full_range=bool(fr),
        )
        _check_info(info, path)
        (h, w), (hc, wc) = plane_shapes(info)
        self._dt = _dtype(info.bit_depth)
        self._frame_bytes = (h * w + 2 * hc * wc) * self._dt.itemsize
        size = path.stat().st_size
        start = len(line)
        limit = max_frames if max_frames is not None else None
        first = _read_line(f, start, 256) if start < size else None
        if start >= size:
            raise InputError(f"{path} has zero frames")
        stride = len(_MARKER) + self._frame_bytes
        self._offsets: list[int] | None = None
        self._start = start
        if first == _MARKER and (size - start) % stride == 0:
            frames = (size - start) // stride
        else:
            self._offsets = self._scan(f, start, size, limit)
            frames = len(self._offsets)
        if limit is not None:
            frames = min(frames, limit)
        if frames == 0:
            raise InputError(f"{path} has zero frames")
        self.info = dataclasses.replace(info, frames=frames)

    def _scan(self, f: BinaryIO, pos: int, size: int, limit: int | None) -> list[int]:
        offsets: list[int] = []
        while pos < size and (limit is None or len(offsets) < limit):
            marker = _read_line(f, pos, 256)
            if marker is None or not marker.startswith(b"FRAME"):
                raise InputError(f"bad y4m frame marker at byte {pos} (frame {len(offsets)}) in {self.path}")
            data = pos + len(marker)
            if data + self._frame_bytes > size:
                raise InputError(
                    f"{self.path}: frame {len(offsets)} is truncated "
                    f"({size - data} of {self._frame_bytes} bytes)"
                )
            offsets.append(data)
            pos = data + self._frame_bytes
        return offsets

    def read_yuv(self, t: int) -> Planes:
        t = self._check_index(t)
        if self._f is None:
            raise ValueError(f"reader of {self.path} is closed")
        if self._offsets is not None:
            self._f.seek(self._offsets[t])
            buf = self._f.read(self._frame_bytes)
        else:
            self._f.seek(self._start + t * (len(_MARKER) + self._frame_bytes))
            buf = self._f.read(len(_MARKER) + self._frame_bytes)
            if not buf.startswith(_MARKER):
                raise InputError(f"bad y4m frame marker for frame {t} in {self.path}")
            buf = buf[len(_MARKER) :]
        if len(buf) != self._frame_bytes:
            raise InputError(f"{self.path}: frame {t} is truncated")
        flat = np.frombuffer(buf, dtype=self._dt).astype(self._dt.newbyteorder("="))
        return _split(flat, self.info)

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()


def _colorspace_tag(info: VideoInfo) -> str:
    if info.chroma == "420":
        return (
            "C420jpeg XYSCSS=420JPEG"
            if info.bit_depth == 8
            else (f"C420p{info.bit_depth} XYSCSS=420P{info.bit_depth}")
        )
    return (
        "C444 XYSCSS=444" if info.bit_depth == 8 else (f"C444p{info.bit_depth} XYSCSS=444P{info.bit_depth}")
    )


class Y4mWriter(VideoWriter):
    """y4m writer: ``C420jpeg`` (8-bit), ``C420p10``/``p12``/``p16`` above, ``C444*`` for 4:4:4."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        if info.bit_depth not in (8, 9, 10, 12, 14, 16):
            raise InputError(f"y4m cannot store {info.bit_depth}-bit video ({path})")
        self._out = AtomicFile(path)
        self._dt = _dtype(info.bit_depth)
        fps = Fraction(info.fps)
        header = (
            f"YUV4MPEG2 W{info.width} H{info.height} F{fps.numerator}:{fps.denominator} "
            f"Ip A1:1 {_colorspace_tag(info)}"
        )
        if info.full_range:
            header += " XCOLORRANGE=FULL"
        self._out.file.write(header.encode("ascii") + b"\n")

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if self._done:
            raise ValueError(f"writer of {self.path} is closed")
        planes = self._check_planes(y, u, v)
        self._out.file.write(_MARKER)
        for p in planes:
            self._out.file.write(p.astype(self._dt, copy=False).tobytes())
        self.frames_written += 1

    def _commit(self) -> None:
        self._out.commit()

    def _discard(self) -> None:
        self._out.discard()
