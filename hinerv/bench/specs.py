"""Codec run settings from ``configs/anchors/*.toml`` (named baseline configurations).

A file holds ``codec = "x265" | "hm" | "hinerv"`` plus that codec's fields, e.g.::

    codec = "x265"
    preset = "veryslow"
    config = "ra"
    qps = [16, 20, 24, 28, 32, 36, 40, 44]

``hinerv bench run --codec x265-veryslow-ld`` loads ``configs/anchors/x265-veryslow-ld.toml``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec, HiNeRVCodec, HMCodec, X265Codec
from hinerv.bench.datasets import configs_dir
from hinerv.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["list_codec_configs", "load_codec_config", "codec_from_fields"]

_FIELDS: dict[str, tuple[type[Codec], tuple[str, ...]]] = {
    "x265": (X265Codec, ("preset", "config", "qps", "intra_period", "x265_params", "threads",
                         "run_name")),
    "hm": (HMCodec, ("encoder", "cfg", "decoder", "qps", "intra_period", "label", "extra_args",
                     "run_name")),
    "hinerv": (HiNeRVCodec, ("sizes", "bits", "schedule", "epochs", "device", "seed", "run_name",
                                 "pipeline", "lambdas", "target_bpps", "distortion", "time_budget")),
}


def list_codec_configs() -> dict[str, Path]:
    """``{name: path}`` of the TOML files in ``configs/anchors``."""
    d = configs_dir() / "anchors"
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def codec_from_fields(fields: dict[str, Any], **overrides: Any) -> Codec:
    """Build a codec from a ``{codec: ..., field: value}`` mapping; ``overrides`` that are not None
    win (e.g. ``encoder`` / ``cfg`` for HM from the command line).

    Raises:
        ConfigError: unknown codec or field.
    """
    kind = str(fields.get("codec", "")).lower()
    if kind not in _FIELDS:
        raise ConfigError(f"unknown codec {kind!r} (x265, hm or hinerv)")
    cls, allowed = _FIELDS[kind]
    kw: dict[str, Any] = {}
    for k, v in {**fields, **{k: v for k, v in overrides.items() if v is not None}}.items():
        if k in ("codec", "description", "source", "notes"):
            continue
        if k not in allowed:
            raise ConfigError(f"unknown field {k!r} for codec {kind} (allowed: {', '.join(allowed)})")
        if k in ("qps", "sizes", "bits", "lambdas", "target_bpps") and isinstance(v, list):
            v = tuple(v)
        if k in ("encoder", "cfg", "decoder") and v is not None:
            v = Path(v)
        kw[k] = v
    return cls(**kw)


def load_codec_config(name_or_path: str, **overrides: Any) -> Codec:
    """Load ``configs/anchors/<name>.toml`` (or a TOML path) into a codec.

    Raises:
        ConfigError: unknown name, unreadable file or invalid fields.
    """
    p = Path(name_or_path)
    if not p.is_file():
        known = list_codec_configs()
        if name_or_path not in known:
            raise ConfigError(
                f"unknown codec {name_or_path!r} (x265, hm, hinerv, or one of: "
                f"{', '.join(known) or 'none'})"
            )
        p = known[name_or_path]
    try:
        fields = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot read codec configuration ({e})") from None
    fields.setdefault("run_name", p.stem)
    return codec_from_fields(fields, **overrides)
