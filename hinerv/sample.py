"""The built-in demo clip: a smooth virtual camera over scikit-image's bundled photographs.

Two of ``skimage.data``'s photographs (astronaut, coffee, chelsea, rocket; they ship with the
package, nothing is downloaded) are filmed by a virtual camera that pans, slowly zooms and slightly
rotates with sub-pixel motion; the first photo cross-fades into the second around the middle of the
clip (clips shorter than 8 frames use one photo). Everything is derived from ``seed`` with numpy's
PCG64 generator and rendered with bilinear interpolation (``scipy.ndimage.map_coordinates``) after
an anti-alias Gaussian pre-filter, so the same arguments always give the same frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import ndimage

from hinerv.errors import ConfigError
from hinerv.types import VideoInfo

__all__ = ["PHOTOS", "sample_frames", "write_sample"]

#: skimage.data photographs the clip is drawn from.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

_MAX_ROT = 0.05  # radians (~2.9 degrees)
_FIT = 0.8  # fraction of the photo the un-zoomed, rotated view may cover


@lru_cache(maxsize=8)
def _photo(name: str, sigma: float) -> np.ndarray:
    """Photo ``name`` as float64 ``[3, h, w]`` in [0, 1], Gaussian-blurred by ``sigma`` pixels."""
    from skimage import data

    img = np.asarray(getattr(data, name)(), dtype=np.float64) / 255.0
    img = np.ascontiguousarray(img.transpose(2, 0, 1))
    if sigma > 0:
        img = ndimage.gaussian_filter(img, sigma=(0.0, sigma, sigma), mode="nearest")
    img.setflags(write=False)
    return img


def _smoothstep(p: float) -> float:
    return p * p * (3.0 - 2.0 * p)


class _Shot:
    """One photo and the camera path over it (all parameters fixed at construction)."""

    def __init__(self, name: str, rng: np.random.Generator, width: int, height: int) -> None:
        from skimage import data

        ph, pw = getattr(data, name)().shape[:2]
        self.name, self.w, self.h, self.pw, self.ph = name, width, height, pw, ph
        c, s = math.cos(_MAX_ROT), math.sin(_MAX_ROT)
        # source pixels per output pixel at zoom 1 so the rotated view fits with room to pan
        self.scale = _FIT * min(pw / (width * c + height * s), ph / (width * s + height * c))
        self.zoom = (1.0, float(rng.uniform(1.12, 1.3)))
        if rng.random() < 0.5:
            self.zoom = self.zoom[::-1]
        self.rot = (float(rng.uniform(-_MAX_ROT, _MAX_ROT)), float(rng.uniform(-_MAX_ROT, _MAX_ROT)))
        sign = rng.choice([-1.0, 1.0], size=2)
        self.pan = sign * rng.uniform(0.5, 0.85, size=2)
        self.wobble = rng.uniform(0.0, 2.0 * math.pi, size=2)
        self.sigma = 0.5 * math.sqrt(self.scale**2 - 1.0) if self.scale > 1.0 else 0.0

    def render(self, p: float) -> np.ndarray:
        """View at clip progress ``p`` in [0, 1]: float64 ``[3, H, W]`` in [0, 1]."""
        z = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * _smoothstep(p)
        s = self.scale / z
        phi = self.rot[0] + (self.rot[1] - self.rot[0]) * p
        c, sn = math.cos(phi), math.sin(phi)
        # half-extent of the rotated view and the room left for panning
        ex = 0.5 * s * (self.w * abs(c) + self.h * abs(sn))
        ey = 0.5 * s * (self.w * abs(sn) + self.h * abs(c))
        mx, my = max(0.0, self.pw / 2 - ex - 1), max(0.0, self.ph / 2 - ey - 1)
        ramp = 2.0 * _smoothstep(p) - 1.0
        fx = self.pan[0] * ramp + 0.1 * math.sin(2 * math.pi * p + self.wobble[0])
        fy = self.pan[1] * ramp + 0.1 * math.sin(2 * math.pi * p + self.wobble[1])
        cx = (self.pw - 1) / 2 + mx * fx
        cy = (self.ph - 1) / 2 + my * fy
        v, u = np.mgrid[0 : self.h, 0 : self.w].astype(np.float64)
        u -= (self.w - 1) / 2
        v -= (self.h - 1) / 2
        xs = cx + s * (c * u - sn * v)
        ys = cy + s * (sn * u + c * v)
        img = _photo(self.name, round(self.sigma, 3))
        out = np.empty((3, self.h, self.w), np.float64)
        for ch in range(3):
            out[ch] = ndimage.map_coordinates(img[ch], [ys, xs], order=1, mode="nearest")
        return out


def sample_frames(
    width: int = 256, height: int = 144, frames: int = 32, *, seed: int = 0
) -> Iterator[np.ndarray]:
    """Generate the demo clip lazily.

    Args:
        width, height: frame size in pixels (positive, even).
        frames: number of frames T (>= 1).
        seed: chooses the photos and the camera path; equal arguments give equal frames.

    Returns:
        An iterator of float32 ``[3, height, width]`` RGB frames in [0, 1], rendered on demand.

    Raises:
        ConfigError: odd or non-positive size, no frames (raised at the call, not at iteration).
    """
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ConfigError(f"sample size must be positive and even, got {width}x{height}")
    if frames < 1:
        raise ConfigError(f"sample needs at least one frame, got {frames}")
    return _generate(width, height, frames, seed)


def _generate(width: int, height: int, frames: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    names = [PHOTOS[i] for i in rng.permutation(len(PHOTOS))[:2]]
    shots = [_Shot(n, rng, width, height) for n in names]
    fade = max(2, frames // 4) if frames >= 8 else 0
    f0 = (frames - fade) / 2  # first frame index of the cross-fade
    for t in range(frames):
        p = t / (frames - 1) if frames > 1 else 0.0
        a = min(1.0, max(0.0, (t - f0 + 0.5) / fade)) if fade else 0.0
        if a <= 0.0:
            img = shots[0].render(p)
        elif a >= 1.0:
            img = shots[1].render(p)
        else:
            img = (1.0 - a) * shots[0].render(p) + a * shots[1].render(p)
        yield np.clip(img, 0.0, 1.0).astype(np.float32)


def write_sample(
    path: str | os.PathLike[str],
    *,
    width: int = 256,
    height: int = 144,
    frames: int = 32,
    fps: int | Fraction = 30,
) -> VideoInfo:
    """Write the demo clip (seed 0) through :func:`hinerv.io.open_writer`.

    ``.yuv`` / ``.y4m`` / ``.mp4`` get 8-bit 4:2:0 BT.601 limited range; a PNG folder gets 8-bit
    RGB (``chroma="444"``).

    Args:
        path: output file or folder (format from the extension, see ``open_writer``).
        width, height: frame size (positive, even).
        frames: number of frames.
        fps: frame rate stored in the header (y4m, mp4) and returned.

    Returns:
        The :class:`VideoInfo` of what was written.
    """
    from hinerv.io import is_folder_target, open_writer

    info = VideoInfo(
        width=width,
        height=height,
        frames=frames,
        fps=Fraction(fps),
        bit_depth=8,
        chroma="444" if is_folder_target(path) else "420",
        matrix="bt601",
        full_range=False,
    )
    frame_iter = sample_frames(width, height, frames)
    with open_writer(path, info) as w:
        for rgb in frame_iter:
            w.write_rgb(rgb)
    return info
