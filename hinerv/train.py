"""Per-video over-fitting: the training loop, its events and checkpoints, for any recipe.

The schedule follows the reference (hinerv-reference.md §5): Adam, linear warm-up then cosine (measured
from step 0, as timm), gradient clipping at norm 1, random batches of patches drawn from the whole video
(one batch = one frame's worth of pixels; one epoch = every patch of every frame once = T steps). The
:class:`Schedule` gives epochs to three slots (``main``, ``prune``, ``qat``); a recipe maps its own stages
onto them (the paper pipeline's stages are the slots themselves: :mod:`hinerv.pipelines.paper`), each
stage with a fresh optimizer (Adam, or the recipe's: :mod:`hinerv.optim`). One optimizer step is
:class:`hinerv.step.StepRunner`'s.

This module does no I/O except the checkpoint file it is handed (written atomically) and no printing:
progress goes to a callback.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call

from hinerv.device import DEFAULT_MAX_MEMORY, DevicePolicy
from hinerv.errors import ConfigError
from hinerv.io.base import atomic_write
from hinerv.optim import make_optimizer
from hinerv.recipe import Recipe, StageList, lr_at
from hinerv.step import StepRunner, choose_patch_grid

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "Schedule",
    "SCHEDULE_SLOTS",
    "load_schedule",
    "list_schedules",
    "TrainEvent",
    "Trainer",
    "StepProbe",
    "choose_patch_grid",
    "DEFAULT_MAX_MEMORY",
]

_lr_at = lr_at  # the learning-rate curve (hinerv.recipe.lr_at), under its former name

#: the schedule's epoch slots, in training order (a recipe's stages take their epochs from these)
SCHEDULE_SLOTS = ("main", "prune", "qat")


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
    #: the paper pipeline's magnitude pruning and quant-noise fraction; the rd pipeline reads neither (its
    #: zeros and steps come from its rate term)
    prune_ratio: float = 0.15
    quant_noise: float = 0.9
    grad_clip: float = 1.0
    l1_weight: float = 0.7
    msssim_weight: float = 0.3
    msssim_window: int = 5
    #: weight of an MSE term in the distortion (0 in the shipped schedules: the reference's L1 + MS-SSIM)
    mse_weight: float = 0.0
    #: Adam's first-moment (momentum) decay (the reference's 0.9)
    adam_beta1: float = 0.9
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


#: the default schedule name: ``full``, whose learning rates a time budget may change
#: (:func:`hinerv.budget.rates_for_length`); it loads as ``full``
AUTO_SCHEDULE = "auto"


def list_schedules() -> list[str]:
    """Names of the shipped schedules (and ``auto``)."""
    d = resources.files("hinerv") / "configs" / "train"
    return sorted([AUTO_SCHEDULE, *(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))])


def load_schedule(name: str) -> Schedule:
    """Load ``configs/train/<name>.toml`` (or a path to a TOML file) into a :class:`Schedule`; ``auto``
    loads ``full``."""
    if name == AUTO_SCHEDULE:
        name = "full"
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
    for key in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(sched, key) < 1.0:
            raise ConfigError(f"{key} must be in [0, 1), got {getattr(sched, key)}")
    return sched


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


class Trainer:
    """Over-fits a :class:`hinerv.model.HiNeRV` to one video, following a :class:`~hinerv.recipe.Recipe`.

    Args:
        model: the network, already on ``device``; its output covers the padded frame.
        frames: integer RGB cache ``[T, 3, Hp, Wp]`` (uint8, or int16/int32 holding up to 16-bit values),
            already padded to the model's size (edge replication), on ``device`` or CPU.
        peak: ``2**bit_depth - 1``, the value of white in ``frames``.
        schedule: epochs and hyper-parameters.
        recipe: what the pipeline trains (stages, transform, penalty, extra state); bound here.
        device: a torch device, its name, or a :class:`~hinerv.device.DevicePolicy` (which then also
            gives the precision; ``amp`` is ignored).
        seed: seeds the batch order and the recipe's noise (``noise_gen``).
        amp: with a device (not a policy): fp16 autocast + loss scaling on CUDA, fp32 elsewhere;
            False: fp32.
        compile: run the forward under ``torch.compile`` (True, or a mode name; see
            :class:`~hinerv.step.StepRunner`).
        max_memory: bytes the activations of one forward/backward may take; a larger step runs as
            micro-batches (:class:`~hinerv.step.StepRunner`). ``None``: never split.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        frames: torch.Tensor,
        peak: int,
        schedule: Schedule,
        *,
        recipe: Recipe,
        device: DevicePolicy | torch.device | str = "cpu",
        seed: int = 0,
        amp: bool = True,
        compile: bool | str = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
    ) -> None:
        if isinstance(device, DevicePolicy):
            self.policy = device
        else:
            dev = torch.device(device)
            self.policy = DevicePolicy(dev, "fp16" if amp and dev.type == "cuda" else "fp32")
        self.device = self.policy.device
        self.model = model
        self.schedule = schedule
        self.recipe = recipe
        self.seed = seed
        self.runner = StepRunner(model, frames, peak, self.policy, compile=compile, max_memory=max_memory)
        self.T = self.runner.T
        self.gen = torch.Generator().manual_seed(seed)  # batch order
        self.noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)  # recipe noise
        recipe.bind(self)
        self.stage = self.stages[0]
        self.epoch = 0  # completed epochs within the current stage
        self.elapsed = 0.0  # training seconds so far, summed over resumed sessions
        self.optimizer = self._new_optimizer()

    # ------------------------------------------------------------------ stages
    def stage_list(self, schedule: Schedule | None = None) -> StageList:
        """The recipe's stages under ``schedule`` (default: the current one, which a time budget may
        change)."""
        return StageList(self.recipe.stages(schedule or self.schedule))

    @property
    def stages(self) -> tuple[str, ...]:
        """The recipe's stage names, in order."""
        return self.stage_list().names

    def stage_epochs(self, stage: str) -> int:
        """Epochs of ``stage`` under the current schedule."""
        return self.stage_list().get(stage).epochs

    grid = property(lambda self: self.runner.grid, doc="Patch grid (gh, gw) of a training step.")
    micro_batch = property(lambda self: self.runner.micro_batch, doc="Patches per forward pass.")

    @property
    def epochs_done(self) -> int:
        """Epochs completed over all stages."""
        done = sum(st.epochs for st in self.stage_list().before(self.stage))
        return done if self.done else done + self.epoch

    @property
    def total_epochs(self) -> int:
        """Epochs over all stages."""
        return self.stage_list().total

    def __getattr__(self, name: str) -> Any:
        # only reached for names the trainer lacks: the state its recipe exposes (``masks``, ``rate``)
        if name in getattr(self.__dict__.get("recipe"), "exposed", ()):
            return getattr(self.recipe, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    done = property(lambda self: self.stage == "done", doc="Whether every stage has finished.")

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Everything the optimizer updates: the model's parameters, then the recipe's."""
        return list(self.model.parameters()) + self.recipe.extra_parameters()

    def set_schedule(self, schedule: Schedule) -> None:
        """Train under ``schedule`` from now on (a time budget fits it).

        A trainer that has not taken a step yet also gets a fresh optimizer, so Adam's β2 and the learning
        rate come from the new schedule; a running one keeps its optimizer state.
        """
        self.schedule = schedule
        if self.stage == self.stages[0] and self.epoch == 0:
            self.optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimizer of the kind the recipe asks for in the current stage (Adam by default)."""
        betas = (self.schedule.adam_beta1, self.schedule.adam_beta2)
        name = self.recipe.stage_optimizer(self.stage)
        return make_optimizer(name, self.recipe.param_groups(), lr=self.schedule.lr, betas=betas,
                              adam_flags=self.policy.adam_flags())  # fmt: skip

    def enter_stage(self, stage: str) -> None:
        """Start ``stage`` at its first epoch: the recipe prepares it, then a fresh optimizer."""
        self.stage, self.epoch = stage, 0
        self.recipe.start_stage(stage)
        self.optimizer = self._new_optimizer()

    def _advance_stage(self) -> None:
        """Move past finished (or empty) stages."""
        while self.stage != "done" and self.epoch >= self.stage_epochs(self.stage):
            after = self.stage_list().after(self.stage)
            if not after:
                self.stage, self.epoch = "done", 0
                return
            self.enter_stage(after[0].name)

    def stage_finished(self, stage: str) -> bool:
        """Whether ``stage`` is over (the trainer first moves past finished stages)."""
        self._advance_stage()
        sl = self.stage_list()
        return sl.index(self.stage) > sl.index(stage)

    def _stage_lr(self, step: int, steps_per_epoch: int) -> float:
        return self.stage_list().get(self.stage).lr(step, steps_per_epoch, self.schedule)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly (tensors and primitives only); ``policy`` records the
        device type and precision that wrote it."""
        return {
            "stage": self.stage,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.runner.scaler.state_dict(),
            "gen": self.gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
            "schedule": asdict(self.schedule),
            "policy": {"device": self.device.type, "precision": self.policy.precision},
            **self.recipe.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, the schedule included (a time budget may have fitted it).

        The state may come from another device or precision (an encode started on the CPU and resumed
        on CUDA, or the reverse): tensors go to this trainer's device, the optimizer keeps its moments
        but takes this device's implementation flags, the loss scaler's state is loaded only when both
        the writer and this trainer scale the loss (else this trainer's scaler starts fresh), and the
        recipe's noise generator, whose state is device-specific, is re-seeded from the seed and the
        epochs done. Resuming on the writer's device and precision is bit-exact.
        """
        self.model.load_state_dict(state["model"])
        if "schedule" in state:
            self.schedule = type(self.schedule)(**state["schedule"])
        self.stage = state["stage"]
        self.epoch = int(state["epoch"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.recipe.load_state_dict(state)
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])  # moments move to the parameters' device
        self._reset_optimizer_flags()
        scaler = self.runner.scaler
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        elif scaler.is_enabled():  # written without loss scaling (fp32 / bf16, or on the CPU)
            self.runner.scaler = self.policy.grad_scaler()
        self.gen.set_state(state["gen"])
        writer = state.get("policy", {}).get("device")  # None: written before checkpoints said
        try:
            if writer not in (None, self.device.type):
                raise ValueError(writer)
            self.noise_gen.set_state(state["noise_gen"])
        except (RuntimeError, ValueError):  # another device type's generator state
            self.noise_gen.manual_seed(self.seed + 1 + 1_000_003 * (1 + self.epochs_done))

    def _reset_optimizer_flags(self) -> None:
        """Give the loaded optimizer groups this device's Adam flags (the saved groups carry the
        writer's) and put each ``step`` counter where this implementation keeps it (on the parameter's
        device for fused/capturable Adam, else on the CPU), as a fresh optimizer would. Other optimizers
        have no implementation flags."""
        if not isinstance(self.optimizer, torch.optim.Adam):
            return
        flags = self.policy.adam_flags()
        for g in self.optimizer.param_groups:
            g.update(flags)
            on_device = bool(g.get("fused") or g.get("capturable"))
            for p in g["params"]:
                st = self.optimizer.state.get(p)
                if st is not None and torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(p.device if on_device else "cpu")

    def save(self, path: Path) -> None:
        """Write a checkpoint atomically (temp file, fsync, rename)."""
        state = self.state_dict()
        atomic_write(Path(path), lambda f: torch.save(state, f))

    def load(self, path: Path) -> None:
        """Resume from :meth:`save`'s file (``weights_only``: no code is ever unpickled)."""
        self.load_state_dict(torch.load(Path(path), map_location="cpu", weights_only=True))

    # ------------------------------------------------------------------ training
    def train_step(self, idx: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float]:
        """One optimizer step on a batch at the current learning rate; returns (loss, MSE).

        Args:
            idx: int64 ``[N, 3]`` patch indices (t, ih, iw) in the trainer's patch grid.
            tgt: float32 ``[N, 3, ph, pw]`` target patches in [0, 1].
        """
        r = self.recipe
        r.before_step()
        params, clip = self.trainable_parameters(), self.schedule.grad_clip
        res = self.runner.step(idx, tgt, lambda: r.transform(True), r.loss, self.optimizer, params, clip)
        r.after_step()
        return res

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
        done_before, total_epochs = self.epochs_done, self.total_epochs
        for step in range(steps):
            lr = self._stage_lr(self.epoch * steps + step, steps)
            for g in self.optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            loss, mse = self.train_step(*self.runner.batch(order, step))
            total_mse += mse
            total_loss += loss
            if callback is not None:
                m, n = total_mse / (step + 1), step + 1
                psnr = 10 * math.log10(1 / max(m, 1e-10))
                callback(TrainEvent(self.stage, self.epoch + 1, stage_epochs, n, steps, done_before,
                                    total_epochs, total_loss / n, psnr, lr, n == steps))  # fmt: skip
        self.epoch += 1
        self.elapsed += time.perf_counter() - t_start
        self._advance_stage()
        self.recipe.after_epoch()
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
            if stop_after is not None and self.stage_finished(stop_after):
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

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def reconstruct(self, t: torch.Tensor) -> torch.Tensor:
        """Float frames ``[N, 3, Hp, Wp]`` in (0, 1) for frame indices ``t``, with the recipe's inference
        parameters (masks, rounding; no noise)."""
        self.model.eval()
        idx = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1).to(self.device)
        params, _ = self.recipe.transform(False)
        return functional_call(self.model, params, (idx, (1, 1))) if params else self.model(idx, (1, 1))


class StepProbe:
    """Real training steps of any stage that leave the trainer as it was (step-time measurement):
    ``with StepProbe(trainer) as p:``, then ``p.enter(stage)`` and ``p.step()``.

    On entering, the trainer's complete state (model, optimizer, recipe state, generators, stage, clock) is
    deep-copied; on exit it is restored. The probe's batches come from a private generator. Training after
    a probe is bit-identical to training without one.
    """

    def __init__(self, trainer: Trainer, seed: int = 0x5EED) -> None:
        self.trainer = trainer
        B = trainer.grid[0] * trainer.grid[1]
        self._order = torch.randperm(trainer.T * B, generator=torch.Generator().manual_seed(seed))
        self._k = 0

    def __enter__(self) -> StepProbe:
        tr = self.trainer
        self._state = copy.deepcopy(tr.state_dict())
        self._was_training = tr.model.training
        tr.model.train()
        return self

    def __exit__(self, *exc: object) -> None:
        self.trainer.load_state_dict(self._state)
        self.trainer.model.train(self._was_training)

    def enter(self, stage: str) -> None:
        """Enter ``stage`` as training would (recipe preparation, fresh optimizer)."""
        self.trainer.enter_stage(stage)

    def step(self) -> None:
        """One real optimizer step of the current stage on the next probe batch."""
        tr = self.trainer
        tr.train_step(*tr.runner.batch(self._order, self._k % tr.T))
        self._k += 1

    def synchronize(self) -> None:
        """Wait for the device (before reading a clock)."""
        self.trainer.policy.synchronize()
