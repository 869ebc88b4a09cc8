"""An encode request: the user's :class:`EncodeOptions`, resolved once into an immutable :class:`EncodePlan`.

Resolution validates every option, loads the schedule, chooses the device and precision
(:class:`~hinerv.device.DevicePolicy`) and derives the chosen pipeline's settings; everything below the
codec's entry points receives the plan and derives nothing again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hinerv.device import DevicePolicy
from hinerv.model.sizes import AUTO_SIZE
from hinerv.pipelines import DEFAULT_PIPELINE, Pipeline, get_pipeline
from hinerv.pipelines.base import resolve_type
from hinerv.ratecontrol import size_for_target
from hinerv.train import AUTO_SCHEDULE, Schedule
from hinerv.types import VideoInfo
from hinerv.validate import check_model, check_schedule

__all__ = ["EncodeOptions", "EncodePlan"]


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode: the fields every pipeline shares, and the chosen pipeline's own settings.

    Attributes:
        size: a size of the ladder (``xxs`` ... ``xxl``), derived for the video's T x H x W, or ``auto``:
            with a target rate (``--target-bpp``), the largest size expected at or below it
            (:func:`hinerv.ratecontrol.size_for_target`, chosen when the video is known,
            :meth:`EncodePlan.for_video`); without one, ``s``.
        preset: a reference preset name (``uvg-hinerv-s`` ...); wins over ``size``.
        schedule: ``auto`` (the default: ``full`` without a time budget; with one, ``full``'s stages fitted
            to it at the learning rates for the fitted length, :func:`hinerv.budget.rates_for_length`),
            ``full`` (reference 300+60+30 epochs), ``short`` (60+12+6), ``fast`` (``short`` at 4x the
            learning rate), ``tiny`` or a TOML path.
        epochs: if set, rescales the schedule so the main stage has this many epochs.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: model initialisation, batch order and noise seed.
        precision: training precision, ``fp32``, ``fp16`` (autocast with loss scaling) or ``bf16``
            (autocast); None: fp16 on CUDA, fp32 elsewhere. fp16 and bf16 need CUDA. Decoding always
            runs in float32.
        amp: the former switch: False means fp32 (with ``precision`` None); ``precision`` wins.
        compile: ``torch.compile`` the model for training (CUDA only).
        time_budget: seconds for the whole encode; the schedule's stages are scaled in proportion to fit
            it, from step times measured on this machine (:mod:`hinerv.budget`). Wins over ``epochs``.
        max_memory: bytes of activations one training forward/backward may take (large frames train in
            micro-batches above it); ``None``: the device policy's default
            (:meth:`hinerv.device.DevicePolicy.default_max_memory`: 3 GiB on CPU, half the free
            memory on CUDA).
        pipeline: ``"rd"`` (the default: rate–distortion training with learned steps and entropy
            models, format v2) or ``"paper"`` (the faithful HiNeRV path: prune -> QAT -> histogram
            coding, format v1); see :mod:`hinerv.pipelines`.
        settings: the pipeline's options (:class:`hinerv.pipelines.rd.RDOptions`,
            :class:`hinerv.pipelines.paper.PaperOptions`); None: its defaults.
    """

    size: str | None = "s"
    preset: str | None = None
    schedule: str = "auto"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    precision: str | None = None
    amp: bool = True
    compile: bool = False
    time_budget: float | None = None
    max_memory: int | None = None
    pipeline: str = DEFAULT_PIPELINE
    settings: Any = None

    def resolve(self) -> EncodePlan:
        """Validate every option and resolve them into the plan the codec runs.

        Raises:
            ConfigError: the first invalid option.
        """
        pipe = get_pipeline(self.pipeline)
        options = resolve_type(self.settings, pipe)
        check_model(self.size, self.preset)
        schedule = check_schedule(self.schedule, self.epochs)
        # λ's ladder default follows --size when given (the CLI always gives one), else the preset; a size
        # left to the encoder takes s's until the video is known (:meth:`EncodePlan.for_video`)
        size = self.size
        label = ("s" if size == AUTO_SIZE else size) or self.preset
        settings = pipe.resolve(options, label=label, schedule=schedule)
        if size == AUTO_SIZE and (self.preset or pipe.target_bpp(settings) is None):
            size = "s"
        policy = DevicePolicy.resolve(self.device, self.precision, amp=self.amp)
        policy.check_compile(self.compile)
        return EncodePlan(
            options=self,
            schedule=schedule,
            policy=policy,
            pipeline=pipe,
            settings=settings,
            label=self.preset or size or "",
            max_memory=self.max_memory or policy.default_max_memory(),
            auto_schedule=self.schedule == AUTO_SCHEDULE,
            size=size,
        )


@dataclass(frozen=True)
class EncodePlan:
    """A validated, resolved encode request (made by :meth:`EncodeOptions.resolve` only).

    Attributes:
        options: the request as given.
        schedule: the loaded schedule (``epochs`` applied; a time budget fits it later, on the trainer).
        policy: device and training precision (``policy.precision``).
        pipeline: the chosen pipeline.
        settings: its resolved settings (e.g. :class:`hinerv.pipelines.rd.RDSettings` with λ filled in).
        label: the model's name in the stream and report (preset, else size).
        max_memory: activation bytes of one training step.
        auto_schedule: ``schedule`` came from ``auto``: a time budget also picks its learning rates.
        size: the ladder size (None with a preset); ``auto`` until :meth:`for_video` picks the size for
            the target rate.
    """

    options: EncodeOptions
    schedule: Schedule
    policy: DevicePolicy
    pipeline: Pipeline
    settings: Any
    label: str
    max_memory: int
    auto_schedule: bool = False
    size: str | None = "s"

    def for_video(self, info: VideoInfo) -> EncodePlan:
        """This plan for the video ``info``: a ``--size auto`` request with a target rate gets the largest
        ladder size expected at or below the target (:func:`hinerv.ratecontrol.size_for_target`),
        its label and its ladder λ; any other plan is returned as it is."""
        if self.size != AUTO_SIZE:
            return self
        target = self.pipeline.target_bpp(self.settings)
        assert target is not None, "resolve() leaves size auto only with a target rate"
        size = size_for_target(target, info.width, info.height, info.frames)
        options = resolve_type(self.options.settings, self.pipeline)
        settings = self.pipeline.resolve(options, label=size, schedule=self.schedule)
        return replace(self, size=size, label=size, settings=settings)
