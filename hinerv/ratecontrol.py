"""Rate control for the ``rd`` pipeline: land a file at a target size.

Two mechanisms, used together by :mod:`hinerv.codec`:

* during training, :func:`hinerv.pipelines.rd.adapt_lambda` moves λ after every epoch towards the target
  (the network learns to spend the bits well), and when the last stage starts every step jumps by the
  common factor that lands the file on the target (:meth:`hinerv.pipelines.rd.RDRecipe.refit_now`), so
  the network trains that stage at the steps it will be coded with;
* after training, :func:`land_on_target` scales every learned step by one common factor
  (:func:`fit_step_factor`: bisection on the real coded size), so the file lands within a tolerance
  of the target, within :data:`FIT_OCTAVES` octaves either way (the search range of the first
  design). Steps far coarser than trained cost quality: on a 128x96x16 clip, size s, targets
  0.05 / 0.15 bpp decoded at 10.7 / 14.4 dB where training had reached 17.4 dB with the final fit
  alone, 11.4 / 15.7 dB with the jump (issue #16).
  A target the bounded fit cannot reach is reported (:attr:`Landing.met` False, :attr:`Landing.note`),
  never met silently, and so is one met with steps over :data:`COARSE_OCTAVES` octaves coarser.

Before training, :func:`size_for_target` picks the ladder size for a target when the request leaves the
size to the encoder (``--size auto``, the default): the largest size whose expected rate at its ladder λ
(:func:`expected_bpp`) is at most the target, so rate control pushes a network up to the target, never down;
and unless λ was given, training starts at the λ expected to land the size on the target
(:func:`lambda_for_target`) rather than at the ladder's.

Pure logic: the caller supplies a function that returns the coded size for a step factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "RD_BITS_PER_PARAM",
    "RD_BITS_SLOPE",
    "RD_MEASURED_PARAMS",
    "RD_LAMBDA_ELASTICITY",
    "LAMBDA_OCTAVES",
    "expected_bpp",
    "lambda_for_target",
    "size_for_target",
    "fit_step_factor",
    "land_on_target",
    "Landing",
    "FIT_OCTAVES",
    "COARSE_OCTAVES",
    "SIZE_SLOPE_GUESS",
    "TARGET_TOLERANCE",
    "MAX_TARGET_BPP",
]

#: How far (log2) the final fit may move the trained steps (the first design's search range).
FIT_OCTAVES = 4.0

#: Steps coarser than trained by more than this many octaves meet the rate at a large cost in quality
#: (issue #16, 128x96x16 clip, size s: 14.4x / 8.4x / 3.7x coarser decoded at 10.7 / 14.4 / 16.7 dB where
#: training reached 17.35 dB): beyond this the landing says so.
COARSE_OCTAVES = 2.0

#: The promise of ``--target-bpp``: the file lands within this relative error of the target.
TARGET_TOLERANCE = 0.05

#: Largest accepted ``--target-bpp``: raw 8-bit RGB (twice raw 8-bit 4:2:0); no codec needs more.
MAX_TARGET_BPP = 24.0

#: Bits per parameter of an rd stream at its size's ladder λ, for a network of 100k parameters, and the
#: power of the parameter count it scales with (larger networks code each parameter in fewer bits). A
#: least-squares fit of ``log(bits / params)`` against ``log(params)`` over the 8 points of the default
#: encoder's ladder of issue #19 (``docs/results/budget/<clip>/hinerv-rd-blend-auto-auto-t600s.json``:
#: vtest 384x288x128 and bunny 320x180x132, sizes xs..l, 31k-228k parameters, 10 minutes a point):
#: residuals within ±12 %. The first fit (3.39 bits, slope −0.169, over earlier ladders) predicted the
#: default encoder's rates 1-29 % low. Outside the measured range the law is not extrapolated: counts are
#: clamped to :data:`RD_MEASURED_PARAMS`.
RD_BITS_PER_PARAM = 3.94
RD_BITS_SLOPE = -0.151
RD_MEASURED_PARAMS = (30_000, 230_000)

#: How the rate of an rd encode follows λ at a fixed size: ``bpp ∝ λ ** -RD_LAMBDA_ELASTICITY``. Measured at
#: 10 minutes a point (issue #19, default encoder): s at λ 1 -> 0.5 took vtest from 0.0200 to 0.0228 bpp
#: and bunny from 0.0332 to 0.0390 (elasticity 0.19 / 0.23); m at λ 0.5 -> 0.125 took them from 0.0341 to
#: 0.0445 and from 0.0571 to 0.0778 (0.19 / 0.22). The rate moves little with λ: a target 20 % off a size's
#: own rate needs λ about 2.5x away from the ladder's.
RD_LAMBDA_ELASTICITY = 0.2

#: How far (log2) :func:`lambda_for_target` may move λ from the ladder's.
LAMBDA_OCTAVES = 4.0


def expected_bpp(params: int, pixels: int) -> float:
    """The rate an rd encode of a ``params``-parameter network at its ladder λ is expected to land at,
    in bits per pixel of a ``pixels`` = ``T * H * W`` video (within about ±20 %, see
    :data:`RD_BITS_PER_PARAM`)."""
    lo, hi = RD_MEASURED_PARAMS
    bits_per_param = RD_BITS_PER_PARAM * (min(max(params, lo), hi) / 1e5) ** RD_BITS_SLOPE
    return bits_per_param * params / pixels


def lambda_for_target(lam: float, params: int, pixels: int, target_bpp: float) -> float:
    """The λ to start a rate-controlled encode at: the ladder's ``lam`` moved by the factor that takes the
    size's expected rate (:func:`expected_bpp`) to ``target_bpp`` under :data:`RD_LAMBDA_ELASTICITY`, within
    :data:`LAMBDA_OCTAVES` octaves. A target above the expected rate lowers λ, one below raises it.

    Args:
        lam: the size's ladder λ (> 0; 0 is returned as it is: no rate term).
        params: the network's parameter count.
        pixels: ``T * H * W`` of the video.
        target_bpp: the requested rate, > 0.
    """
    if not (lam > 0 and target_bpp > 0 and pixels > 0):
        return lam
    octaves = math.log2(expected_bpp(params, pixels) / target_bpp) / RD_LAMBDA_ELASTICITY
    return lam * math.exp2(max(-LAMBDA_OCTAVES, min(LAMBDA_OCTAVES, octaves)))


def size_for_target(target_bpp: float, width: int, height: int, frames: int) -> str:
    """The largest ladder size (:data:`hinerv.model.SIZES`) whose :func:`expected_bpp` is at most
    ``target_bpp`` (the smallest size when even that one is expected above it).

    A size is pushed up to a target, never down: at the log-midpoint between ``s``'s and ``m``'s rates,
    ``s`` trained to the target beat ``m`` trained to it by 0.70 dB PSNR-RGB on vtest 384x288x128 and by
    1.54 dB on bunny 320x180x132 (10 minutes a point, issue #19; docs/results/budget/README.md).

    Args:
        target_bpp: the requested rate, > 0.
        width, height, frames: the video (unpadded).
    """
    from hinerv.model.arch import derive_arch, padded_size
    from hinerv.model.counts import count_params_arch
    from hinerv.model.sizes import SIZES, ladder_config

    pixels = width * height * frames
    best = SIZES[0]
    for size in SIZES:
        cfg = ladder_config(size, width, height, frames)
        hp, wp = padded_size(height, width, cfg)
        params = count_params_arch(derive_arch(cfg, frames, hp, wp))["total"]
        if expected_bpp(params, pixels) > target_bpp:
            break
        best = size
    return best


#: How the coded size follows the step factor near the trained steps, ``d ln(bytes) / d log2(f)``: about a bit
#: less per coded value for each octave coarser, at 4-5 bits a value. Only the first guess of
#: :func:`fit_step_factor` uses it; the secant steps after it use the sizes measured.
SIZE_SLOPE_GUESS = -0.2


def fit_step_factor(
    size_at: Callable[[float], int],
    target_bytes: float,
    *,
    tolerance: float = 0.03,
    max_octaves: float = 4.0,
    iterations: int = 12,
) -> tuple[float, int]:
    """Find ``f`` with ``size_at(f)`` within ``tolerance`` of ``target_bytes``.

    Larger steps give smaller files, so ``size_at`` is (nearly) decreasing in ``f``. The search runs on
    ``x = log2 f`` in ``[-max_octaves, max_octaves]`` with ``ln(size / target)``, which is close to linear
    in ``x``: a first step from :data:`SIZE_SLOPE_GUESS`, then secant steps through the two closest
    sizes measured on either side of the target, falling back to bisection of that bracket when a secant
    step would leave it. Each ``size_at`` call codes the whole stream, so the number of calls is the cost:
    typically 2-3 where bisection took 4-7.

    Args:
        size_at: coded size in bytes when every step is multiplied by ``f``.
        target_bytes: the wanted size.
        tolerance: relative error that ends the search early.
        max_octaves: search ``f`` in ``[2**-max_octaves, 2**max_octaves]``.
        iterations: ``size_at`` calls at most after the first.

    Returns:
        ``(f, size)`` of the best factor tried (closest to the target).
    """
    seen: dict[float, int] = {}

    def measure(x: float) -> float:
        seen[x] = n = size_at(math.exp2(x))
        return math.log(max(n, 1) / target_bytes)

    x, g = 0.0, measure(0.0)
    lo, hi = -max_octaves, max_octaves  # the target lies between: g(lo) > 0 > g(hi) once measured
    g_lo: float | None = None
    g_hi: float | None = None
    prev: tuple[float, float] | None = None
    for _ in range(iterations):
        if abs(seen[x] - target_bytes) <= tolerance * target_bytes:
            break
        if g > 0:  # too big: coarser steps (x up)
            lo, g_lo = x, g
        else:
            hi, g_hi = x, g
        if g_lo is not None and g_hi is not None:
            nxt = lo + g_lo * (hi - lo) / (g_lo - g_hi)  # secant through the bracket's ends
        else:  # one side only: a step along the measured slope (the guess at first), overshot to bracket
            slope = SIZE_SLOPE_GUESS
            if prev is not None and prev[0] != x and (g - prev[1]) / (x - prev[0]) < 0:
                slope = (g - prev[1]) / (x - prev[0])
            nxt = x - 1.25 * g / slope
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2
        if nxt in seen or hi - lo < 1e-6:
            break
        prev = (x, g)
        x, g = nxt, measure(nxt)
    x_best = min(seen, key=lambda k: abs(seen[k] - target_bytes))
    return math.exp2(x_best), seen[x_best]


@dataclass(frozen=True)
class Landing:
    """Where the final fit put the file.

    Attributes:
        factor: the common step factor, in ``[2**-FIT_OCTAVES, 2**FIT_OCTAVES]``.
        bytes: the coded size at ``factor``.
        bpp: ``8 * bytes / pixels``.
        target_bpp: the requested rate.
        met: ``bpp`` is within :data:`TARGET_TOLERANCE` of the target.
        note: one line for the user: why the target was not met, or the quality cost of meeting it
            (steps over :data:`COARSE_OCTAVES` octaves coarser than trained); None otherwise.
    """

    factor: float
    bytes: int
    bpp: float
    target_bpp: float
    met: bool
    note: str | None


def land_on_target(
    size_at: Callable[[float], int],
    target_bpp: float,
    pixels: int,
    *,
    octaves: float = FIT_OCTAVES,
    tolerance: float = 0.02,
    jumped: float = 1.0,
) -> Landing:
    """Fit the step factor (within ``octaves`` of the trained steps) so the file lands on ``target_bpp``.

    Args:
        size_at: coded size in bytes when every step is multiplied by ``f``.
        target_bpp: the wanted rate (bits per pixel, > 0).
        pixels: ``T * H * W`` of the video.
        octaves: the factor stays in ``[2**-octaves, 2**octaves]``.
        tolerance: relative error that ends the search early (below :data:`TARGET_TOLERANCE`).
        jumped: the factor the steps were already scaled by during training (the jump to the target
            when the last stage started); it counts towards :data:`COARSE_OCTAVES`.

    Returns:
        The closest :class:`Landing`; ``met`` False with a ``note`` when the target is out of reach, and
        ``met`` True with a ``note`` when it needed steps over :data:`COARSE_OCTAVES` octaves coarser
        than trained.
    """
    target_bytes = target_bpp * pixels / 8
    f, n = fit_step_factor(size_at, target_bytes, tolerance=tolerance, max_octaves=octaves)
    bpp = 8 * n / pixels
    met = abs(n - target_bytes) <= TARGET_TOLERANCE * target_bytes
    note = None
    if not met:
        if bpp > target_bpp:
            how = (
                f"the model coded with steps {2**octaves:g}x coarser than trained still takes {bpp:.4g} bpp; "
                "use a smaller --size (or a longer --schedule / --epochs)"
            )
        else:
            how = (
                f"the model coded with steps {2**octaves:g}x finer than trained only takes {bpp:.4g} bpp; "
                "use a larger --size (or a longer --schedule / --epochs)"
            )
        note = f"--target-bpp {target_bpp:g} not reached at this size and schedule: {how}"
    elif f * jumped > 2**COARSE_OCTAVES and jumped > 1.0:
        note = (
            f"--target-bpp {target_bpp:g} met with steps {f * jumped:.3g}x coarser than the network "
            "learned before rate control: expect a large loss of quality; for this rate use a smaller "
            "--size (or a longer --schedule / --epochs)"
        )
    elif f > 2**COARSE_OCTAVES:
        trained = 8 * size_at(1.0) / pixels
        note = (
            f"--target-bpp {target_bpp:g} met with steps {f:.3g}x coarser than the network was trained with "
            f"(it trained to {trained:.4g} bpp): expect a large loss of quality; for this rate use a smaller "
            "--size (or a longer --schedule / --epochs)"
        )
    return Landing(factor=f, bytes=n, bpp=bpp, target_bpp=target_bpp, met=met, note=note)
