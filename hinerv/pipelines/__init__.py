"""The encoding pipelines, one module each, and their registry.

A pipeline (:class:`~hinerv.pipelines.base.Pipeline`) says how a video's network is trained (its
:class:`~hinerv.recipe.Recipe`), which checkpoints it keeps and how the trained network becomes a
bitstream (the format it writes decodes generically, :mod:`hinerv.bitstream`). To add one: write
``hinerv/pipelines/<name>.py`` with a ``PIPELINE`` object and register its module in
:data:`PIPELINE_MODULES` below. Modules are imported on first use, so the names are cheap to import
(the CLI's option checks).
"""

from __future__ import annotations

from importlib import import_module

from hinerv.errors import ConfigError
from hinerv.pipelines.base import Checkpoints, ModelContext, Pipeline

__all__ = [
    "PIPELINE_MODULES",
    "PIPELINE_NAMES",
    "DEFAULT_PIPELINE",
    "DEFAULT_RD_DISTORTION",
    "get_pipeline",
    "Pipeline",
    "ModelContext",
    "Checkpoints",
]

#: pipeline name -> the module holding its ``PIPELINE`` (registration: one line per pipeline)
PIPELINE_MODULES: dict[str, str] = {
    "paper": "hinerv.pipelines.paper",
    "rd": "hinerv.pipelines.rd",
}

PIPELINE_NAMES: tuple[str, ...] = tuple(PIPELINE_MODULES)

#: the pipeline every entry point (library, CLI, benchmarks) uses unless told otherwise
DEFAULT_PIPELINE = "rd"

#: the rd pipeline's distortion unless told otherwise (:data:`hinerv.pipelines.rd.DEFAULT_DISTORTION`;
#: here so that the CLI and the benchmarks read it without importing the pipeline)
DEFAULT_RD_DISTORTION = "blend"

#: the rd pipeline's optimizer unless told otherwise (:data:`hinerv.optim.OPTIMIZER_CHOICES`): ``auto``,
#: the plan for the model's size (:func:`hinerv.pipelines.rd.default_optimizer`): SOAP while pre-training,
#: Adam once the rate term is on (issue #19, seventh round of docs/results/budget/README.md: 10-14 % less
#: rate than Adam over the four-size ladder of both clips at 10 minutes an encode, won at s and m), except
#: for the smallest sizes, which train with Adam throughout (eighth round: Adam ahead at xs in every pairing
#: on both clips).
#: The paper pipeline trains with Adam, as the reference.
DEFAULT_RD_OPTIMIZER = "auto"


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name``.

    Raises:
        ConfigError: no such pipeline.
    """
    if not isinstance(name, str) or name not in PIPELINE_MODULES:
        raise ConfigError(f"--pipeline must be {' or '.join(PIPELINE_NAMES)}, got {name!r}")
    return import_module(PIPELINE_MODULES[name]).PIPELINE  # type: ignore[no-any-return]
