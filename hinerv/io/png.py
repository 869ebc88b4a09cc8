"""Folders of PNG frames (RGB, 8- or 16-bit), read and written one file per frame.

Reading: every ``*.png`` in the folder, in natural name order (``2.png`` before ``10.png``; zero-
padded names sort the same either way). Grey, palette and alpha PNGs are converted to RGB (alpha
dropped). The bit depth is 8 for 8-bit PNGs and 16 for 16-bit ones unless ``bit_depth`` is given,
in which case samples are rescaled ``round(v * (2**b - 1) / (2**s - 1))`` (s = 8 or 16 stored).

Writing: ``00001.png``, ``00002.png``, ... into a temporary folder renamed into place on close.
Samples are stored as 8-bit PNG when ``info.bit_depth == 8`` and as 16-bit PNG otherwise, scaled
``round(v * 65535 / (2**b - 1))``; reading back with ``bit_depth=b`` restores them exactly.
PNG coding goes through PyAV's ``png`` codec (deterministic output).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from hinerv.color import dequantize_rgb, quantize_rgb, rgb_to_yuv, sample_dtype, yuv_to_rgb
from hinerv.errors import InputError
from hinerv.io.base import AtomicDir, Planes, VideoReader, VideoWriter, _check_info, _to_device_int32
from hinerv.io.frames import FrameBatch, dequantize_rgb_t, rgb_to_yuv_t
from hinerv.types import VideoInfo

__all__ = ["PngFolderReader", "PngFolderWriter", "decode_png", "encode_png"]


def _natural_key(p: Path) -> list[int | str]:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _rescale(q: np.ndarray, src_bits: int, dst_bits: int) -> np.ndarray:
    """Integer samples from ``src_bits`` to ``dst_bits`` by ``round_half_up(v * pd / ps)``."""
    if src_bits == dst_bits:
        return q
    ps, pd = (1 << src_bits) - 1, (1 << dst_bits) - 1
    v = q.astype(np.int64)
    out = (2 * v * pd + ps) // (2 * ps)
    return out.astype(np.uint8 if dst_bits <= 8 else np.uint16)


def decode_png(data: bytes, name: Path | str = "<png>") -> tuple[np.ndarray, int]:
    """Decode PNG bytes to RGB.

    Returns:
        ``(rgb, bits)``: ``rgb`` uint8 or uint16 ``[3, H, W]``; ``bits`` is 8 or 16 (stored depth).
    """
    try:
        frames = av.CodecContext.create("png", "r").decode(av.Packet(data))
    except av.FFmpegError as e:
        raise InputError(f"cannot decode PNG {name}: {e}") from None
    if not frames:
        raise InputError(f"cannot decode PNG {name}: no image")
    fr = frames[0]
    bits = 16 if max(c.bits for c in fr.format.components) > 8 else 8
    arr = fr.to_ndarray(format="rgb48le" if bits == 16 else "rgb24")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), bits


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode uint8 (8-bit PNG) or uint16 (16-bit PNG) ``[3, H, W]`` RGB as PNG bytes."""
    sixteen = rgb.dtype == np.uint16
    h, w = rgb.shape[1:]
    enc = av.CodecContext.create("png", "w")
    enc.width, enc.height = w, h
    enc.pix_fmt = "rgb48be" if sixteen else "rgb24"
    frame = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(rgb.transpose(1, 2, 0)), format="rgb48le" if sixteen else "rgb24"
    )
    if sixteen:
        frame = frame.reformat(format="rgb48be")
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


class PngFolderReader(VideoReader):
    """Reader of a folder of PNG frames; ``info.chroma`` is ``"444"`` (RGB source)."""

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
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
            key=_natural_key,
        )
        if max_frames is not None:
            files = files[:max_frames]
        if not files:
            raise InputError(f"{path} has zero frames (no .png files in the folder)")
        self._files = files
        rgb, bits = decode_png(files[0].read_bytes(), files[0])
        h, w = rgb.shape[1:]
        for name, given, actual in (("width", width, w), ("height", height, h)):
            if given is not None and given != actual:
                raise InputError(f"{path}: {name}={given} contradicts the PNG size ({actual})")
        self._stored_bits = bits
        self.info = VideoInfo(
            width=w,
            height=h,
            frames=len(files),
            fps=Fraction(fps) if fps is not None else Fraction(30),
            bit_depth=bit_depth if bit_depth is not None else bits,
            chroma="444",
            matrix=matrix or "bt601",  # type: ignore[arg-type]
            full_range=bool(full_range),
        )
        _check_info(self.info, path)

    def read_rgb(self, t: int) -> np.ndarray:
        t = self._check_index(t)
        f = self._files[t]
        try:
            data = f.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read {f}: {e.strerror}") from None
        rgb, bits = decode_png(data, f)
        if rgb.shape[1:] != (self.info.height, self.info.width):
            raise InputError(
                f"{f} is {rgb.shape[2]}x{rgb.shape[1]}, the first frame is "
                f"{self.info.width}x{self.info.height}"
            )
        return _rescale(rgb, bits, self.info.bit_depth)

    def read_batch(self, frames: Sequence[int], device: torch.device | str = "cpu") -> FrameBatch:
        """The PNGs' integer RGB on ``device`` and their 4:4:4 planes converted there (:meth:`read_yuv`)."""
        rgb = _to_device_int32(np.stack([self.read_rgb(t) for t in frames]), device)
        y, u, v = rgb_to_yuv_t(dequantize_rgb_t(rgb, self.info.bit_depth), self.info, chroma="444")
        return FrameBatch(y, u, v, rgb)

    def read_yuv(self, t: int) -> Planes:
        """Frame ``t`` converted with ``rgb_to_yuv(..., chroma="444")`` at ``info`` settings."""
        i = self.info
        return rgb_to_yuv(
            dequantize_rgb(self.read_rgb(t), i.bit_depth),
            bit_depth=i.bit_depth,
            matrix=i.matrix,
            full_range=i.full_range,
            chroma="444",
        )


class PngFolderWriter(VideoWriter):
    """Writes ``00001.png``... into a temporary folder that replaces ``path`` on close."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._out = AtomicDir(path)

    stores = "rgb"

    def write_rgb(self, rgb_float: np.ndarray) -> None:
        i = self.info
        if rgb_float.shape != (3, i.height, i.width):
            raise ValueError(f"frame {rgb_float.shape} does not match [3, {i.height}, {i.width}]")
        self.write_rgb_int(quantize_rgb(rgb_float, i.bit_depth))

    def write_rgb_int(self, rgb: np.ndarray) -> None:
        """Store integer RGB ``[3, H, W]`` at ``info.bit_depth`` (clipped to ``[0, peak]``) as one PNG."""
        if self._done:
            raise ValueError(f"writer of {self.path} is closed")
        i = self.info
        if rgb.shape != (3, i.height, i.width):
            raise ValueError(f"frame {rgb.shape} does not match [3, {i.height}, {i.width}]")
        q = np.clip(rgb, 0, i.peak).astype(sample_dtype(i.bit_depth))
        if i.bit_depth != 8:
            q = _rescale(q, i.bit_depth, 16)
        self.frames_written += 1
        (self._out.tmp / f"{self.frames_written:05d}.png").write_bytes(encode_png(q))

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Convert with :func:`hinerv.color.yuv_to_rgb` at ``info`` settings, then store as RGB."""
        i = self.info
        y, u, v = self._check_planes(y, u, v)
        self.write_rgb(yuv_to_rgb(y, u, v, bit_depth=i.bit_depth, matrix=i.matrix, full_range=i.full_range))

    def _commit(self) -> None:
        self._out.commit()

    def _discard(self) -> None:
        self._out.discard()
