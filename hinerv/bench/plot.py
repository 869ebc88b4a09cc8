"""Rate-distortion plots: one line per codec, PSNR and MS-SSIM panels (matplotlib, lazily imported).

MS-SSIM is drawn in dB, ``-10 log10(1 - v)``, as CompressAI does. Conventional codecs (names with
x264/x265/HM/VTM/HEVC/VVC) get dashed lines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from hinerv.bench.bdrate import msssim_db
from hinerv.bench.results import ResultSet
from hinerv.errors import ConfigError
from hinerv.io.base import fix_mode, make_temp

__all__ = ["plot_rd", "msssim_db", "X_AXES"]

X_AXES = {"bpp": "Rate [bpp]", "bitrate": "Bit-rate [kbps]"}
_CONVENTIONAL = ("x264", "x265", "hm", "vtm", "hevc", "vvc", "avc")


def _pairs(rs: ResultSet, x: str, metric: str) -> tuple[list[float], list[float]]:
    xs, ys = rs.results.get(x), rs.results.get(metric)
    if not xs or not ys:
        return [], []
    pts = sorted(
        (float(a), float(b))
        for a, b in zip(xs, ys, strict=False)
        if isinstance(a, (int, float)) and isinstance(b, (int, float))
        and math.isfinite(a) and math.isfinite(b)
    )
    if metric.startswith("ms-ssim"):
        pts = [(a, msssim_db(b)) for a, b in pts if b < 1]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_rd(
    results: Sequence[ResultSet],
    output: Path,
    *,
    metrics: Sequence[str] = ("psnr-rgb", "ms-ssim-rgb"),
    x: str = "bpp",
    title: str | None = None,
    log_x: bool = False,
    dpi: int = 150,
) -> Path:
    """Draw RD curves of ``results`` (their aggregate ``results``) and save to ``output``.

    Args:
        results: one :class:`ResultSet` per codec (one line each, labelled by its name).
        output: image path (format from the extension: .png, .pdf, .svg); written atomically.
        metrics: one panel per metric; a codec without the metric is left out of that panel.
        x: ``bpp`` or ``bitrate`` (kbps).
        title: figure title.
        log_x: logarithmic rate axis.
        dpi: resolution of raster output.

    Returns:
        ``output``.

    Raises:
        ConfigError: matplotlib missing, unknown x axis, or nothing to draw.
    """
    if x not in X_AXES:
        raise ConfigError(f"--x must be one of {', '.join(X_AXES)}, got {x!r}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'hinerv[plot]'") from None
    if not results:
        raise ConfigError("no result files to plot")
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.0 * len(metrics), 4.5), squeeze=False)
    drawn = 0
    for ax, metric in zip(axes[0], metrics, strict=False):
        for rs in results:
            xs, ys = _pairs(rs, x, metric)
            if not xs:
                continue
            dashed = any(t in rs.name.lower() for t in _CONVENTIONAL)
            ax.plot(xs, ys, "--o" if dashed else "-o", label=rs.name, markersize=4)
            drawn += 1
        unit = " [dB]" if metric.startswith(("psnr", "ms-ssim")) else ""
        ax.set_xlabel(X_AXES[x])
        ax.set_ylabel(f"{metric.upper()}{unit}")
        if log_x:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.4)
    if drawn == 0:
        plt.close(fig)
        raise ConfigError(
            f"nothing to draw: no file has both {x!r} and any of {', '.join(metrics)}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    # One legend for the figure, below the panels: inside an axes a fixed corner can hide a curve.
    handles: dict[str, object] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=max(1, min(len(handles), 4)), fontsize=8, frameon=False)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp(output, suffix=output.suffix or ".png")
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        fix_mode(tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return output
