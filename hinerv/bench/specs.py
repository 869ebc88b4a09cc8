"""Codec run settings from ``configs/anchors/*.toml`` (named baseline configurations).

A file holds ``codec = "x265" | "hm" | "hinerv"`` plus that codec's fields, e.g.::

    codec = "x265"
    preset = "veryslow"
    config = "ra"
    qps = [16, 20, 24, 28, 32, 36, 40, 44]

``hinerv bench run --codec x265-veryslow-ld`` loads ``configs/anchors/x265-veryslow-ld.toml``.
Every codec of a sweep is built here: :func:`build_codecs` turns the names and options of a command
line into fields for :func:`codec_from_fields`, the one constructor.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinerv.bench.codecs import Codec, HiNeRVCodec, HMCodec, X265Codec
from hinerv.bench.datasets import configs_dir
from hinerv.errors import ConfigError
from hinerv.pipelines import DEFAULT_PIPELINE, DEFAULT_RD_DISTORTION, DEFAULT_RD_OPTIMIZER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["CodecOptions", "build_codecs", "list_codec_configs", "load_codec_config", "codec_from_fields"]

_FIELDS: dict[str, tuple[type[Codec], tuple[str, ...]]] = {
    "x265": (X265Codec, ("preset", "config", "qps", "intra_period", "x265_params", "threads",
                         "run_name")),
    "hm": (HMCodec, ("encoder", "cfg", "decoder", "qps", "intra_period", "label", "extra_args",
                     "run_name")),
    "hinerv": (HiNeRVCodec, ("sizes", "bits", "schedule", "epochs", "device", "seed", "run_name",
                                 "pipeline", "lambdas", "target_bpps", "distortion", "time_budget",
                                 "precision", "optimizer")),
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


@dataclass(frozen=True)
class CodecOptions:
    """The codec settings of a ``hinerv bench run`` command line; None or empty keeps a codec's
    default. ``intra_period`` applies to x265 (keyint) and HM / VTM; ``hm_*`` to HM / VTM only."""

    qps: tuple[int, ...] | None = None
    preset: str | None = None
    gops: tuple[str, ...] = ("ra",)
    intra_period: int | None = None
    x265_params: str | None = None
    sizes: tuple[str, ...] | None = None
    bits: tuple[int, ...] | None = None
    schedule: str = "auto"
    pipeline: str | None = None  # None: --bits alone selects paper, else the default pipeline
    lambdas: tuple[float, ...] | None = None
    target_bpps: tuple[float, ...] | None = None
    distortion: str = DEFAULT_RD_DISTORTION
    optimizer: str = DEFAULT_RD_OPTIMIZER
    epochs: int | None = None
    device: str = "auto"
    precision: str | None = None
    time_budget: float | None = None
    seed: int = 0
    hm_bin: Path | None = None
    hm_cfg: Path | None = None
    hm_dec: Path | None = None
    hm_qps: tuple[int, ...] | None = None
    hm_name: str | None = None


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v}


def _x265_fields(o: CodecOptions, gop: str) -> dict[str, Any]:
    return {"codec": "x265", "config": gop, "intra_period": o.intra_period,
            **_given(qps=o.qps, preset=o.preset, x265_params=o.x265_params)}


def _hinerv_fields(o: CodecOptions) -> dict[str, Any]:
    return {"codec": "hinerv", "schedule": o.schedule, "epochs": o.epochs, "device": o.device,
            "seed": o.seed, "time_budget": o.time_budget,
            "pipeline": o.pipeline or ("paper" if o.bits else DEFAULT_PIPELINE),  # the encode command's rule
            "distortion": o.distortion, "optimizer": o.optimizer,
            **_given(sizes=o.sizes, bits=o.bits, lambdas=o.lambdas, target_bpps=o.target_bpps,
                     precision=o.precision)}


def _hm_fields(o: CodecOptions, label: str) -> dict[str, Any]:
    return {"codec": "hm", "encoder": o.hm_bin, "cfg": o.hm_cfg, "decoder": o.hm_dec,
            "intra_period": o.intra_period, "label": o.hm_name or label, **_given(qps=o.hm_qps)}


def build_codecs(names: Sequence[str], opts: CodecOptions) -> list[Codec]:
    """The codecs of a sweep: ``x265`` (one per GOP configuration in ``opts.gops``), ``hinerv`` (or
    ``ours``), ``hm`` / ``vtm``, or a ``configs/anchors`` name or TOML path (an ``hm*`` / ``vtm*``
    one takes the ``hm_*`` options and ``intra_period`` from ``opts`` where given).

    Raises:
        ConfigError: unknown name or invalid settings.
    """
    out: list[Codec] = []
    for n in names:
        key = n.lower()
        if key == "x265":
            out += [codec_from_fields(_x265_fields(opts, g)) for g in opts.gops]
        elif key in ("hinerv", "ours"):
            out.append(codec_from_fields(_hinerv_fields(opts)))
        elif key in ("hm", "vtm"):
            out.append(codec_from_fields(_hm_fields(opts, key.upper())))
        else:
            over: dict[str, Any] = {}
            if n.startswith("hm") or n.startswith("vtm"):
                over = {"encoder": opts.hm_bin, "cfg": opts.hm_cfg, "decoder": opts.hm_dec,
                        "qps": opts.hm_qps, "intra_period": opts.intra_period}
            out.append(load_codec_config(n, **over))
    return out
