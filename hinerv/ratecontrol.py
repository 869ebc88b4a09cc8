"""Rate control for the ``rd`` pipeline: land a file at a target size.

Two mechanisms, used together by :mod:`hinerv.codec`:

* during training, :func:`hinerv.pipelines.rd.adapt_lambda` moves λ after every epoch towards the target
  (the network learns to spend the bits well);
* after training, :func:`fit_step_factor` scales every learned step by one common factor, found by
  bisection on the real coded size, so the file lands within a tolerance of the target.

Pure logic: the caller supplies a function that returns the coded size for a step factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["fit_step_factor"]


def fit_step_factor(
    size_at: Callable[[float], int],
    target_bytes: float,
    *,
    tolerance: float = 0.03,
    max_octaves: float = 4.0,
    iterations: int = 12,
) -> tuple[float, int]:
    """Find ``f`` with ``size_at(f)`` within ``tolerance`` of ``target_bytes`` (bisection in log2 f).

    Larger steps give smaller files, so ``size_at`` is (nearly) decreasing in ``f``.

    Args:
        size_at: coded size in bytes when every step is multiplied by ``f``.
        target_bytes: the wanted size.
        tolerance: relative error that ends the search early.
        max_octaves: search ``f`` in ``[2**-max_octaves, 2**max_octaves]``.
        iterations: bisection steps at most.

    Returns:
        ``(f, size)`` of the best factor tried (closest to the target).
    """
    best = (1.0, size_at(1.0))
    if abs(best[1] - target_bytes) <= tolerance * target_bytes:
        return best
    lo, hi = -max_octaves, max_octaves  # log2 f
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f = math.exp2(mid)
        n = size_at(f)
        if abs(n - target_bytes) < abs(best[1] - target_bytes):
            best = (f, n)
        if abs(n - target_bytes) <= tolerance * target_bytes:
            break
        if n > target_bytes:
            lo = mid  # too big: coarser steps
        else:
            hi = mid
    return best
