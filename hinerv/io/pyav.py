"""Containers and elementary streams through PyAV (``.mp4``, ``.mkv``, ``.avi``, ``.mov``, ``.hevc``...).

Reading decodes the first video stream sequentially and hands out YUV 4:2:0 planes at the chosen bit
depth (``yuv420p`` for 8-bit, ``yuv420p10le`` etc. above). Planar 4:2:0 sources at that depth are
copied plane by plane (no swscale involved, so full-range ``yuvj420p`` stays untouched); anything
else (4:2:2, RGB, another depth) is converted by swscale with the stream's matrix and range kept.
Random access to an earlier frame re-opens the file and decodes forward. The frame count comes
from the container when it states one, otherwise from decoding the stream once (cached).

Writing (``.mp4``, ``.mkv``) is a *preview*: 8-bit yuv420p with libx264 (CRF 18) or, where that is
missing, mpeg4; other formats are converted to 8-bit 4:2:0 with :mod:`hinerv.color` first.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from hinerv.color import rgb_to_yuv, yuv_to_rgb
from hinerv.errors import InputError
from hinerv.io.base import Planes, VideoReader, VideoWriter, _check_info, commit_temp, make_temp
from hinerv.types import VideoInfo

__all__ = ["PyAVReader", "PyAVWriter", "READ_EXTENSIONS", "WRITE_FORMATS"]

#: Extensions opened with PyAV (lower case, with the dot).
READ_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .qt .flv .nut .ts .mts .m2ts .mpg .mpeg .ogv .ivf .obu "
    ".hevc .h265 .265 .h264 .264 .avc .bit .bin266 .vvc .mjpeg .mjpg .dv".split()
)
#: Writable preview containers: extension -> FFmpeg muxer name.
WRITE_FORMATS = {".mp4": "mp4", ".mkv": "matroska"}

_DEPTHS = (8, 9, 10, 12, 14, 16)
_BT709 = 1  # AVCOL_SPC_BT709
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG


def _yuv_format(bit_depth: int) -> str:
    return "yuv420p" if bit_depth == 8 else f"yuv420p{bit_depth}le"


def _planes(frame: av.VideoFrame, dtype: np.dtype) -> Planes:
    """Copy the three planes of a planar 4:2:0 frame (line padding removed)."""
    out = []
    for p in frame.planes[:3]:
        a = np.frombuffer(p, dtype=dtype).reshape(p.height, p.line_size // dtype.itemsize)
        out.append(np.ascontiguousarray(a[:, : p.width]))
    return out[0], out[1], out[2]


def _open(path: Path) -> Any:
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"PyAV cannot open {path}: {e}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container


class PyAVReader(VideoReader):
    """Sequential decoder with re-open-and-skip random access and a one-frame cache."""

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
        self._container: Any = _open(path)
        try:
            self._setup(width, height, fps, bit_depth, matrix, full_range, max_frames)
        except BaseException:
            self.close()
            raise

    def _setup(
        self,
        width: int | None,
        height: int | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        full_range: bool | None,
        max_frames: int | None,
    ) -> None:
        path = self.path
        stream = self._container.streams.video[0]
        cc = stream.codec_context
        w, h = cc.width, cc.height
        if not w or not h:
            raise InputError(f"{path}: video stream has no frame size")
        for name, given, actual in (("width", width, w), ("height", height, h)):
            if given is not None and given != actual:
                raise InputError(f"{path}: {name}={given} contradicts the stream ({actual})")
        src_fmt = cc.format
        src_bits = max((c.bits for c in src_fmt.components), default=8) if src_fmt else 8
        if bit_depth is None:
            bit_depth = next(d for d in _DEPTHS if d >= min(src_bits, 16))
        if bit_depth not in _DEPTHS:
            raise InputError(f"{path}: cannot decode to {bit_depth}-bit (choose one of {_DEPTHS})")
        rate = fps if fps is not None else (stream.average_rate or stream.guessed_rate)
        src_full = cc.color_range == _JPEG_RANGE or (src_fmt is not None and src_fmt.name.startswith("yuvj"))
        self._src_full = src_full
        self._src_709 = cc.colorspace == _BT709
        self._fmt = _yuv_format(bit_depth)
        self._dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        self._bits = bit_depth
        self._decoder: Any = None
        self._next = 0
        self._cache: tuple[int, Planes] | None = None
        frames = int(stream.frames or 0)
        if frames <= 0:
            frames = self._count(max_frames)
        if max_frames is not None:
            frames = min(frames, max_frames)
        if frames == 0:
            raise InputError(f"{path} has zero frames")
        self.info = VideoInfo(
            width=w,
            height=h,
            frames=frames,
            fps=Fraction(rate) if rate else Fraction(30),
            bit_depth=bit_depth,
            chroma="420",
            matrix=matrix or ("bt709" if self._src_709 else "bt601"),  # type: ignore[arg-type]
            full_range=src_full if full_range is None else bool(full_range),
        )
        _check_info(self.info, path)

    def _count(self, limit: int | None) -> int:
        n = 0
        try:
            for _ in self._container.decode(video=0):
                n += 1
                if limit is not None and n >= limit:
                    break
        except av.FFmpegError as e:
            raise InputError(f"{self.path}: decoding failed after {n} frames: {e}") from None
        self._rewind()
        return n

    def _rewind(self) -> None:
        self._container.close()
        self._container = _open(self.path)
        self._decoder = None
        self._next = 0

    def _convert(self, frame: av.VideoFrame) -> Planes:
        name = frame.format.name
        direct = name == self._fmt or (self._bits == 8 and name == "yuvj420p")
        if not direct:
            cs = Colorspace.ITU709 if self._src_709 else Colorspace.ITU601
            rng = ColorRange.JPEG if self._src_full else ColorRange.MPEG
            frame = frame.reformat(
                format=self._fmt,
                src_colorspace=cs,
                dst_colorspace=cs,
                src_color_range=rng,
                dst_color_range=rng,
            )
        return _planes(frame, self._dtype)

    def read_yuv(self, t: int) -> Planes:
        t = self._check_index(t)
        if self._container is None:
            raise ValueError(f"reader of {self.path} is closed")
        if self._cache is not None and self._cache[0] == t:
            return tuple(p.copy() for p in self._cache[1])  # type: ignore[return-value]
        if t < self._next:
            self._rewind()
        if self._decoder is None:
            self._decoder = self._container.decode(video=0)
        try:
            while True:
                frame = next(self._decoder, None)
                if frame is None:
                    raise InputError(
                        f"{self.path}: stream ended after {self._next} frames (expected {self.info.frames})"
                    )
                self._next += 1
                if self._next - 1 == t:
                    break
        except av.FFmpegError as e:
            raise InputError(f"{self.path}: decoding frame {self._next} failed: {e}") from None
        planes = self._convert(frame)
        self._cache = (t, planes)
        return tuple(p.copy() for p in planes)  # type: ignore[return-value]

    def close(self) -> None:
        c, self._container = self._container, None
        self._decoder = None
        self._cache = None
        if c is not None:
            c.close()


class PyAVWriter(VideoWriter):
    """Preview encoder: 8-bit yuv420p H.264 (libx264, CRF 18) or MPEG-4 Part 2."""

    stores = "preview"

    def __init__(self, path: Path, info: VideoInfo, *, crf: int = 18) -> None:
        super().__init__(path, info)
        fmt = WRITE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise InputError(f"cannot write {path}: preview containers are {sorted(WRITE_FORMATS)}")
        if not path.parent.is_dir():
            raise InputError(f"output folder {path.parent} does not exist")
        self._tmp = make_temp(path)
        try:
            self._container: Any = av.open(str(self._tmp), mode="w", format=fmt)
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            rate = Fraction(info.fps)
            opts = {"crf": str(crf), "preset": "medium"} if codec == "libx264" else {}
            s = self._container.add_stream(codec, rate=rate, options=opts)
            s.width, s.height, s.pix_fmt = info.width, info.height, "yuv420p"
            if codec == "mpeg4":
                s.bit_rate = int(info.width * info.height * float(rate) * 0.5)
            cc = s.codec_context
            cc.colorspace = Colorspace.ITU709 if info.matrix == "bt709" else Colorspace.ITU601
            cc.color_range = ColorRange.JPEG if info.full_range else ColorRange.MPEG
            self._stream = s
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def _to_420_8bit(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Planes:
        i = self.info
        if i.chroma == "420" and i.bit_depth == 8:
            return y, u, v
        rgb = yuv_to_rgb(y, u, v, bit_depth=i.bit_depth, matrix=i.matrix, full_range=i.full_range)
        return rgb_to_yuv(rgb, bit_depth=8, matrix=i.matrix, full_range=i.full_range, chroma="420")

    def _encode(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if self._done:
            raise ValueError(f"writer of {self.path} is closed")
        h, w = self.info.height, self.info.width
        stacked = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(stacked, format="yuv420p")
        frame.pts = self.frames_written
        frame.colorspace = self._stream.codec_context.colorspace
        frame.color_range = self._stream.codec_context.color_range
        for pkt in self._stream.encode(frame):
            self._container.mux(pkt)
        self.frames_written += 1

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        self._encode(*self._to_420_8bit(*self._check_planes(y, u, v)))

    def write_rgb(self, rgb_float: np.ndarray) -> None:
        i = self.info
        self._encode(*rgb_to_yuv(rgb_float, bit_depth=8, matrix=i.matrix, full_range=i.full_range))

    def _commit(self) -> None:
        try:
            for pkt in self._stream.encode(None):
                self._container.mux(pkt)
            self._container.close()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        commit_temp(self._tmp, self.path)

    def _discard(self) -> None:
        try:
            self._container.close()
        except Exception:
            pass
        self._tmp.unlink(missing_ok=True)
