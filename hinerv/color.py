"""Y'CbCr <-> R'G'B' conversion (BT.601 / BT.709, limited / full range) and 4:2:0 resampling.

Pure numpy (no torch) so any layer may import it.

Conventions
-----------
* Integer YUV planes: ``y [H, W]``; ``u, v [H/2, W/2]`` (4:2:0) or ``[H, W]`` (4:4:4); uint8 for
  8-bit, uint16 above, values in ``[0, 2**bit_depth - 1]``.
* RGB frames: float32 ``[3, H, W]`` in ``[0, 1]`` (gamma-encoded R'G'B', no transfer function).
* Limited ("MPEG", "studio") range at bit depth b, with s = 2**(b-8): Y = 16s + 219s*Y',
  C = 128s + 224s*C'. Full ("JPEG") range: Y = peak*Y', C = 2**(b-1) + peak*C', peak = 2**b - 1.
* Matrices: BT.601 (Kr, Kb) = (0.299, 0.114); BT.709 (0.2126, 0.0722).
* Rounding: every float -> integer step rounds half **up** (``floor(x + 0.5)``), then clips.

Chroma siting (4:2:0)
---------------------
MPEG-2 / H.264 default ("left", chroma_sample_location 0): a chroma sample (i, j) sits at luma
position (row 2i + 0.5, column 2j), i.e. co-sited with the even luma columns horizontally and centred
between the two luma rows vertically.

* Up-sampling (:func:`upsample_420`) is bilinear at exactly those positions: an even luma column
  takes its chroma column as is, an odd one the mean of its two neighbours; luma row 2i takes
  ``0.75*c[i] + 0.25*c[i-1]``, row 2i+1 takes ``0.75*c[i] + 0.25*c[i+1]``. Edges replicate.
* Down-sampling (:func:`downsample_420`) averages consistently with that siting: the two luma rows
  2i, 2i+1 with weights (1/2, 1/2) and the three luma columns 2j-1, 2j, 2j+1 with weights
  (1/4, 1/2, 1/4) (column -1 replicates column 0).

ffmpeg/swscale differs in chroma handling, not in the matrix: on 4:4:4 input our BT.601 limited
conversion matches swscale to ~0.003 LSB (mean |d|, 8-bit). For 4:2:0, swscale's accurate bilinear
path treats chroma as *centred* (JPEG siting) and its default path (what ``ffmpeg -i x.yuv %d.png``
and the HiNeRV reference PNGs use) roughly replicates chroma; on a frame with strongly varying
chroma that puts us ~1.3 LSB (accurate) / ~2.4 LSB (default) away on average, while our matrix fed
with centred chroma matches swscale-accurate to ~0.004 LSB (``tests/test_color.py``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "MATRICES",
    "dequantize_rgb",
    "downsample_420",
    "quantize_rgb",
    "rgb_to_yuv",
    "sample_dtype",
    "upsample_420",
    "yuv_to_rgb",
]

#: (Kr, Kb) luma coefficients per matrix; Kg = 1 - Kr - Kb.
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
}


def sample_dtype(bit_depth: int) -> type[np.unsignedinteger]:
    """The integer dtype that holds samples at ``bit_depth``: uint8 up to 8 bits, uint16 above."""
    _check_depth(bit_depth)
    return np.uint8 if bit_depth <= 8 else np.uint16


def _check_depth(bit_depth: int) -> None:
    if not isinstance(bit_depth, (int, np.integer)) or not 1 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be an integer in 1..16, got {bit_depth!r}")


def _coefs(matrix: str) -> tuple[float, float, float]:
    try:
        kr, kb = MATRICES[matrix]
    except KeyError:
        raise ValueError(f"unknown matrix {matrix!r}; expected one of {sorted(MATRICES)}") from None
    return kr, 1.0 - kr - kb, kb


def _levels(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """(y_offset, y_scale, c_offset, c_scale) mapping Y' in [0,1], C' in [-1/2,1/2] to code values."""
    _check_depth(bit_depth)
    if full_range:
        peak = float((1 << bit_depth) - 1)
        return 0.0, peak, float(1 << (bit_depth - 1)), peak
    s = float(2 ** (bit_depth - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def _code_range(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """(y_lo, y_hi, c_lo, c_hi): the code values an encoder clips Y' and C' samples to."""
    if full_range:
        peak = float((1 << bit_depth) - 1)
        return 0.0, peak, 0.0, peak
    s = float(2 ** (bit_depth - 8))
    return 16.0 * s, 235.0 * s, 16.0 * s, 240.0 * s


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def upsample_420(c: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear 4:2:0 -> 4:4:4 chroma up-sampling with MPEG-2 siting (see module docstring).

    Args:
        c: chroma plane ``[height/2, width/2]``, any real dtype.
        height, width: luma size (even).

    Returns:
        float32 ``[height, width]``, not rounded.
    """
    hc, wc = height // 2, width // 2
    if c.shape != (hc, wc) or height % 2 or width % 2:
        raise ValueError(f"chroma plane {c.shape} does not match 4:2:0 of {height}x{width}")
    c = c.astype(np.float32, copy=False)
    # vertical: rows 2i (-0.25) and 2i+1 (+0.25) around chroma row i
    up = np.concatenate([c[:1], c[:-1]], axis=0)
    down = np.concatenate([c[1:], c[-1:]], axis=0)
    rows = np.empty((height, wc), np.float32)
    rows[0::2] = 0.75 * c + 0.25 * up
    rows[1::2] = 0.75 * c + 0.25 * down
    # horizontal: even columns co-sited, odd columns halfway
    right = np.concatenate([rows[:, 1:], rows[:, -1:]], axis=1)
    out = np.empty((height, width), np.float32)
    out[:, 0::2] = rows
    out[:, 1::2] = 0.5 * (rows + right)
    return out


def downsample_420(c: np.ndarray) -> np.ndarray:
    """4:4:4 -> 4:2:0 chroma down-sampling by averaging with MPEG-2 siting (see module docstring).

    Args:
        c: full-resolution chroma ``[H, W]`` (H, W even), real dtype.

    Returns:
        float64 ``[H/2, W/2]``, not rounded.
    """
    h, w = c.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even frame size, got {w}x{h}")
    c = c.astype(np.float64, copy=False)
    rows = 0.5 * (c[0::2] + c[1::2])
    even = rows[:, 0::2]
    odd = rows[:, 1::2]
    left = np.concatenate([even[:, :1], odd[:, :-1]], axis=1)  # column 2j-1 (replicate at j=0)
    return 0.25 * left + 0.5 * even + 0.25 * odd


def yuv_to_rgb(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    *,
    bit_depth: int = 8,
    matrix: Literal["bt601", "bt709"] = "bt601",
    full_range: bool = False,
) -> np.ndarray:
    """Integer Y'CbCr planes to float R'G'B'.

    Args:
        y: luma ``[H, W]``, integer samples at ``bit_depth``.
        u, v: chroma ``[H/2, W/2]`` (4:2:0, up-sampled bilinearly) or ``[H, W]`` (4:4:4).
        bit_depth: bits per sample (8..16 typical).
        matrix: ``"bt601"`` or ``"bt709"``.
        full_range: full ("JPEG") instead of limited ("MPEG") range.

    Returns:
        float32 ``[3, H, W]`` RGB in ``[0, 1]`` (clipped).
    """
    kr, kg, kb = _coefs(matrix)
    yo, ys, co, cs = _levels(bit_depth, full_range)
    h, w = y.shape
    if u.shape != v.shape:
        raise ValueError(f"U {u.shape} and V {v.shape} planes differ in shape")
    if u.shape == (h, w):
        uf = u.astype(np.float32)
        vf = v.astype(np.float32)
    else:
        uf = upsample_420(u, h, w)
        vf = upsample_420(v, h, w)
    yn = (y.astype(np.float32) - np.float32(yo)) * np.float32(1.0 / ys)
    cb = (uf - np.float32(co)) * np.float32(1.0 / cs)
    cr = (vf - np.float32(co)) * np.float32(1.0 / cs)
    out = np.empty((3, h, w), np.float32)
    out[0] = yn + np.float32(2.0 * (1.0 - kr)) * cr
    out[2] = yn + np.float32(2.0 * (1.0 - kb)) * cb
    out[1] = yn - np.float32(2.0 * kr * (1.0 - kr) / kg) * cr - np.float32(2.0 * kb * (1.0 - kb) / kg) * cb
    np.clip(out, 0.0, 1.0, out=out)
    return out


def rgb_to_yuv(
    rgb: np.ndarray,
    *,
    bit_depth: int = 8,
    matrix: Literal["bt601", "bt709"] = "bt601",
    full_range: bool = False,
    chroma: Literal["420", "444"] = "420",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float R'G'B' to integer Y'CbCr planes.

    Args:
        rgb: ``[3, H, W]`` float in ``[0, 1]`` (values outside are clipped first).
        bit_depth: bits per sample of the output.
        matrix: ``"bt601"`` or ``"bt709"``.
        full_range: full ("JPEG") instead of limited ("MPEG") range.
        chroma: ``"420"`` (chroma averaged to ``[H/2, W/2]``, H and W even) or ``"444"``.

    Returns:
        ``(y, u, v)``: ``y [H, W]``, ``u, v [H/2, W/2]`` or ``[H, W]``; uint8 for ``bit_depth <= 8``,
        uint16 above; rounded half up and clipped to the legal range (limited: Y 16..235,
        C 16..240, times 2**(b-8); full: 0..2**b-1).
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be [3, H, W], got {rgb.shape}")
    if chroma not in ("420", "444"):
        raise ValueError(f"chroma must be '420' or '444', got {chroma!r}")
    kr, kg, kb = _coefs(matrix)
    yo, ys, co, cs = _levels(bit_depth, full_range)
    x = np.clip(rgb.astype(np.float64), 0.0, 1.0)
    r, g, b = x[0], x[1], x[2]
    yn = kr * r + kg * g + kb * b
    cb = (b - yn) / (2.0 * (1.0 - kb))
    cr = (r - yn) / (2.0 * (1.0 - kr))
    if chroma == "420":
        cb = downsample_420(cb)
        cr = downsample_420(cr)
    dt = sample_dtype(bit_depth)
    lo_y, hi_y, lo_c, hi_c = _code_range(bit_depth, full_range)

    def q(p: np.ndarray, off: float, scale: float, lo: float, hi: float) -> np.ndarray:
        return np.clip(_round_half_up(off + scale * p), lo, hi).astype(dt)

    return q(yn, yo, ys, lo_y, hi_y), q(cb, co, cs, lo_c, hi_c), q(cr, co, cs, lo_c, hi_c)


def quantize_rgb(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float RGB in [0, 1] to integers ``round_half_up(clip(rgb) * (2**b - 1))``.

    Args:
        rgb: float ``[3, H, W]`` (any shape works) in ``[0, 1]``; values outside are clipped.
        bit_depth: bits per sample b.

    Returns:
        uint8 (b <= 8) or uint16 array of the same shape, values in ``[0, 2**b - 1]``.
    """
    dt = sample_dtype(bit_depth)
    x = np.asarray(rgb)
    ft = np.float32 if x.dtype in (np.float32, np.float16) else np.float64  # float32 is exact enough
    x = x.astype(ft)  # a private copy, modified in place below
    np.clip(x, 0.0, 1.0, out=x)
    x *= ft((1 << bit_depth) - 1)
    x += ft(0.5)
    np.floor(x, out=x)
    return x.astype(dt)


def dequantize_rgb(q: np.ndarray, bit_depth: int) -> np.ndarray:
    """Integer RGB at ``bit_depth`` to float32 in [0, 1]: ``q / (2**b - 1)``.

    Args:
        q: integer array ``[3, H, W]`` (any shape works).
        bit_depth: bits per sample b.

    Returns:
        float32 array of the same shape.
    """
    _check_depth(bit_depth)
    return (np.asarray(q).astype(np.float32) / np.float32((1 << bit_depth) - 1)).astype(
        np.float32, copy=False
    )
