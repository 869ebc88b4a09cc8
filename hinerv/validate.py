"""Up-front checks of a user's request: everything that can be wrong is refused before any work.

Every function here is cheap (names, ``os.stat``, a TOML read) and raises
:class:`~hinerv.errors.InputError` or :class:`~hinerv.errors.ConfigError` with a one-line message,
which the CLI turns into exit code 2. Nothing is opened for writing, created or deleted.

The codec calls :func:`check_encode_request` / :func:`check_decode_request` first thing, so a
mistake (``--bits 99``, ``--recon out.bin``, ``-o`` equal to the source) costs no training and leaves
no file or folder behind; the CLI adds the stricter rules of its own options (``--bits`` 6..8).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hinerv.errors import ConfigError, InputError
from hinerv.ratecontrol import MAX_TARGET_BPP

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

if TYPE_CHECKING:
    from hinerv.options import EncodeOptions, EncodePlan
    from hinerv.train import Schedule

__all__ = [
    "CLI_BITS",
    "LIBRARY_BITS",
    "OutputKind",
    "check_bits",
    "check_cli_workdir",
    "check_decode_request",
    "check_device",
    "check_distinct_outputs",
    "check_encode_request",
    "check_epochs",
    "check_frame_count",
    "check_frames_within",
    "check_lambda",
    "check_model",
    "check_not_inside",
    "check_not_same_file",
    "check_output_path",
    "check_schedule",
    "check_target_bpp",
    "check_writable_dir",
    "parse_frame_range",
    "parse_time_budget",
    "same_file",
]

#: ``--bits`` the paper pipeline of the CLI accepts (what its help promises).
CLI_BITS: tuple[int, ...] = (6, 7, 8)
#: what :mod:`hinerv.quant` and the bitstream support.
LIBRARY_BITS: tuple[int, ...] = tuple(range(2, 17))

#: what an output path will hold: a hinerv bitstream, a video, a JSON file or an image.
OutputKind = Literal["bitstream", "video", "json", "image"]

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------- files
def _stat(p: PathLike) -> os.stat_result | None:
    try:
        return os.stat(p)  # follows symlinks: a link to the input is the input
    except (OSError, ValueError):
        return None


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` both exist and are the same file or folder (``os.stat`` identity:
    device and inode, so symlinks, hard links and ``./x`` against ``x`` all count)."""
    sa, sb = _stat(a), _stat(b)
    return sa is not None and sb is not None and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_not_same_file(inputs: Iterable[PathLike | None], outputs: Iterable[PathLike | None]) -> None:
    """Refuse any output that is the same file as an input.

    Raises:
        InputError: ``refusing to write OUT: it is the input IN``.
    """
    ins = [Path(i) for i in inputs if i is not None]
    for o in outputs:
        if o is None:
            continue
        for i in ins:
            if same_file(i, o):
                what = "the same file as" if str(Path(o)) != str(i) else "also"
                raise InputError(f"refusing to write {o}: it is {what} the input {i}")


def check_not_inside(inputs: Iterable[PathLike | None], folder: PathLike) -> None:
    """Refuse a scratch ``folder`` that will be deleted when it holds (or is) one of the inputs.

    Raises:
        InputError: an input lies in ``folder``.
    """
    if _stat(folder) is None:
        return
    root = Path(folder).resolve()
    for i in inputs:
        if i is None or _stat(i) is None:
            continue
        p = Path(i).resolve()
        if p == root or root in p.parents:
            raise InputError(f"refusing to use {folder} as a work folder: it holds the input {i}")


def check_distinct_outputs(outputs: Iterable[PathLike | None]) -> None:
    """Refuse two outputs that name the same file (one would overwrite the other).

    Raises:
        InputError: two outputs resolve to the same path or are the same existing file.
    """
    seen: list[Path] = []
    for o in outputs:
        if o is None:
            continue
        p = Path(o)
        for q in seen:
            if p.resolve() == q.resolve() or same_file(p, q):
                raise InputError(f"two outputs name the same file: {q} and {p}")
        seen.append(p)


def _nearest_existing(folder: Path) -> Path:
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(folder: PathLike, *, create: bool = False) -> None:
    """The folder an output goes into must be a writable folder.

    Args:
        folder: the output's parent folder.
        create: the writer creates missing folders itself; then the nearest existing ancestor
            must be a writable folder.

    Raises:
        InputError: missing (with ``create=False``), not a folder, or not writable.
    """
    f = Path(folder) if str(folder) else Path(".")
    target = _nearest_existing(f) if create else f
    if not target.exists():
        raise InputError(f"output folder {f} does not exist (create it first)")
    if not target.is_dir():
        raise InputError(f"cannot write into {target}: it is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise InputError(f"cannot write into {target}: permission denied")


def check_output_path(path: PathLike, kind: OutputKind, *, create_parent: bool = False) -> None:
    """Check an output path's name and folder before any work.

    * ``bitstream``: any name but a video's (``.yuv``, ``.y4m``, ``.mp4``, ...) or a folder;
    * ``video``: a name :func:`hinerv.io.open_writer` writes (``.yuv``, ``.y4m``, ``.mp4``, ``.mkv``
      or a folder of PNGs);
    * ``json``: ``.json``; ``image``: a format matplotlib saves (``.png``, ``.pdf``, ``.svg``, ...).

    The parent folder must exist (or, with ``create_parent``, its nearest existing ancestor) and be
    writable; a file output must not be an existing folder.

    Raises:
        InputError: a wrong extension, an existing folder where a file goes, an unwritable folder.
    """
    from hinerv.io import VIDEO_EXTENSIONS, writer_format

    p = Path(path)
    s = os.fspath(path)
    ext = p.suffix.lower()
    if kind == "video":
        if writer_format(p) == "png" and p.exists() and not p.is_dir():
            raise InputError(f"{p} exists and is not a folder (a PNG output needs a folder or an extension)")
    else:
        if s.endswith(("/", os.sep)) or p.is_dir():
            raise InputError(f"{p} is a folder; give a file name")
        if kind == "bitstream" and ext in VIDEO_EXTENSIONS:
            raise InputError(
                f"{p} has a video extension ({ext}) but receives a hinerv bitstream; use e.g. .bin or .hnerv"
            )
        if kind == "json" and ext != ".json":
            raise InputError(f"{p}: a result file must end in .json, got {ext or '(none)'!r}")
        if kind == "image":
            fmts = _image_formats()
            if ext.lstrip(".") not in fmts:
                raise InputError(
                    f"unknown image extension {ext or '(none)'!r} of {p}; use one of "
                    f"{', '.join('.' + f for f in sorted(fmts))}"
                )
    check_writable_dir(p.parent, create=create_parent)


def _image_formats() -> set[str]:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'hinerv[plot]'") from None
    return set(FigureCanvasBase.get_supported_filetypes())


# --------------------------------------------------------------------------------------------- options
def check_bits(bits: int, allowed: Sequence[int] = LIBRARY_BITS, *, option: str = "--bits") -> int:
    """``bits`` must be one of ``allowed`` (default 2..16; the CLI passes :data:`CLI_BITS`).

    Raises:
        ConfigError: otherwise.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in allowed:
        choices = list(allowed)
        if choices == list(range(choices[0], choices[-1] + 1)) and len(choices) > 3:
            want = f"{choices[0]}..{choices[-1]}"
        elif len(choices) > 1:
            want = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}"
        else:
            want = str(choices[0])
        raise ConfigError(f"{option} must be {want}, got {bits}")
    return bits


def check_epochs(epochs: int | None, *, option: str = "--epochs") -> int | None:
    """``None`` (the schedule's own length) or at least 1; 0 is not "unset".

    Raises:
        ConfigError: ``epochs < 1``.
    """
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"{option} must be at least 1, got {epochs}")
    return epochs


def check_frame_count(frames: int | None, *, option: str = "--frames") -> int | None:
    """``None`` or a positive frame count.

    Raises:
        InputError: ``frames < 1``.
    """
    if frames is not None and frames < 1:
        raise InputError(f"{option} must be at least 1, got {frames}")
    return frames


def check_target_bpp(target_bpp: float | None, *, option: str = "--target-bpp") -> float | None:
    """``None`` or a finite rate in ``(0, MAX_TARGET_BPP]`` bits per pixel (24: raw 8-bit RGB).

    Targets inside the range that the trained model still cannot reach are reported after training
    (:func:`hinerv.ratecontrol.land_on_target`); these are the ones no model can reach.

    Raises:
        ConfigError: non-finite, ``<= 0`` or above :data:`~hinerv.ratecontrol.MAX_TARGET_BPP`.
    """
    if target_bpp is None:
        return None
    if (
        isinstance(target_bpp, bool)
        or not isinstance(target_bpp, int | float)
        or not math.isfinite(target_bpp)
    ):
        raise ConfigError(f"{option} must be a finite number of bits per pixel, got {target_bpp}")
    if not 0 < target_bpp <= MAX_TARGET_BPP:
        raise ConfigError(
            f"{option} must be in (0, {MAX_TARGET_BPP:g}] bits per pixel "
            f"({MAX_TARGET_BPP:g} is raw 8-bit RGB), got {target_bpp:g}"
        )
    return float(target_bpp)


def parse_frame_range(text: str | None, *, option: str = "--frames") -> tuple[int, int | None] | None:
    """Parse ``A:B`` (first, end; 0-based, end exclusive), ``A:`` (to the end) or ``:B``.

    Returns:
        ``None`` for no range, else ``(first, end)`` with ``end`` None for "to the end".

    Raises:
        InputError: anything else, a negative first frame or an empty range.
    """
    if text is None:
        return None
    parts = text.strip().split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a = int(parts[0]) if parts[0].strip() else 0
        b = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise InputError(f"{option} must look like A:B, A: or :B (first:end), got {text!r}") from None
    if a < 0 or (b is not None and b <= a):
        raise InputError(f"{option} {text} is an empty or negative range (need 0 <= first < end)")
    return a, b


def check_schedule(schedule: str, epochs: int | None = None) -> Schedule:
    """Load the schedule (name or TOML file) and apply ``epochs``; every problem is a one-liner.

    Raises:
        ConfigError: unknown name, unreadable or malformed TOML, bad keys or values, ``epochs < 1``.
    """
    from hinerv.train import load_schedule

    check_epochs(epochs)
    try:
        s = load_schedule(schedule)
        return s.with_main_epochs(epochs) if epochs is not None else s
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, TypeError, ValueError) as e:
        raise ConfigError(f"schedule {schedule!r} is not valid: {e}") from None


def check_model(size: str | None, preset: str | None) -> None:
    """A known ladder size or ``auto``, or a loadable preset (which wins).

    Raises:
        ConfigError: neither given, an unknown size or preset.
    """
    from hinerv.model import AUTO_SIZE, SIZES, load_preset

    if preset:
        try:
            load_preset(preset)
        except ConfigError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"unknown or invalid preset {preset!r}: {e}") from None
        return
    if not size:
        raise ConfigError("give a --size or a --preset")
    if size not in (*SIZES, AUTO_SIZE):
        raise ConfigError(f"unknown model size {size!r}; choices: {', '.join((*SIZES, AUTO_SIZE))}")


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` that this machine has (imports torch).

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where there is none.
    """
    from hinerv.device import resolve_device

    resolve_device(device)


def check_lambda(lam: float | None, *, option: str = "--lambda") -> float | None:
    """``None`` (the size ladder's λ) or a finite λ >= 0 (``inf`` would train and then fail to code).

    Raises:
        ConfigError: negative, NaN or infinite.
    """
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise ConfigError(f"{option} must be a finite number >= 0, got {lam}")
    return lam


def check_optimizer(name: str) -> str:
    """An optimizer request: ``auto`` or a plan (:data:`hinerv.optim.OPTIMIZER_CHOICES`).

    Raises:
        ConfigError: any other name.
    """
    from hinerv.optim import OPTIMIZER_CHOICES

    if name not in OPTIMIZER_CHOICES:
        raise ConfigError(f"unknown optimizer {name!r} ({', '.join(OPTIMIZER_CHOICES)})")
    return name


def parse_time_budget(text: str | None, *, option: str = "--time-budget") -> float | None:
    """Seconds in a ``--time-budget`` such as ``90s``, ``10m``, ``2h`` or ``1h30m``; None for None.

    A bare number is refused: ``10`` could mean seconds, minutes or hours, and a wrong guess either
    wastes hours or gives a useless model.

    Raises:
        ConfigError: a bare number, an unreadable or non-positive duration.
    """
    if text is None:
        return None
    from hinerv.budget import parse_duration

    t = text.strip()
    try:
        float(t)
    except ValueError:
        pass
    else:
        raise ConfigError(f"{option} {text} has no unit: add one, e.g. {t}s, {t}m or {t}h")
    return parse_duration(t)


def check_frames_within(frames: int | None, available: int, *, option: str = "--frames") -> None:
    """``--frames N`` (the first N frames) must not ask for more frames than the source has (the same
    rule as ``decode --frames A:B``, which refuses a range outside the video).

    Raises:
        InputError: ``frames > available``.
    """
    if frames is not None and frames > available:
        raise InputError(f"{option} {frames} is more than the source's {available} frames")


def check_cli_workdir(workdir: PathLike | None) -> None:
    """An explicit ``--workdir`` must be new, empty, or a hinerv work folder (one holding ``job.json``).

    The encoder keeps an explicit work folder and writes checkpoints and a reconstruction into it;
    pointed at a folder with other files (``--workdir .``) it would mix them with the user's files.

    Raises:
        InputError: an existing file, or a folder with files that is not a work folder.
    """
    if workdir is None:
        return
    wd = Path(workdir)
    if not wd.exists():
        return
    if not wd.is_dir():
        raise InputError(f"work folder {wd} exists and is not a folder")
    if (wd / "job.json").is_file() or not any(wd.iterdir()):
        return
    raise InputError(
        f"work folder {wd} holds other files and is not a hinerv work folder (no job.json); "
        "give a new or empty folder"
    )


# --------------------------------------------------------------------------------------------- requests
def _workdir_files(wd: Path, plan: EncodePlan) -> list[Path]:
    # what encode_video / encode_file write or delete inside the work folder
    ckpts = plan.pipeline.checkpoints(wd, plan.settings).files()
    return [wd / "job.json", *ckpts, wd / "recon.y4m", wd / "recon_png"]


def check_encode_request(
    src: PathLike,
    dst: PathLike,
    opts: EncodeOptions | EncodePlan,
    *,
    recon: PathLike | None = None,
    workdir: PathLike | None = None,
    default_workdir: PathLike | None = None,
) -> EncodePlan:
    """Everything :func:`hinerv.codec.encode_file` can check before reading a frame.

    The options (:meth:`hinerv.options.EncodeOptions.resolve`: size / preset, schedule and epochs,
    pipeline settings, device), the names and folders of the bitstream, ``recon`` and work folder, and
    that no output (the work folder's files included) is an input.

    Args:
        src: the source video.
        dst: the bitstream to write.
        opts: the encode options, or a plan already resolved from them.
        recon: optional decoded-video output.
        workdir: an explicit work folder (kept), or None.
        default_workdir: the work folder used when ``workdir`` is None (deleted after success).

    Returns:
        The resolved plan.

    Raises:
        InputError, ConfigError: the first problem found.
    """
    if not Path(src).exists():
        raise InputError(f"no such file or folder: {src}")
    plan = opts.resolve() if hasattr(opts, "resolve") else opts
    wd = Path(workdir) if workdir is not None else (Path(default_workdir) if default_workdir else None)
    check_not_same_file([src], [dst, recon] + ([wd, *_workdir_files(wd, plan)] if wd is not None else []))
    check_output_path(dst, "bitstream")  # like every output: a missing folder is refused, not made
    if recon is not None:
        check_output_path(recon, "video")
    if wd is not None:
        if wd.exists() and not wd.is_dir():
            raise InputError(f"work folder {wd} exists and is not a folder")
        check_writable_dir(wd if wd.exists() else wd.parent)
        if workdir is None:
            check_not_inside([src], wd)
    check_distinct_outputs([dst, recon, wd])
    return plan


def check_decode_request(src: PathLike, dst: PathLike, frames: tuple[int, int | None] | None = None) -> None:
    """Everything :func:`hinerv.codec.decode_file` can check before reading the bitstream: the
    output's name and folder, that it is not the input, and the frame range's form.

    Raises:
        InputError: the first problem found.
    """
    if not Path(src).is_file():
        raise InputError(f"{src}: no such bitstream file")
    check_not_same_file([src], [dst])
    check_output_path(dst, "video")
    if frames is not None:
        a, b = frames
        if a < 0 or (b is not None and b <= a):
            raise InputError(f"--frames {a}:{'' if b is None else b} is an empty or negative range")
