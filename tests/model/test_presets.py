"""Reference presets shipped as package data."""

from __future__ import annotations

import pytest

from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model.presets import list_presets, load_preset

EXPECTED = (
    [f"uvg-hinerv-{s}" for s in ("s", "m", "l", "xl", "xxl")]
    + [f"uvg-hinerv-{v}-{s}" for v in "ab" for s in ("s", "m", "l")]
    + [f"mcl-hinerv-{s}" for s in ("xxs", "xs", "s", "m", "l")]
    + [f"bunny-hinerv-{s}" for s in ("xxs", "xs", "s")]
    + [f"bunny-hinerv-{v}-{s}" for v in "ab" for s in ("xxs", "xs", "s")]
)


def test_list_presets() -> None:
    assert list_presets() == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_load_preset(name: str) -> None:
    cfg, (t, h, w) = load_preset(name)
    assert isinstance(cfg, ModelConfig)
    assert ModelConfig.from_fields(cfg.to_fields()) == cfg
    if name.startswith("uvg"):
        assert (t, h, w) == (600, 1080, 1920)
    elif name.startswith("mcl"):
        assert (t, h, w) == (150, 1080, 1920)
    else:
        assert (t, h, w) == (132, 720, 1280)
    assert cfg.upsample_norm == ("-b-" not in name)
    assert (cfg.base_grid_frames == -1) == ("-a-" in name or "-b-" in name)
    assert h % cfg.upscale == 0 and w % cfg.upscale == 0


def test_uvg_s_fields() -> None:
    cfg, _ = load_preset("uvg-hinerv-s")
    assert cfg == ModelConfig(
        channels=280,
        depths=(3, 3, 3, 1),
        scales=(5, 3, 2, 2),
        base_grid_channels=2,
        enc_channels=4,
        base_grid_frames=150,
    )


def test_unknown_preset_lists_choices() -> None:
    with pytest.raises(ConfigError, match="uvg-hinerv-s"):
        load_preset("uvg-hinerv-q")
