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
    _write(results / "vtest" / "hinerv-rd-fast-t600s.json", [2 * r for r in x265], psnr, ssim)
    lever = runs / "vtest_384x288_128f" / "hinerv-rd-x-t600s.json"
    _write(lever, [0.02, 0.8 * 0.04], [27.0, 30.0], [0.94, 0.97])
    out = tmp_path / "rows.json"
    assert bench_levers.main(["--results", str(results), "--lever", f"x={runs}", "--json", str(out),
                              "--publish"]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["clip"] for r in rows] == ["vtest", "vtest"]
    for m in ("psnr-rgb", "ms-ssim-rgb"):
        assert rows[0][f"gap_vs_x265_{m}"] == pytest.approx(100.0, abs=1e-6)
        assert rows[0][f"gap_vs_baseline_{m}"] == pytest.approx(0.0, abs=1e-6)
        assert rows[1][f"gap_vs_x265_{m}"] == pytest.approx(60.0, abs=1e-6)
        assert rows[1][f"gap_vs_baseline_{m}"] == pytest.approx(-20.0, abs=1e-6)
    assert (results / "vtest" / "levers" / "x.json").is_file()


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    assert bench_levers.main(["--results", str(tmp_path), "--lever", f"x={tmp_path / 'none'}"]) == 2
