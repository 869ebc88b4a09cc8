"""Reference model presets shipped as TOML files in ``configs/models/`` (package data).

Each file holds a ``[model]`` table with the :class:`~hinerv.config.ModelConfig` fields and a
``[geometry]`` table with the reference video size (frames, height, width) the preset was made for.
"""

from __future__ import annotations

import sys
from importlib import resources
from typing import TYPE_CHECKING, Any

from hinerv.config import ModelConfig
from hinerv.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["list_presets", "load_preset", "preset_dir"]


def preset_dir() -> Traversable:
    """The folder holding the preset TOML files (``hinerv/configs/models``)."""
    return resources.files("hinerv") / "configs" / "models"


def list_presets() -> list[str]:
    """Sorted names of the shipped presets (file names without ``.toml``)."""
    return sorted(p.name[: -len(".toml")] for p in preset_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> tuple[ModelConfig, tuple[int, int, int]]:
    """Load a preset by name.

    Args:
        name: e.g. ``"uvg-hinerv-s"`` (see :func:`list_presets`).

    Returns:
        ``(config, (frames, height, width))``: the model config and the reference geometry.

    Raises:
        ConfigError: unknown name (the message lists the choices) or a malformed file.
    """
    names = list_presets()
    if name not in names:
        raise ConfigError(f"unknown model preset {name!r}; choices: {', '.join(names)}")
    raw: dict[str, Any] = tomllib.loads((preset_dir() / f"{name}.toml").read_text("utf-8"))
    try:
        cfg = ModelConfig.from_fields(dict(raw["model"]))
        geo = raw["geometry"]
        geometry = (int(geo["frames"]), int(geo["height"]), int(geo["width"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"malformed model preset {name!r}: {e}") from None
    return cfg, geometry
