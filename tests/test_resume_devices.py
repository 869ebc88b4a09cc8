"""Resuming an encode under another device or precision (issue #17 item 5), tested on the CPU.

The CPU stands in for both sides: a :class:`DevicePolicy` constructed directly may run fp16 autocast with an
enabled (CPU) loss scaler, so a checkpoint written without loss scaling and resumed with it goes through
the same ``Trainer.load`` path as an encode started on the CPU and resumed with ``--device cuda``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train import TINY, _frames  # tests/ is on sys.path (pytest's rootdir-based import)

from hinerv.device import DevicePolicy
from hinerv.model import HiNeRV
from hinerv.pipelines.paper import PaperRecipe
from hinerv.train import Schedule, Trainer

SCHED = Schedule(name="t", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1)


def _trainer(precision: str, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = HiNeRV(TINY, 4, 64, 64)
    policy = DevicePolicy(torch.device("cpu"), precision)
    return Trainer(model, _frames(), 255, SCHED, recipe=PaperRecipe(bits=6), device=policy, seed=seed)


def _checkpoint(tmp_path: Path, precision: str) -> tuple[Trainer, Path]:
    tr = _trainer(precision)
    tr.run_epoch()
    path = tmp_path / f"{precision}.ckpt"
    tr.save(path)
    return tr, path


def _same_model(a: Trainer, b: Trainer) -> bool:
    pairs = zip(a.model.parameters(), b.model.parameters(), strict=True)
    return all(torch.equal(p.cpu(), q.cpu()) for p, q in pairs)


@pytest.mark.parametrize("writer", ["fp32", "bf16"])
def test_a_checkpoint_without_loss_scaling_resumes_with_it(tmp_path: Path, writer: str) -> None:
    """The bug: a disabled scaler's ``{}`` loaded into an enabled one raised a RuntimeError. Now the
    scaler starts fresh; model and Adam moments come from the checkpoint and training continues."""
    a, ckpt = _checkpoint(tmp_path, writer)
    assert torch.load(ckpt, weights_only=True)["scaler"] == {}
    b = _trainer("fp16", seed=1)
    b.load(ckpt)
    assert _same_model(a, b) and b.epoch == a.epoch
    assert b.runner.scaler.is_enabled() and b.runner.scaler.get_scale() == 65536.0  # a fresh scaler
    moments = [s["exp_avg"] for s in b.optimizer.state.values()]
    assert moments and all(torch.equal(m, a.optimizer.state[p]["exp_avg"])
                           for m, p in zip(moments, a.optimizer.state, strict=True))  # fmt: skip
    assert math.isfinite(b.run_epoch())  # trained under fp16 autocast with loss scaling
    assert b.runner.scaler.state_dict()["scale"] <= 65536.0


@pytest.mark.parametrize("reader", ["fp32", "bf16"])
def test_a_loss_scaled_checkpoint_resumes_without_loss_scaling(tmp_path: Path, reader: str) -> None:
    a, ckpt = _checkpoint(tmp_path, "fp16")
    assert torch.load(ckpt, weights_only=True)["scaler"]  # the writer's scale is in the file
    b = _trainer(reader, seed=1)
    b.load(ckpt)
    assert _same_model(a, b) and not b.runner.scaler.is_enabled()
    assert math.isfinite(b.run_epoch())


def test_loss_scale_survives_a_resume_under_the_same_precision(tmp_path: Path) -> None:
    a, ckpt = _checkpoint(tmp_path, "fp16")
    a.runner.scaler.update(new_scale=1234.0)  # an unusual scale, so a fresh scaler cannot match it
    a.save(ckpt)
    b = _trainer("fp16", seed=1)
    b.load(ckpt)
    assert b.runner.scaler.get_scale() == 1234.0


def test_a_checkpoint_from_another_device_type_loads(tmp_path: Path) -> None:
    """A checkpoint as a CUDA trainer writes it (a 16-byte Philox state for the noise generator, Adam
    groups with torch's default flags, the ``step`` counters on the host) resumes on the CPU: the
    noise generator is re-seeded, the groups take the CPU's fused Adam and training continues."""
    a, ckpt = _checkpoint(tmp_path, "fp32")
    state = torch.load(ckpt, weights_only=True)
    assert state["policy"] == {"device": "cpu", "precision": "fp32"}
    state["policy"] = {"device": "cuda", "precision": "fp16"}
    state["noise_gen"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state
    state["scaler"] = {"scale": 2048.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 2000, "_growth_tracker": 3}  # fmt: skip
    for g in state["optimizer"]["param_groups"]:
        g.update(fused=None, foreach=None)
    cuda_ckpt = tmp_path / "cuda.ckpt"
    torch.save(state, cuda_ckpt)
    b = _trainer("fp32", seed=1)
    b.load(cuda_ckpt)
    assert _same_model(a, b) and not b.runner.scaler.is_enabled()
    assert all(g["fused"] is True for g in b.optimizer.param_groups)
    assert all(s["step"].device.type == "cpu" for s in b.optimizer.state.values())
    assert b.noise_gen.initial_seed() != a.noise_gen.initial_seed()  # re-seeded, not the CUDA state
    c = _trainer("fp16", seed=1)
    c.load(cuda_ckpt)
    assert c.runner.scaler.get_scale() == 2048.0  # both sides scale the loss: the writer's scale kept
    del state["policy"]  # as written before checkpoints named their device: the state's shape tells
    torch.save(state, cuda_ckpt)
    d = _trainer("fp32", seed=1)
    d.load(cuda_ckpt)
    assert d.noise_gen.initial_seed() == b.noise_gen.initial_seed()
    for tr in (b, c, d):
        assert math.isfinite(tr.run_epoch())


# ------------------------------------------------------------------------------ on a GPU
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cpu_to_cuda_and_back(tmp_path: Path, precision: str) -> None:
    """CPU fp32 -> CUDA (fp16 or bf16) -> CPU fp32, an epoch on each, with the real devices."""
    a, ckpt = _checkpoint(tmp_path, "fp32")
    policy = DevicePolicy.resolve("cuda", precision)
    torch.manual_seed(1)
    b = Trainer(HiNeRV(TINY, 4, 64, 64).to(policy.device), _frames().to(policy.device), 255, SCHED,
                recipe=PaperRecipe(bits=6), device=policy, seed=1)  # fmt: skip
    b.load(ckpt)
    assert _same_model(a, b) and b.runner.scaler.is_enabled() is (precision == "fp16")
    assert all(s["exp_avg"].is_cuda for s in b.optimizer.state.values())
    assert math.isfinite(b.run_epoch())
    back = tmp_path / "cuda.ckpt"
    b.save(back)
    assert torch.load(back, weights_only=True)["policy"] == {"device": "cuda", "precision": precision}
    c = _trainer("fp32", seed=2)
    c.load(back)
    assert _same_model(b, c) and math.isfinite(c.run_epoch())


@pytest.mark.gpu
@gpu
def test_an_encode_started_on_the_cpu_finishes_on_cuda(tmp_path: Path) -> None:
    """The issue's case through the codec: a CPU encode's work folder (its final checkpoint holds a
    disabled scaler's ``{}``) resumed with ``device="cuda"`` (fp16 with loss scaling) exports and decodes."""
    from dataclasses import replace

    from hinerv.codec import EncodeOptions, encode_file
    from hinerv.sample import write_sample

    src, wd = tmp_path / "clip.y4m", tmp_path / "work"
    write_sample(src, width=64, height=48, frames=3)
    opts = EncodeOptions(size="xxs", schedule="tiny", epochs=1, device="cpu")
    cpu = encode_file(src, tmp_path / "cpu.bin", opts, workdir=wd)
    cuda = encode_file(src, tmp_path / "cuda.bin", replace(opts, device="cuda"), workdir=wd, resume=True)
    assert cuda.train_seconds == cpu.train_seconds  # nothing trained again: the CPU's model was resumed
    assert abs(cuda.metrics["psnr-rgb"] - cpu.metrics["psnr-rgb"]) < 0.5
