"""Rate machinery for rate–distortion training: learned step sizes, rounding proxies, a rate estimate.

Every coded tensor ``w`` (feature grids, weights, biases) is stored as integers ``q = round(w / Δ)``
with a *learned* step ``Δ = fp16(2 ** s)`` (``s`` a trained log2-step: one per tensor, or one per
output channel of a layer weight with ``granularity="channel"``). During training the rounding is
replaced by a differentiable proxy:

* ``"noise"``: ``w / Δ + u``, ``u ~ U(-½, ½)`` (Ballé et al.): an unbiased stand-in for the rounding
  error, which lets ``Δ`` and ``w`` both learn from the rate and the distortion;
* ``"ste"``: ``round(w / Δ)`` forward, identity backward (the decoder's exact values; used at the end);
* ``"round"``: hard rounding, no gradient to the rounding (evaluation / export).

The rate of a tensor is estimated under a zero-mean Laplace density with a learned scale ``b`` (in
units of the step, one per tensor) integrated over the quantization bin:
``bits(x) = -log2(F(x + ½) - F(x - ½))``. Summed over all tensors and divided by the number of
pixels, it is the bits-per-pixel estimate the loss ``D + λ·R`` uses. The coder
(:mod:`hinerv.entropy` :class:`~hinerv.entropy.GeomModel`, fitted by the encoder) contains the
discretised Laplace as a special case, so the estimate is an upper bound of the coded payload up to
the models' side information.

This module does no I/O and knows nothing about bitstreams: :meth:`RateModel.export` hands integers
and steps to the codec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from hinerv.errors import ConfigError

__all__ = ["Proxy", "Granularity", "laplace_bits", "RateModel", "round_ste"]

Proxy = Literal["noise", "ste", "round"]
Granularity = Literal["tensor", "channel"]

_LOG2E = 1.0 / math.log(2.0)
_MIN_P = 1e-9


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` forward, identity gradient backward."""
    return x + (torch.round(x) - x).detach()


def laplace_bits(x: Tensor, scale: Tensor) -> Tensor:
    """Bits of each value of ``x`` under a zero-mean Laplace of scale ``scale``, integrated over
    ``[x - ½, x + ½]``.

    Args:
        x: any shape, in units of the quantization step (integers or noisy integers).
        scale: broadcastable to ``x``, > 0.

    Returns:
        Same shape as ``x``, ``>= 0`` (numerically stable in both tails).
    """
    a = x.abs()
    inv = 1.0 / scale
    # |x| >= ½: P = ½ e^{-(a-½)/b} (1 - e^{-1/b});  |x| < ½: P = 1 - ½ e^{-(½-a)/b} - ½ e^{-(½+a)/b}
    log_tail = math.log(0.5) - (a - 0.5) * inv + torch.log(-torch.expm1(-inv))
    inner = 1.0 - 0.5 * torch.exp(-(0.5 - a).clamp_min(0) * inv) - 0.5 * torch.exp(-(0.5 + a) * inv)
    log_p = torch.where(a >= 0.5, log_tail, torch.log(inner.clamp_min(_MIN_P)))
    return -log_p.clamp_max(0.0) * _LOG2E


def _fp16_step(log2_step: Tensor) -> Tensor:
    """``2 ** log2_step`` inside float16's range, rounded to float16 with a float32 gradient (a plain
    cast would round the gradient to fp16 too), as float32."""
    d = torch.exp2(log2_step.clamp(-24.0, 15.0))
    return d + (d.to(torch.float16).to(torch.float32) - d).detach()


def _step_shape(shape: Sequence[int], granularity: Granularity, is_grid: bool) -> tuple[int, ...]:
    if granularity == "channel" and not is_grid and len(shape) >= 2:
        return (shape[0],) + (1,) * (len(shape) - 1)
    return (1,) * len(shape)


class RateModel(nn.Module):
    """Learned quantizers and Laplace rate models of a set of named parameters.

    Args:
        params: the coded parameters, in the decoder's canonical order (name -> tensor); their
            current values initialise the steps (``max|w| / 31``, as a 6-bit quantizer would).
        grids: names that are feature grids (they always get one step per tensor).
        granularity: ``"tensor"`` or ``"channel"`` (one step per output channel of layer weights).

    Attributes:
        names: the coded parameter names, in order.
        log2_step: one parameter per tensor, shaped to broadcast against it.
        log2_scale: one scalar per tensor, the Laplace scale in units of the step.
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        grids: Sequence[str] = (),
        granularity: Granularity = "tensor",
    ) -> None:
        super().__init__()
        if granularity not in ("tensor", "channel"):
            raise ConfigError(f"unknown step granularity {granularity!r} (tensor or channel)")
        self.names = list(params)
        self.granularity = granularity
        grid_set = set(grids)
        self.is_grid = [n in grid_set for n in self.names]
        steps, scales = [], []
        for n, g in zip(self.names, self.is_grid, strict=True):
            shape = _step_shape(tuple(params[n].shape), granularity, g)
            steps.append(nn.Parameter(torch.zeros(shape)))
            scales.append(nn.Parameter(torch.tensor(math.log2(4.0))))
        self.log2_step = nn.ParameterList(steps)
        self.log2_scale = nn.ParameterList(scales)
        self._layouts: dict[Any, tuple[Tensor, Tensor, list[int]]] = {}
        self.reset(params)

    @torch.no_grad()
    def reset(self, params: dict[str, Tensor]) -> None:
        """Initialise the steps from the current values (``max|w| / 31``, a 6-bit quantizer; 1e-3 for
        an all-zero vector, 1e-4 for an all-zero tensor) and every Laplace scale to 4 steps."""
        for i, n in enumerate(self.names):
            w = params[n].detach().float().to(self.log2_step[i].device)
            shape = tuple(self.log2_step[i].shape)
            red = tuple(a for a in range(w.ndim) if shape[a] == 1)
            if not w.numel():
                m = torch.zeros(shape, device=w.device)
            elif red:
                m = w.abs().amax(dim=red, keepdim=True)
            else:
                m = w.abs().reshape(shape)
            init = torch.where(m > 0, m / 31.0, torch.full_like(m, 1e-3 if w.ndim == 1 else 1e-4))
            self.log2_step[i].copy_(torch.log2(init).reshape(shape))
            self.log2_scale[i].fill_(math.log2(4.0))

    def step(self, i: int) -> Tensor:
        """Step of tensor ``i``, rounded to float16 (differentiably), as float32."""
        return _fp16_step(self.log2_step[i])

    def _layout(
        self, device: torch.device, shapes: tuple[tuple[int, ...], ...]
    ) -> tuple[Tensor, Tensor, list[int]]:
        """Per-element indices of the flattened parameters (cached per device and shapes).

        Returns:
            ``(step_index, tensor_index, numels)``: int64 ``[E]`` slot of each element in the
            concatenated steps, int64 ``[E]`` its tensor, and each tensor's element count (``E`` the
            total number of coded values, in :attr:`names` order).
        """
        key = (str(device), shapes)
        hit = self._layouts.get(key)
        if hit is not None:
            return hit
        step_idx, tensor_idx, numels = [], [], []
        offset = 0
        for i, shape in enumerate(shapes):
            n = math.prod(shape)
            slots = self.log2_step[i].numel()
            # a step per tensor (slots 1) or per index of axis 0 (row-major: runs of n / slots)
            step_idx.append(torch.arange(slots).repeat_interleave(n // slots if slots else 0) + offset)
            tensor_idx.append(torch.full((n,), i, dtype=torch.int64))
            numels.append(n)
            offset += slots
        hit = (torch.cat(step_idx).to(device), torch.cat(tensor_idx).to(device), numels)
        self._layouts[key] = hit
        return hit

    def forward(
        self,
        params: dict[str, Tensor],
        proxy: Proxy,
        generator: torch.Generator | None = None,
        float_forward: bool = False,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Quantized stand-ins of the parameters and the estimated bits of all of them.

        All tensors are processed as one flat vector (a handful of ops per step instead of a few
        dozen per tensor); each element sees its own tensor's (or channel's) step and scale, so the
        values are those of a per-tensor loop.

        Args:
            params: name -> current float parameter (only :attr:`names` are read).
            proxy: ``"noise"``, ``"ste"`` or ``"round"`` (see the module docstring).
            generator: for the uniform noise.
            float_forward: return the float parameters unchanged (the rate is still estimated
                through ``proxy``): a warm-up in which the network trains unquantized.

        Returns:
            ``(overrides, bits)``: name -> dequantized tensor ``q̃ * Δ`` (same shape), and the total
            estimated bits (scalar tensor, differentiable w.r.t. parameters, steps and scales).
        """
        if proxy not in ("noise", "ste", "round"):
            raise ConfigError(f"unknown rounding proxy {proxy!r}")
        ws = [params[n] for n in self.names]
        device = ws[0].device
        step_idx, tensor_idx, numels = self._layout(device, tuple(tuple(w.shape) for w in ws))
        w = torch.cat([t.reshape(-1) for t in ws])
        d = _fp16_step(torch.cat([p.reshape(-1) for p in self.log2_step])).to(device)[step_idx]
        x = w / d
        if proxy == "noise":
            x = x + (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 0.5)
        elif proxy == "ste":
            x = round_ste(x)
        else:
            x = torch.round(x.detach())
        b = torch.exp2(torch.stack(list(self.log2_scale)).clamp(-4.3, 24.0)).to(device)
        total = laplace_bits(x, b[tensor_idx]).sum()
        if float_forward:
            return {n: params[n] for n in self.names}, total
        q = torch.split(x * d, numels)
        return {n: t.view(s.shape) for n, t, s in zip(self.names, q, ws, strict=True)}, total

    @torch.no_grad()
    def export(self, params: dict[str, Tensor], factor: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
        """The integers and steps the decoder gets: per tensor ``(q int32, step float16)``.

        ``q = round(w / Δ)`` with the float16 step, i.e. exactly the values of the ``"ste"`` and
        ``"round"`` forward passes (``factor == 1``); ``step`` is shaped to broadcast against ``q``.
        ``factor`` multiplies every step before the float16 rounding (rate control's final fit).
        """
        res = []
        for i, n in enumerate(self.names):
            w = params[n].detach().float().cpu()
            d = self.step(i).detach().cpu()
            if factor != 1.0:
                d = torch.exp2(self.log2_step[i].detach().cpu().clamp(-24.0, 15.0)) * factor
                d = d.clamp(2.0**-24, 2.0**15).to(torch.float16).float()
            q = torch.round(w / d).to(torch.int64)
            lim = 1 << 20
            if q.numel() and int(q.abs().max()) > lim:
                raise ConfigError(f"{n}: quantized magnitude above {lim}; step size collapsed")
            res.append((q.to(torch.int32).numpy(), d.to(torch.float16).numpy()))
        return res

    @torch.no_grad()
    def scale_steps(self, factor: float) -> None:
        """Multiply every step by ``factor`` (rate control's final fit)."""
        for p in self.log2_step:
            p.add_(math.log2(factor))
