"""Plain value types shared across layers (no I/O, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = ["VideoInfo"]


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder must know about a video besides its pixels.

    Attributes:
        width, height: luma size in pixels (even for 4:2:0).
        frames: number of frames T.
        fps: frame rate as an exact fraction (e.g. ``Fraction(30000, 1001)``).
        bit_depth: bits per sample of the source, 8..16 (stored in uint16 above 8).
        chroma: ``"420"`` (YUV 4:2:0 sources) or ``"444"`` (RGB sources such as PNG folders).
        matrix: YUV<->RGB matrix, ``"bt601"`` (default: what ffmpeg assumes for untagged YUV and
            what published HiNeRV numbers use) or ``"bt709"``.
        full_range: True for full-range ("JPEG") YUV, False for limited ("MPEG", 16..235).
    """

    width: int
    height: int
    frames: int
    fps: Fraction = Fraction(30)
    bit_depth: int = 8
    chroma: Literal["420", "444"] = "420"
    matrix: Literal["bt601", "bt709"] = "bt601"
    full_range: bool = False

    @property
    def pixels(self) -> int:
        """T*H*W, the pixel count bpp is measured against (luma pixels, counted once)."""
        return self.frames * self.height * self.width

    @property
    def peak(self) -> int:
        """Largest sample value, 2**bit_depth - 1."""
        return (1 << self.bit_depth) - 1
