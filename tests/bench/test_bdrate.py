from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from hinerv.bench.anchors import load_results
from hinerv.bench.bdrate import METHODS, bd_compare, bd_psnr, bd_rate, compare_results, rate_gap
from hinerv.bench.results import ResultSet
from hinerv.errors import ConfigError

RATE = [1358.24, 2486.44, 4593.60, 9487.76]
PSNR = [34.851, 36.845, 38.615, 40.037]


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method: str) -> None:
    r = bd_compare(RATE, PSNR, RATE, PSNR, method=method)
    assert r.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert r.bd_quality == pytest.approx(0.0, abs=1e-9)
    assert r.quality_overlap == (min(PSNR), max(PSNR))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 2.0])
def test_rate_shift_gives_factor(method: str, factor: float) -> None:
    test_rate = [r * factor for r in RATE]
    assert bd_rate(RATE, PSNR, test_rate, PSNR, method=method) == pytest.approx(
        (factor - 1) * 100, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_quality_shift_gives_bd_psnr(method: str) -> None:
    assert bd_psnr(RATE, PSNR, RATE, [p + 0.7 for p in PSNR], method=method) == pytest.approx(
        0.7, abs=1e-9)
    # better quality at the same rate means fewer bits at the same quality
    assert bd_rate(RATE, PSNR, RATE, [p + 0.7 for p in PSNR], method=method) < 0


def test_bjontegaard_readme_example_is_small_and_methods_agree() -> None:
    # The FAU-LMS/bjontegaard README example (two x265 presets): nearly identical curves.
    r1 = [9487.76, 4593.60, 2486.44, 1358.24]
    p1 = [40.037, 38.615, 36.845, 34.851]
    r2 = [9787.80, 4469.00, 2451.52, 1356.24]
    p2 = [40.121, 38.651, 36.970, 34.987]
    vals = {m: bd_compare(r1, p1, r2, p2, method=m) for m in METHODS}
    for v in vals.values():
        assert -5 < v.bd_rate < 0 < v.bd_quality < 0.2
    assert vals["pchip"].bd_rate == pytest.approx(vals["akima"].bd_rate, abs=0.3)


def test_pchip_matches_dense_trapezoid_of_same_interpolant() -> None:
    from scipy.interpolate import PchipInterpolator

    rt = [1200, 2600, 4400, 9900]
    pt = [34.5, 36.9, 38.4, 40.2]
    got = bd_rate(RATE, PSNR, rt, pt)
    lo, hi = max(min(PSNR), min(pt)), min(max(PSNR), max(pt))
    q = np.linspace(lo, hi, 200001)
    fa = PchipInterpolator(PSNR, np.log10(RATE))(q)
    ft = PchipInterpolator(pt, np.log10(rt))(q)
    want = (10 ** (np.trapezoid(ft - fa, q) / (hi - lo)) - 1) * 100
    assert got == pytest.approx(want, abs=1e-6)


def test_unsorted_input_and_nan_points_are_handled() -> None:
    order = [2, 0, 3, 1]
    r = bd_rate([RATE[i] for i in order], [PSNR[i] for i in order],
                [RATE[i] * 1.1 for i in order] + [math.nan], [PSNR[i] for i in order] + [30.0])
    assert r == pytest.approx(10.0, abs=1e-6)


def test_no_overlap_is_nan_and_errors() -> None:
    r = bd_compare(RATE, PSNR, RATE, [p + 20 for p in PSNR])
    assert math.isnan(r.bd_rate)
    with pytest.raises(ConfigError):
        bd_rate([1.0], [30.0], RATE, PSNR)
    with pytest.raises(ConfigError):
        bd_rate(RATE, PSNR, RATE, PSNR, method="linear")
    with pytest.raises(ConfigError):
        bd_rate([0.0, 1, 2, 3], PSNR, RATE, PSNR)


def test_warns_under_four_points() -> None:
    with pytest.warns(UserWarning, match="only 3 RD points"):
        bd_rate(RATE[:3], PSNR[:3], RATE[:3], PSNR[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd_rate(RATE, PSNR, RATE, PSNR)


def test_compare_results_per_sequence_and_average() -> None:
    seqs_a = {"Beauty_1920x1080_120fps_420_8bit_YUV": {"bpp": RATE, "psnr-rgb": PSNR},
              "Jockey": {"bpp": RATE, "psnr-rgb": PSNR}}
    seqs_t = {"beauty": {"bpp": [r * 0.5 for r in RATE], "psnr-rgb": PSNR},
              "jockey": {"bpp": [r * 0.7 for r in RATE], "psnr-rgb": PSNR}}
    a = ResultSet("a", "", {"bpp": RATE, "psnr-rgb": PSNR}, seqs_a)
    t = ResultSet("t", "", {"bpp": [r * 0.6 for r in RATE], "psnr-rgb": PSNR}, seqs_t)
    c = compare_results(t, a)
    assert set(c.per_sequence) == {"beauty", "jockey"}
    assert c.average_bd_rate == pytest.approx(-40.0, abs=1e-6)
    assert c.overall is not None and c.overall.bd_rate == pytest.approx(-40.0, abs=1e-6)


def test_published_hinerv_vs_hm_matches_derived_value() -> None:
    # shared/anchors/published.md §1.5: +7.6 % (cubic fit, dataset-average curves).
    c = compare_results(load_results("@hinerv-uvg"), load_results("@hm18-ra-uvg"),
                        method="cubic")
    assert c.overall is not None
    assert c.overall.bd_rate == pytest.approx(7.6, abs=0.05)


@pytest.mark.filterwarnings("ignore:test curve has only")
def test_rate_gap_places_one_point_against_a_curve() -> None:
    """On a curve with log10(rate) linear in quality, a point at twice the anchor's rate for its quality is
    +100 %, at half -50 %; outside the anchor's quality range there is no answer (NaN)."""
    q = [30.0, 32.0, 34.0, 36.0]
    r = [10 ** (x / 10) for x in q]
    assert rate_gap(r, q, 2 * 10 ** 3.3, 33.0) == pytest.approx(100.0)
    assert rate_gap(r, q, 0.5 * 10 ** 3.1, 31.0) == pytest.approx(-50.0)
    assert rate_gap(list(reversed(r)), list(reversed(q)), 10**3.0, 30.0) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(rate_gap(r, q, 1000.0, 29.0)) and math.isnan(rate_gap(r, q, 1000.0, 36.5))
    # a curve's BD-rate against the same anchor is the mean gap over its quality range
    test_q, test_r = [31.0, 33.0, 35.0], [1.5 * 10 ** (x / 10) for x in (31.0, 33.0, 35.0)]
    assert bd_rate(r, q, test_r, test_q) == pytest.approx(50.0, rel=1e-6)
    assert all(rate_gap(r, q, a, b) == pytest.approx(50.0) for a, b in zip(test_r, test_q, strict=True))
    with pytest.raises(ConfigError):
        rate_gap([1.0], [30.0], 1.0, 30.0)
    with pytest.raises(ConfigError):
        rate_gap(r, q, 0.0, 31.0)


def test_ms_ssim_is_compared_in_db() -> None:
    """compare_results puts MS-SSIM metrics on the dB scale (-10 log10(1 - v)), as ``hinerv bdrate`` and
    every tool that calls it; PSNR stays as it is."""
    from hinerv.bench.bdrate import bd_scale, msssim_db

    assert bd_scale("ms-ssim-rgb", [0.9, 0.99]) == pytest.approx([10.0, 20.0])
    assert bd_scale("psnr-rgb", [30.0]) == [30.0] and math.isinf(msssim_db(1.0))
    bpp = [0.01, 0.02, 0.04, 0.08]
    ssim_a, ssim_t = [0.90, 0.93, 0.955, 0.97], [0.91, 0.94, 0.96, 0.975]
    a = ResultSet("a", "d", {"bpp": bpp, "ms-ssim-rgb": ssim_a}, {"seq": {"bpp": bpp, "ms-ssim-rgb": ssim_a}})
    t = ResultSet("t", "d", {"bpp": bpp, "ms-ssim-rgb": ssim_t}, {"seq": {"bpp": bpp, "ms-ssim-rgb": ssim_t}})
    got = compare_results(t, a, metric="ms-ssim-rgb")
    want = bd_compare(bpp, bd_scale("ms-ssim-rgb", ssim_a), bpp, bd_scale("ms-ssim-rgb", ssim_t))
    raw = bd_compare(bpp, ssim_a, bpp, ssim_t)
    assert got.average_bd_rate == pytest.approx(want.bd_rate)
    assert got.average_bd_rate != pytest.approx(raw.bd_rate)
    assert got.average_bd_quality == pytest.approx(want.bd_quality)  # dB
