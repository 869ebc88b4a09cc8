"""The HiNeRV module: patch mode == frame mode, shapes, parameter plumbing, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model import HiNeRV, count_params, padded_size
from hinerv.model.layers import lerp_frames


def _cfg(depths, scales, channels=12, norm=True, tg=2, cg=2, ce=4) -> ModelConfig:
    return ModelConfig(
        channels=channels,
        depths=depths,
        scales=scales,
        base_grid_channels=cg,
        enc_channels=ce,
        base_grid_frames=tg,
        upsample_norm=norm,
    )


def _randomize(model: HiNeRV, seed: int = 0) -> None:
    """Grids and biases get O(1) values so that every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "grids" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _frame_idx(frames: int) -> torch.Tensor:
    t = torch.arange(frames)
    return torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1)


# structures of the s, xl, xxl, a and b configs with small widths and bases
STRUCTURES = {
    "s": (_cfg((3, 3, 3, 1), (5, 3, 2, 2)), 3, (2, 3)),
    "xl": (_cfg((4, 4, 4, 1), (5, 3, 2, 2)), 3, (2, 3)),
    "xxl": (_cfg((5, 5, 5, 1), (5, 3, 2, 2), channels=16), 2, (2, 2)),
    "a": (_cfg((3, 3, 3, 1), (5, 4, 3, 2), tg=-1), 2, (1, 2)),
    "b": (_cfg((2, 1, 1, 1), (5, 4, 3, 2), channels=16, norm=False, tg=-1, cg=5), 2, (1, 2)),
    "bunny-a": (_cfg((3, 3, 3, 1), (5, 4, 2, 2), tg=-1), 2, (2, 1)),
    "small-2222": (_cfg((3, 3, 3, 1), (2, 2, 2, 2)), 3, (3, 4)),
}


def _check_patch_equals_frame(
    name: str, dtype: torch.dtype, min_channels: int, atol: float, frames: int | None = None
) -> None:
    cfg, n_frames, (gh, gw) = STRUCTURES[name]
    frames = frames or n_frames
    cfg = dataclasses.replace(cfg, channels=max(min_channels, cfg.channels))
    s = cfg.upscale
    h, w = gh * s, gw * s
    if (gh, gw) in ((1, 2), (2, 1)):
        h, w = 2 * h, 2 * w  # two base rows/cols per tile: interior halos cross tiles
        gh, gw = 2 * gh, 2 * gw
    torch.manual_seed(0)
    model = HiNeRV(cfg, frames, h, w).to(dtype)
    _randomize(model)
    with torch.no_grad():
        full = model(_frame_idx(frames))
        tiles = torch.tensor([[t, i, j] for t in range(frames) for i in range(gh) for j in range(gw)])
        out = model(tiles, (gh, gw))
    ph, pw = h // gh, w // gw
    assert out.shape == (len(tiles), 3, ph, pw) and out.dtype == dtype
    assert full.std() > 0.005  # not saturated
    for k, (t, i, j) in enumerate(tiles.tolist()):
        ref = full[t, :, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw]
        torch.testing.assert_close(out[k], ref, atol=atol, rtol=0)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_patch_mode_equals_frame_mode(name: str) -> None:
    """Every tile (edge tiles included) equals the frame-mode crop to 1e-5 in float32."""
    _check_patch_equals_frame(name, torch.float32, 32, 1e-5)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_patch_mode_is_exact_in_float64(name: str) -> None:
    """In float64 the agreement is exact up to rounding: halos and masks lose nothing, even for
    tiny widths (whose 1-3 channel LayerNorms amplify float32 rounding)."""
    _check_patch_equals_frame(name, torch.float64, 0, 1e-10, frames=1)


def test_patch_mode_equals_frame_mode_padded_size() -> None:
    cfg = _cfg((3, 3, 3, 1), (2, 2, 2, 2))
    h, w = padded_size(40, 90, cfg)
    assert (h, w) == (48, 96)
    model = HiNeRV(cfg, 3, h, w)
    _randomize(model, 1)
    with torch.no_grad():
        full = model(_frame_idx(3))
        tiles = torch.tensor([[t, i, j] for t in (0, 2) for i in range(3) for j in range(6)])
        out = model(tiles, (3, 6))
    for k, (t, i, j) in enumerate(tiles.tolist()):
        ref = full[t, :, i * 16 : (i + 1) * 16, j * 16 : (j + 1) * 16]
        torch.testing.assert_close(out[k], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_short_clips_forward_and_backward(frames: int) -> None:
    cfg = _cfg((1, 1, 1, 1), (2, 2, 2, 2), tg=4)
    model = HiNeRV(cfg, frames, 32, 48)
    y = model(_frame_idx(frames))
    assert y.shape == (frames, 3, 32, 48) and y.dtype == torch.float32
    assert y.is_contiguous()
    assert ((y > 0) & (y < 1)).all()
    y2 = model(torch.tensor([[frames - 1, 1, 0]]), (2, 1))
    (y.mean() + y2.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_names_and_counts() -> None:
    cfg = _cfg((3, 3, 3, 1), (2, 2, 2, 2))
    model = HiNeRV(cfg, 4, 32, 32)
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in HiNeRV(cfg, 4, 32, 32).named_parameters()]
    params = dict(model.named_parameters())
    prunable = model.prunable_names()
    assert len(prunable) == 2 + 3 * (3 + 3 + 3 + 1)
    assert all(n in params and n.endswith("weight") for n in prunable)
    assert not any("enc" in n or "grids" in n for n in prunable)
    quant = model.quantizable_names()
    assert set(quant) == {n for n, p in params.items() if p.ndim >= 2}
    assert "base.grids.0" in quant and "stages.0.enc.linear.weight" in quant
    assert {n for n in names if n.endswith("bias")} == {
        "stem.bias",
        "head.bias",
        *(f"stages.{i}.enc.linear.bias" for i in range(4)),
    }
    assert model.param_counts() == count_params(cfg, 4, 32, 32)
    assert list(model.buffers()) == []


def test_initialisation() -> None:
    model = HiNeRV(_cfg((3, 3, 3, 1), (2, 2, 2, 2)), 4, 32, 32)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        if "grids" in name:
            assert p.abs().max() <= 1e-3 and p.abs().max() > 0, name


def test_residual_only_when_width_unchanged() -> None:
    model = HiNeRV(_cfg((3, 3, 3, 1), (2, 2, 2, 2)), 4, 32, 32)
    flags = [[b.residual for b in st.blocks] for st in model.stages]
    assert flags == [[True] * 3, [False, True, True], [False, True, True], [False]]


def test_functional_call_overrides_take_effect() -> None:
    model = HiNeRV(_cfg((1, 1, 1, 1), (2, 2, 2, 2)), 2, 32, 32)
    _randomize(model)
    idx = _frame_idx(2)
    zero_head = {
        "head.weight": torch.zeros_like(model.head.weight),
        "head.bias": torch.zeros_like(model.head.bias),
    }
    for grid, ii in (((1, 1), idx), ((2, 2), torch.tensor([[0, 1, 1], [1, 0, 1]]))):
        y = functional_call(model, zero_head, (ii, grid))
        torch.testing.assert_close(y, torch.full_like(y, 0.5))
    grids = {n: torch.zeros_like(p) for n, p in model.named_parameters() if "base.grids" in n}
    y0 = functional_call(model, grids, (idx, (1, 1)))
    assert not torch.allclose(y0, model(idx))


def test_local_grid_memo_follows_parameter_changes() -> None:
    """Without a gradient the local-grid tables come from a memo of every frame's; it must give the
    per-frame computation and be redone after in-place updates, state loads and overrides."""
    model = HiNeRV(_cfg((1, 1, 1, 1), (2, 2, 2, 2)), 6, 32, 32)
    _randomize(model)
    enc = model.stages[1].enc
    t = torch.tensor([5, 0, 3])

    def fresh() -> torch.Tensor:
        return enc._tables(t)

    with torch.no_grad():
        torch.testing.assert_close(enc(t), fresh(), rtol=0, atol=0)
        memo = enc._memo
        enc(t)
        assert enc._memo is memo  # reused
        enc.grids[0].add_(0.5)  # an optimizer step is in place
        torch.testing.assert_close(enc(t), fresh(), rtol=0, atol=0)
        enc.load_state_dict({k: torch.zeros_like(v) for k, v in enc.state_dict().items()})
        assert enc(t).abs().max() == 0
        over = {"linear.bias": torch.ones_like(enc.linear.bias)}
        assert torch.all(functional_call(enc, over, (t,)) == 1)
        assert enc(t).abs().max() == 0
    y = enc(t)  # with a gradient: computed, differentiable
    assert y.requires_grad


def test_lerp_frames_matches_interpolate() -> None:
    table = torch.randn(5, 7)
    for frames in (1, 3, 5, 12):
        ref = F.interpolate(table.t()[None], size=frames, mode="linear", align_corners=False)[0].t()
        got = lerp_frames(table, torch.arange(frames), frames)
        torch.testing.assert_close(got, ref)


def test_bad_geometry_raises() -> None:
    cfg = _cfg((1, 1, 1, 1), (2, 2, 2, 2))
    with pytest.raises(ConfigError):
        HiNeRV(cfg, 4, 30, 32)
    model = HiNeRV(cfg, 4, 32, 48)
    with pytest.raises(ConfigError):
        model(torch.tensor([[0, 0, 0]]), (1, 2))  # 24-pixel tiles: not a multiple of 16
    with pytest.raises(ConfigError):
        model(torch.tensor([0, 0, 0]))


def test_inference_kernels_match_the_training_path() -> None:
    """Without a gradient the CPU forward may take the inference kernels (memoised encodings, fused
    up-sampling, MLP, depth-wise conv and head); with one, the autograd path. Both give the same frames."""
    model = HiNeRV(_cfg((2, 1, 1, 1), (2, 2, 2, 2), channels=24), 3, 32, 48)
    _randomize(model)
    idx = _frame_idx(3)
    with torch.no_grad():
        fast = model(idx)
    slow = model(idx)
    assert slow.requires_grad and not fast.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=2e-6)
