"""Bjøntegaard-delta metrics (VCEG-M33): BD-rate and BD-PSNR between two RD curves.

BD-rate fits log10(rate) as a function of quality for both curves, integrates the difference over the
overlapping quality interval and reports ``(10**mean_diff - 1) * 100`` percent: negative means the
*test* codec needs fewer bits than the *anchor* at equal quality. BD-PSNR swaps the axes (quality as a
function of log10 rate, mean difference in dB over the overlapping log-rate interval).

Interpolation (``method``):

* ``"pchip"`` (default): piecewise cubic Hermite, as the JCT-VC/JVET CTC Excel sheet and DCVC.
* ``"akima"``: Akima spline, recommended by Herglotz et al. (arXiv 2202.12565).
* ``"cubic"``: the original single third-order polynomial fit of VCEG-M33 (can be unstable).

Rates may be in any unit (bpp, kbps, bytes): only ratios matter.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator

from hinerv.errors import ConfigError

__all__ = [
    "BDResult",
    "Comparison",
    "Method",
    "METHODS",
    "MIN_POINTS",
    "bd_compare",
    "bd_psnr",
    "bd_rate",
    "compare_results",
    "msssim_db",
    "rate_gap",
    "bd_scale",
]

Method = Literal["pchip", "akima", "cubic"]
METHODS: tuple[str, ...] = ("pchip", "akima", "cubic")

#: fewer points than this per curve triggers a warning (the CTC uses 4).
MIN_POINTS = 4


@dataclass(frozen=True)
class BDResult:
    """One BD comparison of a test curve against an anchor curve.

    Attributes:
        bd_rate: percent rate difference at equal quality (negative = test saves bits); NaN when
            the quality ranges do not overlap.
        bd_quality: mean quality difference (test - anchor) at equal rate, in the metric's unit
            (dB for PSNR); NaN when the rate ranges do not overlap.
        quality_overlap: (lo, hi) of the quality interval the BD-rate integrates over.
        rate_overlap: (lo, hi) of the rate interval BD-PSNR integrates over (original unit).
        points: (anchor points, test points) used after dropping non-finite entries.
        method: interpolation used.
    """

    bd_rate: float
    bd_quality: float
    quality_overlap: tuple[float, float]
    rate_overlap: tuple[float, float]
    points: tuple[int, int]
    method: str

    @property
    def overlaps(self) -> bool:
        """Whether the two curves share a quality interval (else ``bd_rate`` is NaN)."""
        return self.quality_overlap[1] > self.quality_overlap[0]

    def as_dict(self) -> dict[str, float | int | str | list[float] | None]:
        """JSON-friendly mapping of all fields: a value that does not exist (no overlap) is None,
        never NaN (which is not JSON)."""
        q_ok = self.quality_overlap[1] > self.quality_overlap[0]
        r_ok = self.rate_overlap[1] > self.rate_overlap[0]
        return {
            "bd_rate": _or_none(self.bd_rate),
            "bd_quality": _or_none(self.bd_quality),
            "quality_overlap": list(self.quality_overlap) if q_ok else None,
            "rate_overlap": list(self.rate_overlap) if r_ok else None,
            "points_anchor": self.points[0],
            "points_test": self.points[1],
            "method": self.method,
        }


def msssim_db(v: float) -> float:
    """MS-SSIM in dB: ``-10 log10(1 - v)`` (inf for v >= 1)."""
    return math.inf if v >= 1 else -10.0 * math.log10(1.0 - v)


def bd_scale(metric: str, values: Sequence[float]) -> list[float]:
    """Quality values on the scale BD metrics are computed on: MS-SSIM metrics (``ms-ssim*``) in dB
    (:func:`msssim_db`, as is customary), every other metric as it is."""
    if metric.startswith("ms-ssim"):
        return [msssim_db(float(v)) for v in values]
    return [float(v) for v in values]


def _or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _clean(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop non-finite pairs, sort by x and average duplicate x values (interpolators need them
    strictly increasing)."""
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ConfigError(f"{what}: rate and quality lists differ in length ({xa.size} vs {ya.size})")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    order = np.argsort(xa, kind="stable")
    xa, ya = xa[order], ya[order]
    if xa.size:
        ux, inv = np.unique(xa, return_inverse=True)
        if ux.size != xa.size:
            ya = np.bincount(inv, weights=ya) / np.bincount(inv)
            xa = ux
    return xa, ya


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral over [lo, hi] of the curve y(x) interpolated with ``method``."""
    if method == "pchip":
        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
    if method == "akima":
        if x.size < 3:  # Akima needs 3 points; fall back to PCHIP (linear for 2 points)
            return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
        return float(Akima1DInterpolator(x, y).integrate(lo, hi))
    if method == "cubic":
        deg = min(3, x.size - 1)
        poly = np.polyint(np.polyfit(x, y, deg))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    raise ConfigError(f"unknown BD interpolation {method!r}; choose one of {', '.join(METHODS)}")


def _bd_axis(
    xa: np.ndarray, ya: np.ndarray, xt: np.ndarray, yt: np.ndarray, method: str
) -> tuple[float, tuple[float, float]]:
    """Mean of (y_test - y_anchor) over the overlap of the x ranges."""
    lo = max(float(xa[0]), float(xt[0]))
    hi = min(float(xa[-1]), float(xt[-1]))
    if not hi > lo:
        return math.nan, (lo, hi)
    diff = _integral(xt, yt, lo, hi, method) - _integral(xa, ya, lo, hi, method)
    return diff / (hi - lo), (lo, hi)


def bd_compare(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    *,
    method: Method | str = "pchip",
) -> BDResult:
    """BD-rate and BD-quality of a test curve against an anchor curve.

    Args:
        rate_anchor, quality_anchor: anchor RD points, float sequences of equal length N >= 2;
            rates > 0 (any unit), quality in dB (PSNR) or any monotone quality scale.
        rate_test, quality_test: test RD points, same conventions.
        method: ``"pchip"`` (default), ``"akima"`` or ``"cubic"``.

    Returns:
        A :class:`BDResult`. Values are NaN where the curves do not overlap.

    Raises:
        ConfigError: fewer than 2 usable points, a non-positive rate or an unknown method.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown BD interpolation {method!r}; choose one of {', '.join(METHODS)}")
    curves = []
    for r, q, who in ((rate_anchor, quality_anchor, "anchor"), (rate_test, quality_test, "test")):
        r_arr = np.asarray(r, dtype=np.float64).ravel()
        if np.any(np.isfinite(r_arr) & (r_arr <= 0)):
            raise ConfigError(f"{who} curve has a non-positive rate; BD needs rates > 0")
        with np.errstate(divide="ignore", invalid="ignore"):
            logr = np.log10(r_arr)
        curves.append((logr, np.asarray(q, dtype=np.float64).ravel(), who))
    n_pts = []
    for logr, q, who in curves:
        n = int(np.sum(np.isfinite(logr) & np.isfinite(q)))
        if n < 2:
            raise ConfigError(f"{who} curve has {n} usable RD point(s); BD needs at least 2")
        if n < MIN_POINTS:
            warnings.warn(
                f"{who} curve has only {n} RD points; BD metrics need >= {MIN_POINTS} to be reliable",
                stacklevel=2,
            )
        n_pts.append(n)
    (lra, qa, _), (lrt, qt, _) = curves
    # BD-rate: log-rate as a function of quality.
    qa_s, lra_s = _clean(qa, lra, "anchor")
    qt_s, lrt_s = _clean(qt, lrt, "test")
    mean_dlog, q_overlap = _bd_axis(qa_s, lra_s, qt_s, lrt_s, method)
    rate = (10.0**mean_dlog - 1.0) * 100.0 if math.isfinite(mean_dlog) else math.nan
    # BD-quality: quality as a function of log-rate.
    la_s, qa2 = _clean(lra, qa, "anchor")
    lt_s, qt2 = _clean(lrt, qt, "test")
    dq, lr_overlap = _bd_axis(la_s, qa2, lt_s, qt2, method)
    return BDResult(
        bd_rate=rate,
        bd_quality=dq,
        quality_overlap=q_overlap,
        rate_overlap=(10.0 ** lr_overlap[0], 10.0 ** lr_overlap[1]),
        points=(n_pts[0], n_pts[1]),
        method=str(method),
    )


def rate_gap(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate: float,
    quality: float,
) -> float:
    """One point against a curve: percent more rate than the anchor spends on the same quality.

    The anchor's log10 rate is interpolated as a function of quality (PCHIP, as :func:`bd_compare`), so
    a single point (a lever tried at one size) can be placed against a codec's curve; the BD-rate of a
    curve is the mean of this over its quality range. Negative: the point saves bits.

    Returns:
        The percentage; NaN when ``quality`` is outside the anchor's quality range (no extrapolation).

    Raises:
        ConfigError: fewer than 2 usable anchor points or a non-positive rate.
    """
    r_arr = np.asarray(rate_anchor, dtype=np.float64).ravel()
    if np.any(np.isfinite(r_arr) & (r_arr <= 0)) or not rate > 0:
        raise ConfigError("rate_gap needs rates > 0")
    q_s, lr_s = _clean(quality_anchor, np.log10(np.where(r_arr > 0, r_arr, np.nan)), "anchor")
    if q_s.size < 2:
        raise ConfigError(f"anchor curve has {q_s.size} usable RD point(s); rate_gap needs at least 2")
    if not q_s[0] <= quality <= q_s[-1]:
        return math.nan
    anchor_log = float(PchipInterpolator(q_s, lr_s, extrapolate=False)(quality))
    return (10.0 ** (math.log10(rate) - anchor_log) - 1.0) * 100.0


def bd_rate(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    *,
    method: Method | str = "pchip",
) -> float:
    """BD-rate in percent (negative = the test codec saves bits); see :func:`bd_compare`."""
    return bd_compare(rate_anchor, quality_anchor, rate_test, quality_test, method=method).bd_rate


def bd_psnr(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    *,
    method: Method | str = "pchip",
) -> float:
    """BD-PSNR (mean quality gain of the test curve at equal rate, dB); see :func:`bd_compare`."""
    return bd_compare(rate_anchor, quality_anchor, rate_test, quality_test, method=method).bd_quality


@dataclass(frozen=True)
class Comparison:
    """BD metrics of a test result set against an anchor result set.

    Attributes:
        per_sequence: ``{sequence: BDResult}`` for sequences present in both (matched by
            :func:`hinerv.bench.results.canonical_sequence`).
        average_bd_rate, average_bd_quality: mean over ``per_sequence`` (NaN entries skipped;
            NaN when there is none) — the JVET-style headline number.
        overall: BD on the two aggregate (dataset-average) curves, labelled as such.
        metric, rate_key, method: what was compared.
        missing: sequences of the anchor without a test curve.
    """

    per_sequence: dict[str, BDResult]
    average_bd_rate: float
    average_bd_quality: float
    overall: BDResult | None
    metric: str
    rate_key: str
    method: str
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly mapping (None where a value does not exist; never NaN)."""
        return {
            "metric": self.metric,
            "rate_key": self.rate_key,
            "method": self.method,
            "average": {"bd_rate": _or_none(self.average_bd_rate),
                        "bd_quality": _or_none(self.average_bd_quality),
                        "sequences": len(self.per_sequence)},
            "overall": self.overall.as_dict() if self.overall else None,
            "per_sequence": {k: v.as_dict() for k, v in self.per_sequence.items()},
            "missing": list(self.missing),
            "warnings": list(self.warnings),
        }


def _curve_xy(curve: dict, rate_key: str, metric: str) -> tuple[list[float], list[float]] | None:
    r, q = curve.get(rate_key), curve.get(metric)
    if not r or not q:
        return None
    pairs = [(float(a), float(b)) for a, b in zip(r, q, strict=False)
             if isinstance(a, (int, float)) and isinstance(b, (int, float))]
    if len(pairs) < 2:
        return None
    return [p[0] for p in pairs], bd_scale(metric, [p[1] for p in pairs])


def compare_results(
    test: object,
    anchor: object,
    *,
    metric: str = "psnr-rgb",
    rate_key: str = "bpp",
    method: Method | str = "pchip",
) -> Comparison:
    """BD-rate / BD-quality of ``test`` against ``anchor`` (two
    :class:`hinerv.bench.results.ResultSet`), per sequence, averaged, and on the aggregate curves.
    MS-SSIM metrics are compared in dB (:func:`bd_scale`), so BD-MS-SSIM is in dB.

    Raises:
        ConfigError: neither common sequences nor aggregate curves with ``rate_key`` and ``metric``.
    """
    from hinerv.bench.results import canonical_sequence

    t_seq = {canonical_sequence(k): (k, v) for k, v in test.sequences.items()}  # type: ignore[attr-defined]
    per: dict[str, BDResult] = {}
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, curve in anchor.sequences.items():  # type: ignore[attr-defined]
            key = canonical_sequence(name)
            if key not in t_seq:
                missing.append(name)
                continue
            a = _curve_xy(curve, rate_key, metric)
            t = _curve_xy(t_seq[key][1], rate_key, metric)
            if a is None or t is None:
                missing.append(name)
                continue
            per[t_seq[key][0]] = bd_compare(a[0], a[1], t[0], t[1], method=method)
        a = _curve_xy(anchor.results, rate_key, metric)  # type: ignore[attr-defined]
        t = _curve_xy(test.results, rate_key, metric)  # type: ignore[attr-defined]
        overall = bd_compare(a[0], a[1], t[0], t[1], method=method) if a and t else None
    if not per and overall is None:
        raise ConfigError(
            f"nothing to compare: no common sequence and no aggregate curves with {rate_key!r} "
            f"and {metric!r} in both files"
        )
    rates = [r.bd_rate for r in per.values() if math.isfinite(r.bd_rate)]
    quals = [r.bd_quality for r in per.values() if math.isfinite(r.bd_quality)]
    notes = _warnings(test, anchor, per, overall, metric)
    return Comparison(
        per_sequence=per,
        average_bd_rate=float(np.mean(rates)) if rates else math.nan,
        average_bd_quality=float(np.mean(quals)) if quals else math.nan,
        overall=overall,
        metric=metric,
        rate_key=rate_key,
        method=str(method),
        missing=tuple(missing),
        warnings=tuple(notes),
    )


def _names(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _warnings(test: object, anchor: object, per: dict[str, BDResult], overall: BDResult | None,
              metric: str) -> list[str]:
    """What a reader of the BD numbers must know: curves that do not overlap (no value) and
    comparisons of different videos (no sequence in common, different resolutions)."""
    notes = []
    bad = [s for s, r in per.items() if not r.overlaps]
    if bad:
        notes.append(f"the {metric} ranges of test and anchor do not overlap for {_names(bad)}: "
                     "no BD value there")
    if overall is not None and not overall.overlaps:
        notes.append(f"the average curves' {metric} ranges do not overlap: no overall BD value")
    t_seqs = list(test.sequences)  # type: ignore[attr-defined]
    a_seqs = list(anchor.sequences)  # type: ignore[attr-defined]
    if not per and overall is not None:
        if a_seqs:
            notes.append(f"no sequence in common (test: {_names(t_seqs) or 'none listed'}; anchor: "
                         f"{_names(a_seqs)}): the overall BD values compare different videos")
        else:
            notes.append(f"the anchor lists no sequences, only a dataset average; the test curve "
                         f"({_names(t_seqs) or 'no sequences listed'}) is compared against "
                         "that average and may be of different videos")
    tr, ar = _resolutions(test), _resolutions(anchor)
    if tr and ar and not tr & ar:
        notes.append(f"test and anchor were measured at different resolutions ({_names(sorted(tr))} vs "
                     f"{_names(sorted(ar))})")
    return notes


def _resolutions(rs: object) -> set[str]:
    """``WxH`` strings a result set states (``width`` / ``height`` keys in any curve)."""
    out = set()
    seqs = list(rs.sequences.values())  # type: ignore[attr-defined]
    for curve in seqs or [rs.results]:  # type: ignore[attr-defined]
        ws, hs = curve.get("width"), curve.get("height")
        if isinstance(ws, list) and isinstance(hs, list):
            out |= {f"{w}x{h}" for w, h in zip(ws, hs, strict=False)
                    if isinstance(w, int) and isinstance(h, int)}
    return out
