"""HEVC (x265) streams through PyAV's bundled libx265: the x265 baseline's file I/O.

Streams are raw Annex-B ``.hevc`` (no container bytes in the rate). Planes go in and out as integer
numpy arrays (uint8 for 8-bit, uint16 little-endian for 10/12-bit), the same as :class:`VideoReader`.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hinerv.errors import ConfigError, InputError
from hinerv.io.base import VideoReader, commit_temp
from hinerv.types import VideoInfo

__all__ = ["encode_hevc", "decode_hevc", "x265_info"]

#: ``progress(done, total)`` in frames
FrameProgress = Callable[[int, int], None]


def _pix_fmt(bit_depth: int) -> tuple[str, type]:
    if bit_depth <= 8:
        return "yuv420p", np.uint8
    if bit_depth <= 10:
        return "yuv420p10le", np.uint16
    if bit_depth <= 12:
        return "yuv420p12le", np.uint16
    raise ConfigError(f"x265 cannot code {bit_depth}-bit video (8, 10 or 12 only)")


def _frame_from_planes(planes: Sequence[np.ndarray], fmt: str, dtype: type) -> Any:
    import av

    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, fmt)
    for p_arr, plane in zip(planes, frame.planes, strict=False):
        item = np.dtype(dtype).itemsize
        stride = plane.line_size // item
        buf = np.zeros((plane.height, stride), dtype=dtype)
        buf[:, : p_arr.shape[1]] = p_arr
        plane.update(buf.astype(np.dtype(dtype).newbyteorder("<"), copy=False).tobytes())
    return frame


def _planes_from_frame(frame: Any, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = []
    item = np.dtype(dtype).itemsize
    for plane in frame.planes[:3]:
        a = np.frombuffer(bytes(plane), dtype=np.dtype(dtype).newbyteorder("<"))
        a = a.reshape(plane.height, plane.line_size // item)[:, : plane.width]
        out.append(np.ascontiguousarray(a).astype(dtype, copy=False))
    return out[0], out[1], out[2]


_X265_SEI = re.compile(rb"x265 \(build[^\x00]*?options: ([ -~]*)")
_X265_VER = re.compile(rb"x265 \(build (\d+)\) - ([^:\s]+)")


def _parse_x265_sei(data: bytes) -> tuple[str, str]:
    m = _X265_VER.search(data)
    version = f"{m.group(2).decode()} (build {m.group(1).decode()})" if m else "unknown"
    o = _X265_SEI.search(data)
    return version, (o.group(1).decode("ascii", "replace").strip() if o else "")


@lru_cache(maxsize=16)
def x265_info(preset: str = "veryslow", x265_params: str = "") -> tuple[str, str]:
    """(libx265 version, full option string) as the encoder reports them in its info SEI, from a
    2-frame 64x64 probe encode with the given preset and params (cached)."""
    import av

    sink = io.BytesIO()
    out = av.open(sink, "w", format="hevc")
    try:
        s = out.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        params = ":".join(p for p in (*x265_params.split(":"), "info=1", "log-level=error") if p)
        s.options = {"preset": preset, "x265-params": params}
        y = np.zeros((64, 64), np.uint8)
        c = np.full((32, 32), 128, np.uint8)
        for t in range(2):
            f = _frame_from_planes((y, c, c), "yuv420p", np.uint8)
            f.pts = t
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    finally:
        out.close()
    return _parse_x265_sei(sink.getvalue())


def encode_hevc(
    reader: VideoReader,
    dst: Path,
    *,
    preset: str = "veryslow",
    x265_params: str = "",
    progress: FrameProgress | None = None,
) -> float:
    """Encode every frame of ``reader`` (4:2:0) with libx265 into the raw stream ``dst`` (atomic).

    Returns:
        Seconds spent inside the encoder (frame reading and muxing excluded).
    """
    import av

    info = reader.info
    fmt, dtype = _pix_fmt(info.bit_depth)
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    enc_s = 0.0
    try:
        out = av.open(str(tmp), "w", format="hevc")
        try:
            fps = Fraction(info.fps).limit_denominator(1_000_000)
            st = out.add_stream("libx265", rate=fps)
            st.width, st.height, st.pix_fmt = info.width, info.height, fmt
            st.time_base = 1 / fps
            st.options = {"preset": preset, "x265-params": x265_params}
            n = len(reader)
            for t in range(n):
                frame = _frame_from_planes(reader.read_yuv(t), fmt, dtype)
                frame.pts = t
                frame.time_base = st.time_base
                t0 = time.perf_counter()
                pkts = st.encode(frame)
                enc_s += time.perf_counter() - t0
                for pkt in pkts:
                    out.mux(pkt)
                if progress:
                    progress(t + 1, n)
            t0 = time.perf_counter()
            pkts = st.encode(None)
            enc_s += time.perf_counter() - t0
            for pkt in pkts:
                out.mux(pkt)
        finally:
            out.close()
        commit_temp(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return enc_s


def decode_hevc(src: Path, dst: Path, info: VideoInfo, *, progress: FrameProgress | None = None) -> float:
    """Decode the raw HEVC stream ``src`` and write its frames to ``dst`` (any writable format).

    ``info`` describes the expected output (size, frame count, bit depth); a frame-count mismatch
    raises :class:`InputError`.

    Returns:
        Seconds spent inside the decoder.
    """
    import av

    from hinerv.io import open_writer

    _, dtype = _pix_fmt(info.bit_depth)
    dec_s = 0.0
    n = 0
    with av.open(str(src), "r", format="hevc") as inp, open_writer(dst, info) as wr:
        it = inp.decode(inp.streams.video[0])
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                dec_s += time.perf_counter() - t0
                break
            dec_s += time.perf_counter() - t0
            wr.write_yuv(*_planes_from_frame(frame, dtype))
            n += 1
            if progress:
                progress(n, info.frames)
        if n != info.frames:
            raise InputError(f"{src}: decoded {n} frames, expected {info.frames}")
    return dec_s
