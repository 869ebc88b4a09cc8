"""Architecture derivation: widths, grid shapes, exact halos, padding."""

from __future__ import annotations

import math

import pytest

from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model.arch import derive_arch, padded_size, upsample_input_halo
from hinerv.model.presets import list_presets, load_preset

# reference halos (hinerv-reference.md §3.6): stage 1..4 pads, stem pad (banker's-rounding recursion)
REF_HALOS = {
    "uvg-hinerv-s": ((6, 6, 4, 1), 3),
    "mcl-hinerv-xxs": ((6, 6, 4, 1), 3),
    "uvg-hinerv-xl": ((7, 7, 5, 1), 3),
    "uvg-hinerv-xxl": ((9, 9, 6, 1), 4),
    "bunny-hinerv-s": ((7, 6, 4, 1), 3),
    "uvg-hinerv-a-s": ((5, 5, 4, 1), 3),
    "bunny-hinerv-a-s": ((6, 6, 4, 1), 3),
    "uvg-hinerv-b-s": ((4, 3, 2, 1), 3),
    "bunny-hinerv-b-s": ((4, 3, 2, 1), 3),
}


def _needed_input_halo(out_halo: int, scale: int, m: int = 3) -> int:
    """Brute force: input halo the bilinear taps of output pixels [-q, s*m + q) reach."""
    lo, hi = 0, m - 1
    for o in range(-out_halo, scale * m + out_halo):
        u = (o + 0.5) / scale - 0.5
        f = math.floor(u)
        lo = min(lo, f)
        hi = max(hi, f + 1 if u != f else f)
    return max(-lo, hi - (m - 1))


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("out_halo", range(0, 12))
def test_upsample_input_halo_is_exact(scale: int, out_halo: int) -> None:
    assert upsample_input_halo(out_halo, scale) == _needed_input_halo(out_halo, scale)


@pytest.mark.parametrize("name", sorted(REF_HALOS))
def test_halos_never_exceed_reference(name: str) -> None:
    cfg, (t, h, w) = load_preset(name)
    arch = derive_arch(cfg, t, h, w)
    ref_stages, ref_stem = REF_HALOS[name]
    ours = tuple(st.halo for st in arch.stages)
    assert all(a <= b for a, b in zip(ours, ref_stages, strict=True))
    assert arch.base_halo <= ref_stem
    if name.startswith(("uvg-hinerv-s", "uvg-hinerv-x", "mcl", "bunny-hinerv-s", "uvg-hinerv-a")):
        assert ours == ref_stages and arch.base_halo == ref_stem


def test_widths_and_grids_uvg_s() -> None:
    cfg, (t, h, w) = load_preset("uvg-hinerv-s")
    arch = derive_arch(cfg, t, h, w)
    assert (arch.base_height, arch.base_width) == (18, 32)
    assert [st.c_out for st in arch.stages] == [280, 140, 70, 35]
    assert [st.c_in for st in arch.stages] == [280, 280, 140, 70]
    assert [st.hidden for st in arch.stages] == [1120, 560, 280, 35]
    assert arch.base_frames == (150, 75) and arch.base_channels == (2, 4)
    assert [st.enc_channels for st in arch.stages] == [(4, 8, 16), (2, 4, 8), (1, 2, 4), (1, 2, 4)]
    assert arch.stages[0].enc_frames == (600, 300, 150)
    assert (arch.stages[-1].height, arch.stages[-1].width) == (1080, 1920)


def test_widths_floor_division() -> None:
    for c, want in [(196, [196, 98, 49, 24]), (136, [136, 68, 34, 17]), (864, [864, 432, 216, 108])]:
        cfg = ModelConfig(
            channels=c, depths=(3, 3, 3, 1), scales=(2, 2, 2, 2), base_grid_channels=2, enc_channels=4
        )
        assert [st.c_out for st in derive_arch(cfg, 4, 32, 32).stages] == want


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_short_clips_have_nonempty_levels(frames: int) -> None:
    cfg = ModelConfig(
        channels=16,
        depths=(1, 1, 1, 1),
        scales=(2, 2, 2, 2),
        base_grid_channels=2,
        enc_channels=4,
        base_grid_frames=1,
    )
    arch = derive_arch(cfg, frames, 16, 32)
    assert min(arch.base_frames) >= 1
    assert all(min(st.enc_frames) >= 1 for st in arch.stages)


def test_padded_size_and_errors() -> None:
    cfg, _ = load_preset("uvg-hinerv-s")
    assert padded_size(1080, 1920, cfg) == (1080, 1920)
    assert padded_size(1081, 1900, cfg) == (1140, 1920)
    with pytest.raises(ConfigError):
        derive_arch(cfg, 10, 1081, 1920)
    with pytest.raises(ConfigError):
        derive_arch(cfg, 0, 1080, 1920)
    with pytest.raises(ConfigError):
        padded_size(0, 10, cfg)


def test_every_preset_derives() -> None:
    for name in list_presets():
        cfg, (t, h, w) = load_preset(name)
        arch = derive_arch(cfg, t, h, w)
        assert arch.stages[-1].height == h and arch.stages[-1].width == w
