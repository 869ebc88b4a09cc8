"""The codec: video file -> trained, pruned, quantized, entropy-coded network -> bitstream file, and back.

Encoding (:func:`encode_file`):

1. read the source through :mod:`hinerv.io` into an integer RGB cache ``[T, 3, Hp, Wp]`` (padded by edge
   replication to a multiple of the model's total up-sampling);
2. build the model from ``--size`` (the size ladder) or ``--preset``;
3. train -> prune -> QAT (:class:`hinerv.train.Trainer`), checkpointing atomically into a work folder, so a
   killed encode continues with ``resume=True`` and encodes at other bit depths reuse the pruned model;
4. quantize every ``ndim >= 2`` tensor, keep biases as float16, pack (:mod:`hinerv.bitstream`);
5. decode the packed bytes again (exactly what a decoder will do), write the reconstruction and measure it
   against the source with :mod:`hinerv.metrics`.

Decoding (:func:`decode_file`) rebuilds the network from the bitstream alone and runs it for the requested
frames only (every frame is independent: random access is free).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hinerv import __version__
from hinerv.bitstream import CodedTensor, QuantTensor, Stream, format_of, pack, peek, unpack
from hinerv.budget import BudgetKeeper, EtaEstimator, Plan, plan_training
from hinerv.config import ModelConfig
from hinerv.errors import BitstreamError, ConfigError, HinervError, InputError
from hinerv.io import VideoReader, open_video, open_writer
from hinerv.io.base import fix_mode, make_temp
from hinerv.metrics import compare_videos, rate
from hinerv.model import HiNeRV, ladder_config, load_preset, padded_size
from hinerv.model.arch import derive_arch
from hinerv.model.counts import count_params_arch
from hinerv.quant import ScaleMode, quantize, scale_axes_for
from hinerv.ratecontrol import land_on_target
from hinerv.rdtrain import RDSettings, RDTrainer, default_lambda
from hinerv.train import DEFAULT_MAX_MEMORY, Schedule, Trainer, TrainEvent, load_schedule
from hinerv.types import VideoInfo
from hinerv.validate import check_decode_request, check_encode_request

__all__ = [
    "EncodeOptions",
    "EncodeReport",
    "DecodeReport",
    "encode_file",
    "encode_video",
    "decode_file",
    "decode_bytes",
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


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode.

    Attributes:
        size: a size of the ladder (``xxs`` ... ``xxl``), derived for the video's T x H x W.
        preset: a reference preset name (``uvg-hinerv-s`` ...); wins over ``size``.
        bits: quantization bit depth of weights and grids (6, 7 or 8; 2..16 accepted).
        schedule: ``full`` (reference 300+60+30 epochs), ``short`` (60+12+6), ``tiny`` or a TOML path.
        epochs: if set, rescales the schedule so the main stage has this many epochs.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: model initialisation, batch order and Quant-Noise seed.
        scale_mode: quantizer scale rule (:func:`hinerv.quant.scale_axes_for`).
        amp: fp16 autocast on CUDA.
        compile: ``torch.compile`` the model for training.
        pipeline: ``"paper"`` (the faithful HiNeRV path: prune -> QAT -> histogram coding, format v1)
            or ``"rd"`` (rate–distortion training with learned steps and parametric / context
            entropy models, format v2; ``bits`` and ``scale_mode`` do not apply).
        lam: λ of the rd pipeline (rate weight in ``D + λ·bpp``); None: the size ladder's value
            (:func:`hinerv.rdtrain.default_lambda`: 1 for ``s``, halved with each size up).
        target_bpp: rd pipeline: adapt λ during training and fit the steps after it so the file
            lands within ±5 % of this many bits per pixel.
        distortion: rd pipeline: ``"mse"`` or ``"reference"`` (0.7·L1 + 0.3·(1 − MS-SSIM)).
        granularity: rd pipeline: learned steps per ``"tensor"`` or per output ``"channel"``.
        proxy: rd pipeline: rounding proxy of the first rate-aware stage, ``"ste"`` or ``"noise"``.
        rate_term: rd pipeline: False trains without the rate term (ablation).
        grid_context: rd pipeline: allow the context model for feature grids (ablation switch).
        time_budget: seconds for the whole encode; the schedule's stages are scaled in proportion to fit
            it, from step times measured on this machine (:mod:`hinerv.budget`). Wins over ``epochs``.
        max_memory: bytes of activations one training forward/backward may take (large frames train in
            micro-batches above it); ``None``: :data:`hinerv.train.DEFAULT_MAX_MEMORY`.
    """

    size: str | None = "s"
    preset: str | None = None
    bits: int = 6
    schedule: str = "full"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    scale_mode: ScaleMode = "reference"
    amp: bool = True
    compile: bool = False
    time_budget: float | None = None
    max_memory: int | None = None
    pipeline: str = "paper"
    lam: float | None = None
    target_bpp: float | None = None
    distortion: str = "reference"
    granularity: str = "tensor"
    proxy: str = "ste"
    rate_term: bool = True
    grid_context: bool = True
    float_epochs: int | None = 0
    step_lr_scale: float = 30.0
    lambda_ramp: float = 0.5
    pretrain: bool = True

    def rd_settings(self) -> RDSettings:
        """The rd pipeline's training settings (validated)."""
        lam = self.lam if self.lam is not None else default_lambda(self.size or self.preset, self.distortion)
        return RDSettings(
            lam=lam,
            distortion=self.distortion,  # type: ignore[arg-type]
            granularity=self.granularity,  # type: ignore[arg-type]
            proxy=self.proxy,  # type: ignore[arg-type]
            rate=self.rate_term,
            target_bpp=self.target_bpp,
            step_lr_scale=self.step_lr_scale,
            lambda_ramp=self.lambda_ramp,
            pretrain=self.pretrain,
            float_epochs=self.float_epochs
            if self.float_epochs is not None
            else self.resolved_schedule().warmup_epochs,
        )

    def resolved_schedule(self) -> Schedule:
        s = load_schedule(self.schedule)
        return s.with_main_epochs(self.epochs) if self.epochs is not None else s


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
    #: rd with ``--target-bpp``: ``target_bpp``, ``target_met`` (within ±5 %) and ``step_factor``
    rate_control: dict[str, Any] = field(default_factory=dict)
    #: one line each, for the user (e.g. a target rate that could not be reached)
    warnings: list[str] = field(default_factory=list)

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
            **self.rate_control,
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            "width": self.info.width,
            "height": self.info.height,
            "frames": self.info.frames,
            "fps": float(self.info.fps),
            "sections": dict(self.sections),
        }
        return d


@dataclass(frozen=True)
class DecodeReport:
    """Frames written, wall time of the network part and of the whole decode."""

    frames: int
    seconds: float
    fps: float
    info: VideoInfo


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; errors for unavailable CUDA."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available")
    return d


# --------------------------------------------------------------------------------------------- frames
def _cache_dtype(bit_depth: int) -> torch.dtype:
    return torch.uint8 if bit_depth <= 8 else (torch.int16 if bit_depth <= 15 else torch.int32)


def load_rgb_cache(reader: VideoReader, hp: int, wp: int) -> torch.Tensor:
    """Integer RGB frames ``[T, 3, hp, wp]`` padded by edge replication (uint8 for 8-bit sources)."""
    info = reader.info
    T = len(reader)
    cache = torch.empty((T, 3, hp, wp), dtype=_cache_dtype(info.bit_depth))
    ph, pw = hp - info.height, wp - info.width
    for t in range(T):
        rgb = np.asarray(reader.read_rgb(t))
        if ph or pw:
            rgb = np.pad(rgb, ((0, 0), (0, ph), (0, pw)), mode="edge")
        cache[t] = torch.from_numpy(rgb.astype(np.int32)).to(cache.dtype)
    return cache


def build_model(opts: EncodeOptions, info: VideoInfo) -> tuple[ModelConfig, str]:
    """The model config for this video, and a short label (preset or size name)."""
    if opts.preset:
        cfg, _geometry = load_preset(opts.preset)
        return cfg, opts.preset
    if not opts.size:
        raise ConfigError("give a --size or a --preset")
    return ladder_config(opts.size, info.width, info.height, info.frames), opts.size


# --------------------------------------------------------------------------------------------- export
def _is_layer(name: str) -> bool:
    return name.endswith("weight")


def export_stream(
    model: HiNeRV,
    masks: dict[str, torch.Tensor],
    info: VideoInfo,
    cfg: ModelConfig,
    bits: int,
    scale_mode: ScaleMode,
    meta: dict[str, Any],
) -> Stream:
    """Quantize the model into a :class:`~hinerv.bitstream.Stream` (canonical tensor order)."""
    params = dict(model.named_parameters())
    tensors: list[QuantTensor] = []
    for name in model.quantizable_names():
        w = params[name].detach().float().cpu()
        mask = masks.get(name)
        if mask is not None:
            mask = mask.cpu()
            w = w * mask
        axes = scale_axes_for(tuple(w.shape), mode=scale_mode, layer=_is_layer(name))
        q, scales = quantize(w, bits, axes)
        tensors.append(
            QuantTensor(
                shape=tuple(w.shape),
                bits=bits,
                scale_axes=axes,
                scales=scales,
                q=q,
                mask=None if mask is None else mask.numpy().astype(bool),
            )
        )
    quantizable = set(model.quantizable_names())
    vectors = [
        p.detach().cpu().to(torch.float16).numpy().reshape(-1)
        for n, p in model.named_parameters()
        if n not in quantizable
    ]
    return Stream(info=info, model=cfg.to_fields(), meta=meta, tensors=tensors, vectors=vectors)


def _context_view(model: HiNeRV, name: str) -> tuple[int, int] | None:
    """``(T, R)`` view of a feature grid for context coding (time slices, rows), else None."""
    parts = name.split(".")
    if name.startswith("base.grids."):
        return model.base.level_frames[int(parts[2])], model.base.height
    if ".enc.grids." in name:
        enc = model.stages[int(parts[1])].enc
        return enc.level_frames[int(parts[4])], enc.scale
    return None


def export_rd_stream(
    model: HiNeRV,
    rate: Any,
    info: VideoInfo,
    cfg: ModelConfig,
    meta: dict[str, Any],
    *,
    grid_context: bool = True,
    step_factor: float = 1.0,
) -> Stream:
    """A format-v2 :class:`~hinerv.bitstream.Stream` of every parameter, quantized with the learned
    steps of ``rate`` (a :class:`hinerv.rate.RateModel`) times ``step_factor``."""
    params = dict(model.named_parameters())
    if list(params) != rate.names:
        raise ConfigError("rate model does not match the network's parameters")
    tensors = []
    for name, (q, step) in zip(rate.names, rate.export(params, step_factor), strict=True):
        axes = tuple(a for a in range(q.ndim) if step.shape[a] > 1)
        view = _context_view(model, name) if grid_context else None
        tensors.append(CodedTensor(tuple(q.shape), axes, step, q, "auto", view))
    return Stream(info=info, model=cfg.to_fields(), meta=meta, tensors=tensors, vectors=[])


def _expected_shapes_all(info: VideoInfo, fields: dict[str, Any]) -> list[tuple[int, ...]]:
    """Format v2: the shapes of every parameter (all are coded), validated like :func:`_expected_shapes`."""
    return _expected_shapes(info, fields, every_param=True)


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


@torch.no_grad()
def decode_frames(
    model: HiNeRV,
    info: VideoInfo,
    frames: range,
    *,
    batch: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Run the decoder network for ``frames``; yields float32 ``[3, H, W]`` RGB in [0, 1] (cropped).

    ``batch`` frames go through the network at once (default 4 on CUDA, 1 on CPU); the encoder's own
    reconstruction and :func:`decode_file` use the same default, so they run the same kernels.
    """
    device = torch.device(device)
    batch = batch or (4 if device.type == "cuda" else 1)
    ts = list(frames)
    for i in range(0, len(ts), batch):
        t = torch.tensor(ts[i : i + batch], dtype=torch.long, device=device)
        idx = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1)
        out = model(idx, (1, 1)).float()[:, :, : info.height, : info.width]
        yield from out.cpu().numpy()


def decode_bytes(
    data: bytes, *, frames: range | None = None, device: str = "auto"
) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Decode a bitstream held in memory; returns the video info and a frame iterator (float RGB)."""
    dev = resolve_device(device)
    model, info, _ = load_decoder(data, dev)
    rng = range(info.frames) if frames is None else frames
    return info, decode_frames(model, info, rng, device=dev)


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
) -> DecodeReport:
    """Decode ``src`` (a hinerv bitstream) into a video file ``dst`` (format from the extension).

    Only the frames in ``frames`` = (first, end) are decoded (random access; end None: to the
    last frame). The output is written atomically at the source's bit depth and chroma format,
    rounded to integers.
    """
    check_decode_request(src, dst, frames)
    data = _read_bitstream(src)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    model, info, _ = load_decoder(data, dev)
    rng = _parse_range(frames, info.frames)
    out_info = replace(info, frames=len(rng))
    with open_writer(Path(dst), out_info) as w:
        for i, x in enumerate(decode_frames(model, info, rng, device=dev)):
            w.write_rgb(x)
            if progress is not None:
                progress(i + 1, len(rng))
    dt = time.perf_counter() - t0
    return DecodeReport(frames=len(rng), seconds=dt, fps=len(rng) / max(dt, 1e-9), info=out_info)


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
def _fingerprint(src: Path, info: VideoInfo, cfg: ModelConfig, opts: EncodeOptions, sched: Schedule) -> str:
    st = src.stat()
    key = {
        "source": str(src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "info": {k: str(v) for k, v in asdict(info).items()},
        "model": cfg.to_fields(),
        "schedule": asdict(sched),
        "seed": opts.seed,
        "version": __version__,
        **({"time_budget": opts.time_budget} if opts.time_budget else {}),
    }
    if opts.pipeline != "paper":
        key["rd"] = {
            "pipeline": opts.pipeline,
            **{k: v for k, v in asdict(opts.rd_settings()).items()},
            "grid_context": opts.grid_context,
        }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        fix_mode(tmp)  # the usual 0644 under the umask, like decoded videos, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def encode_video(
    reader: VideoReader,
    opts: EncodeOptions,
    *,
    workdir: Path,
    resume: bool = False,
    fingerprint: str = "",
    progress: ProgressCallback | None = None,
    epoch_hook: Callable[[Trainer], None] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Train, prune, quantize and pack; returns the bitstream and training facts.

    Checkpoints live in ``workdir``: ``state.ckpt`` (rolling, every minute and at stage ends),
    ``pruned.ckpt`` (after the prune stage; reused by encodes at another bit depth) and
    ``qat-b{bits}[-{scale_mode}].ckpt`` (the finished run). Training up to the pruned model does not
    depend on the bit depth or the scale rule, so those reuse ``pruned.ckpt``.
    """
    t_start = time.perf_counter()
    info = reader.info
    dev = resolve_device(opts.device)
    if opts.compile and dev.type != "cuda":
        # measured on CPU: dynamo fails inside the oneDNN linear; with that bypassed, inductor fails on
        # dynamic shapes, and with static shapes a size-s step ran 1.7x slower than eager after 67 s
        raise ConfigError(
            "--compile is supported on CUDA only (on CPU, torch.compile of this model fails or runs slower)"
        )
    sched = opts.resolved_schedule()
    cfg, label = build_model(opts, info)
    hp, wp = padded_size(info.height, info.width, cfg)
    torch.manual_seed(opts.seed)
    model = HiNeRV(cfg, info.frames, hp, wp).to(dev)
    if progress:
        progress("load")
    cache = load_rgb_cache(reader, hp, wp)
    if dev.type == "cuda":
        cache = cache.to(dev)
    if opts.pipeline == "rd":
        return _encode_rd(model, cache, info, cfg, label, opts, sched, dev, workdir, resume, fingerprint,
                          t_start, progress, epoch_hook)  # fmt: skip
    if opts.pipeline != "paper":
        raise ConfigError(f"unknown pipeline {opts.pipeline!r} (paper or rd)")
    trainer = Trainer(
        model,
        cache,
        info.peak,
        sched,
        bits=opts.bits,
        scale_mode=opts.scale_mode,
        **_trainer_kwargs(opts, dev),
    )
    qat_key = f"b{opts.bits}" + ("" if opts.scale_mode == "reference" else f"-{opts.scale_mode}")
    state, pruned, final = workdir / "state.ckpt", workdir / "pruned.ckpt", workdir / f"qat-{qat_key}.ckpt"
    _prepare_workdir(workdir, resume, fingerprint, label, [state, pruned, *workdir.glob("qat-b*.ckpt")])
    if resume and final.exists():
        trainer.load(final)
        trained_before = trainer.elapsed
    else:
        if resume and state.exists():
            trainer.load(state)
            if trainer.stage in ("qat", "done") and trainer.qat_key != (opts.bits, opts.scale_mode):
                trainer.load(pruned)  # the rolling state is another QAT's; pruned.ckpt precedes it
        trained_before = trainer.elapsed
        epoch_hook, progress = _plan(trainer, opts, t_start, progress, epoch_hook)
        if trainer.stage in ("main", "prune"):
            trainer.fit(progress, checkpoint=state, stop_after="prune", epoch_hook=epoch_hook)
            trainer.save(pruned)
        trainer.set_bits(opts.bits)
        trainer.scale_mode = opts.scale_mode
        trainer.fit(progress, checkpoint=state, epoch_hook=epoch_hook)
        trainer.save(final)
    if progress:
        progress("export")
    meta = {
        "encoder": f"hinerv {__version__}",
        "model": label,
        "pipeline": "paper",
        "bits": opts.bits,
        "schedule": trainer.schedule.name,
        "seed": opts.seed,
    }
    stream = export_stream(model, trainer.masks, info, cfg, opts.bits, opts.scale_mode, meta)
    data = pack(stream)
    return data, _facts(trainer, trained_before, label, cfg)


def _facts(trainer: Trainer, trained_before: float, label: str, cfg: ModelConfig) -> dict[str, Any]:
    """Training facts of an encode. The trainer's clock covers every session that trained this model,
    reused stages included, so the report gives the real cost of the bitstream even when most of it
    was computed earlier."""
    return {
        "train_seconds": trainer.elapsed,
        "trained_before": trained_before,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "model": label,
        "cfg": cfg,
    }


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


def _encode_rd(
    model: HiNeRV,
    cache: torch.Tensor,
    info: VideoInfo,
    cfg: ModelConfig,
    label: str,
    opts: EncodeOptions,
    sched: Schedule,
    dev: torch.device,
    workdir: Path,
    resume: bool,
    fingerprint: str,
    t_start: float,
    progress: ProgressCallback | None,
    epoch_hook: Callable[[Trainer], None] | None,
) -> tuple[bytes, dict[str, Any]]:
    """The rd pipeline: rate–distortion training, then the format-v2 stream (rate control included)."""
    pixels = info.frames * info.height * info.width
    meta: dict[str, Any] = {
        "encoder": f"hinerv {__version__}",
        "model": label,
        "pipeline": "rd",
        "schedule": sched.name,  # replaced by the (possibly budget-fitted) trainer's schedule
        "seed": opts.seed,
        "distortion": opts.distortion,
    }

    def stream_at(tr: RDTrainer, factor: float = 1.0) -> Stream:
        m = {**meta, "schedule": tr.schedule.name, "lambda": float(tr.lam)}
        return export_rd_stream(
            model, tr.rate, info, cfg, m, grid_context=opts.grid_context, step_factor=factor
        )

    def probe(tr: RDTrainer) -> float:
        return 8 * len(pack(stream_at(tr))) / pixels

    trainer = RDTrainer(
        model,
        cache,
        info.peak,
        sched,
        rd=opts.rd_settings(),
        pixels=pixels,
        rate_probe=probe if opts.target_bpp else None,
        **_trainer_kwargs(opts, dev),
    )
    state, final = workdir / "state.ckpt", workdir / "rd.ckpt"
    _prepare_workdir(workdir, resume, fingerprint, label, [state, final])
    if resume and final.exists():
        trainer.load(final)
        trained_before = trainer.elapsed
    else:
        if resume and state.exists():
            trainer.load(state)
        trained_before = trainer.elapsed
        epoch_hook, progress = _plan(trainer, opts, t_start, progress, epoch_hook)
        trainer.fit(progress, checkpoint=state, epoch_hook=epoch_hook)
        trainer.save(final)
    if progress:
        progress("export")
    factor, target = 1.0, {}
    if opts.target_bpp:
        landing = land_on_target(lambda f: len(pack(stream_at(trainer, f))), opts.target_bpp, pixels)
        factor = landing.factor
        target = {"target_bpp": opts.target_bpp, "target_met": landing.met, "step_factor": factor,
                  "warnings": [landing.note] if landing.note else []}  # fmt: skip
    data = pack(stream_at(trainer, factor))
    facts = _facts(trainer, trained_before, label, cfg)
    return data, {**facts, "lambda": float(trainer.lam), **target}


def _trainer_kwargs(opts: EncodeOptions, dev: torch.device) -> dict[str, Any]:
    """The :class:`~hinerv.train.Trainer` keyword arguments both pipelines take from the options."""
    return {
        "device": dev,
        "seed": opts.seed,
        "amp": opts.amp,
        "compile": opts.compile,
        "max_memory": opts.max_memory or DEFAULT_MAX_MEMORY,
    }


def _plan(
    trainer: Trainer,
    opts: EncodeOptions,
    t_start: float,
    progress: ProgressCallback | None,
    epoch_hook: Callable[[Trainer], None] | None,
) -> tuple[Callable[[Trainer], None] | None, ProgressCallback | None]:
    """Measure the step time, fit the schedule to ``opts.time_budget`` and report the plan.

    Returns the epoch hook to train with (the caller's, plus a :class:`~hinerv.budget.BudgetKeeper`
    that re-fits the remaining schedule to the time left when the predicted finish drifts) and the
    progress callback (the caller's, with each :class:`~hinerv.train.TrainEvent`'s ``eta`` filled in
    from the plan).
    """
    if trainer.done:
        return epoch_hook, progress
    plan = plan_training(trainer, opts.time_budget, elapsed_seconds=time.perf_counter() - t_start)
    if progress:
        progress(plan)
        progress = _with_eta(progress, EtaEstimator(trainer, plan.costs))
    if opts.time_budget is None or plan.notes:
        return epoch_hook, progress
    keeper = BudgetKeeper(trainer, opts.time_budget, t_start, plan.costs, plan.finish_seconds)
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
    opts: EncodeOptions,
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
        opts: model size, bits, schedule, device.
        workdir: checkpoint folder; default ``<dst>.work`` (removed after a successful encode). An
            explicit folder is kept, so later encodes of the same source at other bit depths reuse it.
        resume: continue a killed encode (or reuse the pruned model) from ``workdir``.
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
    check_encode_request(src, dst, opts, recon=recon, workdir=workdir, default_workdir=wd)
    new_wd = not wd.exists()  # a user error found later must not leave a folder this call made
    reader = open_video(src, **(reader_options or {}))
    try:
        info = reader.info
        cfg, _ = build_model(opts, info)
        fp = _fingerprint(src, info, cfg, opts, opts.resolved_schedule())
        data, facts = encode_video(
            reader, opts, workdir=wd, resume=resume, fingerprint=fp, progress=progress, epoch_hook=epoch_hook
        )
        if progress:
            progress("decode")
        # Decode the packed bytes exactly as a decoder would; the metrics describe the real output.
        t_dec = time.perf_counter()
        dev = resolve_device(opts.device)
        model, dinfo, _ = load_decoder(data, dev)
        rec_path = wd / ("recon.y4m" if info.chroma == "420" else "recon_png")
        with open_writer(rec_path, dinfo) as w:
            for x in decode_frames(model, dinfo, range(dinfo.frames), device=dev):
                w.write_rgb(x)
        decode_seconds = time.perf_counter() - t_dec
        if progress:
            progress("measure")
        with open_video(rec_path) as rec:
            metrics = compare_videos(reader, rec).as_dict()
        if recon is not None:
            with open_video(rec_path) as rec, open_writer(Path(recon), dinfo) as w:
                for t in range(len(rec)):
                    y, u, v = rec.read_yuv(t)
                    w.write_yuv(y, u, v)
        _atomic_write_bytes(dst, data)
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
        bits=opts.bits if opts.pipeline == "paper" else 0,
        model=facts["model"],
        pipeline=opts.pipeline,
        lam=facts.get("lambda"),
        rate_control={k: facts[k] for k in ("target_bpp", "target_met", "step_factor") if k in facts},
        warnings=list(facts.get("warnings", [])),
        metrics={k: v for k, v in metrics.items() if k != "per_frame"},
        sections=sections,
    )
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)
    return report
