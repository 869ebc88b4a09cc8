"""What a pipeline provides to the codec: :class:`Pipeline`, :class:`ModelContext`, :class:`Checkpoints`.

A pipeline is one module under :mod:`hinerv.pipelines` with a :class:`Pipeline` object: its user options
(resolved and validated once into settings), its training :class:`~hinerv.recipe.Recipe`, its checkpoint
files, model -> bytes (export), and the bitstream format version it writes. Stream -> model needs no
pipeline code: the format record (:func:`hinerv.bitstream.format_of`) says which parameters a stream
codes, and every coded tensor dequantizes itself. The codec (:mod:`hinerv.codec`) orchestrates and knows
no pipeline by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hinerv.errors import ConfigError

if TYPE_CHECKING:
    from hinerv.config import ModelConfig
    from hinerv.model import HiNeRV
    from hinerv.recipe import Recipe
    from hinerv.train import Trainer
    from hinerv.types import VideoInfo

__all__ = ["Pipeline", "ModelContext", "Checkpoints", "resolve_type"]


@dataclass(frozen=True)
class ModelContext:
    """The network being encoded and what its bitstream describes.

    Attributes:
        model: the network (on the training device).
        info: the source video (unpadded size, frames, bit depth, colour).
        cfg: the model configuration written into the stream.
        label: model size or preset name (the stream's ``meta.model``).
        seed: the encode's seed (the stream's ``meta.seed``).
        encoder: the encoder's name and version (the stream's ``meta.encoder``).
    """

    model: HiNeRV
    info: VideoInfo
    cfg: ModelConfig
    label: str
    seed: int
    encoder: str

    @property
    def pixels(self) -> int:
        """``T * H * W`` of the (unpadded) video."""
        return self.info.frames * self.info.height * self.info.width


@dataclass(frozen=True)
class Checkpoints:
    """The checkpoint files of one encode in its work folder.

    Attributes:
        state: the rolling checkpoint (saved every minute and at stage ends).
        final: the finished training; a resumed encode that finds it trains nothing.
        stale: files a fresh (not resumed) encode deletes first.
        milestones: ``(stage, file)``: the state is saved to ``file`` once ``stage`` has finished
            (reused by later encodes that differ only after that stage).
        on_resume: called after the rolling state was loaded (may load a milestone instead).
        before_last: called before training past the last milestone (re-applies this encode's settings).
    """

    state: Path
    final: Path
    stale: list[Path]
    milestones: tuple[tuple[str, Path], ...] = ()
    on_resume: Callable[[Trainer], None] | None = None
    before_last: Callable[[Trainer], None] | None = None

    def files(self) -> list[Path]:
        """Every file named here (for the up-front checks)."""
        return [self.state, self.final, *(p for _, p in self.milestones), *self.stale]


@dataclass(frozen=True)
class Pipeline:
    """A pipeline's entry points (one instance per pipeline module).

    Attributes:
        name: the ``--pipeline`` name.
        format_version: the bitstream format version it writes (see :mod:`hinerv.bitstream`'s registry).
        options_type: its user options dataclass (the ``settings`` of :class:`hinerv.options.EncodeOptions`).
        resolve: ``(options, label=, schedule=) -> settings``: validated, defaults filled in (raises
            ConfigError).
        fingerprint: ``settings -> dict | None``: what of the settings a resumed work folder must match.
        report_bits: ``settings -> int``: the report's ``bits`` (0 when not a fixed bit depth).
        recipe: ``(settings, ctx) -> Recipe``.
        checkpoints: ``(workdir, settings) -> Checkpoints``.
        export: ``(trainer, settings, ctx) -> (bytes, facts)``: the bitstream of the trained model.
        target_bpp: ``settings -> float | None``: the rate the encode must land at, if any (it picks the
            size of a ``--size auto`` request, :meth:`hinerv.options.EncodePlan.for_video`).
    """

    name: str
    format_version: int
    options_type: type
    resolve: Callable[..., Any]
    fingerprint: Callable[[Any], dict[str, Any] | None]
    report_bits: Callable[[Any], int]
    recipe: Callable[[Any, ModelContext], Recipe]
    checkpoints: Callable[[Path, Any], Checkpoints]
    export: Callable[[Trainer, Any, ModelContext], tuple[bytes, dict[str, Any]]]
    target_bpp: Callable[[Any], float | None] = lambda settings: None

    def default_options(self) -> Any:
        """The pipeline's options when the request gives none."""
        return self.options_type()


def resolve_type(options: Any, pipeline: Pipeline) -> Any:
    """``options`` (None: the pipeline's defaults) after checking it is the pipeline's options type.

    Raises:
        ConfigError: options of another pipeline.
    """
    if options is None:
        return pipeline.default_options()
    if not isinstance(options, pipeline.options_type):
        raise ConfigError(
            f"settings of type {type(options).__name__} do not belong to pipeline {pipeline.name!r} "
            f"(expected {pipeline.options_type.__name__})"
        )
    return options
