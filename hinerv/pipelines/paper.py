"""The ``paper`` pipeline: the faithful HiNeRV path (format v1).

Training (:class:`PaperRecipe`), three stages each with a fresh Adam:

1. ``main``: ``main_epochs`` with warm-up, float parameters;
2. ``prune``: one-shot global magnitude pruning (:mod:`hinerv.prune`) at the stage start, then
   ``prune_epochs`` of fine-tune of the masked network;
3. ``qat``: ``qat_epochs`` of Quant-Noise (:mod:`hinerv.quant`) at the bit depth that will be coded,
   lr scaled by ``qat_lr_scale``.

Unlike the reference, fake quantization is computed only in the QAT stage, and QAT uses the target bit
depth. Export quantizes every ``ndim >= 2`` tensor at ``bits`` (masked entries coded as a mask) and keeps
the other parameters as float16 vectors. Checkpoints: ``state.ckpt`` (rolling), ``pruned.ckpt`` (after the
prune stage; reused by encodes at another bit depth or scale rule) and ``qat-b{bits}[-{scale_mode}].ckpt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hinerv.bitstream import QuantTensor, Stream, pack
from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.pipelines.base import Checkpoints, ModelContext, Pipeline
from hinerv.prune import magnitude_masks
from hinerv.quant import ScaleMode, quant_noise, quantize, scale_axes_for
from hinerv.recipe import Recipe, Stage
from hinerv.train import Schedule, Trainer
from hinerv.types import VideoInfo
from hinerv.validate import LIBRARY_BITS, check_bits

__all__ = ["PaperOptions", "PaperRecipe", "export_stream", "PIPELINE"]

SCALE_MODES: tuple[str, ...] = ("reference", "channel")


def is_layer(name: str) -> bool:
    """Whether a quantizable parameter is a layer's weight (else a feature grid): the scale rule
    (:func:`hinerv.quant.scale_axes_for`) treats them differently."""
    return name.endswith("weight")


@dataclass(frozen=True)
class PaperOptions:
    """Options of the paper pipeline.

    Attributes:
        bits: quantization bit depth of weights and grids (6, 7 or 8; 2..16 accepted).
        scale_mode: quantizer scale rule (:func:`hinerv.quant.scale_axes_for`), ``reference`` or ``channel``.
    """

    bits: int = 6
    scale_mode: ScaleMode = "reference"


def _resolve(options: PaperOptions, *, label: str, schedule: Schedule) -> PaperOptions:
    check_bits(options.bits, LIBRARY_BITS)
    if options.scale_mode not in SCALE_MODES:
        raise ConfigError(f"--scale-mode must be reference or channel, got {options.scale_mode!r}")
    return options


class PaperRecipe(Recipe):
    """Prune -> QAT training (see the module docstring).

    Args:
        bits: the bit depth QAT trains for.
        scale_mode: quantizer scale rule of QAT.
    """

    name = "paper"
    exposed = ("masks", "bits", "scale_mode")

    def __init__(self, bits: int = 6, scale_mode: ScaleMode = "reference") -> None:
        super().__init__()
        self.bits = bits
        self.scale_mode: ScaleMode = scale_mode
        self.masks: dict[str, torch.Tensor] = {}

    def stages(self, schedule: Schedule) -> tuple[Stage, ...]:
        return (
            Stage("main", schedule.main_epochs, ("main",), warmup=True),
            Stage("prune", schedule.prune_epochs, ("prune",)),
            Stage("qat", schedule.qat_epochs, ("qat",), lr_scale=schedule.qat_lr_scale),
        )

    @property
    def key(self) -> tuple[int, str]:
        """What the QAT stage depends on besides the pruned model: (bits, scale rule)."""
        return self.bits, self.scale_mode

    def configure(self, bits: int, scale_mode: ScaleMode) -> None:
        """Set the QAT bit depth and scale rule (allowed before the QAT stage has started)."""
        if self.trainer.stage == "qat" and self.trainer.epoch > 0:
            raise ConfigError("cannot change bits in the middle of QAT")
        self.bits, self.scale_mode = bits, scale_mode

    def start_stage(self, stage: str) -> None:
        trainer = self.trainer
        if stage == "prune" and trainer.schedule.prune_epochs > 0:  # zero epochs: no pruning (reference)
            model = trainer.model
            params = dict(model.named_parameters())
            total = sum(p.numel() for p in model.parameters())
            prunable = list(model.prunable_names())  # type: ignore[operator]
            self.masks = magnitude_masks(
                {n: params[n] for n in prunable}, trainer.schedule.prune_ratio, total
            )

    def transform(self, training: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Masked weights, plus Quant-Noise during QAT training; no penalty."""
        trainer = self.trainer
        params = dict(trainer.model.named_parameters())
        out: dict[str, torch.Tensor] = {}
        for n, m in self.masks.items():
            out[n] = params[n] * m
        if trainer.stage == "qat" and training:
            for n in trainer.model.quantizable_names():  # type: ignore[operator]
                w = out.get(n, params[n])
                axes = scale_axes_for(w.shape, mode=self.scale_mode, layer=is_layer(n))
                out[n] = quant_noise(w, self.bits, axes, trainer.schedule.quant_noise, trainer.noise_gen)
        return out, None

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {k: v.cpu() for k, v in self.masks.items()},
            "bits": self.bits,
            "scale_mode": self.scale_mode,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {k: v.to(self.trainer.device) for k, v in state["masks"].items()}
        self.bits = int(state["bits"])
        self.scale_mode = state.get("scale_mode", self.scale_mode)


def _checkpoints(workdir: Path, options: PaperOptions) -> Checkpoints:
    key = f"b{options.bits}" + ("" if options.scale_mode == "reference" else f"-{options.scale_mode}")
    state, pruned = workdir / "state.ckpt", workdir / "pruned.ckpt"

    def on_resume(trainer: Trainer) -> None:
        recipe: PaperRecipe = trainer.recipe  # type: ignore[assignment]
        if trainer.stage in ("qat", "done") and recipe.key != (options.bits, options.scale_mode):
            trainer.load(pruned)  # the rolling state is another QAT's; pruned.ckpt precedes it

    def before_last(trainer: Trainer) -> None:
        trainer.recipe.configure(options.bits, options.scale_mode)  # type: ignore[attr-defined]

    return Checkpoints(
        state=state,
        final=workdir / f"qat-{key}.ckpt",
        stale=[state, pruned, *sorted(workdir.glob("qat-b*.ckpt"))],
        milestones=(("prune", pruned),),
        on_resume=on_resume,
        before_last=before_last,
    )


def export_stream(
    model: torch.nn.Module,
    masks: dict[str, torch.Tensor],
    info: VideoInfo,
    cfg: ModelConfig,
    bits: int,
    scale_mode: ScaleMode,
    meta: dict[str, Any],
) -> Stream:
    """Quantize the model into a format-v1 :class:`~hinerv.bitstream.Stream` (canonical tensor order)."""
    params = dict(model.named_parameters())
    tensors: list[QuantTensor] = []
    quantizable = list(model.quantizable_names())  # type: ignore[operator]
    for name in quantizable:
        w = params[name].detach().float().cpu()
        mask = masks.get(name)
        if mask is not None:
            mask = mask.cpu()
            w = w * mask
        axes = scale_axes_for(tuple(w.shape), mode=scale_mode, layer=is_layer(name))
        q, scales = quantize(w, bits, axes)
        tensors.append(
            QuantTensor(
                shape=tuple(w.shape),
                bits=bits,
                scale_axes=axes,
                scales=scales,
                q=q,
                mask=None if mask is None else mask.numpy().astype(bool),
            )
        )
    qset = set(quantizable)
    vectors = [
        p.detach().cpu().to(torch.float16).numpy().reshape(-1)
        for n, p in model.named_parameters()
        if n not in qset
    ]
    return Stream(info=info, model=cfg.to_fields(), meta=meta, tensors=tensors, vectors=vectors)


def _export(trainer: Trainer, options: PaperOptions, ctx: ModelContext) -> tuple[bytes, dict[str, Any]]:
    recipe: PaperRecipe = trainer.recipe  # type: ignore[assignment]
    meta = {
        "encoder": ctx.encoder,
        "model": ctx.label,
        "pipeline": "paper",
        "bits": options.bits,
        "schedule": trainer.schedule.name,
        "seed": ctx.seed,
    }
    stream = export_stream(ctx.model, recipe.masks, ctx.info, ctx.cfg, options.bits, options.scale_mode, meta)
    return pack(stream), {}


PIPELINE = Pipeline(
    name="paper",
    format_version=1,
    options_type=PaperOptions,
    resolve=_resolve,
    fingerprint=lambda options: None,
    report_bits=lambda options: options.bits,
    recipe=lambda options, ctx: PaperRecipe(options.bits, options.scale_mode),
    checkpoints=_checkpoints,
    export=_export,
)
