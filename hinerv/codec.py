"""The codec: video file -> trained, entropy-coded network -> bitstream file, and back.

It orchestrates only; what is trained and how it is coded belongs to the chosen pipeline
(:mod:`hinerv.pipelines`). Encoding (:func:`encode_file`):

1. resolve the request once (:meth:`hinerv.options.EncodeOptions.resolve`) and check every path;
2. read the source through :mod:`hinerv.io` into an integer RGB cache ``[T, 3, Hp, Wp]`` (padded by edge
   replication to a multiple of the model's total up-sampling) and build the model (size or preset);
3. plan (time budget) and train (:class:`hinerv.train.Trainer` with the pipeline's recipe),
   checkpointing atomically into a work folder, so a killed encode continues with ``resume=True``;
4. export the bitstream (the pipeline's);
5. verify: decode the packed bytes again (exactly what a decoder will do), write the reconstruction
   and measure it against the source with :mod:`hinerv.metrics`.

Decoding (:func:`decode_file`) rebuilds the network from the bitstream alone and runs it for the requested
frames only (every frame is independent: random access is free).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hinerv import __version__
from hinerv.bitstream import Stream, format_of, peek, unpack
from hinerv.budget import BudgetKeeper, EtaEstimator, Plan, plan_training
from hinerv.config import ModelConfig
from hinerv.device import DevicePolicy, resolve_device
from hinerv.errors import BitstreamError, ConfigError, HinervError, InputError
from hinerv.io import VideoReader, open_video, open_writer
from hinerv.io.background import BackgroundWriter
from hinerv.io.base import atomic_write
from hinerv.io.frames import FrameBatch, as_read, quantize_rgb_t, rgb_to_yuv_t
from hinerv.metrics import MetricsAccumulator, ieee_fp32, rate
from hinerv.model import HiNeRV, ladder_config, load_preset, padded_size
from hinerv.model.arch import derive_arch
from hinerv.model.counts import count_params_arch
from hinerv.options import EncodeOptions, EncodePlan
from hinerv.pipelines import Checkpoints, ModelContext
from hinerv.train import Trainer, TrainEvent
from hinerv.types import VideoInfo
from hinerv.validate import check_decode_request, check_encode_request

__all__ = [
    "EncodeOptions",
    "EncodePlan",
    "EncodeReport",
    "DecodeReport",
    "encode_file",
    "encode_video",
    "decode_file",
    "decode_frames",
    "load_decoder",
    "inspect_file",
    "resolve_device",
    "ProgressCallback",
]

#: receives a TrainEvent after every training step, a short phase message ("export", "decode", ...), or
#: once before training the :class:`~hinerv.budget.Plan` (planned steps, measured s/step, expected time)
ProgressCallback = Callable[[TrainEvent | Plan | str], None]

MAX_FRAMES = 1 << 20
MAX_SIDE = 1 << 14
MAX_PARAMS = 1 << 28
#: a stream must have at least one byte per this many parameters of the model its header describes (real
#: encoders spend ~1..6 bits per parameter; 1/512 bit leaves a wide margin), so a small stream cannot make
#: the decoder allocate a large model
PARAMS_PER_BYTE = 1 << 12
#: the widest activation of a frame-mode forward (channels x stage pixels), per padded output pixel; the
#: size ladder stays below ~1000 for every model within MAX_PARAMS
MAX_ACTIVATION_PER_PIXEL = 1 << 12


#: what an :class:`EncodeReport` tells of the schedule the model trained on
REPORTED_SCHEDULE_FIELDS = ("name", "main_epochs", "prune_epochs", "qat_epochs", "lr", "adam_beta2")


@dataclass(frozen=True)
class EncodeReport:
    """The outcome of one encode; ``metrics`` are measured on the decoded integer video.

    ``train_seconds`` is the training compute behind this bitstream, summed over every session that
    trained the model (a resumed encode, or a pruned model reused from another bit depth, counts the
    earlier work too); ``encode_seconds`` is this call's wall time plus that earlier training time.
    """

    bytes: int
    bpp: float
    bitrate: float
    encode_seconds: float
    train_seconds: float
    decode_seconds: float
    info: VideoInfo
    params: int
    bits: int
    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    sections: dict[str, int] = field(default_factory=dict)
    pipeline: str = "paper"
    lam: float | None = None
    #: rd: what the rate-distortion training minimised (``blend``, ``mse``, ``reference``) and its optimizer
    #: plan (``adam``, ``soap``, ``soap-pretrain``); None for the paper pipeline
    distortion: str | None = None
    optimizer: str | None = None
    #: rd with ``--target-bpp``: ``target_bpp``, ``target_met`` (within ±5 %) and ``step_factor``
    rate_control: dict[str, Any] = field(default_factory=dict)
    #: one line each, for the user (e.g. a target rate that could not be reached)
    warnings: list[str] = field(default_factory=list)
    #: wall seconds of this call's phases: ``load`` (opening and reading the source), ``setup`` (model,
    #: trainer, work folder), ``train`` (this session's training, its planning and checkpoints included),
    #: ``export`` (the bitstream), ``verify`` (decoding it again), ``write`` (storing the reconstruction
    #: and the bitstream) and ``metrics`` (measuring the reconstruction against the source)
    timings: dict[str, float] = field(default_factory=dict)
    #: the schedule the model was trained on, after any time budget fitted it: ``name`` (e.g.
    #: ``fast~48e``), ``main_epochs``, ``prune_epochs``, ``qat_epochs``, ``lr``, ``adam_beta2``
    schedule: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Flat JSON-ready mapping: the ``hinerv eval`` keys plus rate and timing keys."""
        d: dict[str, Any] = {
            "bytes": self.bytes,
            "bpp": self.bpp,
            "bitrate": self.bitrate,
            **self.metrics,
            "encode_seconds": self.encode_seconds,
            "train_seconds": self.train_seconds,
            "decode_seconds": self.decode_seconds,
            "params": self.params,
            "bits": self.bits,
            "model": self.model,
            "pipeline": self.pipeline,
            **({"lambda": self.lam} if self.lam is not None else {}),
            **({"distortion": self.distortion} if self.distortion is not None else {}),
            **({"optimizer": self.optimizer} if self.optimizer is not None else {}),
            **self.rate_control,
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            "width": self.info.width,
            "height": self.info.height,
            "frames": self.info.frames,
            "fps": float(self.info.fps),
            "sections": dict(self.sections),
            **({"timings": dict(self.timings)} if self.timings else {}),
            **({"schedule": dict(self.schedule)} if self.schedule else {}),
        }
        return d


@dataclass(frozen=True)
class DecodeReport:
    """Frames written and the wall time of the whole decode (``fps`` = frames / seconds).

    ``timings``: wall seconds of ``load`` (entropy decoding the stream and building the network),
    ``decode`` (the network and the conversion to stored integers, on the device) and ``write`` (handing
    frames to the writer thread and waiting for it to finish and commit).
    """

    frames: int
    seconds: float
    fps: float
    info: VideoInfo
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- frames
def _cache_dtype(bit_depth: int) -> torch.dtype:
    return torch.uint8 if bit_depth <= 8 else (torch.int16 if bit_depth <= 15 else torch.int32)


#: frames read and converted per batch while loading the source
_LOAD_BATCH = 8


def load_rgb_cache(
    reader: VideoReader, hp: int, wp: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Integer RGB frames ``[T, 3, hp, wp]`` padded by edge replication (uint8 for 8-bit sources), on
    ``device``: the files are read on the host, the colour conversion runs on ``device``
    (:meth:`VideoReader.read_batch`, the integers of ``read_rgb``)."""
    info = reader.info
    T = len(reader)
    ph, pw = hp - info.height, wp - info.width
    cache = torch.empty((T, 3, hp, wp), dtype=_cache_dtype(info.bit_depth), device=device)
    for i in range(0, T, _LOAD_BATCH):
        ts = range(i, min(T, i + _LOAD_BATCH))
        rgb = reader.read_batch(ts, device).rgb
        if ph:  # edge replication, rows then columns (np.pad(mode="edge"))
            rgb = torch.cat([rgb, rgb[:, :, -1:].expand(-1, -1, ph, -1)], dim=2)
        if pw:
            rgb = torch.cat([rgb, rgb[:, :, :, -1:].expand(-1, -1, -1, pw)], dim=3)
        cache[i : i + len(ts)] = rgb.to(cache.dtype)
    return cache


def build_config(plan: EncodePlan, info: VideoInfo) -> ModelConfig:
    """The model config of this request for this video (a preset wins over the size ladder; ``--size
    auto`` is the size :meth:`~hinerv.options.EncodePlan.for_video` picks)."""
    if plan.options.preset:
        cfg, _geometry = load_preset(plan.options.preset)
        return cfg
    size = plan.for_video(info).size
    if not size:
        raise ConfigError("give a --size or a --preset")
    return ladder_config(size, info.width, info.height, info.frames)


# --------------------------------------------------------------------------------------------- decode
def _expected_shapes(
    info: VideoInfo, fields: dict[str, Any], every_param: bool = False, n_bytes: int | None = None
) -> list[tuple[int, ...]]:
    """Shapes of the coded tensors a config implies, checked before anything is decoded or allocated.

    The config fields are bounded first (:meth:`ModelConfig.from_fields`), then the parameter count and
    the widest activation are computed analytically, so a lying header (10^9 frames, a 10^6-channel
    model, 2^62 grid levels) is refused without allocating; the shapes then come from a model built on
    the meta device. With ``n_bytes`` (the stream's size) the model may have at most
    ``PARAMS_PER_BYTE`` parameters per byte.
    """
    if not (1 <= info.frames <= MAX_FRAMES and 2 <= info.width <= MAX_SIDE and 2 <= info.height <= MAX_SIDE):
        raise BitstreamError(f"implausible video header {info.width}x{info.height}x{info.frames}")
    try:
        cfg = ModelConfig.from_fields(dict(fields))
        hp, wp = padded_size(info.height, info.width, cfg)
        arch = derive_arch(cfg, info.frames, hp, wp)
        total = count_params_arch(arch)["total"]
    except (ConfigError, ValueError, TypeError, ZeroDivisionError, OverflowError) as e:
        raise BitstreamError(f"invalid model config in bitstream: {e}") from None
    if total > MAX_PARAMS:
        raise BitstreamError(f"model config asks for {total} parameters (limit {MAX_PARAMS})")
    if n_bytes is not None and total > PARAMS_PER_BYTE * n_bytes:
        raise BitstreamError(
            f"model config asks for {total} parameters, more than a {n_bytes}-byte stream can hold "
            f"(at most {PARAMS_PER_BYTE} per byte)"
        )
    act = max(max(st.c_in, st.hidden, st.c_out) * st.height * st.width for st in arch.stages)
    if act > MAX_ACTIVATION_PER_PIXEL * hp * wp:
        raise BitstreamError(f"model config asks for {act // (hp * wp)} activations per pixel")
    with torch.device("meta"):
        model = HiNeRV(cfg, info.frames, hp, wp)
    params = dict(model.named_parameters())
    names = list(params) if every_param else model.quantizable_names()
    return [tuple(params[n].shape) for n in names]


def _header_checks(data: bytes) -> Callable[[VideoInfo, dict[str, Any]], list[tuple[int, ...]]]:
    """The ``expected_shapes`` check of a stream: the one set of header and model checks that both
    :func:`load_decoder` and :func:`inspect_file` apply."""
    every_param = format_of(data).codes_every_parameter
    return functools.partial(_expected_shapes, every_param=every_param, n_bytes=len(data))


def load_decoder(data: bytes, device: torch.device | str = "cpu") -> tuple[HiNeRV, VideoInfo, Stream]:
    """Rebuild the network from a bitstream alone.

    Validates the header and the config against the tensor shapes *before* allocating the model, so a
    lying header cannot trigger a huge allocation. The stream's format says which parameters are coded
    tensors (all of them, or the quantizable ones with the others as fp16 vectors), in canonical order.

    Raises:
        BitstreamError: malformed stream or a config that does not match its tensors.
    """
    fmt = format_of(data)
    stream = unpack(data, expected_shapes=_header_checks(data))
    info = stream.info
    cfg = ModelConfig.from_fields(dict(stream.model))
    hp, wp = padded_size(info.height, info.width, cfg)
    model = HiNeRV(cfg, info.frames, hp, wp)
    params = dict(model.named_parameters())
    coded = list(params) if fmt.codes_every_parameter else model.quantizable_names()
    others = [n for n in params if n not in set(coded)]
    if len(others) != len(stream.vectors):
        raise BitstreamError("vector count in the stream does not match the model")
    with torch.no_grad():
        for n, t in zip(coded, stream.tensors, strict=True):  # shapes checked by unpack(expected_shapes=...)
            params[n].copy_(torch.from_numpy(t.dequantize()))
        for n, v in zip(others, stream.vectors, strict=True):
            if params[n].numel() != v.size:
                raise BitstreamError("vector size does not match the model")
            params[n].copy_(torch.from_numpy(v.astype(np.float32)).view_as(params[n]))
    model.to(device).eval()
    return model, info, stream


def _decoder_module(model: HiNeRV, device: torch.device, compile: bool) -> Callable[..., torch.Tensor]:
    """The module a decode runs: ``model``, or with ``compile`` its ``torch.compile`` (static shapes).

    Raises:
        ConfigError: ``compile`` on a device where it is not supported (:meth:`DevicePolicy.check_compile`).
    """
    DevicePolicy(device).check_compile(compile)
    return torch.compile(model, dynamic=False) if compile else model  # type: ignore[return-value]


@torch.no_grad()
def _decode_batches(
    model: Callable[..., torch.Tensor],
    info: VideoInfo,
    frames: range,
    *,
    batch: int | None = None,
    device: torch.device | str = "cpu",
    static: bool = False,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Run the decoder network ``batch`` frames at a time; yields (frame indices, float32 RGB
    ``[N, 3, H, W]`` in [0, 1], cropped) with the frames on ``device``.

    With ``static`` every forward gets ``batch`` frames (the last batch is filled up by repeating its
    last frame, and the extra outputs dropped), so a model compiled for static shapes compiles once.
    """
    device = torch.device(device)
    batch = batch or DevicePolicy(device).decode_batch()
    ts = list(frames)
    for i in range(0, len(ts), batch):
        part = ts[i : i + batch]
        run = part + [part[-1]] * (batch - len(part)) if static else part
        t = torch.tensor(run, dtype=torch.long, device=device)
        idx = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1)
        with ieee_fp32(device):  # per batch: the setting never leaks to the caller between batches
            out = model(idx, (1, 1)).float()[: len(part), :, : info.height, : info.width]
        yield part, out


def decode_frames(
    model: HiNeRV,
    info: VideoInfo,
    frames: range,
    *,
    batch: int | None = None,
    device: torch.device | str = "cpu",
    compile: bool = False,
) -> Iterator[np.ndarray]:
    """Run the decoder network for ``frames``; yields float32 ``[3, H, W]`` RGB in [0, 1] (cropped).

    ``batch`` frames go through the network at once (default: :meth:`DevicePolicy.decode_batch`); the
    encoder's own reconstruction and :func:`decode_file` use the same default, so they run the same kernels.
    On CUDA the network runs in full float32 (no TF32), as on the CPU. ``compile``: run it through
    ``torch.compile`` (CUDA only; static shapes, compiled once per batch size).
    """
    device = torch.device(device)
    net = _decoder_module(model, device, compile)
    for _, out in _decode_batches(net, info, frames, batch=batch, device=device, static=compile):
        yield from out.cpu().numpy()


def _host(x: torch.Tensor, bit_depth: int) -> np.ndarray:
    """Integer samples as a host array (uint8 at 8 bits: a quarter of the bytes to copy)."""
    return x.to(torch.uint8 if bit_depth <= 8 else torch.int32).cpu().numpy()


def _stored(out: torch.Tensor, info: VideoInfo, stores: str) -> FrameBatch | None:
    """The integers a writer that ``stores`` this keeps of decoded frames ``out``, computed on their device:
    planes for ``"yuv"``, RGB for ``"rgb"`` (the batch's other fields are left empty), None for a preview."""
    if stores == "yuv":
        y, u, v = rgb_to_yuv_t(out, info)
        return FrameBatch(y, u, v, y.new_empty(0))
    if stores == "rgb":
        e = out.new_empty(0)
        return FrameBatch(e, e, e, quantize_rgb_t(out, info.bit_depth))
    return None


def _write_planes(w: BackgroundWriter, frames: FrameBatch, bit_depth: int) -> None:
    """Queue the integer planes of ``frames`` (``y``, ``u``, ``v``), one frame at a time."""
    y, u, v = (_host(p, bit_depth) for p in (frames.y, frames.u, frames.v))
    for i in range(len(y)):
        w.write_yuv(y[i], u[i], v[i])


def _write(w: BackgroundWriter, frames: FrameBatch | None, out: torch.Tensor, bit_depth: int) -> None:
    """Queue decoded frames: the stored integers of ``frames`` (:func:`_stored`, or a reader's view of
    them) when the writer keeps them exactly, else the float frames ``out``."""
    stores = w.writer.stores
    if frames is not None and stores == "yuv":
        _write_planes(w, frames, bit_depth)
    elif frames is not None and stores == "rgb":
        for q in _host(frames.rgb, bit_depth):
            w.write_rgb_int(q)
    else:
        for f in out.cpu().numpy():
            w.write_rgb(f)


def _parse_range(frames: tuple[int, int | None] | None, total: int) -> range:
    if frames is None:
        return range(total)
    a, b = frames[0], total if frames[1] is None else frames[1]
    if not (0 <= a < b <= total):
        raise InputError(f"--frames {a}:{b} is outside the video's 0:{total}")
    return range(a, b)


def decode_file(
    src: Path | str,
    dst: Path | str,
    *,
    frames: tuple[int, int | None] | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    compile: bool = False,
) -> DecodeReport:
    """Decode ``src`` (a hinerv bitstream) into a video file ``dst`` (format from the extension).

    Only the frames in ``frames`` = (first, end) are decoded (random access; end None: to the
    last frame). The output is written atomically at the source's bit depth and chroma format,
    rounded to integers: the conversion to the stored integers runs on the decoding device, and a
    writer thread stores each batch while the next one is decoded. ``compile``: run the network
    through ``torch.compile`` (CUDA only, see :func:`decode_frames`).

    Raises:
        ConfigError: ``compile`` where it is not supported.
    """
    check_decode_request(src, dst, frames)
    data = _read_bitstream(src)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    policy = DevicePolicy(dev)
    policy.check_compile(compile)
    model, info, _ = load_decoder(data, dev)
    net = _decoder_module(model, dev, compile)
    rng = _parse_range(frames, info.frames)
    out_info = replace(info, frames=len(rng))
    done = 0
    spent = {"load": time.perf_counter() - t0, "decode": 0.0, "write": 0.0}
    with BackgroundWriter(open_writer(Path(dst), out_info)) as w:
        t = time.perf_counter()
        for part, out in _decode_batches(net, info, rng, device=dev, static=compile):
            stored = _stored(out, out_info, w.writer.stores)
            policy.synchronize()
            t1 = time.perf_counter()
            _write(w, stored, out, out_info.bit_depth)
            t2 = time.perf_counter()
            spent["decode"] += t1 - t
            spent["write"] += t2 - t1
            done += len(part)
            if progress is not None:
                progress(done, len(rng))
            t = time.perf_counter()
        t_close = time.perf_counter()
    spent["write"] += time.perf_counter() - t_close
    dt = time.perf_counter() - t0
    return DecodeReport(
        frames=len(rng), seconds=dt, fps=len(rng) / max(dt, 1e-9), info=out_info, timings=spent
    )


def _read_bitstream(src: Path | str) -> bytes:
    p = Path(src)
    if not p.is_file():
        raise InputError(f"{p}: no such bitstream file")
    return p.read_bytes()


def inspect_file(src: Path | str) -> dict[str, Any]:
    """Header, model config and bytes per section of a bitstream, without running the network.

    Applies every header and model check of :func:`load_decoder` (a stream ``decode`` refuses before
    entropy decoding is refused here too); the entropy-coded sections are not decoded.
    """
    data = _read_bitstream(src)
    d = peek(data, expected_shapes=_header_checks(data)).to_dict()
    d["file_bytes"] = len(data)
    return d


# --------------------------------------------------------------------------------------------- encode
#: schedule fields added after work folders were first written, with the value they had implicitly before
_LATER_FIELDS: dict[str, object] = {"mse_weight": 0.0, "adam_beta1": 0.9}


def _fingerprint(src: Path, info: VideoInfo, cfg: ModelConfig, plan: EncodePlan) -> str:
    """What a resumed work folder must match: source file, video, model, schedule, seed, budget and the
    pipeline's own training settings."""
    st = src.stat()
    key = {
        "source": str(src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "info": {k: str(v) for k, v in asdict(info).items()},
        "model": cfg.to_fields(),
        # (fields at the value they had before they existed keep the key of folders written then)
        "schedule": {
            k: v for k, v in asdict(plan.schedule).items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]
        },
        "seed": plan.options.seed,
        "version": __version__,
        **({"time_budget": plan.options.time_budget} if plan.options.time_budget else {}),
        # with a budget, ``auto`` may train at other learning rates than ``full``; without one it is ``full``
        **({"auto_schedule": True} if plan.auto_schedule and plan.options.time_budget else {}),
    }
    extra = plan.pipeline.fingerprint(plan.settings)
    if extra is not None:
        key[plan.pipeline.name] = extra
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_video(
    reader: VideoReader,
    plan: EncodePlan,
    *,
    workdir: Path,
    resume: bool = False,
    fingerprint: str = "",
    progress: ProgressCallback | None = None,
    epoch_hook: Callable[[Trainer], None] | None = None,
    cfg: ModelConfig | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Build the model, train it with the plan's pipeline and export it; returns the bitstream and
    training facts (``timings``: wall seconds of ``load`` (the source frames), ``setup`` (model, trainer
    and work folder), ``train`` and ``export`` in this call).
    Checkpoints live in ``workdir`` (the pipeline names them); ``cfg``: the model config when the caller
    has made it already (:func:`build_config`)."""
    t_start = time.perf_counter()
    info, policy = reader.info, plan.policy
    plan = plan.for_video(info)
    cfg = cfg or build_config(plan, info)
    hp, wp = padded_size(info.height, info.width, cfg)
    torch.manual_seed(plan.options.seed)
    model = HiNeRV(cfg, info.frames, hp, wp).to(policy.device)
    if progress:
        progress("load")
    t_load = time.perf_counter()
    cache = load_rgb_cache(reader, hp, wp, policy.device if policy.frames_on_device() else "cpu")
    policy.synchronize()
    t_loaded = time.perf_counter()
    ctx = ModelContext(model, info, cfg, plan.label, plan.options.seed, f"hinerv {__version__}")
    pipe = plan.pipeline
    trainer = Trainer(
        model,
        cache,
        info.peak,
        plan.schedule,
        recipe=pipe.recipe(plan.settings, ctx),
        device=policy,
        seed=plan.options.seed,
        compile=plan.options.compile,
        max_memory=plan.max_memory,
    )
    ckpts = pipe.checkpoints(workdir, plan.settings)
    _prepare_workdir(workdir, resume, fingerprint, plan.label, ckpts.stale)
    t_train = time.perf_counter()
    trained_before = _train(trainer, ckpts, plan, resume, t_start, progress, epoch_hook)
    policy.synchronize()
    t_export = time.perf_counter()
    if progress:
        progress("export")
    data, extra = pipe.export(trainer, plan.settings, ctx)
    t_end = time.perf_counter()
    timings = {
        "load": t_loaded - t_load,
        "setup": (t_load - t_start) + (t_train - t_loaded),
        "train": t_export - t_train,
        "export": t_end - t_export,
    }
    facts = {
        "timings": timings,
        "train_seconds": trainer.elapsed,  # every session that trained this model, reused stages included
        "trained_before": trained_before,
        "params": sum(p.numel() for p in model.parameters()),
        "model": plan.label,
        "cfg": cfg,
        "schedule": {k: getattr(trainer.schedule, k) for k in REPORTED_SCHEDULE_FIELDS},
    }
    return data, {**facts, **extra}


def _train(
    trainer: Trainer,
    ckpts: Checkpoints,
    plan: EncodePlan,
    resume: bool,
    t_start: float,
    progress: ProgressCallback | None,
    epoch_hook: Callable[[Trainer], None] | None,
) -> float:
    """Train to the end, resuming from and saving the pipeline's checkpoints; returns the training
    seconds of earlier sessions."""
    if resume and ckpts.final.exists():
        trainer.load(ckpts.final)
        return trainer.elapsed
    if resume and ckpts.state.exists():
        trainer.load(ckpts.state)
        if ckpts.on_resume is not None:
            ckpts.on_resume(trainer)
    trained_before = trainer.elapsed
    epoch_hook, progress = _plan(trainer, plan, t_start, progress, epoch_hook)
    order = (*trainer.stages, "done")
    for stage, path in ckpts.milestones:
        if order.index(trainer.stage) <= order.index(stage):
            trainer.fit(progress, checkpoint=ckpts.state, stop_after=stage, epoch_hook=epoch_hook)
            trainer.save(path)
    if ckpts.before_last is not None:
        ckpts.before_last(trainer)
    trainer.fit(progress, checkpoint=ckpts.state, epoch_hook=epoch_hook)
    trainer.save(ckpts.final)
    return trained_before


def _prepare_workdir(workdir: Path, resume: bool, fingerprint: str, label: str, stale: list[Path]) -> None:
    """Create the work folder; with ``resume`` check it belongs to this encode, else delete ``stale``."""
    workdir.mkdir(parents=True, exist_ok=True)
    job = workdir / "job.json"
    if resume and job.exists():
        if json.loads(job.read_text()).get("fingerprint") != fingerprint:
            raise ConfigError(
                f"work folder {workdir} belongs to a different encode (source or options changed); "
                "remove it or run without --resume"
            )
    elif not resume:
        for p in stale:
            p.unlink(missing_ok=True)
    job.write_text(json.dumps({"fingerprint": fingerprint, "model": label}))


def _plan(
    trainer: Trainer,
    plan: EncodePlan,
    t_start: float,
    progress: ProgressCallback | None,
    epoch_hook: Callable[[Trainer], None] | None,
) -> tuple[Callable[[Trainer], None] | None, ProgressCallback | None]:
    """Measure the step time, fit the schedule to the time budget and report the plan.

    Returns the epoch hook to train with (the caller's, plus a :class:`~hinerv.budget.BudgetKeeper`
    that re-fits the remaining schedule to the time left when the predicted finish drifts) and the
    progress callback (the caller's, with each :class:`~hinerv.train.TrainEvent`'s ``eta`` filled in
    from the plan).
    """
    if trainer.done:
        return epoch_hook, progress
    budget = plan.options.time_budget
    tplan = plan_training(
        trainer, budget, elapsed_seconds=time.perf_counter() - t_start, auto=plan.auto_schedule
    )
    if progress:
        progress(tplan)
        progress = _with_eta(progress, EtaEstimator(trainer, tplan.costs))
    if budget is None or tplan.notes:
        return epoch_hook, progress
    keeper = BudgetKeeper(trainer, budget, t_start, tplan.costs, tplan.finish_seconds)
    if epoch_hook is None:
        return keeper, progress
    user_hook = epoch_hook

    def both(tr: Trainer) -> None:
        keeper(tr)
        user_hook(tr)

    return both, progress


def _with_eta(progress: ProgressCallback, eta: EtaEstimator) -> ProgressCallback:
    def cb(ev: TrainEvent | Plan | str) -> None:
        progress(replace(ev, eta=eta(ev)) if isinstance(ev, TrainEvent) else ev)

    return cb


def encode_file(
    src: Path | str,
    dst: Path | str,
    opts: EncodeOptions | EncodePlan,
    *,
    workdir: Path | str | None = None,
    resume: bool = False,
    recon: Path | str | None = None,
    progress: ProgressCallback | None = None,
    reader_options: dict[str, Any] | None = None,
    epoch_hook: Callable[[Trainer], None] | None = None,
) -> EncodeReport:
    """Encode the video file ``src`` into the bitstream file ``dst`` and measure the result.

    Args:
        src: any input :func:`hinerv.io.open_video` reads.
        dst: output bitstream path (written atomically).
        opts: the request, or one already resolved (:meth:`EncodeOptions.resolve`).
        workdir: checkpoint folder; default ``<dst>.work`` (removed after a successful encode). An
            explicit folder is kept, so later encodes of the same source reuse what they can of it.
        resume: continue a killed encode (or reuse a milestone checkpoint) from ``workdir``.
        recon: also write the decoded video here (any writable format).
        progress: callback for training steps and phase messages.
        reader_options: keyword options for :func:`hinerv.io.open_video` (raw ``.yuv`` size, fps, ...).
        epoch_hook: called with the :class:`~hinerv.train.Trainer` after every training epoch.

    Returns:
        An :class:`EncodeReport`; its ``metrics`` are measured on the decoded integer frames.
    """
    src, dst = Path(src), Path(dst)
    t_start = time.perf_counter()
    keep = workdir is not None
    wd = Path(workdir) if workdir is not None else dst.with_name(dst.name + ".work")
    plan = check_encode_request(src, dst, opts, recon=recon, workdir=workdir, default_workdir=wd)
    new_wd = not wd.exists()  # a user error found later must not leave a folder this call made
    reader = open_video(src, **(reader_options or {}))
    try:
        info = reader.info
        plan = plan.for_video(info)
        cfg = build_config(plan, info)
        fp = _fingerprint(src, info, cfg, plan)
        t_video = time.perf_counter()
        data, facts = encode_video(
            reader, plan, workdir=wd, resume=resume, fingerprint=fp, progress=progress, epoch_hook=epoch_hook,
            cfg=cfg,
        )  # fmt: skip
        timings = dict(facts["timings"])
        timings["load"] += t_video - t_start  # opening the source, its checks and the fingerprint
        metrics, decode_seconds, verify_timings = _verify(data, reader, wd, plan.policy, recon, progress)
        timings.update(verify_timings)
        t_write = time.perf_counter()
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dst, lambda f: f.write(data))
        timings["write"] += time.perf_counter() - t_write
    except HinervError:
        if new_wd:
            shutil.rmtree(wd, ignore_errors=True)
        raise
    finally:
        reader.close()
    sections = {k: int(v) for k, v in peek(data).section_bytes.items()}
    r = rate(len(data), frames=info.frames, width=info.width, height=info.height, fps=float(info.fps))
    report = EncodeReport(
        bytes=len(data),
        bpp=r["bpp"],
        bitrate=r["bitrate"],
        encode_seconds=time.perf_counter() - t_start + facts["trained_before"],
        train_seconds=facts["train_seconds"],
        decode_seconds=decode_seconds,
        info=info,
        params=facts["params"],
        bits=plan.pipeline.report_bits(plan.settings),
        model=facts["model"],
        pipeline=plan.pipeline.name,
        lam=facts.get("lambda"),
        distortion=facts.get("distortion"),
        optimizer=facts.get("optimizer"),
        rate_control={k: facts[k] for k in ("target_bpp", "target_met", "step_factor") if k in facts},
        warnings=list(facts.get("warnings", [])),
        metrics={k: v for k, v in metrics.items() if k != "per_frame"},
        sections=sections,
        timings={k: round(v, 4) for k, v in timings.items()},
        schedule=dict(facts["schedule"]),
    )
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)
    return report


def _verify(
    data: bytes,
    reader: VideoReader,
    wd: Path,
    policy: DevicePolicy,
    recon: Path | str | None,
    progress: ProgressCallback | None,
) -> tuple[dict[str, Any], float, dict[str, float]]:
    """Decode the packed bytes exactly as a decoder would, write the reconstruction (into the work
    folder, and to ``recon``) and measure it against the source.

    Everything per frame stays on the policy's device: the decoded batch is converted there into the
    integers the reconstruction stores (and those a reader of it returns, :func:`hinerv.io.frames.as_read`),
    the source frames are converted there too (:meth:`VideoReader.read_batch`), and the metrics are
    accumulated there (:class:`~hinerv.metrics.MetricsAccumulator`); writer threads store a batch while
    the next is decoded. The numbers equal :func:`~hinerv.metrics.compare_videos` of the source and the
    written reconstruction.

    Returns:
        (metrics, decode seconds, {``verify``, ``metrics``, ``write``} wall seconds).
    """
    if progress:
        progress("decode")
    spent = {"verify": 0.0, "write": 0.0, "metrics": 0.0}
    t = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal t
        now = time.perf_counter()
        spent[phase] += now - t
        t = now

    dev = policy.device
    model, dinfo, _ = load_decoder(data, dev)
    rec_path = wd / ("recon.y4m" if reader.info.chroma == "420" else "recon_png")
    acc = MetricsAccumulator(dinfo.width, dinfo.height, dinfo.bit_depth)
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(BackgroundWriter(open_writer(rec_path, dinfo)))
        rw = None if recon is None else stack.enter_context(BackgroundWriter(open_writer(Path(recon), dinfo)))
        lap("verify")
        for part, out in _decode_batches(model, dinfo, range(dinfo.frames), device=dev):
            dist = as_read(out, dinfo, w.writer.stores)
            policy.synchronize()
            lap("verify")
            _write(w, dist, out, dinfo.bit_depth)
            if rw is not None:  # the reconstruction's planes, in the format asked for
                _write_planes(rw, dist, dinfo.bit_depth)
            lap("write")
            acc.add(reader.read_batch(part, dev), dist)
            lap("metrics")
        if progress:
            progress("measure")
        metrics = acc.result().as_dict()
        lap("metrics")
    lap("write")  # the writer threads finish, the outputs are committed
    return metrics, spent["verify"] + spent["write"], spent
