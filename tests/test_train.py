"""Trainer: schedules, patch tiling, stages, pruning, checkpoint/resume reproducibility."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model import HiNeRV
from hinerv.pipelines.paper import PaperRecipe
from hinerv.train import Schedule, Trainer, _lr_at, choose_patch_grid, list_schedules, load_schedule

TINY = ModelConfig(
    channels=16,
    depths=(1, 1, 1, 1),
    scales=(2, 2, 2, 2),
    base_grid_channels=2,
    enc_channels=2,
    base_grid_frames=2,
)


def _frames(T: int = 4, H: int = 64, W: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    base = torch.stack([(xx * 3 + yy) % 256, (yy * 4) % 256, (xx * 2 + 50) % 256]).float()
    frames = torch.stack([base.roll(t * 2, dims=2) for t in range(T)])
    noise = torch.randint(0, 8, frames.shape, generator=g)
    return (frames + noise).clamp(0, 255).to(torch.uint8)


def _trainer(sched: Schedule, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = HiNeRV(TINY, 4, 64, 64)
    return Trainer(model, _frames(), 255, sched, recipe=PaperRecipe(bits=6), seed=seed)


def test_patch_grid_matches_reference_at_1080p() -> None:
    assert choose_patch_grid(1080, 1920, 60) == (9, 16)  # 120x120 patches, 144 per frame
    assert choose_patch_grid(720, 1280, 40) == (6, 8)
    assert choose_patch_grid(288, 384, 32) == (1, 1)  # small frames train whole (no halo overhead)
    assert choose_patch_grid(288, 384, 32, frame_mode_pixels=0) == (3, 3)
    assert choose_patch_grid(144, 256, 16, frame_mode_pixels=0) == (1, 2)


def test_schedules() -> None:
    assert {"full", "short", "fast", "tiny"} <= set(list_schedules())
    short, fast = load_schedule("short"), load_schedule("fast")
    # short at 4x the learning rate and Adam beta2 0.99
    assert fast.lr == 4 * short.lr and fast.adam_beta2 == 0.99 and short.adam_beta2 == 0.999
    assert replace(fast, name="short", lr=short.lr, adam_beta2=short.adam_beta2) == short
    full = load_schedule("full")
    assert (full.main_epochs, full.warmup_epochs, full.prune_epochs, full.qat_epochs) == (300, 30, 60, 30)
    assert full.lr == 2e-3 and full.prune_ratio == 0.15 and full.quant_noise == 0.9
    s = full.with_main_epochs(600)
    assert (s.main_epochs, s.warmup_epochs, s.prune_epochs, s.qat_epochs) == (600, 60, 120, 60)
    with pytest.raises(ConfigError):
        load_schedule("nope")


def test_adam_betas_come_from_the_schedule(tmp_path: Path) -> None:
    """The schedule's adam_beta1 and adam_beta2 reach the optimizer (plain and after a stage change); 0.9
    and 0.999 by default; a value outside [0, 1) is refused with a ConfigError naming the field."""
    sched = Schedule(name="t", main_epochs=1, warmup_epochs=0, prune_epochs=1, qat_epochs=1)
    assert _trainer(sched).optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    tr = _trainer(replace(sched, adam_beta1=0.8, adam_beta2=0.99))
    assert tr.optimizer.param_groups[0]["betas"] == (0.8, 0.99)
    tr.run_epoch()  # main done: the prune stage gets a fresh optimizer
    assert tr.stage == "prune" and tr.optimizer.param_groups[0]["betas"] == (0.8, 0.99)
    bad = tmp_path / "bad.toml"
    for key in ("adam_beta1", "adam_beta2"):
        bad.write_text(f"name = 'bad'\n{key} = 1.0\n")
        with pytest.raises(ConfigError, match=key):
            load_schedule(str(bad))
    bad.write_text("name = 'bad'\nadam_beta1 = -0.1\n")
    with pytest.raises(ConfigError, match="adam_beta1"):
        load_schedule(str(bad))


def test_mse_weight_adds_an_mse_term_to_the_distortion(tmp_path: Path) -> None:
    """A schedule's mse_weight adds ``w * MSE`` to the reference distortion (0 by default: unchanged), and
    a TOML schedule may set it."""
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    sched = Schedule(name="t", main_epochs=1, warmup_epochs=0, prune_epochs=0, qat_epochs=0)
    plain, mse = _trainer(sched).recipe.loss(out, tgt)
    mixed, mse2 = _trainer(replace(sched, mse_weight=14.0)).recipe.loss(out, tgt)
    assert torch.equal(mse, mse2)
    assert float(mixed) == pytest.approx(float(plain) + 14.0 * float(mse), rel=1e-6)
    none, _ = _trainer(replace(sched, l1_weight=0.0, msssim_weight=0.0, mse_weight=2.0)).recipe.loss(out, tgt)
    assert float(none) == pytest.approx(2.0 * float(mse), rel=1e-6)
    f = tmp_path / "m.toml"
    f.write_text("name = 'm'\nl1_weight = 0.0\nmse_weight = 14.0\n")
    assert load_schedule(str(f)).mse_weight == 14.0 and load_schedule("full").mse_weight == 0.0


def test_lr_schedule_shape() -> None:
    total, warm = 1000, 100
    assert _lr_at(0, total, warm, 2e-3, 2e-5, 2e-5) == pytest.approx(2e-5)
    assert _lr_at(50, total, warm, 2e-3, 2e-5, 2e-5) == pytest.approx(2e-5 + (2e-3 - 2e-5) / 2)
    after = _lr_at(warm, total, warm, 2e-3, 2e-5, 2e-5)
    assert after < 2e-3 and after == pytest.approx(2e-5 + 0.5 * (2e-3 - 2e-5) * (1 + math.cos(math.pi * 0.1)))
    assert _lr_at(total, total, warm, 2e-3, 2e-5, 2e-5) == pytest.approx(2e-5)


def test_stages_run_and_prune_quota() -> None:
    sched = Schedule(name="t", main_epochs=6, warmup_epochs=1, prune_epochs=1, qat_epochs=1)
    tr = _trainer(sched)
    mses = [tr.run_epoch() for _ in range(6)]
    assert mses[-1] < mses[0]  # it learns
    assert tr.stage == "prune" and tr.epoch == 0  # pruned at the boundary, from the final main weights
    total = sum(p.numel() for p in tr.model.parameters())
    pruned = sum(int((~m).sum()) for m in tr.masks.values())
    assert pruned == int(0.15 * total)
    assert set(tr.masks) == set(tr.model.prunable_names())
    tr.run_epoch()
    assert tr.stage == "qat"
    tr.run_epoch()
    assert tr.done and tr.epochs_done == 8


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    sched = Schedule(name="t", main_epochs=3, warmup_epochs=1, prune_epochs=2, qat_epochs=2)
    a = _trainer(sched)
    a.fit()
    b = _trainer(sched)
    for _ in range(4):  # stop in the middle of the prune stage, as a killed encode
        b.run_epoch()
    ckpt = tmp_path / "state.ckpt"
    b.save(ckpt)
    assert not (tmp_path / "state.ckpt.tmp").exists()
    c = _trainer(sched, seed=123)  # different init: everything must come from the checkpoint
    c.load(ckpt)
    c.fit()
    for (n, p), (_, q) in zip(a.model.named_parameters(), c.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert all(torch.equal(a.masks[k], c.masks[k]) for k in a.masks)


def test_seeded_runs_are_reproducible() -> None:
    sched = Schedule(name="t", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1)
    a, b = _trainer(sched), _trainer(sched)
    a.fit()
    b.fit()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_reconstruct_shape_and_range() -> None:
    tr = _trainer(Schedule(name="t", main_epochs=1, warmup_epochs=0, prune_epochs=0, qat_epochs=0))
    out = tr.reconstruct(torch.tensor([0, 3]))
    assert out.shape == (2, 3, 64, 64) and float(out.min()) > 0 and float(out.max()) < 1


def test_zero_prune_epochs_means_no_pruning() -> None:
    tr = _trainer(Schedule(main_epochs=1, warmup_epochs=0, prune_epochs=0, qat_epochs=1))
    tr.fit()
    assert tr.done and not tr.masks


def test_trainer_changes_no_process_settings() -> None:
    torch.set_flush_denormal(False)
    _trainer(Schedule(main_epochs=1, warmup_epochs=0, prune_epochs=0, qat_epochs=0)).fit()
    assert float(torch.tensor([1e-39]) * 1.0) != 0.0  # denormals not flushed: the caller's setting stands


def test_micro_batches_give_the_same_step() -> None:
    """A patch batch split into micro-batches (memory bound) makes the same optimizer steps."""
    sched = Schedule(main_epochs=1, warmup_epochs=0, prune_epochs=1, qat_epochs=1, msssim_weight=0.0)
    trs = []
    for micro in (4, 3, 1):
        tr = _trainer(sched)
        tr.runner.grid, tr.runner.ph, tr.runner.pw = (2, 2), 32, 32
        tr.runner.micro_batch = micro
        trs.append(tr)
    for tr in trs:
        tr.fit()
    ref = trs[0].model.state_dict()
    for tr in trs[1:]:
        for k, v in tr.model.state_dict().items():
            torch.testing.assert_close(v, ref[k], rtol=1e-4, atol=1e-6)


def test_max_memory_sets_the_micro_batch() -> None:
    torch.manual_seed(0)
    model = HiNeRV(TINY, 4, 64, 64)
    per = model.activation_bytes((2, 2))
    assert 0 < per < model.activation_bytes((1, 1))
    tr = Trainer(model, _frames(), 255, Schedule(), recipe=PaperRecipe(), max_memory=None)
    assert tr.micro_batch == 1  # frame mode: one frame per step, nothing to split


def test_cpu_adam_is_fused_and_matches_the_plain_update() -> None:
    """The fused CPU Adam makes the for-loop Adam's update (float rounding), also after a resume."""
    sched = Schedule(name="t", main_epochs=2, warmup_epochs=1, prune_epochs=0, qat_epochs=0)
    tr = _trainer(sched)
    assert all(g["fused"] for g in tr.optimizer.param_groups)
    plain = _trainer(sched)
    params = plain.trainable_parameters()
    plain.optimizer = torch.optim.Adam(params, lr=sched.lr, betas=(0.9, 0.999), eps=1e-8)
    assert not plain.optimizer.param_groups[0]["fused"]
    tr.run_epoch()
    plain.run_epoch()
    for a, b in zip(tr.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # << one step (lr 2e-3)
    # a checkpoint written by the plain optimizer resumes into the fused one
    resumed = _trainer(sched)
    resumed.load_state_dict(copy.deepcopy(plain.state_dict()))  # no state shared with `plain`
    assert all(g["fused"] for g in resumed.optimizer.param_groups)
    resumed.run_epoch()
    plain.run_epoch()
    for a, b in zip(resumed.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # << one step (lr 2e-3)
