"""``hinerv bench run|anchors|import-dcvc|import-csv``, ``hinerv bdrate`` and ``hinerv plot``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hinerv.cli._app import app, err_console, out_console, print_json, print_table
from hinerv.errors import ConfigError, InputError
from hinerv.pipelines import DEFAULT_RD_DISTORTION, DEFAULT_RD_OPTIMIZER
from hinerv.validate import (
    CLI_BITS,
    check_bits,
    check_epochs,
    check_frame_count,
    check_not_same_file,
    check_output_path,
    check_writable_dir,
)

__all__ = ["bench_run", "bench_anchors", "bench_import_dcvc", "bench_import_csv", "bdrate", "plot"]

bench_app = typer.Typer(
    help="Rate-distortion sweeps (HiNeRV, x265, HM/VTM), published anchors and importers.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be a comma list of numbers, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise ConfigError(f"{what} needs positive numbers, got {text!r}")
    return vals


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        vals = []
        for part in text.split(","):
            part = part.strip()
            if ":" in part:  # a:b:step
                a, b, *s = (int(x) for x in part.split(":"))
                vals.extend(range(a, b + 1, s[0] if s else 1))
            elif part:
                vals.append(int(part))
        return tuple(vals)
    except ValueError:
        raise ConfigError(f"{what} must be a comma list of integers (or a:b:step), got {text!r}"
                          ) from None


def _strs(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


class _RichReporter:
    """Sweep progress on stderr: one bar for the sweep, one for the point in progress."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=quiet or not err_console.is_terminal,
        )
        self.sweep: TaskID | None = None
        self.point: TaskID | None = None
        self.lines = not quiet and not err_console.is_terminal
        self.reported: set[str] = set()  # failures already printed (each is printed once)

    def start(self, total: int, skipped: int) -> None:
        self.progress.start()
        if skipped and not self.quiet:
            err_console.print(f"{skipped} point(s) already done (skipped)")
        self.sweep = self.progress.add_task("sweep", total=total)

    def message(self, text: str) -> None:
        if not self.quiet:
            err_console.print(text, highlight=False)

    def point_started(self, job: Any) -> None:
        if self.point is None:
            self.point = self.progress.add_task("point", total=None)
        self.progress.update(self.point, description=" ".join(job.key), completed=0, total=None)

    def point_progress(self, job: Any, stage: str, done: int, total: int) -> None:
        if self.point is not None:
            self.progress.update(self.point, description=f"{' '.join(job.key)} {stage}",
                                 completed=done, total=total)

    def point_done(self, job: Any, result: dict[str, Any] | None, error: str | None) -> None:
        if self.sweep is not None:
            self.progress.advance(self.sweep)
        if error:
            self.reported.add("/".join(job.key))
            err_console.print(f"[bold red]failed[/] {' '.join(job.key)}: {error}", highlight=False)
        elif self.lines and result is not None:
            err_console.print(
                f"done {' '.join(job.key)}: {result.get('bpp', math.nan):.4f} bpp, "
                f"{result.get('psnr-rgb', math.nan):.2f} dB RGB", highlight=False)

    def finish(self) -> None:
        self.progress.stop()


@bench_app.command("run")
def bench_run(
    videos: Annotated[list[Path] | None, typer.Argument(help="Videos to benchmark (any format "
                                                              "hinerv reads).")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (resumable).")] = Path(
        "bench-out"),
    codec: Annotated[list[str] | None, typer.Option(
        "-c", "--codec", help="x265, hinerv, hm/vtm, or a configs/anchors name (e.g. "
        "x265-veryslow-ld); repeat for several. Default: x265.")] = None,
    dataset: Annotated[str | None, typer.Option(help="uvg, mcl-jcv or a dataset .toml.")] = None,
    root: Annotated[Path | None, typer.Option(help="Folder holding the dataset's files.")] = None,
    qps: Annotated[str | None, typer.Option("-q", "--qps", help="x265 QPs, e.g. 16,20,24 or "
                                                                 "16:44:4 (default 16..44 step 4).")] = None,
    preset: Annotated[str | None, typer.Option(help="x265 preset (default veryslow).")] = None,
    gop: Annotated[str, typer.Option(help="x265 configurations: ra, ld or ra,ld.")] = "ra",
    intra_period: Annotated[int | None, typer.Option(help="x265 keyint / HM IntraPeriod.")] = None,
    x265_params: Annotated[str | None, typer.Option(help="Extra x265-params (k=v:k=v).")] = None,
    sizes: Annotated[str | None, typer.Option(help="HiNeRV sizes, e.g. s,m,l.")] = None,
    bits: Annotated[str | None, typer.Option(help="HiNeRV quantization bits, e.g. 6,8.")] = None,
    schedule: Annotated[str, typer.Option(help="HiNeRV schedule: auto (the default: full; with "
                                               "--time-budget, hinerv encode's budget rule), full, "
                                               "short, fast, tiny or a .toml.")] = "auto",
    epochs: Annotated[int | None, typer.Option(help="HiNeRV main-stage epochs override.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="HiNeRV pipeline: rd (default) or paper (the default "
                                                       "when --bits is given).")] = None,
    lambdas: Annotated[str | None, typer.Option("--lambdas", help="rd pipeline: λ values, e.g. 0.5,1,2 "
                                                "(one point each; default: each size's ladder λ).")] = None,
    target_bpp: Annotated[str | None, typer.Option("--target-bpp", help="rd pipeline: target "
                                                   "rates, e.g. 0.03,0.06 (one point each).")] = None,
    distortion: Annotated[str, typer.Option(help="rd pipeline distortion: blend (default), reference or mse.")
                          ] = DEFAULT_RD_DISTORTION,
    optimizer: Annotated[str, typer.Option(help="rd pipeline optimizer: auto (default: adam at xxs and xs, "
                                                "else soap-pretrain), adam, soap (Adam in Shampoo's "
                                                "eigenbasis) or soap-pretrain (SOAP while pre-training).")
                         ] = DEFAULT_RD_OPTIMIZER,
    time_budget: Annotated[str | None, typer.Option(help="HiNeRV wall time per encode (e.g. 10m, "
                                                         "2h): the schedule is fitted to it.")] = None,
    device: Annotated[str, typer.Option(help="HiNeRV device: auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[str | None, typer.Option(help="HiNeRV training precision: fp32, fp16 or bf16 "
                                                       "(default fp16 on CUDA, fp32 on the CPU).")] = None,
    seed: Annotated[int, typer.Option(help="HiNeRV seed.")] = 0,
    hm_bin: Annotated[Path | None, typer.Option(help="HM/VTM encoder binary.")] = None,
    hm_cfg: Annotated[Path | None, typer.Option(help="HM/VTM encoder .cfg.")] = None,
    hm_dec: Annotated[Path | None, typer.Option(help="HM/VTM decoder binary (optional).")] = None,
    hm_qps: Annotated[str | None, typer.Option(help="HM/VTM QPs (default 16..36 step 4).")] = None,
    hm_name: Annotated[str | None, typer.Option(help="Tool label, e.g. HM-18.0.")] = None,
    frames: Annotated[int | None, typer.Option(help="Use only the first N frames.")] = None,
    scale: Annotated[float | None, typer.Option(help="Rescale width and height by F.")] = None,
    width: Annotated[int | None, typer.Option(help="Raw .yuv width (if not in the name).")] = None,
    height: Annotated[int | None, typer.Option(help="Raw .yuv height.")] = None,
    fps: Annotated[float | None, typer.Option(help="Raw .yuv frame rate.")] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Parallel local workers (one point "
                                                            "each; GPUs round-robin).")] = 1,
    ray_address: Annotated[str | None, typer.Option(help="Run on this Ray cluster (e.g. auto).")
                           ] = None,
    force: Annotated[bool, typer.Option("-f", "--force", help="Redo finished points.")] = False,
    dry_run: Annotated[bool, typer.Option("-n", "--dry-run", help="List the plan only.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Encode, decode and measure every rate point of every codec on every sequence."""
    from hinerv.bench.specs import CodecOptions, build_codecs
    from hinerv.bench.sweep import run_sweep
    from hinerv.budget import parse_duration

    # every option that can be wrong is refused here, before a source is prepared
    hinerv_bits = _ints(bits, "--bits")
    for b in hinerv_bits or ():
        check_bits(b, CLI_BITS)
    check_epochs(epochs)
    check_frame_count(frames)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    check_not_same_file(videos or [], [out])
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    check_writable_dir(out, create=True)
    ropts = {k: v for k, v in (("width", width), ("height", height), ("fps", fps)) if v}
    specs = _source_specs(videos or [], dataset, root, ropts)
    codecs = build_codecs(list(codec or ["x265"]), CodecOptions(
        qps=_ints(qps, "--qps"), preset=preset, gops=_strs(gop) or ("ra",), intra_period=intra_period,
        x265_params=x265_params, sizes=_strs(sizes), bits=hinerv_bits, schedule=schedule,
        pipeline=pipeline, lambdas=_floats(lambdas, "--lambdas"),
        target_bpps=_floats(target_bpp, "--target-bpp"), distortion=distortion, epochs=epochs,
        optimizer=optimizer, device=device, precision=precision, seed=seed,
        time_budget=parse_duration(time_budget) if time_budget else None,
        hm_bin=hm_bin, hm_cfg=hm_cfg, hm_dec=hm_dec, hm_qps=_ints(hm_qps, "--hm-qps"), hm_name=hm_name,
    ))
    rep = _RichReporter(quiet)  # progress is on stderr, so --json keeps it
    summary = run_sweep(codecs, specs, out, frames=frames, scale=scale, jobs=jobs,
                        ray_address=ray_address, force=force, dry_run=dry_run,
                        reporter=rep)  # type: ignore[arg-type]
    _print_summary(summary, rep, as_json)


def _source_specs(videos: list[Path], dataset: str | None, root: Path | None,
                  ropts: dict[str, Any]) -> list[Any]:
    """The sequences of ``--dataset`` (under ``--root``), then the video arguments."""
    from hinerv.bench.datasets import load_dataset, locate
    from hinerv.bench.sweep import SourceSpec

    specs: list[SourceSpec] = []
    if dataset is not None:
        if root is None:
            raise ConfigError("--dataset needs --root (the folder holding its files)")
        ds = load_dataset(dataset)
        for s in ds.sequences:
            specs.append(SourceSpec(s.name, locate(root, s), {
                "width": s.width, "height": s.height, "fps": s.fps, "bit_depth": s.bit_depth}))
    for v in videos:
        specs.append(SourceSpec(v.stem, v, dict(ropts)))
    return specs


def _print_summary(summary: Any, rep: _RichReporter, as_json: bool) -> None:
    """The sweep summary (table or JSON); failed points not printed yet; exit code 1 on failures."""
    if as_json:
        print_json(summary.as_dict())
    else:
        rows = {"points run": summary.ran, "already done": summary.skipped_done,
                "failed": len(summary.failed), "seconds": summary.seconds}
        for k, v in summary.outputs.items():
            rows[f"result {k}"] = str(v)
        for k, v in summary.skipped_codecs.items():
            rows[f"skipped {k}"] = v
        print_table("bench", rows)
    if summary.failed:
        for k, v in summary.failed.items():
            if k not in rep.reported:  # points skipped after a failure in their group
                err_console.print(f"[bold red]not run[/] {k}: {v}", highlight=False)
        raise typer.Exit(1)


@bench_app.command("anchors")
def bench_anchors(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the built-in published anchors (@name) and the codec configurations."""
    from hinerv.bench.anchors import list_anchors, load_anchor
    from hinerv.bench.specs import list_codec_configs

    rows = []
    for a in list_anchors():
        rs = load_anchor(a.name)
        metrics = [k for k in rs.results if k.startswith(("psnr", "ms-ssim"))]
        rows.append({"anchor": f"@{a.name}", "sequences": len(rs.sequences),
                     "points": len(rs.results.get("bpp") or []), "metrics": ",".join(metrics),
                     "description": a.description})
    configs = {k: str(v) for k, v in list_codec_configs().items()}
    if as_json:
        print_json({"anchors": rows, "codec_configs": configs})
        return
    print_table("built-in anchors (hinerv bdrate TEST.json @name)",
                [{k: v for k, v in r.items() if k != "description"} for r in rows])
    for r in rows:
        out_console.print(f"[bold]{r['anchor']}[/]: {r['description']}", highlight=False)
    print_table("codec configurations (hinerv bench run --codec NAME)", configs)


@bench_app.command("import-dcvc")
def bench_import_dcvc(
    src: Annotated[Path, typer.Argument(help="DCVC result JSON.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Result JSON to write.")],
    dataset: Annotated[str | None, typer.Option(help="Top-level dataset key to import.")] = None,
    name: Annotated[str | None, typer.Option(help="Result name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result JSON.")] = False,
) -> None:
    """Convert DCVC's per-sequence result JSON into a hinerv result file."""
    from hinerv.bench.anchors import import_dcvc_json

    check_output_path(output, "json", create_parent=True)
    check_not_same_file([src], [output])
    rs = import_dcvc_json(src, dataset=dataset, name=name)
    rs.save(output)
    _print_imported(rs, output, as_json)


@bench_app.command("import-csv")
def bench_import_csv(
    src: Annotated[Path, typer.Argument(help="Tidy RD CSV.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Result JSON to write.")],
    codec: Annotated[str | None, typer.Option(help="Keep rows of this codec column value.")
                     ] = None,
    dataset: Annotated[str | None, typer.Option(help="Keep rows of this dataset.")] = None,
    psnr_key: Annotated[str | None, typer.Option(help="Our key for a bare psnr column.")] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="COLUMN=key, e.g. "
                                                   "psnr_yuv=psnr-yuv-411.")] = None,
    name: Annotated[str | None, typer.Option(help="Result name.")] = None,
    description: Annotated[str, typer.Option(help="Description (state the source!).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result JSON.")] = False,
) -> None:
    """Convert a CSV of published RD points (one row per sequence and point) into a result file."""
    from hinerv.bench.anchors import import_csv

    check_output_path(output, "json", create_parent=True)
    check_not_same_file([src], [output])
    cols = {}
    for m in map_ or []:
        if "=" not in m:
            raise ConfigError(f"--map wants COLUMN=key, got {m!r}")
        a, b = m.split("=", 1)
        cols[a.strip()] = b.strip()
    rs = import_csv(src, name=name, codec=codec, dataset=dataset, psnr_key=psnr_key,
                    columns=cols, description=description or f"imported from {src.name}")
    rs.save(output)
    _print_imported(rs, output, as_json)


def _print_imported(rs: Any, output: Path, as_json: bool) -> None:
    if as_json:
        print_json(rs.to_json())
    else:
        print_table(f"imported {rs.name} -> {output}",
                    {"sequences": len(rs.sequences),
                     "points": len(next(iter(rs.results.values()), [])),
                     "keys": ", ".join(rs.results)})


@app.command("bdrate")
def bdrate(
    test: Annotated[str, typer.Argument(help="Test result JSON or @anchor.")],
    anchor: Annotated[str, typer.Argument(help="Anchor result JSON or @anchor.")],
    metric: Annotated[str, typer.Option("-m", "--metric", help="psnr-rgb, psnr-yuv, psnr-y, "
                                                               "ms-ssim-rgb, ...")] = "psnr-rgb",
    rate_key: Annotated[str, typer.Option("--rate", help="bpp or bitrate.")] = "bpp",
    method: Annotated[str, typer.Option(help="pchip (default), akima or cubic.")] = "pchip",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """BD-rate (negative = TEST saves bits) and BD-quality of TEST against ANCHOR, per sequence
    and averaged over sequences; also on the dataset-average curves ("overall")."""
    from hinerv.bench.anchors import load_results
    from hinerv.bench.bdrate import METHODS, compare_results

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    t, a = load_results(test), load_results(anchor)
    cmp = compare_results(t, a, metric=metric, rate_key=rate_key, method=method)
    if as_json:
        print_json({"test": t.name, "anchor": a.name, **cmp.as_dict()})
        return
    unit = "dB" if metric.startswith(("psnr", "ms-ssim")) else ""
    rows = []
    for s, r in cmp.per_sequence.items():
        rows.append({"sequence": s, "BD-rate %": _value(r.bd_rate),
                     f"BD-{metric} {unit}": _value(r.bd_quality), "overlap": _overlap(r),
                     "points": f"{r.points[1]}/{r.points[0]}"})
    if rows:
        rows.append({"sequence": "Average", "BD-rate %": _value(cmp.average_bd_rate),
                     f"BD-{metric} {unit}": _value(cmp.average_bd_quality), "overlap": "",
                     "points": f"{len(rows)} seq"})
    if cmp.overall is not None:
        o = cmp.overall
        rows.append({"sequence": "Overall (avg curves)", "BD-rate %": _value(o.bd_rate),
                     f"BD-{metric} {unit}": _value(o.bd_quality), "overlap": _overlap(o),
                     "points": f"{o.points[1]}/{o.points[0]}"})
    print_table(f"{t.name} vs {a.name}: {metric} over log {rate_key}, {method}", rows)
    for w in cmp.warnings:
        err_console.print(f"warning: {w}", highlight=False)
    if cmp.missing:
        err_console.print(f"no test curve for {len(cmp.missing)} anchor sequence(s): "
                          f"{', '.join(cmp.missing)}", highlight=False)
    few = [s for s, r in cmp.per_sequence.items() if min(r.points) < 4]
    if few or (cmp.overall is not None and min(cmp.overall.points) < 4):
        err_console.print("warning: fewer than 4 RD points in some curves; BD values are less "
                          "reliable", highlight=False)


def _value(v: float) -> float | str:
    return v if math.isfinite(v) else "n/a"


def _overlap(r: Any) -> str:
    lo, hi = r.quality_overlap
    return f"{lo:.2f}..{hi:.2f}" if r.overlaps else "none"


@app.command("plot")
def plot(
    files: Annotated[list[str], typer.Argument(help="Result JSON files or @anchors.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image file (.png/.pdf/.svg).")
                      ] = Path("rd.png"),
    metric: Annotated[list[str] | None, typer.Option("-m", "--metric", help="Panels (default "
                                                     "psnr-rgb and ms-ssim-rgb).")] = None,
    x: Annotated[str, typer.Option("--x", help="bpp or bitrate (kbps).")] = "bpp",
    title: Annotated[str | None, typer.Option("-t", "--title")] = None,
    log_x: Annotated[bool, typer.Option(help="Logarithmic rate axis.")] = False,
) -> None:
    """Draw RD curves, one line per codec (MS-SSIM in dB)."""
    from hinerv.bench.anchors import load_results
    from hinerv.bench.plot import plot_rd

    check_output_path(output, "image", create_parent=True)
    check_not_same_file([f for f in files if not f.startswith("@")], [output])
    rs = [load_results(f) for f in files]
    path = plot_rd(rs, output, metrics=tuple(metric or ("psnr-rgb", "ms-ssim-rgb")), x=x,
                   title=title, log_x=log_x)
    err_console.print(f"wrote {path}", highlight=False)
