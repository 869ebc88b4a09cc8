"""Global magnitude pruning of the network weights (hinerv-reference.md §6).

The rule, stated explicitly (pitfall 9):

* candidates: the weights of the stem, every depth-wise conv, fc1, fc2 and the head (not biases, not the
  grids or the encoder linears);
* quota: ``k = floor(ratio * N)`` where ``N`` counts **all** model parameters (as the reference; with
  ratio 0.15 this removes ~18.5 % of the candidate weights);
* score: ``|w| / sqrt(n_l)`` with ``n_l`` the number of weights in layer ``l``, pooled over layers; the
  ``k`` lowest scores are pruned (ties broken by position, so the count is exact).

Masks are boolean tensors (True = kept). They are applied multiplicatively in every forward after pruning
and travel in the bitstream, where pruned positions cost almost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["magnitude_masks", "sparsity"]


def magnitude_masks(
    weights: Mapping[str, torch.Tensor], ratio: float, total_params: int
) -> dict[str, torch.Tensor]:
    """Compute keep-masks for one-shot global magnitude pruning.

    Args:
        weights: prunable weight tensors by name.
        ratio: fraction of ``total_params`` to remove (0 disables pruning: all-True masks).
        total_params: parameter count of the whole model (grids and biases included).

    Returns:
        name -> bool tensor of the weight's shape (on the weight's device), True where kept.
    """
    names = list(weights)
    k = int(ratio * total_params)
    cand = sum(weights[n].numel() for n in names)
    k = max(0, min(k, cand))
    masks = {n: torch.ones_like(weights[n], dtype=torch.bool) for n in names}
    if k == 0:
        return masks
    scores = torch.cat(
        [(weights[n].detach().abs().float() / (weights[n].numel() ** 0.5 + 1e-6)).flatten() for n in names]
    )
    idx = torch.topk(scores.cpu(), k, largest=False, sorted=False).indices
    flat = torch.ones(cand, dtype=torch.bool)
    flat[idx] = False
    off = 0
    for n in names:
        numel = weights[n].numel()
        masks[n] = flat[off : off + numel].view_as(weights[n]).to(weights[n].device)
        off += numel
    return masks


def sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of pruned (False) entries over all masks."""
    tot = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return 0.0 if tot == 0 else 1.0 - kept / tot
