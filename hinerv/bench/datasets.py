"""Test-set descriptions (``configs/datasets/*.toml``) and a checker for a local copy.

A dataset TOML gives ``name``, ``width``, ``height``, ``bit_depth``, ``chroma`` and a list of
``[[sequences]]`` with ``name``, ``file`` (the raw ``.yuv`` file name), ``frames`` and ``fps``;
a sequence may override ``width`` / ``height`` / ``bit_depth``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from hinerv.errors import ConfigError, InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DatasetSpec",
    "SequenceSpec",
    "SequenceStatus",
    "configs_dir",
    "list_datasets",
    "load_dataset",
    "check_dataset",
]


@dataclass(frozen=True)
class SequenceSpec:
    """One raw sequence of a dataset.

    Attributes:
        name: short name (``Beauty``, ``videoSRC01``).
        file: expected file name inside the dataset folder.
        width, height, frames: geometry; fps: frame rate; bit_depth: 8..16 (4:2:0 raw YUV).
    """

    name: str
    file: str
    width: int
    height: int
    frames: int
    fps: Fraction
    bit_depth: int = 8

    @property
    def expected_bytes(self) -> int:
        """Size of the raw 4:2:0 file: W*H*1.5 samples per frame, 2 bytes per sample above 8 bit."""
        bps = 1 if self.bit_depth <= 8 else 2
        return self.width * self.height * 3 // 2 * bps * self.frames


@dataclass(frozen=True)
class DatasetSpec:
    """A named list of sequences (from a TOML file)."""

    name: str
    title: str
    sequences: tuple[SequenceSpec, ...]
    url: str = ""


@dataclass(frozen=True)
class SequenceStatus:
    """Result of checking one sequence file: ``status`` is ``ok``, ``missing`` or ``wrong-size``."""

    name: str
    file: str
    status: str
    expected_bytes: int
    actual_bytes: int | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly mapping."""
        return {
            "name": self.name,
            "file": self.file,
            "status": self.status,
            "expected_bytes": self.expected_bytes,
            "actual_bytes": self.actual_bytes,
            "note": self.note,
        }


def configs_dir() -> Path:
    """The packaged ``configs`` folder (``hinerv/configs`` -> repository ``configs/``)."""
    return Path(__file__).resolve().parent.parent / "configs"


def list_datasets() -> list[str]:
    """Names of the built-in dataset descriptions."""
    d = configs_dir() / "datasets"
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_dataset(spec: str | Path) -> DatasetSpec:
    """Load a built-in dataset by name (``uvg``, ``mcl-jcv``) or a TOML file by path.

    Raises:
        ConfigError: unknown name or an invalid TOML description.
    """
    s = str(spec)
    path = Path(s)
    if not (s.endswith(".toml") or path.is_file()):
        key = s.lower().replace("_", "-")
        key = {"mcljcv": "mcl-jcv", "mcl": "mcl-jcv"}.get(key, key)
        path = configs_dir() / "datasets" / f"{key}.toml"
        if not path.is_file():
            known = ", ".join(list_datasets()) or "none"
            raise ConfigError(f"unknown dataset {s!r} (built-in: {known}; or give a .toml path)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read dataset description ({e})") from None
    seqs = []
    for i, s_ in enumerate(data.get("sequences", [])):
        try:
            fps = Fraction(str(s_.get("fps", data.get("fps", 30))))
            seqs.append(
                SequenceSpec(
                    name=str(s_["name"]),
                    file=str(s_.get("file", s_["name"] + ".yuv")),
                    width=int(s_.get("width", data.get("width"))),
                    height=int(s_.get("height", data.get("height"))),
                    frames=int(s_["frames"]),
                    fps=fps,
                    bit_depth=int(s_.get("bit_depth", data.get("bit_depth", 8))),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: sequence #{i + 1} is incomplete or invalid ({e})") from None
    if not seqs:
        raise ConfigError(f"{path}: no [[sequences]] listed")
    return DatasetSpec(
        name=str(data.get("name", path.stem)),
        title=str(data.get("title", path.stem)),
        sequences=tuple(seqs),
        url=str(data.get("url", "")),
    )


def _find(root: Path, file: str) -> Path | None:
    p = root / file
    if p.is_file():
        return p
    hits = [q for q in root.rglob(file) if q.is_file()]
    if hits:
        return hits[0]
    low = file.lower()
    for q in root.rglob("*"):
        if q.is_file() and q.name.lower() == low:
            return q
    return None


def check_dataset(root: Path, dataset: DatasetSpec) -> list[SequenceStatus]:
    """Report, for every sequence of ``dataset``, whether its raw file is in ``root`` with the size
    ``W*H*1.5*frames`` (x2 above 8 bit). Files may sit in sub-folders.

    Raises:
        InputError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    out = []
    for s in dataset.sequences:
        p = _find(root, s.file)
        if p is None:
            out.append(SequenceStatus(s.name, s.file, "missing", s.expected_bytes, None))
            continue
        size = p.stat().st_size
        rel = str(p.relative_to(root))
        if size == s.expected_bytes:
            out.append(SequenceStatus(s.name, rel, "ok", s.expected_bytes, size))
        else:
            frame = s.expected_bytes // s.frames
            note = (f"{size / frame:.2f} frames of {s.width}x{s.height}, "
                    f"expected {s.frames}")
            out.append(SequenceStatus(s.name, rel, "wrong-size", s.expected_bytes, size, note))
    return out


def locate(root: Path, seq: SequenceSpec) -> Path:
    """Path of ``seq``'s file under ``root``.

    Raises:
        InputError: the file is missing.
    """
    p = _find(Path(root), seq.file)
    if p is None:
        raise InputError(f"{seq.file}: not found under {root} (see `hinerv datasets check`)")
    return p


__all__ += ["locate"]
