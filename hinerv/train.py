"""Per-video over-fitting: main training, pruning fine-tune and quantization-aware training.

The schedule follows the reference (hinerv-reference.md §5): loss ``0.7 * L1 + 0.3 * (1 - MS-SSIM 5x5)``
per patch, Adam, linear warm-up then cosine (measured from step 0, as timm), gradient clipping at norm 1,
random batches of patches drawn from the whole video (one batch = one frame's worth of pixels; one epoch =
every patch of every frame once = T steps). Three stages, each with a fresh Adam:

1. ``main``: ``main_epochs`` with warm-up;
2. ``prune``: one-shot global magnitude pruning (:mod:`hinerv.prune`), then ``prune_epochs`` of fine-tune;
3. ``qat``: ``qat_epochs`` of Quant-Noise (:mod:`hinerv.quant`) at the bit depth that will be coded,
   lr scaled by ``qat_lr_scale``.

Unlike the reference, fake quantization is computed only in the QAT stage, and QAT uses the target bit depth.

This module does no I/O except the checkpoint file it is handed (written atomically) and no printing:
progress goes to a callback.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from hinerv.errors import ConfigError
from hinerv.metrics import ms_ssim
from hinerv.prune import magnitude_masks
from hinerv.quant import ScaleMode, quant_noise, scale_axes_for

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "Schedule",
    "load_schedule",
    "list_schedules",
    "TrainEvent",
    "Trainer",
    "choose_patch_grid",
    "STAGES",
]

STAGES = ("main", "prune", "qat")

#: default activation budget of one training forward/backward (see ``Trainer(max_memory=...)``)
DEFAULT_MAX_MEMORY = 3 << 30


@dataclass(frozen=True)
class Schedule:
    """Training schedule; the shipped ones are ``configs/train/{full,short,tiny}.toml``."""

    name: str = "full"
    main_epochs: int = 300
    warmup_epochs: int = 30
    prune_epochs: int = 60
    qat_epochs: int = 30
    lr: float = 2e-3
    warmup_lr: float = 2e-5
    min_lr: float = 2e-5
    qat_lr_scale: float = 0.1
    prune_ratio: float = 0.15
    quant_noise: float = 0.9
    grad_clip: float = 1.0
    l1_weight: float = 0.7
    msssim_weight: float = 0.3
    msssim_window: int = 5
    #: Adam's second-moment decay (the reference's 0.999; the ``fast`` schedule uses 0.99)
    adam_beta2: float = 0.999

    def epochs(self, stage: str) -> int:
        return {"main": self.main_epochs, "prune": self.prune_epochs, "qat": self.qat_epochs}[stage]

    @property
    def total_epochs(self) -> int:
        return self.main_epochs + self.prune_epochs + self.qat_epochs

    def with_main_epochs(self, epochs: int) -> Schedule:
        """Scale every stage so that the main stage has ``epochs`` epochs (the reference's _600e style)."""
        if epochs < 1:
            raise ConfigError("epochs must be >= 1")
        f = epochs / self.main_epochs
        return replace(
            self,
            name=f"{self.name}@{epochs}",
            main_epochs=epochs,
            warmup_epochs=min(epochs, max(0, round(self.warmup_epochs * f))),
            prune_epochs=max(1, round(self.prune_epochs * f)) if self.prune_epochs else 0,
            qat_epochs=max(1, round(self.qat_epochs * f)) if self.qat_epochs else 0,
        )


def list_schedules() -> list[str]:
    """Names of the shipped schedules."""
    d = resources.files("hinerv") / "configs" / "train"
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))


def load_schedule(name: str) -> Schedule:
    """Load ``configs/train/<name>.toml`` (or a path to a TOML file) into a :class:`Schedule`."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        text = p.read_text()
    else:
        f = resources.files("hinerv") / "configs" / "train" / f"{name}.toml"
        if not f.is_file():
            raise ConfigError(f"unknown schedule {name!r} (choose one of {', '.join(list_schedules())})")
        text = f.read_text()
    data = tomllib.loads(text)
    known = {f.name for f in fields(Schedule)}
    bad = set(data) - known
    if bad:
        raise ConfigError(f"unknown schedule keys: {', '.join(sorted(bad))}")
    sched = Schedule(**data)
    if not 0.0 <= sched.adam_beta2 < 1.0:
        raise ConfigError(f"adam_beta2 must be in [0, 1), got {sched.adam_beta2}")
    return sched


def choose_patch_grid(
    height: int,
    width: int,
    upscale: int,
    target: int = 120,
    min_side: int = 72,
    frame_mode_pixels: int = 640 * 480,
) -> tuple[int, int]:
    """Tiling (gh, gw) of the padded frame into training patches.

    Frames of at most ``frame_mode_pixels`` train whole (grid (1, 1)): patch mode recomputes halos
    around every tile, which costs ~2x at these sizes, and a whole small frame fits in memory anyway.
    Larger frames are tiled like the reference: patch sides are multiples of ``upscale`` (the model's
    total up-sampling) so each patch maps to whole base-grid cells, closest to ``target`` (the
    reference's 120 at 1080p) and at least ``min_side`` (the 5-scale MS-SSIM with a 5x5 window needs
    > 64 px), else the whole side.
    """
    if height * width <= frame_mode_pixels:
        return 1, 1

    def best(n: int) -> int:
        cells = n // upscale
        options = [g for g in range(1, cells + 1) if cells % g == 0 and (n // g >= min_side or g == 1)]
        return min(options, key=lambda g: (abs(n // g - target), g))

    return best(height), best(width)


@dataclass(frozen=True)
class TrainEvent:
    """What the trainer reports to its callback after every optimizer step.

    ``psnr`` is the PSNR of the running mean training MSE of the current epoch (on float output).
    ``eta`` is the expected training seconds left when the caller has an estimate (the codec adds it
    with :class:`hinerv.budget.EtaEstimator`); the trainer itself leaves it None.
    """

    stage: str
    epoch: int  # 1-based epoch within the stage
    stage_epochs: int
    step: int  # 1-based step within the epoch
    steps: int
    global_epoch: int  # epochs completed over all stages before this one
    total_epochs: int
    loss: float
    psnr: float
    lr: float
    epoch_done: bool
    eta: float | None = None


def _lr_at(step: int, total: int, warmup: int, lr: float, warmup_lr: float, min_lr: float) -> float:
    """timm-style cosine with linear warm-up; the cosine is measured from step 0 (pitfall 12)."""
    if step < warmup:
        return warmup_lr + (lr - warmup_lr) * step / max(1, warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


class Trainer:
    """Over-fits a :class:`hinerv.model.HiNeRV` to one video.

    Args:
        model: the network, already on ``device``; its output covers the padded frame.
        frames: integer RGB cache ``[T, 3, Hp, Wp]`` (uint8, or int16/int32 holding up to 16-bit values),
            already padded to the model's size (edge replication), on ``device`` or CPU.
        peak: ``2**bit_depth - 1``, the value of white in ``frames``.
        schedule: epochs and hyper-parameters.
        bits: the bit depth that will be coded (used by QAT).
        scale_mode: quantizer scale rule (see :func:`hinerv.quant.scale_axes_for`).
        device: torch device.
        seed: seeds the batch order and the Quant-Noise masks.
        amp: fp16 autocast + loss scaling on CUDA (ignored on CPU).
        compile: wrap the model with ``torch.compile``.
        max_memory: bytes the activations of one forward/backward may take. A step's patch batch
            (one frame's worth of tiles, with halos) that the model estimates above this is run as
            micro-batches with gradient accumulation (the same step, within float rounding).
            ``None``: never split.
    """

    #: the stages this trainer runs, in order (subclasses define their own)
    stages: tuple[str, ...] = STAGES
    #: stages that train at ``lr * qat_lr_scale`` (no warm-up, cosine to ``min_lr * qat_lr_scale``)
    qat_lr_stages: tuple[str, ...] = ("qat",)

    def __init__(
        self,
        model: torch.nn.Module,
        frames: torch.Tensor,
        peak: int,
        schedule: Schedule,
        *,
        bits: int = 6,
        scale_mode: ScaleMode = "reference",
        device: torch.device | str = "cpu",
        seed: int = 0,
        amp: bool = True,
        compile: bool = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.frames = frames
        self.peak = float(peak)
        self.schedule = schedule
        self.bits = bits
        self.scale_mode: ScaleMode = scale_mode
        self.seed = seed
        T, _, H, W = frames.shape
        self.T, self.H, self.W = T, H, W
        up = int(model.cfg.upscale)
        self.grid = choose_patch_grid(H, W, up)
        self.ph, self.pw = H // self.grid[0], W // self.grid[1]
        self.amp = amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self._fwd: Callable[..., torch.Tensor] = torch.compile(model) if compile else model  # type: ignore[assignment]
        self.prunable = list(model.prunable_names())  # type: ignore[operator]
        self.quantizable = list(model.quantizable_names())  # type: ignore[operator]
        self.masks: dict[str, torch.Tensor] = {}
        self.gen = torch.Generator().manual_seed(seed)  # batch order
        self.noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)  # Quant-Noise masks
        self.stage = "main"
        self.epoch = 0  # completed epochs within the current stage
        self.elapsed = 0.0  # training seconds so far, summed over resumed sessions
        self.optimizer = self._new_optimizer()
        self.micro_batch = self._micro_batch(max_memory)

    def _micro_batch(self, max_memory: int | None) -> int:
        """Patches per forward pass: the whole step's batch unless its activations exceed ``max_memory``."""
        B = self.grid[0] * self.grid[1]
        estimate = getattr(self.model, "activation_bytes", None)
        if max_memory is None or estimate is None or B == 1:
            return B
        per = max(1, int(estimate(self.grid)))
        return max(1, min(B, int(max_memory // per)))

    # ------------------------------------------------------------------ state
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Everything the optimizer updates (subclasses add their own parameters)."""
        return list(self.model.parameters())

    def stage_epochs(self, stage: str) -> int:
        """Epochs of ``stage`` in this trainer's schedule."""
        return self.schedule.epochs(stage)

    def _new_optimizer(self) -> torch.optim.Optimizer:
        params, adam = self.trainable_parameters(), self._adam_impl()
        return torch.optim.Adam(params, lr=self.schedule.lr, betas=self.adam_betas, eps=1e-8, **adam)

    @property
    def adam_betas(self) -> tuple[float, float]:
        """Adam's (beta1, beta2) for this schedule."""
        return 0.9, self.schedule.adam_beta2

    def _adam_impl(self) -> dict[str, bool | None]:
        """Adam implementation flags: the fused kernel on CPU (one pass over all parameters instead of a
        dozen small ops per tensor; the same update within float rounding), torch's default elsewhere."""
        if self.device.type == "cpu":
            return {"fused": True, "foreach": None}
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly (tensors and primitives only)."""
        return {
            "stage": self.stage,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "masks": {k: v.cpu() for k, v in self.masks.items()},
            "gen": self.gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
            "schedule": asdict(self.schedule),
            "bits": self.bits,
            "scale_mode": self.scale_mode,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, the schedule included (a time budget may have fitted it)."""
        self.model.load_state_dict(state["model"])
        if "schedule" in state:
            self.schedule = type(self.schedule)(**state["schedule"])
        self.stage = state["stage"]
        self.epoch = int(state["epoch"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.masks = {k: v.to(self.device) for k, v in state["masks"].items()}
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        for g in self.optimizer.param_groups:  # the saved groups carry the writer's implementation flags
            g.update(self._adam_impl())
        self.scaler.load_state_dict(state["scaler"])
        self.gen.set_state(state["gen"])
        self.bits = int(state["bits"])
        self.scale_mode = state.get("scale_mode", self.scale_mode)
        self.noise_gen.set_state(state["noise_gen"])

    def save(self, path: Path) -> None:
        """Write a checkpoint atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        """Resume from :meth:`save`'s file (``weights_only``: no code is ever unpickled)."""
        self.load_state_dict(torch.load(Path(path), map_location="cpu", weights_only=True))

    @property
    def epochs_done(self) -> int:
        """Epochs completed over all stages."""
        if self.stage == "done":
            return self.total_epochs
        return sum(self.stage_epochs(s) for s in self.stages[: self.stages.index(self.stage)]) + self.epoch

    @property
    def total_epochs(self) -> int:
        """Epochs over all stages."""
        return sum(self.stage_epochs(s) for s in self.stages)

    @property
    def done(self) -> bool:
        return self.stage == "done"

    @property
    def qat_key(self) -> tuple[int, str]:
        """What the QAT stage depends on besides the pruned model: (bits, scale rule)."""
        return self.bits, self.scale_mode

    def set_bits(self, bits: int) -> None:
        """Change the QAT bit depth (allowed before the QAT stage has started)."""
        if self.stage == "qat" and self.epoch > 0:
            raise ConfigError("cannot change bits in the middle of QAT")
        self.bits = bits

    # ------------------------------------------------------------------ forward
    def effective_params(self, training: bool) -> dict[str, torch.Tensor]:
        """Parameter overrides for the current stage: masked weights, plus Quant-Noise during QAT."""
        params = dict(self.model.named_parameters())
        out: dict[str, torch.Tensor] = {}
        for n, m in self.masks.items():
            out[n] = params[n] * m
        if self.stage == "qat" and training:
            for n in self.quantizable:
                w = out.get(n, params[n])
                axes = scale_axes_for(w.shape, mode=self.scale_mode, layer=n.endswith("weight"))
                out[n] = quant_noise(w, self.bits, axes, self.schedule.quant_noise, self.noise_gen)
        return out

    def _batch(self, order: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gh, gw = self.grid
        B = gh * gw
        sel = order[step * B : (step + 1) * B]
        t, rest = sel // B, sel % B
        ih, iw = rest // gw, rest % gw
        idx = torch.stack([t, ih, iw], dim=1)
        view = self.frames.view(self.T, 3, gh, self.ph, gw, self.pw)
        tgt = view[t.to(self.frames.device), :, ih.to(self.frames.device), :, iw.to(self.frames.device), :]
        tgt = tgt.to(self.device, non_blocking=True).float() / self.peak
        return idx.to(self.device), tgt

    def _loss(self, out: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.schedule
        out = out.float()
        mse = F.mse_loss(out.detach(), tgt)
        loss = s.l1_weight * (out - tgt).abs().mean()
        if s.msssim_weight:
            loss = (
                loss
                + s.msssim_weight * (1 - ms_ssim(out, tgt, data_range=1.0, win_size=s.msssim_window)).mean()
            )
        return loss, mse

    def _stage_lr(self, step: int, steps_per_epoch: int) -> float:
        s = self.schedule
        total = self.stage_epochs(self.stage) * steps_per_epoch
        if self.stage == "main":
            return _lr_at(step, total, s.warmup_epochs * steps_per_epoch, s.lr, s.warmup_lr, s.min_lr)
        scale = s.qat_lr_scale if self.stage in self.qat_lr_stages else 1.0
        return _lr_at(step, total, 0, s.lr * scale, s.lr * scale, s.min_lr * scale)

    def _start_stage(self, stage: str) -> None:
        self.stage, self.epoch = stage, 0
        if stage == "prune" and self.schedule.prune_epochs > 0:  # zero epochs: no pruning (reference)
            params = dict(self.model.named_parameters())
            total = sum(p.numel() for p in self.model.parameters())
            self.masks = magnitude_masks(
                {n: params[n] for n in self.prunable}, self.schedule.prune_ratio, total
            )
        self.optimizer = self._new_optimizer()

    def _advance_stage(self) -> None:
        """Move past finished (or empty) stages."""
        while self.stage != "done" and self.epoch >= self.stage_epochs(self.stage):
            nxt = self.stages.index(self.stage) + 1
            if nxt == len(self.stages):
                self.stage, self.epoch = "done", 0
                return
            self._start_stage(self.stages[nxt])

    def train_step(self, idx: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float]:
        """One optimizer step on a batch at the current learning rate; returns (loss, MSE).

        Args:
            idx: int64 ``[N, 3]`` patch indices (t, ih, iw) in the trainer's patch grid.
            tgt: float32 ``[N, 3, ph, pw]`` target patches in [0, 1].
        """
        n = idx.shape[0]
        if self.micro_batch < n:
            loss_v, mse_v = self._accumulate(idx, tgt)
        else:
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                params = self.effective_params(True)
                fwd_args = (idx, self.grid)
                out = functional_call(self._fwd, params, fwd_args) if params else self._fwd(*fwd_args)
            loss, mse = self._loss(out, tgt)
            penalty = self.step_penalty()
            if penalty is not None:
                loss = loss + penalty
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            loss_v, mse_v = float(loss.detach()), float(mse)
        self.scaler.unscale_(self.optimizer)
        if self.schedule.grad_clip > 0:
            foreach = True if self.device.type == "cpu" else None  # torch's default is per-tensor on CPU
            torch.nn.utils.clip_grad_norm_(
                self.trainable_parameters(), self.schedule.grad_clip, foreach=foreach
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_v, mse_v

    def _accumulate(self, idx: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float]:
        """Gradients of the whole batch's loss, computed in micro-batches of ``self.micro_batch`` patches.

        The loss is a mean over equal-sized patches, so the batch loss is the sum of the micro-batch
        losses weighted by their share of the batch. Masked / Quant-Noise parameters are computed once
        for the whole step (one noise draw, as without splitting): the micro-batches run on detached
        copies, and their accumulated gradients are pushed through the parameter transform at the end.
        """
        n = idx.shape[0]
        self.optimizer.zero_grad(set_to_none=True)
        eff = self.effective_params(True)
        penalty = self.step_penalty()
        leaves = {k: v.detach().requires_grad_(True) for k, v in eff.items()}
        loss_sum, mse_sum = 0.0, 0.0
        for i in range(0, n, self.micro_batch):
            sl = slice(i, min(n, i + self.micro_batch))
            w = (sl.stop - sl.start) / n
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                if leaves:
                    out = functional_call(self._fwd, leaves, (idx[sl], self.grid))
                else:
                    out = self._fwd(idx[sl], self.grid)
            loss, mse = self._loss(out, tgt[sl])
            self.scaler.scale(loss * w).backward()
            loss_sum += float(loss.detach()) * w
            mse_sum += float(mse) * w
            del out, loss
        used = [k for k in leaves if leaves[k].grad is not None]
        roots = [eff[k] for k in used]
        grads = [leaves[k].grad for k in used]
        if penalty is not None:  # once per step, through the same parameter transform
            roots.append(self.scaler.scale(penalty))
            grads.append(torch.ones_like(penalty))
            loss_sum += float(penalty.detach())
        if roots:
            torch.autograd.backward(roots, grads)
        return loss_sum, mse_sum

    def step_penalty(self) -> torch.Tensor | None:
        """A loss term of the whole step added once to the batch loss (after :meth:`effective_params`);
        None here. The rd pipeline's rate term lives in its override."""
        return None

    def run_epoch(self, callback: Callable[[TrainEvent], None] | None = None) -> float:
        """Train one epoch of the current stage; returns the epoch's mean training MSE."""
        self._advance_stage()
        if self.done:
            return float("nan")
        t_start = time.perf_counter()
        self.model.train()
        steps = self.T
        B = self.grid[0] * self.grid[1]
        order = torch.randperm(self.T * B, generator=self.gen)
        total_mse, total_loss = 0.0, 0.0
        stage_epochs = self.stage_epochs(self.stage)
        done_before = self.epochs_done
        for step in range(steps):
            lr = self._stage_lr(self.epoch * steps + step, steps)
            for g in self.optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            loss, mse = self.train_step(*self._batch(order, step))
            total_mse += mse
            total_loss += loss
            if callback is not None:
                m = total_mse / (step + 1)
                callback(
                    TrainEvent(
                        stage=self.stage,
                        epoch=self.epoch + 1,
                        stage_epochs=stage_epochs,
                        step=step + 1,
                        steps=steps,
                        global_epoch=done_before,
                        total_epochs=self.total_epochs,
                        loss=total_loss / (step + 1),
                        psnr=10 * math.log10(1 / max(m, 1e-10)),
                        lr=lr,
                        epoch_done=step + 1 == steps,
                    )
                )
        self.epoch += 1
        self.elapsed += time.perf_counter() - t_start
        self._advance_stage()
        return total_mse / steps

    def fit(
        self,
        callback: Callable[[TrainEvent], None] | None = None,
        checkpoint: Path | None = None,
        checkpoint_seconds: float = 60.0,
        stop_after: str | None = None,
        epoch_hook: Callable[[Trainer], None] | None = None,
    ) -> None:
        """Run epochs until the schedule is done (or the stage ``stop_after`` has finished).

        With ``checkpoint``, the state is saved atomically at every stage boundary, at the end, and after
        any epoch that ends more than ``checkpoint_seconds`` after the last save, so a killed run loses
        at most about that much work. ``epoch_hook(trainer)`` runs after every epoch (benchmarks use it to
        measure the model as it trains).
        """
        last_stage, last_save = self.stage, time.monotonic()
        while not self.done:
            if stop_after is not None and self._stage_finished(stop_after):
                break
            self.run_epoch(callback)
            if epoch_hook is not None:
                epoch_hook(self)
            boundary = self.stage != last_stage
            last_stage = self.stage
            if checkpoint is not None and (
                boundary or self.done or time.monotonic() - last_save >= checkpoint_seconds
            ):
                self.save(checkpoint)
                last_save = time.monotonic()

    def _stage_finished(self, stage: str) -> bool:
        order = (*self.stages, "done")
        self._advance_stage()
        return order.index(self.stage) > order.index(stage)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def reconstruct(self, t: torch.Tensor) -> torch.Tensor:
        """Float frames ``[N, 3, Hp, Wp]`` in (0, 1) for frame indices ``t`` with masks, no noise."""
        self.model.eval()
        idx = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1).to(self.device)
        params = self.effective_params(False)
        return functional_call(self.model, params, (idx, (1, 1))) if params else self.model(idx, (1, 1))
