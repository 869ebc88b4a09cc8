"""Codecs a benchmark sweep can run: HiNeRV (ours), x265 (PyAV's bundled libx265) and HM / VTM
(a user-supplied reference encoder binary).

Every codec lists its rate points and runs one point on one :class:`~hinerv.bench.sources.Source`:
encode, decode, measure the decoded integer frames with :func:`hinerv.metrics.compare_videos`, and
count the rate from the size of the bitstream file (HiNeRV: :func:`hinerv.codec.encode_file`
decodes and measures its own bitstream, so the point takes those numbers from its report).
:meth:`Codec.run_point` returns a flat dict of the keys in :data:`hinerv.bench.results.RESULT_KEYS`
plus ``q`` (point label) and codec extras.
"""

from __future__ import annotations

import abc
import contextlib
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from hinerv.bench.sources import Source
from hinerv.errors import ConfigError, InputError
from hinerv.io.hevc import decode_hevc, encode_hevc, x265_info
from hinerv.pipelines import DEFAULT_PIPELINE, DEFAULT_RD_DISTORTION, DEFAULT_RD_OPTIMIZER

__all__ = [
    "RatePoint",
    "Codec",
    "X265Codec",
    "HiNeRVCodec",
    "HMCodec",
    "x265_info",
    "DEFAULT_X265_QPS",
    "DEFAULT_HM_QPS",
    "PointProgress",
]

#: x265 QP ladder used by NVRC (App. A.3): 16..44 step 4.
DEFAULT_X265_QPS: tuple[int, ...] = (16, 20, 24, 28, 32, 36, 40, 44)
#: HM / VTM QP ladder used by NVRC: 16..36 step 4.
DEFAULT_HM_QPS: tuple[int, ...] = (16, 20, 24, 28, 32, 36)

#: ``progress(stage, done, total)`` for the point in progress (stage: "encode", "decode", "measure").
PointProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RatePoint:
    """One point of a codec's rate ladder.

    Attributes:
        label: stable id used in file names and the ``q`` key (``qp32``, ``s-q6``).
        params: codec-specific settings of this point (``{"qp": 32}``, ``{"size": "s", "bits": 6}``).
        group: points of one group share state (HiNeRV: one trained model per size serves every
            bit depth) and are run one after another; points of different groups run in parallel.
    """

    label: str
    params: dict[str, Any]
    group: str = ""


class Codec(abc.ABC):
    """A codec under test. Subclasses are plain picklable objects (they travel to worker processes)."""

    #: short run name, e.g. ``x265-veryslow-ra``; names the result files.
    name: str = "codec"
    #: whether a point benefits from a GPU (the sweep assigns ``cuda:i`` to such jobs).
    uses_gpu: bool = False

    @abc.abstractmethod
    def description(self) -> str:
        """Human-readable settings: tool and version, every option that changes the output."""

    @abc.abstractmethod
    def points(self) -> list[RatePoint]:
        """The rate ladder, lowest rate first where known."""

    @abc.abstractmethod
    def run_point(
        self,
        source: Source,
        point: RatePoint,
        workdir: Path,
        *,
        device: str | None = None,
        progress: PointProgress | None = None,
    ) -> dict[str, Any]:
        """Encode, decode and measure ``point`` on ``source``; ``workdir`` is private scratch space
        that may be deleted afterwards. Bitstreams worth keeping go to ``workdir / "keep"``."""

    def available(self) -> str | None:
        """None when the codec can run here, else a one-line reason to skip it."""
        return None


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _measure(
    source: Source,
    decoded: Path,
    progress: PointProgress | None,
    decoded_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from hinerv.io import open_video
    from hinerv.metrics import compare_videos

    ref = source.open()
    dist = open_video(decoded, **(decoded_options or {}))
    try:
        cb = (lambda d, t: progress("measure", d, t)) if progress else None
        return dict(compare_videos(ref, dist, progress=cb).as_dict())
    finally:
        for r in (ref, dist):
            close = getattr(r, "close", None)
            if close is not None:
                close()


def _rate(num_bytes: int, source: Source) -> dict[str, Any]:
    from hinerv.metrics import rate

    i = source.info
    return dict(rate(num_bytes, frames=i.frames, width=i.width, height=i.height, fps=i.fps))


# --------------------------------------------------------------------------------------------
# x265
# --------------------------------------------------------------------------------------------

#: GOP configurations: ``ra`` = x265 defaults (random-access-like: open GOP, adaptive B-frames up
#: to the preset's bframes, keyint 250, scene cuts); ``ld`` = low delay (no B-frames, one I frame,
#: no scene-cut I frames).
X265_CONFIGS: dict[str, str] = {"ra": "", "ld": "bframes=0:keyint=-1:scenecut=0"}


@dataclass
class X265Codec(Codec):
    """HEVC through PyAV's bundled libx265 at constant QP (``x265-params qp=N``).

    The stream is written as raw Annex-B ``.hevc`` (no container bytes are counted), decoded again
    with PyAV (libavcodec's HEVC decoder) and measured with our own metrics. x265 applies its
    default I/B QP offsets (ipratio 1.4, pbratio 1.3) around the P-frame QP.

    Attributes:
        preset: x265 preset (``veryslow`` default, ``medium``, ...).
        config: ``ra`` or ``ld`` (see :data:`X265_CONFIGS`).
        qps: QP ladder.
        intra_period: keyint override (None: the configuration's default).
        x265_params: extra ``key=value:...`` options appended last (they win).
        threads: encoder frame threads (0: x265's default).
    """

    preset: str = "veryslow"
    config: str = "ra"
    qps: tuple[int, ...] = DEFAULT_X265_QPS
    intra_period: int | None = None
    x265_params: str = ""
    threads: int = 0
    run_name: str | None = None
    uses_gpu: bool = False

    def __post_init__(self) -> None:
        if self.config not in X265_CONFIGS:
            raise ConfigError(f"unknown x265 configuration {self.config!r} (ra or ld)")
        if not self.qps:
            raise ConfigError("the x265 QP ladder is empty")
        if any(not 0 <= q <= 51 for q in self.qps):
            raise ConfigError(f"x265 QPs must be in 0..51, got {list(self.qps)}")
        self.qps = tuple(sorted({int(q) for q in self.qps}, reverse=True))
        self.name = self.run_name or f"x265-{self.preset}-{self.config}"

    def params_string(self, qp: int | None = None) -> str:
        """The ``x265-params`` value for a point (without QP when ``qp`` is None)."""
        # The info SEI (about 2 KB of option text, not needed to decode) is left out of the rate.
        parts = ["info=0", X265_CONFIGS[self.config]]
        if self.intra_period is not None:
            parts.append(f"keyint={self.intra_period}")
        if self.threads:
            parts.append(f"frame-threads={self.threads}")
        parts.append(self.x265_params)
        if qp is not None:
            parts.append(f"qp={qp}")
        return ":".join(p for p in parts if p)

    def description(self) -> str:
        version, opts = x265_info(self.preset, self.params_string(32).replace("info=0", ""))
        return (
            f"x265 {version} via PyAV libx265, preset {self.preset}, {self.config.upper()} "
            f"configuration, constant QP ladder {list(self.qps)} (x265-params "
            f"'{self.params_string()}:qp=N'; info=0 drops x265's option-text SEI); rate from raw "
            "Annex-B .hevc bytes; decoded with "
            f"libavcodec and measured on decoded integer frames. Full x265 options at qp=32: {opts}"
        )

    def points(self) -> list[RatePoint]:
        return [RatePoint(f"qp{q:02d}", {"qp": q}, group=f"qp{q:02d}") for q in self.qps]

    def run_point(
        self,
        source: Source,
        point: RatePoint,
        workdir: Path,
        *,
        device: str | None = None,
        progress: PointProgress | None = None,
    ) -> dict[str, Any]:
        qp = int(point.params["qp"])
        workdir.mkdir(parents=True, exist_ok=True)
        keep = workdir / "keep"
        keep.mkdir(exist_ok=True)
        stream_path = keep / f"{point.label}.hevc"
        with source.open() as reader:
            enc_s = encode_hevc(
                reader,
                stream_path,
                preset=self.preset,
                x265_params=":".join([self.params_string(qp), "log-level=error"]),
                progress=(lambda d, t: progress("encode", d, t)) if progress else None,
            )
        nbytes = stream_path.stat().st_size
        decoded = workdir / f"{point.label}.dec.y4m"
        dec_s = decode_hevc(
            stream_path,
            decoded,
            replace(source.info, chroma="420"),
            progress=(lambda d, t: progress("decode", d, t)) if progress else None,
        )
        res: dict[str, Any] = {"q": point.label, "qp": qp}
        res.update(_rate(nbytes, source))
        res.update(_measure(source, decoded, progress))
        res["encoding_time"] = enc_s
        res["decoding_time"] = dec_s
        with contextlib.suppress(OSError):
            decoded.unlink()
        res["bitstream"] = str(stream_path.name)
        return res


# --------------------------------------------------------------------------------------------
# HiNeRV (ours)
# --------------------------------------------------------------------------------------------


@dataclass
class HiNeRVCodec(Codec):
    """Our codec through :func:`hinerv.codec.encode_file`, whose report gives the metrics of the
    decoded integer frames and the decode time (the bitstream is decoded once, by the encode).

    A rate point is (model size, quantization bits). Points of one size share a work folder so the
    trained and pruned model is reused across bit depths (they form one sequential group).

    Attributes:
        sizes: model sizes of the ladder (``xxs`` .. ``xxl``), low rate first.
        bits: quantization bit depths.
        schedule: ``auto`` (``hinerv encode``'s default) / ``full`` / ``short`` / ``fast`` / ``tiny`` / TOML
            path; epochs: main-stage epoch override.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (the sweep may assign ``cuda:i``).
        seed: training seed.
        pipeline: ``rd`` (the default of every entry point; points: size x λ, or size x target bpp) or
            ``paper`` (points: size x bits).
        lambdas: rd pipeline: λ values (one point each per size); empty: each size's ladder λ
            (:func:`hinerv.pipelines.rd.default_lambda`).
        target_bpps: rd pipeline: target rates (one point each; wins over ``lambdas``).
        distortion: rd pipeline: ``reference``, ``mse`` or ``blend``.
        optimizer: rd pipeline: ``auto`` (the plan for each size,
            :func:`hinerv.pipelines.rd.default_optimizer`), ``adam``, ``soap`` or ``soap-pretrain``; other
            than ``adam``, part of the run name.
        time_budget: seconds per encode (one rate point); the schedule is fitted to it on the machine.
        precision: training precision (``fp32``, ``fp16``, ``bf16``); None: the device's default (fp16
            on CUDA, fp32 on the CPU). When given, it is part of the run name.
    """

    sizes: tuple[str, ...] = ("s", "m", "l")
    bits: tuple[int, ...] = (6,)
    pipeline: str = DEFAULT_PIPELINE
    lambdas: tuple[float, ...] = ()
    target_bpps: tuple[float, ...] = ()
    distortion: str = DEFAULT_RD_DISTORTION
    optimizer: str = DEFAULT_RD_OPTIMIZER
    schedule: str = "auto"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    run_name: str | None = None
    uses_gpu: bool = True
    time_budget: float | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        if not self.sizes or not self.bits:
            raise ConfigError("the HiNeRV ladder needs at least one size and one bit depth")
        if self.pipeline not in ("paper", "rd"):
            raise ConfigError(f"unknown pipeline {self.pipeline!r} (paper or rd)")
        # refuse a wrong ladder now, not on a worker after the sources are prepared
        from hinerv.train import AUTO_SCHEDULE
        from hinerv.validate import check_bits, check_model, check_optimizer, check_schedule

        for size in self.sizes:
            check_model(size, None)
        for b in self.bits:
            check_bits(b)
        check_schedule(self.schedule, self.epochs)
        if self.precision is not None:
            from hinerv.device import DevicePolicy, check_precision

            check_precision(self.precision)
            if self.device == "cpu":  # other devices are resolved where the points run
                DevicePolicy.resolve("cpu", self.precision)
        ep = f"-e{self.epochs}" if self.epochs else ""
        if self.time_budget:
            ep += f"-t{self.time_budget:g}s"
        sched = Path(self.schedule).stem if self.schedule.endswith(".toml") else self.schedule
        if sched == AUTO_SCHEDULE and not self.time_budget:
            sched = "full"  # the same encodes as full, so the same run (and its finished points)
        pl = "-rd" if self.pipeline == "rd" else ""
        pr = f"-{self.precision}" if self.precision else ""
        ds = f"-{self.distortion}" if self.pipeline == "rd" and self.distortion != "reference" else ""
        if self.pipeline == "rd":
            check_optimizer(self.optimizer)
            ds += f"-{self.optimizer}" if self.optimizer != "adam" else ""
        self.name = self.run_name or f"hinerv{pl}{ds}-{sched}{ep}{pr}"

    def description(self) -> str:
        from hinerv import __version__

        return (
            f"hinerv {__version__} (HiNeRV, NeurIPS 2023), schedule {self.schedule}"
            f"{f' ({self.epochs} main epochs)' if self.epochs else ''}"
            f"{f' fitted to {self.time_budget:g} s per encode' if self.time_budget else ''}, "
            f"sizes {list(self.sizes)}, "
            + (
                f"pipeline rd ({self.distortion}, {self.optimizer}), "
                + (
                    f"target bpp {list(self.target_bpps)}"
                    if self.target_bpps
                    else f"lambda {list(self.lambdas)}"
                    if self.lambdas
                    else "lambda per size (ladder)"
                )
                if self.pipeline == "rd"
                else f"pipeline paper, quantization bits {list(self.bits)}"
            )
            + (f", training precision {self.precision}" if self.precision else "")
            + f", seed {self.seed}; rate from the bitstream file "
            "(everything a decoder needs); encoding_time includes the per-video training"
        )

    def points(self) -> list[RatePoint]:
        if self.pipeline == "rd":
            if self.target_bpps:
                return [
                    RatePoint(f"{s}-t{b:g}", {"size": s, "target_bpp": float(b)}, group=f"{s}-t{b:g}")
                    for s in self.sizes
                    for b in self.target_bpps
                ]
            from hinerv.pipelines.rd import default_lambda

            return [
                RatePoint(f"{s}-l{lam:g}", {"size": s, "lam": float(lam)}, group=f"{s}-l{lam:g}")
                for s in self.sizes
                for lam in (self.lambdas or (default_lambda(s, self.distortion),))
            ]
        return [
            RatePoint(f"{s}-q{b}", {"size": s, "bits": b}, group=s) for s in self.sizes for b in self.bits
        ]

    def encode_options(self, point: RatePoint, device: str) -> Any:
        """The :class:`hinerv.codec.EncodeOptions` of ``point`` on ``device``."""
        from hinerv.codec import EncodeOptions
        from hinerv.pipelines.paper import PaperOptions
        from hinerv.pipelines.rd import RDOptions

        if self.pipeline == "rd":
            settings: Any = RDOptions(
                lam=float(point.params["lam"]) if "lam" in point.params else None,
                target_bpp=point.params.get("target_bpp"),
                distortion=self.distortion,
                optimizer=self.optimizer,
            )
        else:
            settings = PaperOptions(bits=int(point.params.get("bits", 6)))
        return EncodeOptions(
            size=str(point.params["size"]),
            schedule=self.schedule,
            epochs=self.epochs,
            device=device,
            seed=self.seed,
            pipeline=self.pipeline,
            settings=settings,
            time_budget=self.time_budget,
            precision=self.precision,
        )

    def run_point(
        self,
        source: Source,
        point: RatePoint,
        workdir: Path,
        *,
        device: str | None = None,
        progress: PointProgress | None = None,
    ) -> dict[str, Any]:
        """Encode ``point`` with :func:`hinerv.codec.encode_file`. Its report already holds the
        metrics of the decoded integer frames and the decode time, so nothing is decoded again."""
        from hinerv.codec import encode_file

        workdir.mkdir(parents=True, exist_ok=True)
        keep = workdir / "keep"
        keep.mkdir(exist_ok=True)
        bitstream = keep / f"{point.label}.hnerv"
        rd = self.pipeline == "rd"
        # One training folder per (sequence, size), shared by the bit depths of that size.
        train_dir = workdir.parent / (f"train-{point.label}" if rd else f"train-{point.params['size']}")
        plan = self.encode_options(point, device or self.device).resolve()
        report = encode_file(
            source.path,
            bitstream,
            plan,
            workdir=train_dir,
            resume=True,
            progress=_encode_progress(progress),
            reader_options=source.reader_options or None,
        )
        return {**self._record(source, point, report), "precision": plan.policy.precision}

    def _record(self, source: Source, point: RatePoint, report: Any) -> dict[str, Any]:
        """The result record of ``point`` from its :class:`hinerv.codec.EncodeReport`."""
        rd = self.pipeline == "rd"
        res: dict[str, Any] = {
            "q": point.label,
            "size": point.params["size"],
            "bits": int(point.params["bits"]) if not rd else 0,
        }
        if rd:
            res["pipeline"] = "rd"
            res["lambda"] = report.lam
            if point.params.get("target_bpp") is not None:
                res["target_bpp"] = point.params["target_bpp"]
        res.update(_rate(report.bytes, source))
        res.update(report.metrics)  # measured by encode_file on the decoded integer frames
        # includes training done earlier for this model (resumed, or shared with another bit depth)
        res["encoding_time"] = report.encode_seconds
        res["decoding_time"] = report.decode_seconds
        res["params"] = report.params
        res["model"] = report.model
        res["bitstream"] = f"{point.label}.hnerv"
        return res


def _encode_progress(progress: PointProgress | None) -> Callable[[Any], None] | None:
    """:func:`hinerv.codec.encode_file`'s progress events as ``progress(stage, done, total)``:
    training steps as ``encode``, its ``decode`` and ``measure`` phases as (0, 1)."""
    if progress is None:
        return None
    from hinerv.train import TrainEvent

    def on_event(ev: Any) -> None:
        if isinstance(ev, TrainEvent):
            # global_epoch counts the epochs finished before the current one, over all stages
            total = ev.total_epochs * ev.steps
            progress("encode", min(ev.global_epoch * ev.steps + ev.step, total), total)
        elif ev in ("decode", "measure"):
            progress(ev, 0, 1)

    return on_event


# --------------------------------------------------------------------------------------------
# HM / VTM (reference software, user-supplied)
# --------------------------------------------------------------------------------------------


@dataclass
class HMCodec(Codec):
    """A JCT-VC/JVET reference encoder (HM ``TAppEncoder`` or VTM ``EncoderApp``) run as a
    subprocess with the user's configuration file.

    The encoder is called as ``BIN -c CFG -i SRC.yuv -wdt W -hgt H -fr FPS -f FRAMES -q QP
    --InputBitDepth=B --OutputBitDepth=B --InputChromaFormat=420 -b OUT.bin -o REC.yuv`` plus
    ``--IntraPeriod=N`` when set and ``extra_args``. With a decoder binary (``-b BIN -o OUT -d B``)
    the bitstream is decoded again and timed; otherwise the encoder's reconstruction is measured
    (identical by construction for a conforming encoder) and ``decoding_time`` is NaN.

    Attributes:
        encoder: encoder binary (None: the codec is skipped with a message).
        cfg: encoder configuration (e.g. ``encoder_randomaccess_main.cfg``).
        decoder: optional decoder binary.
        qps: QP ladder (default 16..36 step 4, as NVRC).
        intra_period: ``--IntraPeriod`` (None: the cfg's value).
        label: tool name and version for the run name, e.g. ``HM-18.0``.
        extra_args: more encoder arguments (shell-split).
    """

    encoder: Path | None = None
    cfg: Path | None = None
    decoder: Path | None = None
    qps: tuple[int, ...] = DEFAULT_HM_QPS
    intra_period: int | None = None
    label: str = "HM"
    extra_args: str = ""
    run_name: str | None = None
    uses_gpu: bool = False
    needs_raw: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.qps = tuple(sorted({int(q) for q in self.qps}, reverse=True))
        cfg = Path(self.cfg).stem if self.cfg else "nocfg"
        cfg = cfg.replace("encoder_", "")
        self.name = self.run_name or f"{self.label}-{cfg}"

    def available(self) -> str | None:
        if self.encoder is None or self.cfg is None:
            return (
                f"{self.label} skipped: point --hm-bin at an encoder binary and --hm-cfg at its "
                "configuration file to run it"
            )
        enc = shutil.which(str(self.encoder)) or (str(self.encoder) if Path(self.encoder).is_file() else None)
        if enc is None:
            return f"{self.label} skipped: encoder {self.encoder} not found"
        if not Path(self.cfg).is_file():
            return f"{self.label} skipped: configuration {self.cfg} not found"
        if self.decoder is not None and not (shutil.which(str(self.decoder)) or Path(self.decoder).is_file()):
            return f"{self.label} skipped: decoder {self.decoder} not found"
        return None

    def description(self) -> str:
        return (
            f"{self.label} reference encoder {self.encoder} with {self.cfg}, QP ladder "
            f"{list(self.qps)}, intra period {self.intra_period or 'from cfg'}, extra args "
            f"'{self.extra_args}'; rate from the .bin bitstream; measured on the "
            f"{'decoder output' if self.decoder else 'encoder reconstruction'}"
        )

    def points(self) -> list[RatePoint]:
        return [RatePoint(f"qp{q:02d}", {"qp": q}, group=f"qp{q:02d}") for q in self.qps]

    def command(self, src: Path, source: Source, qp: int, bin_path: Path, rec: Path) -> list[str]:
        """The encoder command line of one point."""
        i = source.info
        fps = Fraction(i.fps)
        fr = str(int(round(float(fps))))
        cmd = [
            str(self.encoder),
            "-c",
            str(self.cfg),
            "-i",
            str(src),
            "-wdt",
            str(i.width),
            "-hgt",
            str(i.height),
            "-fr",
            fr,
            "-f",
            str(i.frames),
            "-q",
            str(qp),
            f"--InputBitDepth={i.bit_depth}",
            f"--OutputBitDepth={i.bit_depth}",
            "--InputChromaFormat=420",
            "-b",
            str(bin_path),
            "-o",
            str(rec),
        ]
        if self.intra_period is not None:
            cmd.append(f"--IntraPeriod={self.intra_period}")
        cmd += shlex.split(self.extra_args)
        return cmd

    def run_point(
        self,
        source: Source,
        point: RatePoint,
        workdir: Path,
        *,
        device: str | None = None,
        progress: PointProgress | None = None,
    ) -> dict[str, Any]:
        reason = self.available()
        if reason:
            raise ConfigError(reason)
        from hinerv.io import open_writer

        qp = int(point.params["qp"])
        workdir.mkdir(parents=True, exist_ok=True)
        keep = workdir / "keep"
        keep.mkdir(exist_ok=True)
        src = source.path
        if src.suffix.lower() != ".yuv":
            src = workdir / "source.yuv"
            if not src.is_file():
                reader = source.open()
                try:
                    with open_writer(src, replace(source.info, chroma="420")) as w:
                        for t in range(source.info.frames):
                            w.write_yuv(*reader.read_yuv(t))
                finally:
                    close = getattr(reader, "close", None)
                    if close is not None:
                        close()
        bin_path = keep / f"{point.label}.bin"
        rec = workdir / f"{point.label}.rec.yuv"
        cmd = self.command(src, source, qp, bin_path, rec)
        log = keep / f"{point.label}.log"
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as lf:
            lf.write("--> Running: " + shlex.join(cmd) + "\n")
            lf.flush()
            r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, check=False)
        enc_s = time.perf_counter() - t0
        if r.returncode != 0 or not bin_path.is_file():
            raise InputError(f"{self.label} encoder failed (exit {r.returncode}); see {log}")
        dec_s = float("nan")
        decoded = rec
        if self.decoder is not None:
            decoded = workdir / f"{point.label}.dec.yuv"
            dcmd = [
                str(self.decoder),
                "-b",
                str(bin_path),
                "-o",
                str(decoded),
                "-d",
                str(source.info.bit_depth),
            ]
            t0 = time.perf_counter()
            with open(log, "a", encoding="utf-8") as lf:
                lf.write("--> Running: " + shlex.join(dcmd) + "\n")
                lf.flush()
                r = subprocess.run(dcmd, stdout=lf, stderr=subprocess.STDOUT, check=False)
            dec_s = time.perf_counter() - t0
            if r.returncode != 0:
                raise InputError(f"{self.label} decoder failed (exit {r.returncode}); see {log}")
        i = source.info
        raw_opts = {"width": i.width, "height": i.height, "fps": i.fps, "bit_depth": i.bit_depth}
        res: dict[str, Any] = {"q": point.label, "qp": qp}
        res.update(_rate(bin_path.stat().st_size, source))
        res.update(_measure(source, decoded, progress, raw_opts))
        res["encoding_time"] = enc_s
        res["decoding_time"] = dec_s
        res["bitstream"] = bin_path.name
        for p in {rec, decoded}:
            with contextlib.suppress(OSError):
                p.unlink()
        return res
