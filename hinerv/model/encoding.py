"""HiNeRV's learned encodings: the base feature grid and the per-stage temporal local grids.

Both are multi-level tables interpolated along time only (linear, align_corners=False, clamped),
and only for the frames in the batch (the reference resamples the whole video every step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hinerv.model.layers import lerp_frames

__all__ = ["BaseGrid", "LocalGrid", "GRID_INIT"]

#: grids are initialised uniform(-GRID_INIT, GRID_INIT) (reference ``--*-grid-init-scale``).
GRID_INIT = 1e-3


class BaseGrid(nn.Module):
    """The base feature grid feeding the stem (reference §3.2).

    Level l is a ``[Tg_l * H0 * W0, C_l]`` table in row-major (t, h, w) order. For frame t each
    level is linearly resampled from Tg_l to T slices and the levels are concatenated on channels.

    Args:
        frames: T, the video length.
        height, width: base size H0 x W0.
        level_frames: Tg_l per level.
        level_channels: C_l per level.
    """

    def __init__(
        self,
        frames: int,
        height: int,
        width: int,
        level_frames: tuple[int, ...],
        level_channels: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.frames, self.height, self.width = frames, height, width
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(tl * height * width, cl))
            for tl, cl in zip(level_frames, level_channels, strict=True)
        )
        self.level_frames = level_frames
        self.level_channels = level_channels
        for g in self.grids:
            nn.init.uniform_(g, -GRID_INIT, GRID_INIT)

    def forward(self, t: Tensor) -> Tensor:
        """Base feature maps of the given frames.

        Args:
            t: ``[N]`` int64 frame indices.

        Returns:
            ``[N, H0, W0, C_b]`` float, C_b = sum of the level channels.
        """
        hw = self.height * self.width
        outs = []
        for g, tl, cl in zip(self.grids, self.level_frames, self.level_channels, strict=True):
            rows = lerp_frames(g.view(tl, hw * cl), t, self.frames)
            outs.append(rows.view(-1, self.height, self.width, cl))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)


class LocalGrid(nn.Module):
    """A stage's hierarchical temporal local grid plus its Linear (reference §3.4b).

    Level j is a ``[T_j, s * s * C_j]`` table, second axis in (kh, kw, c) order. For frame t the
    levels are resampled to T slices, concatenated into an ``[s, s, sum C_j]`` table and mapped by
    the Linear to the stage width. Applying the Linear to the s x s table (instead of every pixel,
    then selecting ``(y mod s, x mod s)``) gives the same result at a fraction of the cost.

    Args:
        frames: T.
        scale: the stage's up-sampling factor s.
        level_frames: T_j per level.
        level_channels: C_j per level.
        out_channels: the stage's input width C1.
    """

    def __init__(
        self,
        frames: int,
        scale: int,
        level_frames: tuple[int, ...],
        level_channels: tuple[int, ...],
        out_channels: int,
    ) -> None:
        super().__init__()
        self.frames, self.scale = frames, scale
        self.level_frames, self.level_channels = level_frames, level_channels
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(tj, scale * scale * cj))
            for tj, cj in zip(level_frames, level_channels, strict=True)
        )
        self.linear = nn.Linear(sum(level_channels), out_channels)
        for g in self.grids:
            nn.init.uniform_(g, -GRID_INIT, GRID_INIT)
        nn.init.zeros_(self.linear.bias)
        # inference: the tables of every frame, and the exact tensors (and their versions) they came from
        self._memo: tuple[tuple[tuple[Tensor, int], ...], Tensor] | None = None

    def forward(self, t: Tensor) -> Tensor:
        """Per-frame sub-pixel offset tables.

        Without a gradient, the tables of all T frames are computed once and rows are picked from them
        (a frame's own computation is a few dozen tiny operations, a noticeable part of decoding small
        frames). The memo is keyed on the parameter tensors themselves (held, so their ids stay theirs)
        and their in-place version counters: an optimizer step, a ``load_state_dict`` or a
        ``functional_call`` override computes it anew.

        Args:
            t: ``[N]`` int64 frame indices.

        Returns:
            ``[N, s, s, C1]``: entry (r, c) is added to every output pixel with
            ``(y mod s, x mod s) == (r, c)``.
        """
        if torch.compiler.is_compiling():  # traced: no memo (its identity and version checks break graphs)
            return self._tables(t)
        params = (*self.grids, self.linear.weight, self.linear.bias)
        if (torch.is_grad_enabled() and any(p.requires_grad for p in params)) or any(
            p.is_inference()
            for p in params  # no version counter
        ):
            return self._tables(t)
        key = tuple((p, p._version) for p in params)
        memo = self._memo
        if (
            memo is None
            or len(memo[0]) != len(key)
            or any(p is not q or v != w for (p, v), (q, w) in zip(memo[0], key, strict=True))
        ):
            every = torch.arange(self.frames, device=self.linear.weight.device)
            memo = (key, self._tables(every))
            self._memo = memo
        return memo[1].index_select(0, t.to(memo[1].device))

    def _tables(self, t: Tensor) -> Tensor:
        s = self.scale
        feats = [
            lerp_frames(g, t, self.frames).view(-1, s, s, cj)
            for g, cj in zip(self.grids, self.level_channels, strict=True)
        ]
        f = feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)
        return F.linear(f, self.linear.weight, self.linear.bias)
