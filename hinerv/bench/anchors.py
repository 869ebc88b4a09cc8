"""Published RD points shipped as package data, and importers for other codecs' result files.

:func:`load_results` reads a result file or a built-in anchor. Built-in anchors (``hinerv bdrate
my.json @hinerv-uvg``; list with ``hinerv bench anchors``) are
read from the CSVs in ``hinerv/data/anchors/`` (published numbers; sources in that folder's
README.md). Importers turn DCVC's result JSON and tidy CSVs (one row per sequence x rate point)
into our :class:`~hinerv.bench.results.ResultSet`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hinerv.bench.results import Curve, ResultSet, aggregate, canonical_sequence, read_json
from hinerv.errors import ConfigError, InputError

__all__ = [
    "AnchorInfo",
    "ANCHORS",
    "list_anchors",
    "load_anchor",
    "load_results",
    "import_dcvc_json",
    "import_csv",
    "CSV_COLUMNS",
]


#: CSV column -> our key (``psnr`` is resolved from a ``psnr_space`` column or ``psnr_key``).
CSV_COLUMNS: dict[str, str] = {
    "bpp": "bpp",
    "bitrate_kbps": "bitrate",
    "bitrate": "bitrate",
    "kbps": "bitrate",
    "bytes": "bytes",
    "bytes_derived": "bytes",
    "frames": "frames",
    "psnr_rgb": "psnr-rgb",
    "psnr-rgb": "psnr-rgb",
    "psnr_y": "psnr-y",
    "psnr_u": "psnr-u",
    "psnr_v": "psnr-v",
    "psnr_yuv": "psnr-yuv",
    "psnr_yuv_611": "psnr-yuv",
    "psnr_yuv_411": "psnr-yuv-411",
    "msssim_rgb": "ms-ssim-rgb",
    "ms_ssim_rgb": "ms-ssim-rgb",
    "msssim_y": "ms-ssim-y",
    "ms_ssim_y": "ms-ssim-y",
    "qp": "qp",
    "test_time_s": "encoding_time",
    "encoding_time": "encoding_time",
    "decoding_time": "decoding_time",
}

_SEQ_COLS = ("sequence", "seq", "seq_name", "name")
_POINT_COLS = ("rd_point", "rate_point", "qp", "q", "point")
_AVERAGE_NAMES = {"average", "avg", "mean", "overall"}


def _num(v: str) -> float | int | None:
    v = v.strip()
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def import_csv(
    source: Path | str | io.TextIOBase,
    *,
    name: str | None = None,
    codec: str | None = None,
    dataset: str | None = None,
    psnr_key: str | None = None,
    msssim_key: str | None = None,
    columns: Mapping[str, str] | None = None,
    description: str = "",
    row_filter: Callable[[dict[str, str]], bool] | None = None,
) -> ResultSet:
    """Read a tidy RD CSV (one row per sequence and rate point) into a :class:`ResultSet`.

    Recognised columns: a sequence column (``sequence``), a rate-point column (``rd_point``,
    ``rate_point``, ``qp``...), optional ``codec`` / ``dataset`` / ``is_average`` columns, and the
    value columns of :data:`CSV_COLUMNS`. A bare ``psnr`` / ``msssim`` column is RGB unless a
    ``psnr_space`` column mentions YUV (then ``psnr-yuv`` / ``ms-ssim-yuv``); ``psnr_key`` /
    ``msssim_key`` override. Rows named ``Average`` / ``AVERAGE`` (or ``is_average`` true) become
    the aggregate; without them the aggregate is the mean over sequences.

    Args:
        source: CSV path or open text stream.
        name: result name (default: the codec, else the file stem).
        codec, dataset: keep only rows whose ``codec`` / ``dataset`` column equals this.
        psnr_key, msssim_key: our key for a bare ``psnr`` / ``msssim`` column.
        columns: extra or overriding column -> key mapping.
        description: text for the result's description (sources, conventions).
        row_filter: extra predicate on the raw row.

    Raises:
        InputError: unreadable file, no sequence column, several codecs without ``codec=``, or no
            rows left after filtering.
    """
    origin, rows = _read_csv(source)
    header = list(rows[0].keys())
    seq_col = next((c for c in _SEQ_COLS if c in header), None)
    if seq_col is None:
        raise InputError(f"{origin}: no sequence column (one of {', '.join(_SEQ_COLS)})")
    rows = _select_rows(rows, origin, codec=codec, dataset=dataset, row_filter=row_filter)
    mapping = {**CSV_COLUMNS, **(columns or {})}
    point_col = next((c for c in _POINT_COLS if c in header), None)

    per_seq: dict[str, list[dict[str, Any]]] = {}
    avg: list[dict[str, Any]] = []
    for r in rows:
        rec = _csv_record(r, mapping, psnr_key, msssim_key)
        if "bpp" not in rec and "bitrate" not in rec:
            continue
        if point_col is not None:
            rec["q"] = r[point_col]
        seq = r[seq_col]
        is_avg = r.get("is_average", "").strip().lower() == "true" or (
            seq.strip().lower() in _AVERAGE_NAMES)
        (avg if is_avg else per_seq.setdefault(seq, [])).append(rec)
    if not per_seq and not avg:
        raise InputError(f"{origin}: no row has a bpp or bitrate value")
    seqs = {s: _to_curve(p) for s, p in per_seq.items()}
    results = _to_curve(avg) if avg else aggregate(seqs)
    nm = name or codec or Path(origin).stem
    return ResultSet(nm, description, results, seqs)


def _read_csv(source: Path | str | io.TextIOBase) -> tuple[str, list[dict[str, str]]]:
    """``(origin for messages, rows)`` of a CSV file or stream (at least one row)."""
    origin = str(source) if isinstance(source, (str, Path)) else "<csv>"
    try:
        if isinstance(source, (str, Path)):
            text = Path(source).read_text(encoding="utf-8-sig")
        else:
            text = source.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{origin}: cannot read CSV ({e})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{origin}: no rows")
    return origin, rows


def _select_rows(
    rows: list[dict[str, str]],
    origin: str,
    *,
    codec: str | None,
    dataset: str | None,
    row_filter: Callable[[dict[str, str]], bool] | None,
) -> list[dict[str, str]]:
    """The rows of ``dataset`` and ``codec`` (required when the file holds several) that pass
    ``row_filter``; at least one."""
    header = list(rows[0].keys())
    if dataset is not None and "dataset" in header:
        rows = [r for r in rows if r["dataset"].lower() == dataset.lower()]
    if "codec" in header:
        codecs = sorted({r["codec"] for r in rows})
        if codec is None and len(codecs) > 1:
            raise InputError(f"{origin}: several codecs ({'; '.join(codecs)}); pick one with codec=")
        if codec is not None:
            rows = [r for r in rows if r["codec"] == codec]
    if row_filter is not None:
        rows = [r for r in rows if row_filter(r)]
    if not rows:
        raise InputError(f"{origin}: no rows match codec={codec!r} dataset={dataset!r}")
    return rows


def _csv_record(
    row: dict[str, str], mapping: Mapping[str, str], psnr_key: str | None, msssim_key: str | None
) -> dict[str, Any]:
    """Our keys and numbers of one CSV row (columns that are not numbers are left out)."""
    yuv = "yuv" in row.get("psnr_space", "").lower()
    rec: dict[str, Any] = {}
    for col, val in row.items():
        key = mapping.get(col)
        if col == "psnr" and key is None:
            key = psnr_key or ("psnr-yuv" if yuv else "psnr-rgb")
        elif col == "msssim" and key is None:
            key = msssim_key or ("ms-ssim-yuv" if yuv else "ms-ssim-rgb")
        if key is None or val is None:
            continue
        num = _num(val)
        if num is not None:
            rec[key] = num
    return rec


def _to_curve(points: list[dict[str, Any]]) -> Curve:
    """Point records as a curve ordered by rate (bpp when every point has it, else bitrate)."""
    rate_key = "bpp" if all("bpp" in p for p in points) else "bitrate"
    points = sorted(points, key=lambda p: p.get(rate_key, 0.0))
    keys: list[str] = []
    for p in points:
        keys.extend(k for k in p if k not in keys)
    return {k: [p.get(k) for p in points] for k in keys}


def import_dcvc_json(
    path: Path | str,
    *,
    dataset: str | None = None,
    name: str | None = None,
    fps: Mapping[str, float] | None = None,
) -> ResultSet:
    """Convert DCVC's result JSON (``{dataset: {sequence: {rate_key: {ave_all_frame_*...}}}}``).

    Mapping: ``ave_all_frame_bpp`` -> ``bpp``, ``ave_all_frame_psnr`` -> ``psnr-yuv`` (DCVC's
    6:1:1 average for YUV420 tests), ``ave_all_frame_psnr_{y,u,v}`` -> ``psnr-{y,u,v}``,
    ``ave_all_frame_msssim_y`` -> ``ms-ssim-y``, ``ave_all_frame_msssim`` -> ``ms-ssim-yuv``,
    ``qp``/rate key -> ``q``, ``test_time`` -> ``encoding_time``, ``i_frame_num + p_frame_num`` ->
    ``frames``. ``bitrate`` (kbps) is filled in when the sequence's fps is known (from ``fps``, the
    ``_<fps>`` / ``_<fps>fps`` part of the file name, or the built-in dataset descriptions).

    Args:
        path: DCVC JSON file.
        dataset: which top-level dataset to import (required when the file holds several).
        name: result name (default ``dcvc-<dataset>``).
        fps: ``{sequence name: fps}`` overrides.

    Raises:
        InputError: unreadable file, unexpected layout or an ambiguous dataset.
    """
    origin = str(path)
    data = read_json(Path(path))
    if not isinstance(data, dict) or not data:
        raise InputError(f"{origin}: expected {{dataset: {{sequence: {{rate: {{...}}}}}}}}")
    if dataset is None:
        if len(data) > 1:
            raise InputError(f"{origin}: several datasets ({', '.join(data)}); pick one")
        dataset = next(iter(data))
    match = [k for k in data if k.lower() == dataset.lower()]
    if not match:
        raise InputError(f"{origin}: no dataset {dataset!r} (has {', '.join(data)})")
    block = data[match[0]]
    if not isinstance(block, dict):
        raise InputError(f"{origin}: dataset {dataset!r} is not a mapping of sequences")
    known_fps = _known_fps()
    if fps:
        known_fps.update({canonical_sequence(k): float(v) for k, v in fps.items()})
    seqs: dict[str, Curve] = {}
    for seq_file, rates in block.items():
        if not isinstance(rates, dict):
            raise InputError(f"{origin}: sequence {seq_file!r} is not a mapping of rate points")
        seq_fps = known_fps.get(canonical_sequence(seq_file)) or _fps_from_name(seq_file)
        points = []
        for rate_key, rec in rates.items():
            if not isinstance(rec, dict) or "ave_all_frame_bpp" not in rec:
                raise InputError(f"{origin}: {seq_file}/{rate_key} lacks ave_all_frame_bpp")
            p: dict[str, Any] = {"q": str(rate_key), "bpp": float(rec["ave_all_frame_bpp"])}
            for src, dst in (
                ("ave_all_frame_psnr", "psnr-yuv"),
                ("ave_all_frame_psnr_y", "psnr-y"),
                ("ave_all_frame_psnr_u", "psnr-u"),
                ("ave_all_frame_psnr_v", "psnr-v"),
                ("ave_all_frame_msssim", "ms-ssim-yuv"),
                ("ave_all_frame_msssim_y", "ms-ssim-y"),
                ("qp", "qp"),
                ("test_time", "encoding_time"),
            ):
                if src in rec and isinstance(rec[src], (int, float)):
                    p[dst] = rec[src]
            frames = int(rec.get("i_frame_num", 0)) + int(rec.get("p_frame_num", 0))
            if frames:
                p["frames"] = frames
            pix = rec.get("frame_pixel_num")
            if pix and frames:
                p["bytes"] = p["bpp"] * pix * frames / 8.0
                if seq_fps:
                    p["bitrate"] = p["bpp"] * pix * seq_fps / 1000.0
            points.append(p)
        points.sort(key=lambda p: p["bpp"])
        seqs[str(Path(seq_file).stem)] = {k: [p.get(k) for p in points] for k in points[0]}
    desc = (f"imported from DCVC result JSON {Path(path).name} (dataset {match[0]}); psnr-yuv = "
            "DCVC ave_all_frame_psnr, (6Y+U+V)/8 for YUV420 tests")
    return ResultSet(name or f"dcvc-{match[0].lower()}", desc, aggregate(seqs), seqs)


def _fps_from_name(name: str) -> float | None:
    import re

    m = re.search(r"_(\d+(?:\.\d+)?)(?:fps|hz)?(?:_|\.|$)", Path(name).stem.split("x", 1)[-1],
                  re.IGNORECASE)
    return float(m.group(1)) if m else None


def _known_fps() -> dict[str, float]:
    from hinerv.bench.datasets import list_datasets, load_dataset

    out: dict[str, float] = {}
    for d in list_datasets():
        try:
            for s in load_dataset(d).sequences:
                out[canonical_sequence(s.name)] = float(s.fps)
        except ConfigError:
            continue
    return out


# --------------------------------------------------------------------------------------------
# Built-in anchors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorInfo:
    """A built-in published anchor.

    Attributes:
        name: the name after ``@``.
        csv: file in ``hinerv/data/anchors/``.
        codec, dataset: row filters on the CSV.
        description: what it is, its metric conventions and its source.
        columns: extra column -> key mapping.
    """

    name: str
    csv: str
    codec: str | None
    dataset: str | None
    description: str
    columns: tuple[tuple[str, str], ...] = ()
    psnr_key: str | None = None
    msssim_key: str | None = None


_HINERV_CONV = (
    "RGB PSNR / MS-SSIM (BT.601 via ffmpeg PNGs, float network output, per-frame mean); bpp from "
    "the zip bitstream; 5 RD points = HiNeRV S..XXL (UVG) or XXS..L (MCL-JCV), Q6 (inferred); "
    "aggregate = the sheet's plain mean over sequences"
)
_HINERV_SRC = "hmkx/HiNeRV@fdb92ec22492246f800621dfd454f6a5c62ab75b"

ANCHORS: dict[str, AnchorInfo] = {
    a.name: a
    for a in (
        AnchorInfo(
            "hinerv-uvg", "hinerv-uvg-original.csv", None, "UVG",
            f"HiNeRV (NeurIPS 2023), UVG, paper results; {_HINERV_CONV}. Source: {_HINERV_SRC} "
            "results/original/uvg_results.xlsx",
            columns=(("msssim", "ms-ssim-rgb"), ("psnr", "psnr-rgb")),
        ),
        AnchorInfo(
            "hinerv-uvg-new", "hinerv-uvg-new.csv", None, "UVG",
            f"HiNeRV, UVG, code-release re-run ('slightly improved'); {_HINERV_CONV}. Source: "
            f"{_HINERV_SRC} results/new/uvg_results.xlsx",
            columns=(("msssim", "ms-ssim-rgb"), ("psnr", "psnr-rgb")),
        ),
        AnchorInfo(
            "hinerv-mcljcv", "hinerv-mcljcv-original.csv", None, "MCL-JCV",
            f"HiNeRV, MCL-JCV, paper results; {_HINERV_CONV}. Source: {_HINERV_SRC} "
            "results/original/mcljcv_results.xlsx",
            columns=(("msssim", "ms-ssim-rgb"), ("psnr", "psnr-rgb")),
        ),
        AnchorInfo(
            "hm18-ra-uvg", "c3_repo_uvg_rd.csv", "HEVC (HM 18.0, Random Access)", "UVG",
            "HM-18.0 Random Access on UVG as supplied by the HiNeRV authors to C3; dataset average "
            "only (6 points), RGB PSNR (per-frame mean, then mean over videos), bpp. Source: "
            "google-deepmind/c3_neural_compression@e63e7519 baselines/uvg.py",
            psnr_key="psnr-rgb",
        ),
        AnchorInfo(
            "vtm17-ra-uvg", "c3_repo_uvg_rd.csv", "VTM (17.0, Random Access)", "UVG",
            "'VTM 17.0 RA' of the C3 authors (their link points to VVenC; a weak VVC anchor), UVG "
            "per sequence, RGB PSNR, bpp. Source: google-deepmind/c3_neural_compression@e63e7519 "
            "baselines/uvg.py",
            psnr_key="psnr-rgb",
        ),
        AnchorInfo(
            "vtm17-lb-uvg", "dcvc_repo_vtm17_LB_ip-1_uvg_mcljcv.csv", "VTM-17.0", "UVG",
            "VTM-17.0 low-delay B, intra period -1, all frames, YUV420 8-bit, QP 22..49 step 3, per "
            "sequence; psnr-yuv = (6Y+U+V)/8; encoding_time = DCVC test_time (s). Source: "
            "microsoft/DCVC@54e88645 anchors/vtm_17.0_yuv420_LB_allf_ip0.json",
            columns=(("msssim", "ms-ssim-yuv"), ("psnr", "psnr-yuv")),
        ),
        AnchorInfo(
            "vtm17-lb-mcljcv", "dcvc_repo_vtm17_LB_ip-1_uvg_mcljcv.csv", "VTM-17.0", "MCL-JCV",
            "VTM-17.0 low-delay B, intra period -1, all frames, YUV420 8-bit, QP 22..49 step 3, per "
            "sequence; psnr-yuv = (6Y+U+V)/8; encoding_time = DCVC test_time (s). Source: "
            "microsoft/DCVC@54e88645 anchors/vtm_17.0_yuv420_LB_allf_ip0.json",
            columns=(("msssim", "ms-ssim-yuv"), ("psnr", "psnr-yuv")),
        ),
    )
}


def list_anchors() -> list[AnchorInfo]:
    """All built-in anchors, sorted by name."""
    return [ANCHORS[k] for k in sorted(ANCHORS)]


def load_anchor(name: str) -> ResultSet:
    """Load a built-in anchor by name (with or without the leading ``@``).

    Raises:
        ConfigError: unknown name.
    """
    key = name.lstrip("@").lower()
    if key not in ANCHORS:
        raise ConfigError(f"unknown anchor @{key} (built-in: {', '.join(sorted(ANCHORS))})")
    a = ANCHORS[key]
    text = resources.files("hinerv").joinpath("data", "anchors", a.csv).read_text("utf-8")
    rs = import_csv(
        io.StringIO(text),
        name=a.name,
        codec=a.codec,
        dataset=a.dataset,
        psnr_key=a.psnr_key,
        msssim_key=a.msssim_key,
        columns=dict(a.columns),
        description=a.description,
    )
    rs.extra["anchor"] = f"@{a.name}"
    return rs


def load_results(spec: str | Path) -> ResultSet:
    """Load a result file, or a built-in anchor when ``spec`` starts with ``@`` (e.g.
    ``@hinerv-uvg``; see :func:`list_anchors`).

    Raises:
        InputError: unreadable or malformed file; ConfigError: unknown anchor.
    """
    s = str(spec)
    if s.startswith("@"):
        return load_anchor(s[1:])
    return ResultSet.from_json(read_json(Path(s)), origin=s)
