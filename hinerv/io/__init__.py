"""Video file I/O: the only package in hinerv that opens video files.

Readers are lazy (a frame at a time) and random access; writers are atomic (a temporary file or
folder next to the target, renamed into place on a clean close, deleted on an exception).

================  =======================================  =========================================
format            read                                     write
================  =======================================  =========================================
``.yuv``          ``np.memmap``; size/fps/depth from the   raw planes, uint8 or uint16 LE
                  options or the name (defaults: 4:2:0,
                  8-bit, 30 fps)
``.y4m``          own parser, O(1) frame offsets           ``C420jpeg`` / ``C420p10`` / ``C444*``
folder of PNGs    natural name order, RGB 8/16-bit,        ``00001.png``...; 4:2:0 input converted
                  chroma ``"444"``                          to RGB
``.mp4`` ...      PyAV, decoded to yuv420p / yuv420p10le   ``.mp4`` / ``.mkv`` preview (8-bit H.264)
================  =======================================  =========================================
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from hinerv.errors import InputError
from hinerv.io.base import VideoReader, VideoWriter
from hinerv.io.naming import parse_video_name
from hinerv.io.png import PngFolderReader, PngFolderWriter
from hinerv.io.pyav import READ_EXTENSIONS, WRITE_FORMATS, PyAVReader, PyAVWriter
from hinerv.io.y4m import Y4mReader, Y4mWriter
from hinerv.io.yuv import RawYuvReader, RawYuvWriter
from hinerv.types import VideoInfo

__all__ = [
    "VideoReader",
    "VideoWriter",
    "VIDEO_EXTENSIONS",
    "is_folder_target",
    "open_video",
    "open_writer",
    "parse_video_name",
    "writer_format",
]

#: every file extension hinerv reads or writes as video (lower case, with the dot).
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".yuv", ".y4m", ".png", *READ_EXTENSIONS, *WRITE_FORMATS})

_MATRICES = ("bt601", "bt709")


def _fps(value: float | int | str | Fraction | None, path: Path) -> Fraction | None:
    if value is None:
        return None
    try:
        f = Fraction(value).limit_denominator(1_000_000) if isinstance(value, float) else Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"invalid frame rate {value!r} for {path}") from None
    if f <= 0:
        raise InputError(f"frame rate must be positive, got {value!r} for {path}")
    return f


def open_video(
    path: str | os.PathLike[str],
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | int | str | Fraction | None = None,
    bit_depth: int | None = None,
    matrix: str | None = None,
    full_range: bool | None = None,
    max_frames: int | None = None,
) -> VideoReader:
    """Open a video for lazy, random-access reading.

    The format follows the path: a folder is a PNG sequence, ``.yuv`` raw planes, ``.y4m``
    YUV4MPEG2, and any extension in :data:`hinerv.io.pyav.READ_EXTENSIONS` goes through PyAV.
    Explicit options always win over what the file or its name says; for self-describing formats
    (y4m, PNG, containers) a contradicting ``width``/``height`` (or y4m ``bit_depth``) is an error.

    Args:
        path: file or folder.
        width, height: luma size; required for ``.yuv`` unless the name states it.
        fps: frame rate (int, float, ``"30000/1001"`` or Fraction); default: header / name / 30.
        bit_depth: sample depth; default: header / name / 8 (PNG: the file's 8 or 16).
        matrix: ``"bt601"`` (default) or ``"bt709"``, the YUV<->RGB matrix for ``read_rgb``.
        full_range: full-range YUV; default: header (y4m ``XCOLORRANGE``, stream tags) or False.
        max_frames: read at most this many frames (from the start).

    Returns:
        A :class:`VideoReader`; use it as a context manager or call ``close()``.

    Raises:
        InputError: missing file, unknown extension, unknown or inconsistent size, bad header,
            zero frames, or a file PyAV cannot open.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file or folder: {p}")
    if matrix is not None and matrix not in _MATRICES:
        raise InputError(f"unknown matrix {matrix!r}; expected one of {_MATRICES}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}")
    if bit_depth is not None and not 8 <= bit_depth <= 16:
        raise InputError(f"bit depth must be 8..16, got {bit_depth} for {p}")
    rate = _fps(fps, p)
    kw = dict(
        width=width,
        height=height,
        fps=rate,
        bit_depth=bit_depth,
        matrix=matrix,
        full_range=full_range,
        max_frames=max_frames,
    )
    ext = p.suffix.lower()
    try:
        if p.is_dir():
            return PngFolderReader(p, **kw)  # type: ignore[arg-type]
        if ext == ".yuv":
            return _open_raw(p, width, height, rate, bit_depth, matrix, full_range, max_frames)
        if ext == ".y4m":
            return Y4mReader(p, **kw)  # type: ignore[arg-type]
        if ext in READ_EXTENSIONS:
            return PyAVReader(p, **kw)  # type: ignore[arg-type]
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    raise InputError(
        f"unknown video extension {ext or '(none)'!r} of {p}; use .yuv, .y4m, a folder of PNGs or "
        f"a container ({', '.join(sorted(READ_EXTENSIONS)[:8])}, ...)"
    )


def _open_raw(
    p: Path,
    width: int | None,
    height: int | None,
    fps: Fraction | None,
    bit_depth: int | None,
    matrix: str | None,
    full_range: bool | None,
    max_frames: int | None,
) -> RawYuvReader:
    named = parse_video_name(p.name)
    w = width if width is not None else named.get("width")
    h = height if height is not None else named.get("height")
    if w is None or h is None:
        raise InputError(
            f"unknown frame size for {p}: pass width/height or use a name like '{p.stem}_1920x1080_30.yuv'"
        )
    chroma = named.get("chroma", "420")
    if chroma not in ("420", "444"):
        raise InputError(f"unsupported chroma format {chroma} in the name of {p} (4:2:0 or 4:4:4)")
    info = VideoInfo(
        width=int(w),
        height=int(h),
        frames=0,
        fps=fps if fps is not None else named.get("fps", Fraction(30)),
        bit_depth=bit_depth if bit_depth is not None else named.get("bit_depth", 8),
        chroma=chroma,
        matrix=matrix or "bt601",  # type: ignore[arg-type]
        full_range=bool(full_range),
    )
    return RawYuvReader(p, info, max_frames=max_frames)


def is_folder_target(path: str | os.PathLike[str]) -> bool:
    """True when :func:`open_writer` would write ``path`` as a PNG folder (trailing ``/``, an
    existing folder, or no suffix)."""
    s = os.fspath(path)
    return s.endswith(("/", os.sep)) or Path(s).is_dir() or Path(s).suffix == ""


def open_writer(path: str | os.PathLike[str], info: VideoInfo) -> VideoWriter:
    """Open an atomic writer; the output format follows the path.

    ``.yuv`` raw planes (uint8 / uint16 LE), ``.y4m``, a path ending in ``/`` or without a suffix
    (a PNG folder), ``.mp4`` / ``.mkv`` (8-bit H.264 preview). ``info.frames`` is not enforced.

    Args:
        path: output file or folder; its parent folder must exist.
        info: geometry and sample format of the frames that will be written.

    Returns:
        A :class:`VideoWriter`; use it as a context manager so an exception leaves no output.

    Raises:
        InputError: unknown extension, missing parent folder, odd 4:2:0 size, bad bit depth.
    """
    p = Path(path)
    fmt = writer_format(path)
    if fmt == "png":
        return PngFolderWriter(p, info)
    if fmt == "yuv":
        return RawYuvWriter(p, info)
    if fmt == "y4m":
        return Y4mWriter(p, info)
    return PyAVWriter(p, info)


def writer_format(path: str | os.PathLike[str]) -> str:
    """The format :func:`open_writer` would write ``path`` in, from its name alone (nothing is opened):
    ``"png"`` (a folder), ``"yuv"``, ``"y4m"``, ``"mp4"`` or ``"mkv"``.

    Raises:
        InputError: an extension no writer handles.
    """
    if is_folder_target(path):
        return "png"
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".yuv", ".y4m", *WRITE_FORMATS):
        return ext[1:]
    raise InputError(f"unknown output extension {ext!r} of {p}; use .yuv, .y4m, .mp4, .mkv or a folder path")
