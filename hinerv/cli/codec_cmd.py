"""``hinerv encode``, ``hinerv decode``, ``hinerv info`` and ``hinerv demo``."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hinerv.cli._app import app, err_console, print_json, print_table
from hinerv.errors import ConfigError, HinervError, InputError
from hinerv.pipelines import DEFAULT_PIPELINE, DEFAULT_RD_DISTORTION, DEFAULT_RD_OPTIMIZER, PIPELINE_NAMES
from hinerv.validate import (
    CLI_BITS,
    check_bits,
    check_cli_workdir,
    check_device,
    check_epochs,
    check_frame_count,
    check_frames_within,
    check_lambda,
    check_writable_dir,
    parse_frame_range,
    parse_time_budget,
)

if TYPE_CHECKING:
    from hinerv.device import DevicePolicy

__all__ = ["encode", "decode", "info", "demo", "DEFAULT_PIPELINE"]

#: ``--bits`` alone still selects ``paper``, the only pipeline it applies to; otherwise the default is
#: :data:`hinerv.pipelines.DEFAULT_PIPELINE`, the same for every entry point


def _check_source(path: Path, reader_options: dict[str, Any], frames: int | None) -> None:
    """Before any work: ``--frames N`` must not exceed the source's frames (decode refuses a range
    outside the video the same way); then the process memory setting for the frame size
    (:func:`hinerv.runtime.keep_freed_memory_for`). An unreadable input is left to ``encode_file``,
    which reports it."""
    from hinerv.io import open_video
    from hinerv.runtime import keep_freed_memory_for

    opts = {k: v for k, v in reader_options.items() if k != "max_frames"}
    try:
        with open_video(path, **opts) as r:
            w, h, n = r.info.width, r.info.height, len(r)
    except (HinervError, OSError, ValueError):
        return
    check_frames_within(frames, n)
    keep_freed_memory_for(w, h)


def _decoder_allocator_for(path: Path) -> None:
    """The same process memory setting for decoding, from the frame size in the bitstream's header (at
    384x288 it makes decoding about 1.2x faster; at 1080p it would raise the peak from 2.6 to 4.6 GB,
    which the size rule avoids). An unreadable stream is left to ``decode_file``, which reports it."""
    from hinerv.codec import inspect_file
    from hinerv.runtime import keep_freed_memory_for

    try:
        video = inspect_file(path)["video"]
    except (HinervError, OSError, ValueError, KeyError):
        return
    keep_freed_memory_for(int(video["width"]), int(video["height"]))


def _prepare_fused_kernels(device: str | DevicePolicy, quiet: bool) -> None:
    """Load the fused CPU kernels (:mod:`hinerv.fused`) before the work starts, so that their one-time
    build (~30 s on a new machine or torch) shows as such instead of as a stalled first step.
    ``device``: a resolved policy (encode), or a ``--device`` name (decode, demo)."""
    from hinerv import fused
    from hinerv.device import DevicePolicy

    try:
        policy = device if isinstance(device, DevicePolicy) else DevicePolicy.resolve(device)
    except HinervError:  # a bad --device is left to the command, which reports it
        return
    if not policy.fused_cpu_kernels():
        return
    if not fused.enabled() or fused.loaded():
        return
    if quiet:
        fused.kernels()
    elif not err_console.is_terminal:
        _load_with_late_notice(fused.kernels)
    else:
        with err_console.status("loading the fused CPU kernels (compiled once per machine, ~30 s)"):
            fused.kernels()
    why = fused.build_error()
    if why is not None and not quiet:
        err_console.print(
            f"[yellow]note:[/] fused CPU kernels unavailable ({why}); using the slower PyTorch path",
            highlight=False,
            soft_wrap=True,
        )


#: seconds a kernel load may take before a log (not a terminal) is told that it is compiling
COMPILE_NOTICE_SECONDS = 2.0


def _load_with_late_notice(load: Any) -> None:
    """Run ``load()``; when it takes longer than :data:`COMPILE_NOTICE_SECONDS` (a first-use compile,
    not the ~1 s load of a cached build) say so in one line, so that a log does not look stalled."""
    import threading

    timer = threading.Timer(
        COMPILE_NOTICE_SECONDS,
        lambda: err_console.print(
            "compiling the fused CPU kernels (once per machine, ~30 s) ...", highlight=False, soft_wrap=True
        ),
    )
    timer.daemon = True
    timer.start()
    try:
        load()
    finally:
        timer.cancel()


def _pipeline(pipeline: str | None, bits: int | None) -> tuple[str, int]:
    """The pipeline asked for (explicit, else ``paper`` when ``--bits`` is given, else the default)
    and the checked bit depth (6 unless given; refused with the rd pipeline, which learns its steps)."""
    if pipeline is None:
        pipeline = "paper" if bits is not None else DEFAULT_PIPELINE
    if pipeline not in PIPELINE_NAMES:
        raise ConfigError(f"--pipeline must be {' or '.join(PIPELINE_NAMES)}, got {pipeline!r}")
    if pipeline == "rd" and bits is not None:
        raise ConfigError("--bits applies to --pipeline paper (the rd pipeline learns its step sizes)")
    bits = 6 if bits is None else bits
    check_bits(bits, CLI_BITS)
    return pipeline, bits


def _pipeline_settings(
    pipeline: str,
    bits: int,
    scale_mode: str,
    lam: float | None,
    target_bpp: float | None,
    distortion: str,
    optimizer: str | None = None,
) -> Any:
    """The chosen pipeline's settings from the command-line options that belong to it (None: a
    pipeline without options here runs with its defaults)."""
    from hinerv.pipelines.paper import PaperOptions
    from hinerv.pipelines.rd import RDOptions

    if pipeline == "paper":
        return PaperOptions(bits=bits, scale_mode=scale_mode)  # type: ignore[arg-type]
    if pipeline == "rd":
        opt = {"optimizer": optimizer} if optimizer is not None else {}
        return RDOptions(lam=lam, target_bpp=target_bpp, distortion=distortion, **opt)
    return None


def _progress(quiet: bool, eta_field: bool = False) -> Progress:
    """A progress bar; with ``eta_field`` the ETA is the task's ``eta`` field (the codec's estimate)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TextColumn("[cyan]{task.fields[eta]}") if eta_field else TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=False,
    )


@contextmanager
def _encode_progress(quiet: bool):  # type: ignore[no-untyped-def]
    """A progress callback for :func:`hinerv.codec.encode_file` drawing one rich bar over all epochs."""
    from hinerv.budget import Plan
    from hinerv.train import TrainEvent

    with _progress(quiet, eta_field=True) as prog:
        task = prog.add_task("encode", total=None, status="", eta="-:--:--")
        show_lines = quiet is False and not err_console.is_terminal

        def cb(ev: TrainEvent | Plan | str) -> None:
            if isinstance(ev, Plan):
                if not quiet:
                    err_console.print(ev.message(), highlight=False, soft_wrap=True)
                    for line in (*ev.notes, *([ev.hint] if ev.hint else [])):
                        err_console.print(f"[yellow]hint:[/] {line}", highlight=False, soft_wrap=True)
                return
            if isinstance(ev, str):
                prog.update(task, description=ev)
                if show_lines:
                    err_console.print(f"[dim]{ev}[/]")
                return
            done = ev.global_epoch + ev.step / ev.steps
            prog.update(
                task,
                total=ev.total_epochs,
                completed=done,
                description=f"{ev.stage} {ev.epoch}/{ev.stage_epochs}",
                status=f"loss {ev.loss:.4f}  PSNR {ev.psnr:.2f} dB",
                eta="-:--:--" if ev.eta is None else _clock(ev.eta),
            )
            if show_lines and ev.epoch_done and (ev.epoch == ev.stage_epochs or ev.epoch % 10 == 0):
                err_console.print(
                    f"[dim]{ev.stage} epoch {ev.epoch}/{ev.stage_epochs}: loss {ev.loss:.4f}, "
                    f"train PSNR {ev.psnr:.2f} dB[/]"
                )

        yield cb


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _frames_option(frames: str | None) -> tuple[int, int | None] | None:
    return parse_frame_range(frames)


def _bytes_option(text: str | None) -> int | None:
    """``2G``, ``500M``, ``1.5GB`` or plain bytes."""
    if text is None:
        return None
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise InputError(f"--max-memory must look like 2G or 500M, got {text!r}") from None
    if value < 1:
        raise InputError(f"--max-memory must be positive, got {text!r}")
    return int(value)


def _reader_options(**options: Any) -> dict[str, Any]:
    """The :func:`hinerv.io.open_video` options the user actually gave."""
    return {k: v for k, v in options.items() if v is not None}


def _report_rows(d: dict[str, Any]) -> dict[str, Any]:
    keys = [
        "model",
        "pipeline",
        "device",
        "precision",
        "params",
        "bits",
        "lambda",
        "distortion",
        "optimizer",
        "bytes",
        "bpp",
        "bitrate",
        "psnr-rgb",
        "psnr-y",
        "psnr-u",
        "psnr-v",
        "psnr-yuv",
        "ms-ssim-rgb",
        "ms-ssim-y",
        "train_seconds",
        "decode_seconds",
        "encode_seconds",
    ]
    rows = {("bitrate (kbps)" if k == "bitrate" else k): d[k] for k in keys if k in d}
    if s := d.get("schedule"):
        rows["schedule"] = (f"{s['name']} ({s['main_epochs']}+{s['prune_epochs']}+{s['qat_epochs']} epochs, "
                            f"lr {s['lr']:g})")
    return rows


@app.command()
def encode(
    input: Annotated[Path, typer.Argument(help="Source video: .yuv, .y4m, .mp4/.mkv/.avi, or a PNG folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bitstream file to write.")],
    size: Annotated[
        str,
        typer.Option(
            help="Model size on the ladder: xxs, xs, s, m, l, xl, xxl, or auto (the default): with "
            "--target-bpp, the largest size expected at or below the target; else s."
        ),
    ] = "auto",
    preset: Annotated[
        str | None, typer.Option(help="Reference preset (e.g. uvg-hinerv-s); wins over --size.")
    ] = None,
    bits: Annotated[
        int | None,
        typer.Option(help="paper pipeline: quantization bits for weights and grids (6, 7 or 8; default 6)."),
    ] = None,
    schedule: Annotated[
        str,
        typer.Option(
            help="Training schedule: auto (the default: full, 390 epochs, hours on a CPU; with "
            "--time-budget, full fitted to the budget, at fast's learning rate when at most 12,000 steps "
            "fit), full, short (a fifth), fast (short at 4x the learning rate with Adam beta2 0.99), "
            "tiny or a TOML file."
        ),
    ] = "auto",
    epochs: Annotated[int | None, typer.Option(help="Rescale the schedule to this many main epochs.")] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Fit every stage of the schedule to this wall time, with a unit (90s, 10m, 2h, 1h30m); "
            "it never runs longer than the schedule."
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Activation memory per training step (e.g. 2G, 500M; default 3G on CPU, half the free "
            "GPU memory on CUDA): larger frames train in micro-batches."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[
        str | None,
        typer.Option(
            help="Training precision: fp32, fp16 (autocast with loss scaling) or bf16 (autocast); default "
            "fp16 on CUDA, fp32 on the CPU (the only one there). Decoding is always fp32."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same machine => same bitstream.")] = 0,
    scale_mode: Annotated[str, typer.Option(help="Quantizer scales: reference or channel.")] = "reference",
    recon: Annotated[Path | None, typer.Option(help="Also write the decoded video here.")] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint folder (default OUTPUT.work, removed on success); an explicit one is kept and "
            "must be new, empty or a hinerv work folder."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a killed encode from its work folder (a new encode when there is none).",
        ),
    ] = False,
    width: Annotated[int | None, typer.Option(help="Width of a raw .yuv source.")] = None,
    height: Annotated[int | None, typer.Option(help="Height of a raw .yuv source.")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate of a raw .yuv source.")] = None,
    bit_depth: Annotated[int | None, typer.Option(help="Bit depth of a raw .yuv source.")] = None,
    frames: Annotated[
        int | None, typer.Option(help="Encode only the first N frames (at most the source's frames).")
    ] = None,
    matrix: Annotated[
        str | None, typer.Option(help="YUV<->RGB matrix of the source: bt601 (default) or bt709.")
    ] = None,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model for training (CUDA only).")
    ] = False,
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="rd (default): rate-distortion training with learned steps and entropy models "
            "(--lambda / --target-bpp); paper: the faithful HiNeRV path (prune, QAT at --bits, histogram "
            "coding; the default when --bits is given)."
        ),
    ] = None,
    lam: Annotated[
        float | None,
        typer.Option(
            "--lambda",
            help="rd: rate weight λ in D + λ·bpp (default: the size ladder, 1 for size s and halved "
            "with each size up; 1/20 of that for mse).",
        ),
    ] = None,
    target_bpp: Annotated[
        float | None, typer.Option("--target-bpp", help="rd: land the file within ±5 % of this rate.")
    ] = None,
    distortion: Annotated[
        str,
        typer.Option(
            help="rd: blend (the default: 14·MSE + 0.3·(1-MS-SSIM)), reference (the paper's "
            "0.7·L1 + 0.3·(1-MS-SSIM)) or mse."
        ),
    ] = DEFAULT_RD_DISTORTION,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help=f"rd: auto (soap-pretrain, or adam for sizes xxs and xs), adam, soap (Adam in Shampoo's "
            f"eigenbasis) or soap-pretrain (SOAP while pre-training, Adam once the rate term is on); "
            f"default {DEFAULT_RD_OPTIMIZER}."
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no table (--json still prints JSON).")
    ] = False,
) -> None:
    """Compress a video: train a HiNeRV on it and entropy-code the network (pipeline paper or rd).

    Give a wall time: --time-budget 10m fits the training to it and picks the learning rate for the
    steps that fit. Without one the schedule is full (390 epochs: hours on a CPU), as in the paper.
    """
    from hinerv.codec import EncodeOptions, encode_file

    # the CLI's own rules; the request is resolved (every option checked) before any work
    pipeline, bits = _pipeline(pipeline, bits)
    check_epochs(epochs)
    check_frame_count(frames)
    check_lambda(lam)
    check_cli_workdir(workdir)
    budget = parse_time_budget(time_budget)
    if pipeline == "paper" and (lam is not None or target_bpp is not None):
        raise ConfigError("--lambda and --target-bpp need --pipeline rd")
    if pipeline == "paper" and optimizer is not None:
        raise ConfigError("--optimizer needs --pipeline rd (the paper pipeline trains with Adam)")
    opts = EncodeOptions(
        size=size,
        preset=preset,
        schedule=schedule,
        epochs=epochs,
        time_budget=budget,
        max_memory=_bytes_option(max_memory),
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
        pipeline=pipeline,
        settings=_pipeline_settings(pipeline, bits, scale_mode, lam, target_bpp, distortion, optimizer),
    )
    plan = opts.resolve()  # every option checked before any work (λ, distortion, target, device)
    if lam is not None and target_bpp is not None:
        err_console.print(
            f"warning: --lambda {lam:g} is ignored: --target-bpp adapts λ during training "
            "(the given value is only its starting point)",
            highlight=False,
        )
    ropts = _reader_options(
        width=width, height=height, fps=fps, bit_depth=bit_depth, max_frames=frames, matrix=matrix
    )
    _check_source(input, ropts, frames)
    wd = workdir if workdir is not None else output.with_name(output.name + ".work")
    if resume and not (wd / "job.json").is_file() and not quiet:
        err_console.print(f"note: nothing to resume in {wd}: starting a new encode", highlight=False)
    _prepare_fused_kernels(plan.policy, quiet)
    with _encode_progress(quiet) as cb:  # progress is on stderr, so --json keeps it
        report = encode_file(
            input,
            output,
            plan,
            workdir=workdir,
            resume=resume,
            recon=recon,
            progress=cb,
            reader_options=ropts,
        )
    d = {**report.as_dict(), "device": str(plan.policy.device), "precision": plan.policy.precision}
    for w in report.warnings:
        err_console.print(f"warning: {w}", highlight=False, soft_wrap=True)
    if workdir is not None and not quiet:
        err_console.print(
            f"note: kept the work folder {workdir} (checkpoints and the reconstruction); remove it when done",
            highlight=False,
            soft_wrap=True,
        )
    if json:
        print_json(d)
    elif not quiet:
        print_table(f"hinerv encode → {output}", _report_rows(d))


@app.command()
def decode(
    input: Annotated[Path, typer.Argument(help="hinerv bitstream.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output: .yuv, .y4m, .mp4 or a folder/ of PNGs.")
    ],
    frames: Annotated[
        str | None, typer.Option(help="Decode only frames A:B (first:end, 0-based; A: or :B also).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the decoder (CUDA only; the one-time compile pays off on long videos).",
        ),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no table (--json still prints JSON).")
    ] = False,
) -> None:
    """Reconstruct a video (or a frame range of it) from a bitstream."""
    from hinerv.codec import decode_file

    span = _frames_option(frames)
    check_device(device)
    _decoder_allocator_for(input)
    _prepare_fused_kernels(device, quiet)
    with _progress(quiet) as prog:
        task = prog.add_task("decode", total=None, status="")

        def cb(i: int, n: int) -> None:
            prog.update(task, total=n, completed=i)

        rep = decode_file(input, output, frames=span, device=device, progress=cb, compile=compile)
    d = {
        "output": str(output),
        "frames": rep.frames,
        "width": rep.info.width,
        "height": rep.info.height,
        "bit_depth": rep.info.bit_depth,
        "seconds": rep.seconds,
        "fps": rep.fps,
    }
    if json:
        print_json({**d, "timings": rep.timings})
    elif not quiet:
        print_table(f"hinerv decode → {output}", d)


@app.command()
def info(
    input: Annotated[Path, typer.Argument(help="hinerv bitstream.")],
    json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a bitstream's header, model config and bytes per section (without decoding)."""
    from hinerv.codec import inspect_file

    d = inspect_file(input)
    if json:
        print_json(d)
        return
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                flat[f"{k}.{kk}"] = vv
        else:
            flat[k] = v
    print_table(f"hinerv info {input}", flat)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample, bitstream and decoded video.")] = Path(
        "hinerv-demo"
    ),
    size: Annotated[str, typer.Option(help="Model size on the ladder.")] = "s",
    bits: Annotated[
        int | None, typer.Option(help="Quantization bits (paper pipeline; selects it; default 6).")
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="rd (default) or paper (see hinerv encode --help).")
    ] = None,
    lam: Annotated[
        float | None, typer.Option("--lambda", help="rd pipeline: rate weight λ (default: the ladder's).")
    ] = None,
    schedule: Annotated[str, typer.Option(help="Training schedule (full, short, fast, tiny).")] = "short",
    frames: Annotated[int, typer.Option(help="Frames of the built-in clip.")] = 32,
    width: Annotated[int, typer.Option(help="Width of the built-in clip.")] = 256,
    height: Annotated[int, typer.Option(help="Height of the built-in clip.")] = 144,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    x265: Annotated[
        str, typer.Option(help="Also code the clip with x265 veryslow at these QPs for comparison ('' = no).")
    ] = "27,32,37,42",
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Make a built-in sample clip, encode it, decode it and print the rate-distortion figures."""
    from hinerv.codec import EncodeOptions, decode_file, encode_file
    from hinerv.runtime import keep_freed_memory_for
    from hinerv.sample import write_sample

    pipeline, bits = _pipeline(pipeline, bits)
    check_writable_dir(out.parent)  # the one rule: the folder is made, its parent must exist
    out.mkdir(exist_ok=True)
    src = out / "sample.y4m"
    write_sample(src, width=width, height=height, frames=frames)
    keep_freed_memory_for(width, height)
    if not (quiet or json):
        err_console.print(f"sample clip: {src} ({width}x{height}, {frames} frames)")
    settings = _pipeline_settings(pipeline, bits, "reference", lam, None, DEFAULT_RD_DISTORTION)
    opts = EncodeOptions(size=size, schedule=schedule, device=device, pipeline=pipeline, settings=settings)
    _prepare_fused_kernels(device, quiet or json)
    with _encode_progress(quiet) as cb:
        report = encode_file(src, out / "sample.bin", opts, progress=cb)
    dec = decode_file(out / "sample.bin", out / "decoded.y4m", device=device)
    decode_file(out / "sample.bin", out / "decoded.mp4", device=device)
    d = report.as_dict()
    d["decode_fps"] = dec.fps
    rows = [_rd_row(f"hinerv {pipeline} {size}", d)]
    if x265:
        rows += _x265_rows(src, report.info, out / "x265", [int(q) for q in x265.split(",")])
    if json:
        print_json({"hinerv": d, "x265": rows[1:]})
    else:
        print_table(f"hinerv demo ({out})", {**_report_rows(d), "decode fps": dec.fps})
        print_table("rate-distortion on the sample clip (decoded 8-bit video)", rows)
        err_console.print(f"wrote {out / 'sample.bin'}, {out / 'decoded.y4m'} and {out / 'decoded.mp4'}")


def _rd_row(codec: str, d: dict[str, Any]) -> dict[str, Any]:
    return {
        "codec": codec,
        "bytes": d["bytes"],
        "bpp": d["bpp"],
        "PSNR-RGB": d["psnr-rgb"],
        "PSNR-YUV": d["psnr-yuv"],
        "MS-SSIM": d["ms-ssim-rgb"],
    }


def _x265_rows(src: Path, info: Any, workdir: Path, qps: list[int]) -> list[dict[str, Any]]:
    """x265 veryslow (random access) on the same clip, measured with the same metrics."""
    from hinerv.bench.codecs import X265Codec
    from hinerv.bench.sources import Source

    codec = X265Codec(preset="veryslow", qps=tuple(qps))
    source = Source(src.stem, src, info, {}, src)
    rows = []
    for point in codec.points():
        r = codec.run_point(source, point, workdir / point.label)
        rows.append(_rd_row(f"x265 veryslow qp{point.params['qp']}", r))
    return rows
