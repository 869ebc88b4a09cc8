"""tools/bench_levers.py: single lever points placed against x265 and against the default ladder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(_TOOLS))
import bench_levers  # noqa: E402


def _write(path: Path, bpp: list[float], psnr: list[float], ssim: list[float]) -> None:
    n = len(bpp)
    res = {"q": [f"p{i}" for i in range(n)], "bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": ssim,
           "encoding_time": [600.0] * n}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": path.stem, "results": res}))


def test_a_lever_point_is_placed_on_both_curves(tmp_path: Path) -> None:
    """x265 needs half the default's rate at every quality; a lever point on the default's curve is then
    +100 % against x265 and 0 % against the default, one at 0.8x the default's rate -20 % and +60 %."""
    results, runs = tmp_path / "results", tmp_path / "runs"
    psnr, ssim = [24.0, 27.0, 30.0, 33.0], [0.90, 0.94, 0.97, 0.985]
    x265 = [0.005, 0.01, 0.02, 0.04]
    _write(results / "vtest" / "x265-veryslow-ra.json", x265, psnr, ssim)
    _write(results / "vtest" / f"{bench_levers.BASELINE}.json", [2 * r for r in x265], psnr, ssim)
    lever = runs / "vtest_384x288_128f" / "hinerv-rd-x-t600s.json"
    _write(lever, [0.02, 0.8 * 0.04], [27.0, 30.0], [0.94, 0.97])
    out = tmp_path / "rows.json"
    assert bench_levers.main(["--results", str(results), "--lever", f"x={runs}", "--json", str(out),
                              "--publish"]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["clip"] for r in rows] == ["vtest", "vtest"]
    assert {r["file"] for r in rows} == {"vtest_384x288_128f/hinerv-rd-x-t600s.json"}  # no host path
    for m in ("psnr-rgb", "ms-ssim-rgb"):
        assert rows[0][f"gap_vs_x265_{m}"] == pytest.approx(100.0, abs=1e-6)
        assert rows[0][f"gap_vs_baseline_{m}"] == pytest.approx(0.0, abs=1e-6)
        assert rows[1][f"gap_vs_x265_{m}"] == pytest.approx(60.0, abs=1e-6)
        assert rows[1][f"gap_vs_baseline_{m}"] == pytest.approx(-20.0, abs=1e-6)
    assert (results / "vtest" / "levers" / "x.json").is_file()


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    assert bench_levers.main(["--results", str(tmp_path), "--lever", f"x={tmp_path / 'none'}"]) == 2


def test_a_lever_curve_is_compared_with_the_default_at_the_same_sizes(tmp_path: Path) -> None:
    """Two folders make one lever; its curve (sizes s and m) is on the default's curve (BD 0 %) and at twice
    x265's rate (+100 %), and only the default's s and m points enter the like-for-like comparison."""
    results, a, b = tmp_path / "results", tmp_path / "a", tmp_path / "b"
    psnr, ssim = [24.0, 27.0, 30.0, 33.0], [0.90, 0.94, 0.97, 0.985]
    x265 = [0.005, 0.01, 0.02, 0.04]
    _write(results / "vtest" / "x265-veryslow-ra.json", x265, psnr, ssim)
    base = results / "vtest" / f"{bench_levers.BASELINE}.json"
    _write(base, [2 * r for r in x265], psnr, ssim)
    d = json.loads(base.read_text())
    d["results"]["q"] = ["xs-l2", "s-l1", "m-l0.5", "l-l0.25"]
    d["results"]["psnr-rgb"][3] = 40.0  # a default point of another size: must not enter the comparison
    base.write_text(json.dumps(d))
    for folder, (bpp, p, s, q) in ((a, (0.02, 27.0, 0.94, "s-l1")), (b, (0.04, 30.0, 0.97, "m-l0.5"))):
        run = folder / "vtest_384x288_128f" / f"hinerv-rd-{folder.name}-t600s.json"
        _write(run, [bpp], [p], [s])
        r = json.loads(run.read_text())
        r["results"]["q"] = [q]
        run.write_text(json.dumps(r))
    out = tmp_path / "rows.json"
    assert bench_levers.main(["--results", str(results), "--lever", f"y={a},{b}", "--json", str(out),
                              "--publish"]) == 0  # fmt: skip
    (curve,) = json.loads(out.read_text())["curves"]
    assert curve["sizes"] == ["s", "m"]
    for m in ("psnr-rgb", "ms-ssim-rgb"):
        assert curve[f"bd_vs_baseline_{m}"] == pytest.approx(0.0, abs=1e-6)
        # exact in PSNR (log-linear curves); MS-SSIM in dB bends, and the 2-point curve is a chord
        assert curve[f"bd_vs_x265_{m}"] == pytest.approx(100.0, rel=0.03)
        assert curve[f"baseline_bd_vs_x265_{m}"] == curve[f"bd_vs_x265_{m}"]
    for run in ("a", "b"):
        assert (results / "vtest" / "levers" / f"y-hinerv-rd-{run}-t600s.json").is_file()
