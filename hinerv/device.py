"""The device policy: every decision that depends on where the tensors live, in one place.

Which device ``auto`` means, the training precision (fp32, or fp16 / bf16 autocast; loss scaling for
fp16), how the optimizer and gradient clipping are implemented, when to wait for the device, how many
frames a decode batch holds, whether the training frames move to the device, whether ``torch.compile``
is supported, whether the fused CPU kernels apply (their selection per kernel stays in
:mod:`hinerv.kernels`), and the default activation memory of a training step. Other modules ask a
:class:`DevicePolicy` instead of testing ``device.type`` themselves.

Precision applies to training only: decoding (and the encoder's verification decode) always runs the
network in float32, so a stream decodes to the same frames, within float rounding, on every machine
whatever precision trained it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from hinerv.errors import ConfigError

__all__ = [
    "DevicePolicy",
    "resolve_device",
    "check_precision",
    "PRECISIONS",
    "DEFAULT_MAX_MEMORY",
    "GPU_MEMORY_SHARE",
]

#: training precisions: float32, fp16 autocast with loss scaling, bf16 autocast (no loss scaling)
PRECISIONS = ("fp32", "fp16", "bf16")

_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

#: default activation budget of one training forward/backward on the CPU (see ``Trainer(max_memory=...)``)
DEFAULT_MAX_MEMORY = 3 << 30

#: share of a CUDA device's free memory the activations of one training step may take by default (the
#: model, its gradients, Adam's state, the frames and the allocator's slack share the rest; the
#: activation estimate is within about 1.5x of measured peaks)
GPU_MEMORY_SHARE = 0.5


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; any other name as torch reads it.

    Raises:
        ConfigError: a name torch does not know, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available")
    return d


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        ConfigError: any other value.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True, init=False)
class DevicePolicy:
    """How work runs on one device.

    Attributes:
        device: the torch device.
        precision: training precision, one of :data:`PRECISIONS`: ``fp32``; ``fp16`` (autocast with
            loss scaling); ``bf16`` (autocast, no loss scaling). :meth:`resolve` allows fp16 and bf16
            on CUDA only; constructed directly, any device (unit tests of the autocast/scaler logic).
    """

    device: torch.device
    precision: str

    def __init__(
        self, device: torch.device | str, precision: str | None = None, *, amp: bool | None = None
    ) -> None:
        """``precision`` wins; without it ``amp=True`` means fp16 and ``amp=False`` (or neither) fp32
        (the former boolean field, kept for existing callers).

        Raises:
            ConfigError: an unknown precision, or ``amp`` contradicting ``precision``.
        """
        if precision is None:
            precision = "fp16" if amp else "fp32"
        check_precision(precision)
        if amp is not None and amp != (precision != "fp32"):
            raise ConfigError(f"amp={amp} contradicts precision {precision!r}")
        object.__setattr__(self, "device", torch.device(device))
        object.__setattr__(self, "precision", precision)

    @classmethod
    def resolve(
        cls, device: str | torch.device = "auto", precision: str | None = None, *, amp: bool | None = None
    ) -> DevicePolicy:
        """The policy for a device name (see :func:`resolve_device`) and a precision.

        ``precision`` None: fp16 on CUDA, fp32 elsewhere (``amp=False``: fp32 everywhere; ``amp=True``
        is the default). The CPU trains in fp32 only.

        Raises:
            ConfigError: a bad device name, an unknown precision, fp16/bf16 on a non-CUDA device, or
                bf16 on a GPU without bfloat16 arithmetic (before Ampere).
        """
        d = resolve_device(device)
        if precision is None:
            precision = "fp16" if d.type == "cuda" and amp is not False else "fp32"
        check_precision(precision)
        if precision != "fp32" and d.type != "cuda":
            raise ConfigError(
                f"--precision {precision} needs a CUDA device; on {d.type} training runs in fp32"
            )
        if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ConfigError("--precision bf16 needs a GPU with bfloat16 arithmetic; use fp16 or fp32")
        return cls(d, precision)

    @property
    def amp(self) -> bool:
        """Whether training runs under autocast (fp16 or bf16)."""
        return self.precision != "fp32"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype (float16 / bfloat16), None for fp32."""
        return _AUTOCAST_DTYPES.get(self.precision)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    # ------------------------------------------------------------------ training
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The training forward's autocast context: fp16 or bf16 on the policy's device, a no-op for
        fp32."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler for the policy's device, enabled for fp16 only (bf16 has float32's exponent
        range, so its gradients need no scaling). A disabled scaler's ``state_dict()`` is ``{}``."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def adam_flags(self) -> dict[str, bool | None]:
        """Adam implementation flags: the fused kernel on CPU (one pass over all parameters instead of a
        dozen small ops per tensor; the same update within float rounding), torch's default elsewhere (named,
        so a resumed optimizer's groups can be reset to this device's choice)."""
        if self.device.type == "cpu":
            return {"fused": True, "foreach": None}
        return {"fused": None, "foreach": None}

    def clip_foreach(self) -> bool | None:
        """``foreach`` of gradient clipping: on CPU torch's default is per-tensor, so ask for foreach."""
        return True if self.device.type == "cpu" else None

    def frames_on_device(self) -> bool:
        """Whether the training frames are moved to the device (CUDA), else read from host memory."""
        return self.is_cuda

    def check_compile(self, compile: bool) -> None:
        """Refuse ``torch.compile`` where it does not work.

        Measured on CPU before the model traced without graph breaks (issue #17): a size-s step ran 1.7x
        slower than eager after a 67 s compile. It now traces whole, with the fused C++ kernels as custom
        ops (:mod:`hinerv.kernels.ops`), yet a compiled size-s 384x288 step still takes ~88 ms against
        54-70 ms eager (one thread), so it stays refused there.

        Raises:
            ConfigError: ``compile`` on a device other than CUDA.
        """
        if compile and not self.is_cuda:
            raise ConfigError(
                "--compile is supported on CUDA only "
                "(on CPU, torch.compile of this model fails or runs slower)"
            )

    def activation_dtype_bytes(self) -> int:
        """Bytes per stored activation of a training step: 2 under fp16/bf16 autocast, 4 in fp32."""
        return 2 if self.amp else 4

    def default_max_memory(self, free_bytes: int | None = None) -> int:
        """The activation budget of one training step when the user gives none (``--max-memory``).

        On CUDA, :data:`GPU_MEMORY_SHARE` of the device's free memory (``free_bytes``, else asked from
        the driver), so a large GPU runs a step as one batch instead of micro-batches sized for a
        laptop; on the CPU, :data:`DEFAULT_MAX_MEMORY`.
        """
        if not self.is_cuda:
            return DEFAULT_MAX_MEMORY
        if free_bytes is None:
            free_bytes = int(torch.cuda.mem_get_info(self.device)[0])
        return max(256 << 20, int(free_bytes * GPU_MEMORY_SHARE))

    # ------------------------------------------------------------------ inference / timing
    def decode_batch(self) -> int:
        """Frames per decoder forward pass (4 on CUDA, 1 on CPU); encoder and decoder use the same."""
        return 4 if self.is_cuda else 1

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); nothing to wait for on CPU."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def fused_cpu_kernels(self) -> bool:
        """Whether the fused CPU kernels can apply on this device (the kernel registry's rule,
        :func:`hinerv.kernels.fused_applies`; which kernel runs per call stays the registry's choice)."""
        from hinerv.kernels import fused_applies

        return fused_applies(self.device)
