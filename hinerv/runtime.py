"""Process-wide torch settings for the ``hinerv`` programs (never applied by the library itself).

The library (``Trainer``, the model, the codec functions) changes no global state, so a program that
imports it keeps its own settings. Entry points (the ``hinerv`` command, its sweep workers and the
``tools/`` benchmarks) call :func:`configure_process` once at start-up.
"""

from __future__ import annotations

import torch

__all__ = ["configure_process"]


def configure_process(*, flush_denormal: bool = True, threads: int | None = None) -> None:
    """Apply the settings the codec's programs run with.

    Args:
        flush_denormal: flush denormal floats to zero on CPU. The grids start at +-1e-3 and their
            products otherwise fall into slow denormal arithmetic (x86 SSE3 and later; ignored elsewhere).
        threads: intra-op CPU threads (``None`` keeps torch's default).
    """
    if flush_denormal:
        torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)
