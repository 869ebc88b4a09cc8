"""Raw planar ``.yuv`` files: 4:2:0 or 4:4:4, 8-bit (uint8) or 9..16-bit (little-endian uint16).

Frames are laid out back to back as Y, U, V planes with no header. The reader memory-maps the file
(``np.memmap``), so opening is O(1) and reading frame t touches only that frame's bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hinerv.errors import InputError
from hinerv.io.base import AtomicFile, Planes, VideoReader, VideoWriter, _check_info
from hinerv.types import VideoInfo

__all__ = ["RawYuvReader", "RawYuvWriter", "plane_shapes"]


def plane_shapes(info: VideoInfo) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((H, W), (Hc, Wc))``: luma and chroma plane shapes of ``info``."""
    if info.chroma == "420":
        return (info.height, info.width), (info.height // 2, info.width // 2)
    return (info.height, info.width), (info.height, info.width)


def _split(flat: np.ndarray, info: VideoInfo) -> Planes:
    (h, w), (hc, wc) = plane_shapes(info)
    n, nc = h * w, hc * wc
    y = flat[:n].reshape(h, w)
    u = flat[n : n + nc].reshape(hc, wc)
    v = flat[n + nc : n + 2 * nc].reshape(hc, wc)
    return y, u, v


def _dtype(bit_depth: int) -> np.dtype:
    return np.dtype(np.uint8) if bit_depth <= 8 else np.dtype("<u2")


class RawYuvReader(VideoReader):
    """Reader of headerless planar YUV; geometry comes from options or the file name."""

    def __init__(self, path: Path, info: VideoInfo, max_frames: int | None = None) -> None:
        _check_info(info, path)
        self.path = path
        (h, w), (hc, wc) = plane_shapes(info)
        self._samples = h * w + 2 * hc * wc
        dt = _dtype(info.bit_depth)
        frame_bytes = self._samples * dt.itemsize
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"{path} has zero frames (empty file)")
        frames, rest = divmod(size, frame_bytes)
        if rest:
            raise InputError(
                f"{path}: size {size} bytes is not a multiple of the frame size {frame_bytes} bytes "
                f"({info.width}x{info.height} {info.chroma} {info.bit_depth}-bit); "
                f"{rest} bytes left over"
            )
        if max_frames is not None:
            frames = min(frames, max_frames)
        self.info = dataclasses.replace(info, frames=frames)
        self._mm: np.memmap | None = np.memmap(path, dtype=dt, mode="r", shape=(frames, self._samples))

    def read_yuv(self, t: int) -> Planes:
        t = self._check_index(t)
        if self._mm is None:
            raise ValueError(f"reader of {self.path} is closed")
        flat = np.array(self._mm[t], dtype=self._mm.dtype.newbyteorder("="))
        return _split(flat, self.info)

    def close(self) -> None:
        self._mm = None  # the mapping closes when the last view of it is gone


class RawYuvWriter(VideoWriter):
    """Writer of headerless planar YUV (uint8, or little-endian uint16 above 8 bits)."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._out = AtomicFile(path)
        self._dt = _dtype(info.bit_depth)

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if self._done:
            raise ValueError(f"writer of {self.path} is closed")
        for p in self._check_planes(y, u, v):
            self._out.file.write(p.astype(self._dt, copy=False).tobytes())
        self.frames_written += 1

    def _commit(self) -> None:
        self._out.commit()

    def _discard(self) -> None:
        self._out.discard()
