"""Result JSON in CompressAI's layout, plus per-sequence data.

Every result file is ``{"name", "description", "results": {key: [value per rate point]}}`` so that
CompressAI's ``video.plot`` reads it unchanged. Our files add:

* ``"sequences": {sequence: {key: [value per rate point]}}`` — the per-sequence curves behind the
  aggregate (BD-rate is computed per sequence and then averaged);
* ``"aggregation"`` — the rule that produced ``results`` from ``sequences`` (also in ``description``);
* ``"source"`` in per-sequence files (CompressAI's convention).

Keys (units): ``bpp`` (bits / (frames*W*H), luma pixels once), ``bitrate`` (kbps), ``bytes``,
``frames``, ``psnr-rgb`` / ``psnr-y`` / ``psnr-u`` / ``psnr-v`` (dB), ``psnr-yuv`` (dB, **6:1:1**
= (6Y+U+V)/8, JVET/DCVC), ``psnr-yuv-411`` (dB, CompressAI's (4Y+U+V)/6), ``ms-ssim-rgb``,
``ms-ssim-y`` (0..1), ``encoding_time`` / ``decoding_time`` (seconds per sequence), ``q`` (rate
point label) and ``qp`` (conventional codecs).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hinerv.errors import InputError
from hinerv.io.base import fix_mode, make_temp

__all__ = [
    "RESULT_KEYS",
    "AGGREGATION_RULE",
    "Curve",
    "ResultSet",
    "write_json_atomic",
    "read_json",
    "canonical_sequence",
    "aggregate",
    "points_to_lists",
]

#: the numeric keys a bench result carries, in output order.
RESULT_KEYS: tuple[str, ...] = (
    "bpp",
    "bitrate",
    "bytes",
    "frames",
    "psnr-rgb",
    "psnr-y",
    "psnr-u",
    "psnr-v",
    "psnr-yuv",
    "psnr-yuv-411",
    "ms-ssim-rgb",
    "ms-ssim-y",
    "encoding_time",
    "decoding_time",
)

AGGREGATION_RULE = (
    "aggregate = arithmetic mean over sequences of each per-sequence value (bpp, kbps and every "
    "metric), per rate point; only rate points present in every sequence are aggregated"
)

Curve = dict[str, list[Any]]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=_json_default, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fix_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "__fspath__"):
        return os.fspath(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises :class:`InputError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None


_SUFFIX = re.compile(r"(_\d+x\d+.*)$")
_ALIASES = {"readysetgo": "readysteadygo", "readysteady": "readysteadygo"}


def canonical_sequence(name: str) -> str:
    """A matching key for a sequence name, so results from different sources line up.

    Drops a directory and extension, the ``_<W>x<H>...`` suffix and a ``video`` prefix, lowercases,
    and maps known spellings (HiNeRV's ``ReadySetGo`` -> ``readysteadygo``). ``SRC01``,
    ``videoSRC01_1920x1080_24.yuv`` -> ``src01``; ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv`` ->
    ``beauty``.
    """
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".yuv", ".y4m", ".mp4", ".mkv", ".avi", ".hevc", ".json"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    stem = _SUFFIX.sub("", stem).lower()
    if stem.startswith("video") and len(stem) > 5:
        stem = stem[5:]
    stem = re.sub(r"[^a-z0-9]+", "", stem)
    return _ALIASES.get(stem, stem)


def _finite_mean(values: Sequence[Any]) -> Any:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) != len(values):
        return values[0] if len(set(map(str, values))) == 1 else None
    if any(isinstance(v, float) and math.isnan(v) for v in nums):
        return math.nan
    mean = sum(nums) / len(nums)
    if all(isinstance(v, int) for v in nums) and float(mean).is_integer():
        return int(mean)
    return mean


def points_to_lists(points: Sequence[Mapping[str, Any]], keys: Iterable[str] | None = None) -> Curve:
    """Turn a list of per-point dicts (one rate point each) into ``{key: [value per point]}``.

    Keys missing from a point get ``None`` (written as JSON ``null``).
    """
    if keys is None:
        seen: list[str] = []
        for p in points:
            seen.extend(k for k in p if k not in seen)
        keys = seen
    return {k: [p.get(k) for p in points] for k in keys}


def aggregate(sequences: Mapping[str, Curve], *, label_key: str = "q") -> Curve:
    """Mean over sequences per rate point (see :data:`AGGREGATION_RULE`).

    Args:
        sequences: ``{sequence: {key: [value per point]}}``; points are matched by ``label_key``
            (e.g. ``q``) when every curve has it, else by position.
        label_key: key naming the rate point.

    Returns:
        ``{key: [mean per point]}`` over the points common to all sequences, in the order of the
        first sequence. Non-numeric keys keep a value shared by all sequences, else ``None``.
    """
    if not sequences:
        return {}
    curves = list(sequences.values())
    by_label = all(label_key in c for c in curves)
    if by_label:
        common = [lb for lb in curves[0][label_key] if all(lb in c[label_key] for c in curves)]
        index = [{lb: c[label_key].index(lb) for lb in common} for c in curves]
    else:
        n = min(len(next(iter(c.values()), [])) for c in curves)
        common = list(range(n))
        index = [{i: i for i in common} for _ in curves]
    keys: list[str] = []
    for c in curves:
        keys.extend(k for k in c if k not in keys)
    out: Curve = {}
    for k in keys:
        col = []
        for lb in common:
            vals = [c[k][ix[lb]] if k in c and ix[lb] < len(c[k]) else None
                    for c, ix in zip(curves, index, strict=False)]
            col.append(_finite_mean(vals) if None not in vals else None)
        out[k] = col
    if by_label:
        out[label_key] = list(common)
    return out


class ResultSet:
    """One codec's RD results: aggregate curve and per-sequence curves.

    Attributes:
        name: codec / run name (e.g. ``x265-veryslow-ra``).
        description: free text; states the settings, metric conventions and aggregation rule.
        results: aggregate ``{key: [value per point]}``.
        sequences: ``{sequence: {key: [value per point]}}`` (may be empty for average-only anchors).
    """

    def __init__(
        self,
        name: str,
        description: str,
        results: Curve,
        sequences: Mapping[str, Curve] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.results = dict(results)
        self.sequences = dict(sequences or {})
        self.extra = dict(extra or {})

    def to_json(self) -> dict[str, Any]:
        """The JSON object (CompressAI envelope + ``sequences``)."""
        obj: dict[str, Any] = {"name": self.name, "description": self.description,
                               "results": self.results}
        if self.sequences:
            obj["aggregation"] = AGGREGATION_RULE
            obj["sequences"] = self.sequences
        obj.update(self.extra)
        return obj

    def save(self, path: Path) -> None:
        """Write :meth:`to_json` atomically."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, obj: Any, *, origin: str = "<json>") -> ResultSet:
        """Parse our layout, a CompressAI file (envelope without ``sequences``), a bare results
        dict or a per-sequence file (scalar values)."""
        if not isinstance(obj, dict):
            raise InputError(f"{origin}: expected a JSON object with a 'results' mapping")
        if "results" in obj:
            res = obj["results"]
            name = str(obj.get("name") or Path(origin).stem)
            desc = str(obj.get("description", ""))
        else:
            res, name, desc = obj, Path(origin).stem, ""
        if not isinstance(res, dict) or not res:
            raise InputError(f"{origin}: 'results' must be a non-empty mapping of key -> values")
        res = {k: (v if isinstance(v, list) else [v]) for k, v in res.items()}
        seqs_raw = obj.get("sequences", {}) if "results" in obj else {}
        if not isinstance(seqs_raw, dict):
            raise InputError(f"{origin}: 'sequences' must be a mapping")
        seqs: dict[str, Curve] = {}
        for s, c in seqs_raw.items():
            if not isinstance(c, dict):
                raise InputError(f"{origin}: sequence {s!r} must map keys to value lists")
            seqs[str(s)] = {k: (v if isinstance(v, list) else [v]) for k, v in c.items()}
        if not seqs and "source" in obj:
            seqs[str(obj["source"])] = res
        known = {"name", "description", "results", "sequences", "aggregation"}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(name, desc, res, seqs, extra)
