"""The size ladder: calibration to the reference, monotonicity, budget tracking, docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hinerv.errors import ConfigError
from hinerv.model import count_params
from hinerv.model.presets import load_preset
from hinerv.model.sizes import (
    FLOORS,
    SIZES,
    choose_scales,
    is_floored,
    ladder_budget,
    ladder_config,
    render_sizes_doc,
)

GEOMETRIES = [
    (256, 144, 32),
    (256, 144, 600),
    (320, 240, 128),
    (384, 288, 128),
    (640, 480, 300),
    (1280, 720, 132),
    (1920, 1080, 600),
    (426, 240, 300),
    (854, 480, 300),
    (768, 576, 300),
    (3840, 2160, 120),
]


ref_totals = {
    "xxs": 3_188_933 / 4,
    "xs": 3_188_933 / 2,
    "s": 3_188_933,
    "m": 6_489_553,
    "l": 12_818_953,
    "xl": 25_649_557,
    "xxl": 50_726_919,
}


def _total(size: str, w: int, h: int, t: int) -> int:
    return count_params(ladder_config(size, w, h, t), t, h, w)["total"]


@pytest.mark.parametrize("size", ["s", "m", "l", "xl", "xxl"])
def test_calibration_reproduces_uvg_presets(size: str) -> None:
    cfg, _ = load_preset(f"uvg-hinerv-{size}")
    assert ladder_config(size, 1920, 1080, 600) == cfg


def test_xs_xxs_are_half_and_quarter_of_s() -> None:
    s = _total("s", 1920, 1080, 600)
    assert abs(_total("xs", 1920, 1080, 600) / s - 0.5) < 0.03
    assert abs(_total("xxs", 1920, 1080, 600) / s - 0.25) < 0.03


@pytest.mark.parametrize(("w", "h", "t"), GEOMETRIES)
def test_monotonic_roughly_halving_and_on_budget(w: int, h: int, t: int) -> None:
    totals = [_total(size, w, h, t) for size in SIZES]
    for a, b in zip(totals, totals[1:], strict=False):
        assert 1.5 < b / a < 2.7, totals
    for size, total in zip(SIZES, totals, strict=True):
        budget = ladder_budget(size, w, h, t)
        assert abs(total / budget - 1) <= 0.15, (size, total, budget)
        if not is_floored(size, w, h, t):
            assert budget == pytest.approx(ref_totals[size] * w * h * t / (600 * 1080 * 1920))


@pytest.mark.parametrize(("w", "h", "t"), GEOMETRIES)
def test_geometry_and_shape_rules(w: int, h: int, t: int) -> None:
    for size in SIZES:
        cfg = ladder_config(size, w, h, t)
        assert cfg.depths == {"xl": (4, 4, 4, 1), "xxl": (5, 5, 5, 1)}.get(size, (3, 3, 3, 1))
        assert list(cfg.scales) == sorted(cfg.scales, reverse=True)
        assert 1 <= cfg.base_grid_frames <= max(1, round(t / 4))
        assert cfg.channels % 4 == 0 and cfg.channels >= 16
    s = choose_scales(w, h)
    rows = -(-h // (s[0] * s[1] * s[2] * s[3]))
    assert 9 <= rows <= 18


def test_known_scales() -> None:
    assert choose_scales(1920, 1080) == (5, 3, 2, 2)
    assert choose_scales(1280, 720) == (5, 2, 2, 2)
    assert choose_scales(256, 144) == (2, 2, 2, 2)
    assert choose_scales(768, 576) == (4, 2, 2, 2)
    assert choose_scales(3840, 2160) == (5, 4, 3, 2)


def test_floor_keeps_small_clips_trainable() -> None:
    totals = [_total(size, 256, 144, 32) for size in SIZES]
    assert 20_000 <= totals[SIZES.index("s")] <= 80_000
    assert totals == sorted(totals)
    assert all(is_floored(size, 256, 144, 32) for size in SIZES)
    assert all(ladder_budget(size, 256, 144, 32) >= FLOORS[size] for size in SIZES)
    assert not any(is_floored(size, 1920, 1080, 600) for size in SIZES)


def test_bpp_steady_across_videos() -> None:
    # above the floors the expected rate depends on the size only (about 0.0128 bpp for s)
    for w, h, t in [(1920, 1080, 600), (1280, 720, 600), (854, 480, 600)]:
        bpp = 5 * _total("s", w, h, t) / (w * h * t)
        assert abs(bpp / 0.0128 - 1) < 0.15


def test_errors() -> None:
    with pytest.raises(ConfigError, match="xxl"):
        ladder_config("huge", 256, 144, 10)
    with pytest.raises(ConfigError):
        ladder_config("s", 256, 144, 0)


def test_docs_are_up_to_date() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "sizes.md"
    assert doc.read_text(encoding="utf-8") == render_sizes_doc(), (
        "regenerate docs/sizes.md with hinerv.model.sizes.render_sizes_doc()"
    )
