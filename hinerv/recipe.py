"""What a pipeline's training does, apart from the loop: a :class:`Recipe`.

A recipe names its stages (:class:`Stage`: name, epochs taken from the schedule, learning-rate scale,
warm-up), transforms the parameters for each stage (masks, rounding, noise), adds a whole-step penalty,
owns its extra parameters (learned step sizes) and its own state (masks, λ), and reacts to the end of
an epoch. :class:`hinerv.train.Trainer` runs the loop, events and checkpoints for any recipe; nothing
subclasses the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from hinerv.optim import stage_optimizer
from hinerv.step import reference_loss

if TYPE_CHECKING:
    from hinerv.train import Schedule, Trainer

__all__ = ["Stage", "StageList", "Recipe", "lr_at"]


def lr_at(step: int, total: int, warmup: int, lr: float, warmup_lr: float, min_lr: float) -> float:
    """timm-style cosine with linear warm-up; the cosine is measured from step 0 (pitfall 12)."""
    if step < warmup:
        return warmup_lr + (lr - warmup_lr) * step / max(1, warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


@dataclass(frozen=True)
class Stage:
    """One training stage of a recipe, for a given schedule.

    Attributes:
        name: the recipe's own name of the stage (shown in progress, stored in checkpoints).
        epochs: epochs of the stage under the schedule.
        slots: the schedule fields (``main``, ``prune``, ``qat``) whose epochs the stage takes; a time
            budget refits these.
        lr_scale: multiplies the schedule's learning rates in this stage.
        warmup: linear warm-up over the schedule's ``warmup_epochs`` before the cosine.
    """

    name: str
    epochs: int
    slots: tuple[str, ...]
    lr_scale: float = 1.0
    warmup: bool = False

    def lr(self, step: int, steps_per_epoch: int, schedule: Schedule) -> float:
        """Learning rate at ``step`` of this stage (counted from the stage's first step)."""
        s, k = schedule, self.lr_scale
        warm = s.warmup_epochs * steps_per_epoch if self.warmup else 0
        return lr_at(step, self.epochs * steps_per_epoch, warm, s.lr * k, s.warmup_lr * k, s.min_lr * k)


@dataclass(frozen=True)
class StageList:
    """A recipe's stages in order under one schedule; the position after the last one is ``"done"``."""

    stages: tuple[Stage, ...]

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(st.name for st in self.stages)

    @property
    def total(self) -> int:
        """Epochs over all stages."""
        return sum(st.epochs for st in self.stages)

    def index(self, name: str) -> int:
        """Position of stage ``name``; ``len(self)`` for ``"done"`` (or any name not here)."""
        names = self.names
        return names.index(name) if name in names else len(names)

    def get(self, name: str) -> Stage:
        """The stage called ``name`` (KeyError: none)."""
        return {st.name: st for st in self.stages}[name]

    def before(self, name: str) -> tuple[Stage, ...]:
        """The stages before ``name`` (all of them for ``"done"``)."""
        return self.stages[: self.index(name)]

    def start(self, name: str) -> tuple[Stage, ...]:
        """``name`` and the stages after it (none for ``"done"``)."""
        return self.stages[self.index(name) :]

    def after(self, name: str) -> tuple[Stage, ...]:
        """The stages after ``name``."""
        return self.stages[self.index(name) + 1 :]


class Recipe:
    """The base recipe: float training of the network for distortion only, no extra state.

    A recipe instance serves one trainer: :meth:`bind` hands it the trainer, whose position
    (``stage``, ``epoch``, ``schedule``), ``model`` and ``noise_gen`` its methods read. Subclasses override
    what their pipeline changes. The names in :attr:`exposed` are readable on the trainer too
    (``trainer.masks`` for ``trainer.recipe.masks``).
    """

    name = "base"
    #: recipe attributes the trainer shows as its own (read-only)
    exposed: tuple[str, ...] = ()
    #: the optimizer plan (:data:`hinerv.optim.OPTIMIZER_PLANS`); :meth:`stage_optimizer` reads it per stage
    optimizer: str = "adam"

    def __init__(self) -> None:
        self._trainer: Trainer | None = None

    @property
    def trainer(self) -> Trainer:
        """The trainer this recipe serves (set by :meth:`bind`)."""
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a trainer")
        return self._trainer

    def stages(self, schedule: Schedule) -> tuple[Stage, ...]:
        """The stages in order for ``schedule``."""
        raise NotImplementedError

    def bind(self, trainer: Trainer) -> None:
        """Serve ``trainer`` (called once, by its constructor); subclasses create their own parameters
        here, on the model's device."""
        self._trainer = trainer

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups; a group's ``lr_scale`` multiplies its learning rate."""
        return [{"params": list(self.trainer.model.parameters())}]

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the optimizer updates besides the model's (after them, in this order)."""
        return []

    def stage_optimizer(self, stage: str) -> str:
        """The optimizer (:data:`hinerv.optim.OPTIMIZERS`) that ``stage`` starts afresh (default: the
        recipe's :attr:`optimizer` in every stage)."""
        return stage_optimizer(self.optimizer, pretraining=False)

    def start_stage(self, stage: str) -> None:
        """Prepare ``stage`` (masks, step initialisation); the trainer then makes a fresh optimizer."""

    def transform(self, training: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Parameter overrides of the current stage and (when ``training``) a penalty added once per
        step to the batch loss; ``({}, None)``: plain parameters, no penalty."""
        return {}, None

    def loss(self, out: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distortion of ``out`` against ``tgt`` (default: the reference L1 + MS-SSIM) and the MSE."""
        s = self.trainer.schedule
        return reference_loss(out, tgt, s.l1_weight, s.msssim_weight, s.msssim_window, s.mse_weight)

    def before_step(self) -> None:
        """Called before every optimizer step (measurement steps of the time planner included)."""

    def after_step(self) -> None:
        """Called after every optimizer step."""

    def after_epoch(self) -> None:
        """Called after every epoch (after the trainer has moved past finished stages)."""

    def state_dict(self) -> dict[str, Any]:
        """The recipe's part of a checkpoint (tensors and primitives; keys must not clash with the
        trainer's)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` from a whole checkpoint ``state``."""
