"""Process-wide torch settings for the ``hinerv`` programs (never applied by the library itself).

The library (``Trainer``, the model, the codec functions) changes no global state, so a program that
imports it keeps its own settings. Entry points (the ``hinerv`` command, its sweep workers and the
``tools/`` benchmarks) call :func:`configure_process` once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

__all__ = [
    "configure_process",
    "keep_freed_memory",
    "keep_freed_memory_for",
    "KEEP_MEMORY_ENV",
    "KEEP_MEMORY_MAX_PIXELS",
]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: allocations below this size come from the heap instead of fresh mmap'ed pages
MMAP_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS after every free.

    A CPU training step allocates and frees the same ~10 MB activation buffers every step. With glibc's
    defaults, large blocks are mmap'ed and freed blocks at the top of the heap are trimmed, so each step
    page-faults (and the kernel zeroes) its whole working set again: about 15k faults and 10 % of the
    time of a 384x288 step. Raising the mmap and trim thresholds keeps those pages mapped; the resident
    size then stays at its peak instead of shrinking between steps. Values computed are unchanged.

    Returns:
        True when the thresholds were set (glibc), False where ``mallopt`` is unavailable.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # older glibc refuses mmap thresholds above 32 MB (HEAP_MAX_SIZE / 2): fall back to that
    ok_mmap = any(mallopt(_M_MMAP_THRESHOLD, v) == 1 for v in (MMAP_THRESHOLD, 32 << 20))
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return ok_mmap and ok_trim


#: environment variable: ``1`` turns :func:`keep_freed_memory` on for the ``hinerv`` programs, ``0`` off
KEEP_MEMORY_ENV = "HINERV_KEEP_FREED_MEMORY"

#: frames up to this size train whole (:func:`hinerv.train.choose_patch_grid`) with small step buffers
KEEP_MEMORY_MAX_PIXELS = 640 * 480


def keep_freed_memory_for(width: int, height: int) -> bool:
    """:func:`keep_freed_memory` when a video's frames are small, unless ``HINERV_KEEP_FREED_MEMORY=0``.

    Measured: ~8-10 % faster 384x288 training steps with it; but a 2-frame 1080p encode (patches,
    micro-batches) peaked at 7.7 GB RSS with it against 3.4 GB without, so large frames keep glibc's
    defaults (``HINERV_KEEP_FREED_MEMORY=1`` forces it on).

    Returns:
        Whether the setting is on.
    """
    env = os.environ.get(KEEP_MEMORY_ENV, "")
    if env == "0" or (env != "1" and width * height > KEEP_MEMORY_MAX_PIXELS):
        return False
    return keep_freed_memory()


def configure_process(
    *, flush_denormal: bool = True, threads: int | None = None, keep_memory: bool | None = None
) -> None:
    """Apply the settings the codec's programs run with.

    Args:
        flush_denormal: flush denormal floats to zero on CPU. The grids start at +-1e-3 and their
            products otherwise fall into slow denormal arithmetic (x86 SSE3 and later; ignored elsewhere).
        threads: intra-op CPU threads (``None`` keeps torch's default).
        keep_memory: :func:`keep_freed_memory` (no page faults on the per-step activation buffers);
            ``None``: only when the environment sets ``HINERV_KEEP_FREED_MEMORY=1``. Off by default: it
            made a 384x288 training step about 8-10 % faster, but the 2-frame 1080p
            ``--preset uvg-hinerv-s`` encode then peaked at 7.7 GB RSS instead of 3.4 GB (freed memory
            is kept, not returned).
    """
    if flush_denormal:
        torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)
    if keep_memory is None:
        keep_memory = os.environ.get(KEEP_MEMORY_ENV, "") == "1"
    if keep_memory:
        keep_freed_memory()
