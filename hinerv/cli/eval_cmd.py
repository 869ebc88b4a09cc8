"""``hinerv eval REF DIST``: quality of a distorted video against its reference."""

from __future__ import annotations

from pathlib import Path

import typer

from hinerv.cli._app import app, err_console, print_json, print_table

__all__ = ["eval_command"]


@app.command("eval")
def eval_command(
    ref: Path = typer.Argument(..., help="Reference video (.yuv, .y4m, .mp4/.mkv, PNG folder)."),
    dist: Path = typer.Argument(..., help="Distorted (decoded) video, same size and frame count."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    frames: int | None = typer.Option(None, "--frames", min=1, help="Compare only the first N frames."),
    per_frame: bool = typer.Option(
        False, "--per-frame", help="With --json, also list per-frame values under 'per_frame'."
    ),
    width: int | None = typer.Option(None, "--width", min=1, help="Raw .yuv width (both inputs)."),
    height: int | None = typer.Option(None, "--height", min=1, help="Raw .yuv height (both inputs)."),
    fps: str | None = typer.Option(
        None, "--fps", help="Raw .yuv frame rate, e.g. 30 or 30000/1001 (both inputs)."
    ),
    bit_depth: int | None = typer.Option(
        None, "--bit-depth", min=8, max=16, help="Raw .yuv bit depth (both inputs)."
    ),
) -> None:
    """Compare DIST against REF: PSNR (RGB, Y, U, V, YUV 6:1:1 and 4:1:1) and MS-SSIM (RGB, Y).

    Sequence values are means over frames of per-frame values. A 4:2:0 video and an RGB one (a
    folder of PNGs, e.g. a decoded one) are compared with the RGB one's YUV taken at 4:2:0.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hinerv.io import open_video
    from hinerv.metrics import compare_videos

    opts = {"width": width, "height": height, "fps": fps, "bit_depth": bit_depth}
    with open_video(ref, **opts) as r, open_video(dist, **opts) as d:
        total = len(r) if frames is None else min(frames, len(r))
        with Progress(
            TextColumn("[bold]eval[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("eval", total=total)
            metrics = compare_videos(
                r, d, frames=frames, progress=lambda done, _n: bar.update(task, completed=done)
            )
    if json_out:
        print_json(metrics.as_dict(per_frame=per_frame))
    else:
        print_table(f"{dist.name} vs {ref.name}", metrics.as_dict())
