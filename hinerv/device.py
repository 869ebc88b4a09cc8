"""The device policy: every decision that depends on where the tensors live, in one place.

Which device ``auto`` means, whether training runs fp16 autocast with loss scaling, how the optimizer
and gradient clipping are implemented, when to wait for the device, how many frames a decode batch
holds, whether the training frames move to the device, whether ``torch.compile`` is supported, whether
the fused CPU kernels apply (their selection per kernel stays in :mod:`hinerv.kernels`), and the default
activation memory of a training step. Other modules ask a :class:`DevicePolicy` instead of testing
``device.type`` themselves.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from hinerv.errors import ConfigError

__all__ = ["DevicePolicy", "resolve_device", "DEFAULT_MAX_MEMORY", "GPU_MEMORY_SHARE"]

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


@dataclass(frozen=True)
class DevicePolicy:
    """How work runs on one device.

    Attributes:
        device: the torch device.
        amp: fp16 autocast + loss scaling for training; only ever True on CUDA.
    """

    device: torch.device
    amp: bool = False

    @classmethod
    def resolve(cls, device: str | torch.device = "auto", amp: bool = True) -> DevicePolicy:
        """The policy for a device name (see :func:`resolve_device`); ``amp`` is kept on CUDA only."""
        d = resolve_device(device)
        return cls(d, amp=amp and d.type == "cuda")

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    # ------------------------------------------------------------------ training
    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The training forward's autocast context (fp16 on CUDA with ``amp``, a no-op otherwise)."""
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled exactly when autocast is."""
        return torch.amp.GradScaler("cuda", enabled=self.amp)

    def adam_flags(self) -> dict[str, bool | None]:
        """Adam implementation flags: the fused kernel on CPU (one pass over all parameters instead of a
        dozen small ops per tensor; the same update within float rounding), torch's default elsewhere."""
        if self.device.type == "cpu":
            return {"fused": True, "foreach": None}
        return {}

    def clip_foreach(self) -> bool | None:
        """``foreach`` of gradient clipping: on CPU torch's default is per-tensor, so ask for foreach."""
        return True if self.device.type == "cpu" else None

    def frames_on_device(self) -> bool:
        """Whether the training frames are moved to the device (CUDA), else read from host memory."""
        return self.is_cuda

    def check_compile(self, compile: bool) -> None:
        """Refuse ``torch.compile`` where it does not work.

        Measured on CPU: dynamo fails inside the oneDNN linear; with that bypassed, inductor fails on
        dynamic shapes, and with static shapes a size-s step ran 1.7x slower than eager after 67 s.

        Raises:
            ConfigError: ``compile`` on a device other than CUDA.
        """
        if compile and not self.is_cuda:
            raise ConfigError(
                "--compile is supported on CUDA only "
                "(on CPU, torch.compile of this model fails or runs slower)"
            )

    def activation_dtype_bytes(self) -> int:
        """Bytes per stored activation of a training step: 2 under fp16 autocast, else 4."""
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
