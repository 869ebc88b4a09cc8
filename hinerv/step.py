"""One optimizer step of over-fitting: batch, forward, loss, autocast, micro-batching and clipping.

The :class:`StepRunner` knows nothing about stages or pipelines: the caller hands it the recipe's
parameter transform (masked / rounded / noisy parameters and a whole-step penalty) and loss for the
step. Every forward goes through :meth:`StepRunner.forward`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from hinerv.device import DevicePolicy
from hinerv.metrics import ms_ssim

__all__ = ["StepRunner", "Transform", "LossFn", "reference_loss", "choose_patch_grid"]

#: the parameter transform of a step: (parameter overrides by name, whole-step penalty or None)
Transform = Callable[[], tuple[dict[str, torch.Tensor], torch.Tensor | None]]
#: (output, target) -> (loss to minimise, detached MSE)
LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def reference_loss(
    out: torch.Tensor,
    tgt: torch.Tensor,
    l1_weight: float,
    msssim_weight: float,
    msssim_window: int,
    mse_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference distortion ``l1_weight * L1 + msssim_weight * (1 - MS-SSIM)`` (plus
    ``mse_weight * MSE`` where a schedule asks for it) and the detached MSE.

    Args:
        out: ``[N, 3, h, w]`` network output (any float dtype; computed in float32).
        tgt: float32 ``[N, 3, h, w]`` target in [0, 1].
    """
    out = out.float()
    mse = F.mse_loss(out.detach(), tgt)
    loss = l1_weight * (out - tgt).abs().mean()
    if mse_weight:
        loss = loss + mse_weight * F.mse_loss(out, tgt)
    if msssim_weight:
        loss = loss + msssim_weight * (1 - ms_ssim(out, tgt, data_range=1.0, win_size=msssim_window)).mean()
    return loss, mse


def choose_patch_grid(
    height: int,
    width: int,
    upscale: int,
    target: int = 120,
    min_side: int = 72,
    frame_mode_pixels: int = 640 * 480,
) -> tuple[int, int]:
    """Tiling (gh, gw) of the padded frame into training patches.

    Frames of at most ``frame_mode_pixels`` train whole (grid (1, 1)): patch mode recomputes halos
    around every tile, which costs ~2x at these sizes, and a whole small frame fits in memory anyway.
    Larger frames are tiled like the reference: patch sides are multiples of ``upscale`` (the model's
    total up-sampling) so each patch maps to whole base-grid cells, closest to ``target`` (the
    reference's 120 at 1080p) and at least ``min_side`` (the 5-scale MS-SSIM with a 5x5 window needs
    > 64 px), else the whole side.
    """
    if height * width <= frame_mode_pixels:
        return 1, 1

    def best(n: int) -> int:
        cells = n // upscale
        options = [g for g in range(1, cells + 1) if cells % g == 0 and (n // g >= min_side or g == 1)]
        return min(options, key=lambda g: (abs(n // g - target), g))

    return best(height), best(width)


class StepRunner:
    """Runs optimizer steps on random patch batches of one video.

    Args:
        model: the network (its output covers the padded frame; ``model.cfg.upscale`` is its total
            up-sampling; an optional ``activation_bytes(grid)`` sizes micro-batches).
        frames: integer RGB ``[T, 3, Hp, Wp]`` (uint8 / int16 / int32), on the device or in host memory.
        peak: the value of white in ``frames``.
        policy: the device policy (autocast, loss scaling, clipping implementation).
        compile: run the forward (with the transform's parameter overrides, through ``functional_call``)
            under ``torch.compile``: True for its default mode, or a mode name (``"default"``,
            ``"reduce-overhead"``: CUDA graphs, ``"max-autotune-no-cudagraphs"``...). Shapes are static
            (``dynamic=False``): a step's batch, or its micro-batches, have one shape; a shorter last
            micro-batch compiles once more (at most two graphs per grid).
        max_memory: activation bytes one forward/backward may take; a batch estimated above it runs as
            micro-batches with gradient accumulation (the same step within float rounding). None: never split.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        frames: torch.Tensor,
        peak: float,
        policy: DevicePolicy,
        *,
        compile: bool | str = False,
        max_memory: int | None = None,
    ) -> None:
        self.model = model
        self.frames = frames
        self.peak = float(peak)
        self.policy = policy
        self.T, _, H, W = frames.shape
        self.grid = choose_patch_grid(H, W, int(model.cfg.upscale))  # type: ignore[union-attr,arg-type]
        self.ph, self.pw = H // self.grid[0], W // self.grid[1]
        self.scaler = policy.grad_scaler()
        self._compiled: Callable[..., torch.Tensor] | None = None
        if compile:
            mode = None if compile is True or compile == "default" else str(compile)
            self._compiled = torch.compile(self._call, mode=mode, dynamic=False)  # type: ignore[assignment]
        self.micro_batch = self._micro_batch(max_memory)

    def _micro_batch(self, max_memory: int | None) -> int:
        """Patches per forward pass: the whole step's batch unless its activations exceed ``max_memory``."""
        B = self.grid[0] * self.grid[1]
        estimate = getattr(self.model, "activation_bytes", None)
        if max_memory is None or estimate is None or B == 1:
            return B
        per = max(1, int(estimate(self.grid, dtype_bytes=self.policy.activation_dtype_bytes())))
        return max(1, min(B, int(max_memory // per)))

    def batch(self, order: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch indices ``[B, 3]`` (t, ih, iw) and float targets ``[B, 3, ph, pw]`` of step ``step`` of
        the epoch whose patch permutation is ``order`` (one frame's worth of patches per step)."""
        gh, gw = self.grid
        B = gh * gw
        sel = order[step * B : (step + 1) * B]
        t, rest = sel // B, sel % B
        ih, iw = rest // gw, rest % gw
        idx = torch.stack([t, ih, iw], dim=1)
        view = self.frames.view(self.T, 3, gh, self.ph, gw, self.pw)
        dev = self.frames.device
        tgt = view[t.to(dev), :, ih.to(dev), :, iw.to(dev), :]
        tgt = tgt.to(self.policy.device, non_blocking=True).float() / self.peak
        return idx.to(self.policy.device), tgt

    def forward(self, params: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """The training forward of patches ``idx`` with parameter overrides ``params`` (may be empty)."""
        return (self._compiled or self._call)(params, idx)

    def _call(self, params: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """The forward itself (what ``compile`` compiles, overrides included: the model traces with no
        graph break in frame and patch mode, ``tests/model/test_compile.py``)."""
        args = (idx, self.grid)
        return functional_call(self.model, params, args) if params else self.model(*args)

    def step(
        self,
        idx: torch.Tensor,
        tgt: torch.Tensor,
        transform: Transform,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        clip_params: Sequence[torch.nn.Parameter],
        grad_clip: float,
    ) -> tuple[float, float]:
        """One optimizer step on a batch at the optimizer's current learning rates; returns (loss, MSE)."""
        if self.micro_batch < idx.shape[0]:
            loss_v, mse_v = self._accumulate(idx, tgt, transform, loss_fn, optimizer)
        else:
            with self.policy.autocast():
                params, penalty = transform()
                out = self.forward(params, idx)
            loss, mse = loss_fn(out, tgt)
            if penalty is not None:
                loss = loss + penalty
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            loss_v, mse_v = float(loss.detach()), float(mse)
        self.scaler.unscale_(optimizer)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(list(clip_params), grad_clip, foreach=self.policy.clip_foreach())
        self.scaler.step(optimizer)
        self.scaler.update()
        return loss_v, mse_v

    def _accumulate(
        self,
        idx: torch.Tensor,
        tgt: torch.Tensor,
        transform: Transform,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
    ) -> tuple[float, float]:
        """Gradients of the whole batch's loss, computed in micro-batches of ``self.micro_batch`` patches.

        The loss is a mean over equal-sized patches, so the batch loss is the sum of the micro-batch
        losses weighted by their share of the batch. The transformed parameters are computed once for the
        whole step (one noise draw, as without splitting): the micro-batches run on detached copies, and
        their accumulated gradients are pushed through the transform at the end.
        """
        n = idx.shape[0]
        optimizer.zero_grad(set_to_none=True)
        eff, penalty = transform()
        leaves = {k: v.detach().requires_grad_(True) for k, v in eff.items()}
        loss_sum, mse_sum = 0.0, 0.0
        for i in range(0, n, self.micro_batch):
            sl = slice(i, min(n, i + self.micro_batch))
            w = (sl.stop - sl.start) / n
            with self.policy.autocast():
                out = self.forward(leaves, idx[sl])
            loss, mse = loss_fn(out, tgt[sl])
            self.scaler.scale(loss * w).backward()
            loss_sum += float(loss.detach()) * w
            mse_sum += float(mse) * w
            del out, loss
        used = [k for k in leaves if leaves[k].grad is not None]
        roots = [eff[k] for k in used]
        grads = [leaves[k].grad for k in used]
        if penalty is not None:  # once per step, through the same parameter transform
            roots.append(self.scaler.scale(penalty))
            grads.append(torch.ones_like(penalty))
            loss_sum += float(penalty.detach())
        if roots:
            torch.autograd.backward(roots, grads)
        return loss_sum, mse_sum
