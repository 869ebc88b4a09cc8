"""The rd pipeline's training recipe (hinerv.pipelines.rd) and its end-to-end codec path."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from hinerv.bitstream import peek
from hinerv.codec import EncodeOptions, decode_file, encode_file, inspect_file
from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model import HiNeRV, ladder_config, padded_size
from hinerv.pipelines.rd import (
    LADDER_LAMBDA,
    PIPELINE,
    RDOptions,
    RDRecipe,
    RDSettings,
    default_lambda,
    default_optimizer,
    grid_names,
)
from hinerv.sample import write_sample
from hinerv.train import Schedule, Trainer, load_schedule
from hinerv.types import VideoInfo

RD = EncodeOptions(size="xxs", schedule="tiny", device="cpu", seed=0, pipeline="rd",
                   settings=RDOptions(lam=1.0, distortion="reference"))  # fmt: skip


def _trainer(
    lam: float,
    distortion: str = "mse",
    schedule: Schedule | None = None,
    pretrain: bool = True,
    target_bpp: float | None = None,
    optimizer: str = "adam",
) -> Trainer:
    torch.manual_seed(0)
    cfg: ModelConfig = ladder_config("xxs", 64, 48, 4)
    hp, wp = padded_size(48, 64, cfg)
    model = HiNeRV(cfg, 4, hp, wp)
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(4, 3, hp, wp, generator=g) * 255).to(torch.uint8)
    rd = RDSettings(lam=lam, distortion=distortion, pretrain=pretrain, target_bpp=target_bpp,  # type: ignore[arg-type]
                    optimizer=optimizer)  # fmt: skip
    pixels = 4 * 48 * 64

    def probe(tr: Trainer) -> float:  # the rate model's own estimate stands in for the coded file
        return tr.estimated_bits() / pixels

    recipe = RDRecipe(rd, pixels=pixels, rate_probe=probe if target_bpp is not None else None)
    return Trainer(model, frames, 255, schedule or load_schedule("tiny"), recipe=recipe)


def test_stages_epochs_and_grid_names() -> None:
    tr = _trainer(0.1)
    assert tr.stages == ("main", "prune", "qat") and tr.total_epochs == 4 + 1 + 1
    assert not tr.rate_active  # float pre-training first
    assert _trainer(0.1, pretrain=False).stages == ("main", "ste")
    names = grid_names(tr.model)
    assert names and all("grids" in n for n in names)
    assert tr.rate.names == [n for n, _ in tr.model.named_parameters()]


def test_rate_term_lowers_the_estimated_bits() -> None:
    fast = Schedule(main_epochs=15, warmup_epochs=0, prune_epochs=0, qat_epochs=0, lr=2e-2, min_lr=2e-2)
    low, high = _trainer(0.0, schedule=fast, pretrain=False), _trainer(50.0, schedule=fast, pretrain=False)
    for tr in (low, high):
        tr.fit()
    assert high.estimated_bits() < low.estimated_bits()


def test_pretrain_runs_float_then_rate_stages() -> None:
    tr = _trainer(1.0)
    seen = []
    while not tr.done:
        tr.run_epoch()
        seen.append((tr.stage, tr.last_bits))
    assert tr.last_bits > 0  # the rd and ste stages estimated the rate


@pytest.mark.parametrize("optimizer", ["adam", "soap", "soap-pretrain"])
def test_resume_is_bit_exact(tmp_path: Path, optimizer: str) -> None:
    a = _trainer(1.0, "reference", optimizer=optimizer)
    a.fit()
    b = _trainer(1.0, "reference", optimizer=optimizer)
    b.run_epoch()
    b.save(tmp_path / "s.ckpt")
    c = _trainer(1.0, "reference", optimizer=optimizer)
    c.load(tmp_path / "s.ckpt")
    c.fit()
    for (n, p), (_, q) in zip(a.model.named_parameters(), c.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert all(torch.equal(x, y) for x, y in zip(a.rate.parameters(), c.rate.parameters(), strict=True))


def test_rate_stage_learning_rates() -> None:
    tr = _trainer(0.1)
    s = tr.schedule
    for stage, lr in (("prune", s.lr), ("qat", s.lr * s.qat_lr_scale)):
        tr.stage = stage
        assert tr._stage_lr(0, 10) == pytest.approx(lr)
    tr = _trainer(0.1, pretrain=False)
    tr.stage = "ste"
    assert tr._stage_lr(0, 10) == pytest.approx(s.lr * s.qat_lr_scale)


def test_settings_are_validated() -> None:
    for bad in ({"lam": -1.0}, {"distortion": "l2"}, {"proxy": "soft"}, {"target_bpp": 0.0},
                {"optimizer": "sgd"}):  # fmt: skip
        with pytest.raises(ConfigError):
            RDSettings(**bad)  # type: ignore[arg-type]


def test_the_recipe_trains_with_its_optimizer_and_old_work_folders_keep_their_key() -> None:
    from hinerv.optim import SOAP
    from hinerv.pipelines.rd import PIPELINE

    tr = _trainer(1.0, optimizer="soap")
    assert isinstance(tr.optimizer, SOAP)
    tr.run_epoch()  # a new stage starts a fresh optimizer of the same kind
    while tr.stage == "main":
        tr.run_epoch()
    assert isinstance(tr.optimizer, SOAP) and not tr.optimizer.state
    assert isinstance(_trainer(1.0).optimizer, torch.optim.Adam)
    # Adam, the implicit optimizer of folders written before the setting existed, is not in the key
    adam = PIPELINE.fingerprint(RDSettings(optimizer="adam"))
    assert "optimizer" not in adam
    assert PIPELINE.fingerprint(RDSettings(optimizer="soap"))["optimizer"] == "soap"


def test_soap_pretrain_uses_soap_while_pretraining_then_adam_and_resumes_in_either(tmp_path: Path) -> None:
    from hinerv.optim import SOAP

    sched = replace(load_schedule("tiny"), prune_epochs=2)
    tr = _trainer(1.0, schedule=sched, optimizer="soap-pretrain")
    assert tr.stage == "main" and isinstance(tr.optimizer, SOAP)
    while tr.stage == "main":
        tr.run_epoch()
    assert tr.recipe.rate_active and isinstance(tr.optimizer, torch.optim.Adam)
    tr.run_epoch()
    assert not tr.done and tr.optimizer.state
    tr.save(tmp_path / "rate.ckpt")  # an Adam state, resumed as Adam
    c = _trainer(1.0, schedule=sched, optimizer="soap-pretrain")
    c.load(tmp_path / "rate.ckpt")
    assert isinstance(c.optimizer, torch.optim.Adam) and c.optimizer.state
    tr.fit()
    c.fit()
    for (n, p), (_, q) in zip(tr.model.named_parameters(), c.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    # without pre-training every stage is rate-aware: Adam throughout
    assert isinstance(_trainer(1.0, optimizer="soap-pretrain", pretrain=False).optimizer, torch.optim.Adam)
    assert PIPELINE.fingerprint(RDSettings(optimizer="soap-pretrain"))["optimizer"] == "soap-pretrain"


def test_default_lambda_follows_the_size_ladder() -> None:
    assert default_lambda("s") == 1.0 and default_lambda("m") == 0.5 and default_lambda("l") == 0.25
    assert default_lambda("xs") == 2.0 and default_lambda("uvg-hinerv-xl") == 0.125
    assert default_lambda("bunny-hinerv-b-xs") == 2.0
    assert default_lambda(None) == default_lambda("custom") == 1.0
    assert default_lambda("m", "mse") == pytest.approx(0.025)
    sizes = list(LADDER_LAMBDA)
    assert all(LADDER_LAMBDA[a] > LADDER_LAMBDA[b] for a, b in zip(sizes, sizes[1:], strict=False))
    # EncodeOptions without λ takes the ladder's; an explicit λ wins
    opts = EncodeOptions(size="l", pipeline="rd")
    assert opts.resolve().settings.lam == 0.25
    assert EncodeOptions(size="l", pipeline="rd", settings=RDOptions(lam=2.0)).resolve().settings.lam == 2.0
    mse = EncodeOptions(size="l", pipeline="rd", settings=RDOptions(distortion="mse"))
    assert mse.resolve().settings.lam == pytest.approx(0.0125)


def test_auto_optimizer_follows_the_size() -> None:
    """``auto`` (the default) resolves to Adam at the smallest sizes and to soap-pretrain above; a plan
    asked for by name is kept at any size, and a size picked for a target rate gets its own plan."""
    assert RDOptions().optimizer == "auto"
    plans = [default_optimizer(z) for z in ("xxs", "xs", "s", "m", "l", "xxl")]
    assert plans == ["adam"] * 2 + ["soap-pretrain"] * 4
    assert default_optimizer("uvg-hinerv-xs") == "adam"
    assert default_optimizer("uvg-hinerv-s") == "soap-pretrain"
    assert default_optimizer(None) == default_optimizer("custom") == "soap-pretrain"
    assert EncodeOptions(size="xs", pipeline="rd").resolve().settings.optimizer == "adam"
    assert EncodeOptions(size="m", pipeline="rd").resolve().settings.optimizer == "soap-pretrain"
    named = EncodeOptions(size="xs", pipeline="rd", settings=RDOptions(optimizer="soap-pretrain"))
    assert named.resolve().settings.optimizer == "soap-pretrain"
    with pytest.raises(ConfigError, match=r"unknown optimizer 'sgd' \(auto, adam, soap, soap-pretrain\)"):
        EncodeOptions(size="s", pipeline="rd", settings=RDOptions(optimizer="sgd")).resolve()
    with pytest.raises(ConfigError, match="unknown optimizer 'auto'"):
        RDSettings(optimizer="auto")  # resolved settings always name a plan
    info = VideoInfo(width=320, height=180, frames=132, fps=Fraction(25), bit_depth=8, chroma="420")
    for target, size, plan in ((1e-4, "xxs", "adam"), (0.05, "s", "soap-pretrain")):
        auto = EncodeOptions(size="auto", pipeline="rd", settings=RDOptions(target_bpp=target)).resolve()
        plan_for_video = auto.for_video(info)
        assert (plan_for_video.size, plan_for_video.settings.optimizer) == (size, plan)


def test_blend_distortion_is_the_reference_with_l1_replaced_by_mse() -> None:
    """``blend``: 14·MSE + 0.3·(1 − MS-SSIM) (the schedule's L1 weight moved to the MSE at the mse
    distortion's scale, 20x), at the reference's λ ladder."""
    from hinerv.step import reference_loss

    g = torch.Generator().manual_seed(1)
    out, tgt = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    blend, ref = _trainer(1.0, distortion="blend"), _trainer(1.0, distortion="reference")
    s = blend.schedule
    d, mse = blend.recipe.loss(out, tgt)
    msssim_term, _ = reference_loss(out, tgt, 0.0, s.msssim_weight, s.msssim_window)
    assert float(d) == pytest.approx(14.0 * float(mse) + float(msssim_term), rel=1e-6)
    assert torch.equal(mse, ref.recipe.loss(out, tgt)[1])  # the same MSE reported
    assert not torch.equal(d, ref.recipe.loss(out, tgt)[0])
    assert default_lambda("m", "blend") == default_lambda("m") == 0.5
    opts = EncodeOptions(size="s", pipeline="rd", settings=RDOptions(distortion="blend"))
    assert opts.resolve().settings.lam == 1.0
    # a schedule's own MSE term adds to blend's (a TOML written for the reference distortion with its L1
    # moved by hand, l1_weight 0 and mse_weight 14, trains the same loss, not MS-SSIM alone)
    by_hand = _trainer(1.0, "blend", replace(s, l1_weight=0.0, mse_weight=14.0)).recipe.loss(out, tgt)[0]
    assert float(by_hand) == pytest.approx(float(d), rel=1e-6)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("clip") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=4, fps=25)
    return p


def test_rd_encode_decode_matches_and_reports_pipeline(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.bin"
    rep = encode_file(clip, out, RD)
    assert out.stat().st_size == rep.bytes and rep.pipeline == "rd" and rep.lam == pytest.approx(1.0)
    d = rep.as_dict()
    assert d["distortion"] == "reference"
    assert d["optimizer"] == RD.resolve().settings.optimizer == "adam"  # the plan auto gives xxs
    info = inspect_file(out)
    assert info["version"] == 2 and info["pipeline"] == "rd" and info["meta"]["pipeline"] == "rd"
    assert "masks" not in info["section_bytes"]
    dec = tmp_path / "d.y4m"
    decode_file(out, dec, device="cpu")
    from hinerv.io import open_video
    from hinerv.metrics import compare_videos

    with open_video(clip) as a, open_video(dec) as b:
        m = compare_videos(a, b).as_dict()
    assert m["psnr-rgb"] == pytest.approx(rep.metrics["psnr-rgb"], abs=1e-3)
    # same seed, same machine, same threads: same bytes
    out2 = tmp_path / "c2.bin"
    encode_file(clip, out2, RD)
    assert out2.read_bytes() == out.read_bytes()
    assert peek(out.read_bytes()).version == 2


def test_target_bpp_lands_within_five_percent(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.bin"
    base = encode_file(clip, tmp_path / "b.bin", RD)
    target = base.bpp * 1.3
    opts = replace(RD, settings=replace(RD.settings, target_bpp=target))
    rep = encode_file(clip, out, opts)
    assert abs(rep.bpp - target) <= 0.05 * target
