"""Global magnitude pruning: exact quota, size-normalised score."""

from __future__ import annotations

import torch

from hinerv.prune import magnitude_masks, sparsity


def test_quota_counts_all_params_and_prunes_smallest() -> None:
    g = torch.Generator().manual_seed(1)
    big = torch.randn(100, 100, generator=g)
    small = torch.randn(10, 10, generator=g)
    total = 20_000  # e.g. grids and biases make the model twice the prunable size
    masks = magnitude_masks({"big": big, "small": small}, 0.15, total)
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == int(0.15 * total)
    # size normalisation: the big layer loses proportionally more
    frac_big = float((~masks["big"]).float().mean())
    frac_small = float((~masks["small"]).float().mean())
    assert frac_big > frac_small
    # within a layer, every pruned weight is smaller than every kept one
    b = big.abs()
    assert b[~masks["big"]].max() <= b[masks["big"]].min()
    assert abs(sparsity(masks) - pruned / 10_100) < 1e-9


def test_zero_ratio_keeps_everything() -> None:
    masks = magnitude_masks({"w": torch.randn(5, 5)}, 0.0, 25)
    assert bool(masks["w"].all())


def test_quota_capped_by_candidates() -> None:
    masks = magnitude_masks({"w": torch.randn(4, 4)}, 0.9, 1000)
    assert not bool(masks["w"].any())
