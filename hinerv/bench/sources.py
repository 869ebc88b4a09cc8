"""Benchmark sources: a video to code, optionally cut to its first N frames and rescaled.

With ``--frames N`` or ``--scale F`` the source is rewritten once as a ``.y4m`` in the work folder
(cached: a later run reuses it) so every codec sees exactly the same frames. Scaling works on the
YUV planes (luma at W'xH', chroma at W'/2 x H'/2) with an anti-aliased bicubic filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hinerv.errors import ConfigError, InputError
from hinerv.types import VideoInfo

__all__ = ["Source", "prepare_source", "scaled_size", "resize_plane"]


@dataclass(frozen=True)
class Source:
    """A prepared benchmark input.

    Attributes:
        name: sequence name used in result files.
        path: the file the codecs read.
        info: its geometry (after cutting and scaling).
        reader_options: keyword options for :func:`hinerv.io.open_video` (raw ``.yuv`` geometry).
        original: the user's file.
    """

    name: str
    path: Path
    info: VideoInfo
    reader_options: dict[str, Any] = field(default_factory=dict)
    original: Path | None = None

    def open(self) -> Any:
        """Open :attr:`path` with :func:`hinerv.io.open_video` (a ``VideoReader``)."""
        from hinerv.io import open_video

        return open_video(self.path, **self.reader_options)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``(W*scale, H*scale)`` rounded to even integers (4:2:0), at least 16x16."""
    if not scale > 0:
        raise ConfigError(f"--scale must be positive, got {scale}")
    w = max(16, int(round(width * scale / 2)) * 2)
    h = max(16, int(round(height * scale / 2)) * 2)
    return w, h


def resize_plane(plane: np.ndarray, height: int, width: int, peak: int) -> np.ndarray:
    """Resample one integer plane ``[h, w]`` to ``[height, width]`` (bicubic, anti-aliased when
    shrinking), rounded and clipped to ``[0, peak]``; dtype is kept (uint8 / uint16)."""
    import torch
    import torch.nn.functional as F

    if plane.shape == (height, width):
        return plane.copy()
    x = torch.from_numpy(plane.astype(np.float32))[None, None]
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    out = y[0, 0].round().clamp(0, peak).numpy()
    return out.astype(plane.dtype)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "video"


def prepare_source(
    path: Path,
    workdir: Path,
    *,
    name: str | None = None,
    frames: int | None = None,
    scale: float | None = None,
    reader_options: dict[str, Any] | None = None,
) -> Source:
    """Open ``path`` and, when ``frames`` or ``scale`` is given, write the cut/rescaled copy
    ``<workdir>/sources/<name>_<W>x<H>_<T>f.y4m`` (reused when present).

    Args:
        path: any video :func:`hinerv.io.open_video` reads.
        workdir: cache folder for prepared copies.
        name: sequence name (default: the file stem).
        frames: keep only the first N frames.
        scale: resize factor for width and height (even sizes).
        reader_options: geometry for raw ``.yuv`` (width, height, fps, bit_depth).

    Raises:
        InputError: unreadable source; ConfigError: bad ``frames`` / ``scale``.
    """
    from hinerv.io import open_video, open_writer

    path = Path(path)
    ropts = dict(reader_options or {})
    nm = name or path.stem
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    reader = open_video(path, **ropts)
    try:
        info = reader.info
        n = len(reader) if frames is None else min(frames, len(reader))
        if n < 1:
            raise InputError(f"{path}: no frames")
        w, h = (info.width, info.height) if scale is None else scaled_size(info.width,
                                                                            info.height, scale)
        if scale is None and info.chroma == "420" and path.suffix.lower() in (".yuv", ".y4m"):
            # Raw and y4m files are read in place; --frames only limits the reader.
            opts = {**ropts, "max_frames": n} if frames is not None else ropts
            return Source(nm, path, replace(info, frames=n), opts, path)
        out_info = replace(info, width=w, height=h, frames=n, chroma="420")
        dst = Path(workdir) / "sources" / f"{_slug(nm)}_{w}x{h}_{n}f.y4m"
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open_writer(dst, out_info) as wr:
                for t in range(n):
                    y, u, v = reader.read_yuv(t)
                    if (w, h) != (info.width, info.height):
                        y = resize_plane(y, h, w, info.peak)
                        u = resize_plane(u, h // 2, w // 2, info.peak)
                        v = resize_plane(v, h // 2, w // 2, info.peak)
                    wr.write_yuv(y, u, v)
        return Source(nm, dst, out_info, {}, path)
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()

