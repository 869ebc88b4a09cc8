"""Fused CPU kernels (the ConvNeXt block, LayerNorm, GELU, up-sampling, the head, the SSIM loss terms),
compiled once per machine on first use.

``csrc/fused_cpu.cpp`` holds float32 kernels, each one pass over its data where the PyTorch
composition takes several:

- ``layer_norm_forward(x, eps) -> (y, rstd)`` and ``layer_norm_backward(gy, y, rstd) -> gx``:
  LayerNorm over the last axis without affine parameters. The backward needs only the output and
  ``rstd``, so the input need not be kept for it.
- ``gelu_forward(x, with_derivative) -> (y[, d])``: the exact (erf) GELU and, for training, its
  derivative, so that the backward is one multiplication.
- ``upsample_add(x, s, table) -> y``: bilinear x s up-sampling of NHWC frames plus a stage's s x s
  encoding table.
- ``ssim_forward(x, y, win, c1, c2) -> (s, cs, maps)`` and ``ssim_backward(x, y, win, maps, g_s, g_cs)
  -> gx``: the per-plane mean SSIM and contrast-structure terms of one MS-SSIM scale and their
  gradient with respect to ``x`` (``y`` constant: the training loss's target).

and, in builds for CPUs with AVX-512 (:func:`avx512_kernels`), register-tiled ones:

- ``mlp_forward(z, w1, w2, residual, mask, normalize, eps, save)`` and ``mlp_backward(g, w1, w2, xn,
  rstd, y, d, normalize) -> (gz, gw1, gw2)``: a ConvNeXt block's ``[residual +] [mask *]
  fc2(GELU(fc1(LN(z))))`` over blocks of 48 rows whose hidden activations stay in cache, and all of its
  gradients in one pass;
- ``dwconv_forward(x, w)`` and ``dwconv_weight_grad(x, g, k)``: the depth-wise 'same' conv of NHWC
  frames (its input gradient is the conv with the turned kernel);
- ``head_forward(y, w, b)``: the RGB head, ``sigmoid(w y + b)`` written as ``[B, 3, H, W]`` planes.

Users: the ``portable`` and ``avx512`` tiers of the kernel registry :mod:`hinerv.kernels`, which
chooses between them and the PyTorch compositions for :mod:`hinerv.model` and the training loss in
:mod:`hinerv.metrics`. They are built with ``torch.utils.cpp_extension`` (a C++ compiler and
ninja; about 30 s) into torch's extension cache, under a name that hashes the source, the flags, the
torch version and installation, the ninja binary and the CPU, so a cache shared between machines never
hands one CPU another's ``-march=native`` build, and two environments never rebuild each other's.
The build holds an OS file lock on its folder (:func:`build_directory`), so a build killed half-way
(a stopped encode) cannot leave torch's own lock file to hang every later process. Where they cannot be
built, or with ``HINERV_FUSED_CPU=0``, :func:`kernels` returns None and the
registry uses the PyTorch compositions, which compute the same functions (equal within float
rounding). Reductions run in a fixed order: results do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["FUSED_ENV", "build_directory", "build_error", "enabled", "kernels", "loaded", "avx512_kernels"]

#: environment variable: ``0`` turns the fused kernels off (the PyTorch compositions are used)
FUSED_ENV = "HINERV_FUSED_CPU"

_SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_cpu.cpp"
_CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math")
_LDFLAGS = ("-fopenmp",)

_lock = threading.Lock()
_module: ModuleType | None = None
_tried = False
_error: str | None = None


def enabled() -> bool:
    """Whether the environment allows the fused kernels (``HINERV_FUSED_CPU`` is not ``0``)."""
    return os.environ.get(FUSED_ENV, "") != "0"


def _cpu_fingerprint() -> str:
    """What ``-march=native`` depends on: the CPU model and feature flags where Linux tells them."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.machine() + platform.processor()
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return platform.machine() + "\n".join(sorted(set(keep)))


def _build_name() -> str:
    """The extension's name: a hash of everything its build depends on.

    Besides the source, flags, torch version and CPU, the torch installation (its headers and libraries
    are on the compile and link lines) and the ninja binary found on PATH: two environments that shared a
    build folder would otherwise rebuild it in turn (seen with the system ninja 1.11 and the venv's
    1.13, whose build logs invalidate each other's).
    """
    h = hashlib.sha256()
    parts = (
        _SOURCE.read_bytes(),
        " ".join(_CFLAGS + _LDFLAGS).encode(),
        torch.__version__.encode(),
        str(Path(torch.__file__).resolve().parent).encode(),
        str(shutil.which("ninja")).encode(),
        _cpu_fingerprint().encode(),
    )
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return f"hinerv_fused_cpu_{h.hexdigest()[:16]}"


def build_directory(name: str | None = None) -> Path:
    """Where the extension ``name`` (default: this build's) is built and cached: torch's default place
    (``$TORCH_EXTENSIONS_DIR/<name>``, else ``<torch's build root>/py<version>_<accelerator>/<name>``)."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        acc = "cpu"
        if torch.version.hip is not None:
            acc = "rocm" + torch.version.hip.replace(".", "")
        elif torch.version.cuda is not None:
            acc = "cu" + torch.version.cuda.replace(".", "")
        py = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        root = os.path.join(get_default_build_root(), f"{py}_{acc}")
    return Path(root) / (name or _build_name())


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an OS file lock on ``folder`` (released by the OS when the process dies, unlike torch's
    ``lock`` file), then clear torch's lock file: with the OS lock held no other hinerv process is building
    here, so a ``lock`` left there is what a killed build left behind, and torch would wait on it forever.
    Without ``fcntl`` (not POSIX) it only yields."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / "hinerv.flock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            (folder / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def kernels() -> ModuleType | None:
    """The compiled kernel module, building it on the first call; None when disabled or unavailable.

    The first call in a process may take ~30 s (compiling) or ~1 s (loading a cached build); later
    calls return at once. A failed build is not retried in the same process (:func:`build_error`
    says why).
    """
    global _module, _tried, _error
    if not enabled():
        return None
    if _tried:
        return _module
    with _lock:
        if not _tried:
            try:
                from torch.utils.cpp_extension import load

                name = _build_name()
                folder = build_directory(name)
                with _exclusive(folder):  # a killed build must not hang every later one
                    _module = load(
                        name=name,
                        sources=[str(_SOURCE)],
                        extra_cflags=list(_CFLAGS),  # copies: load() appends to its lists
                        extra_ldflags=list(_LDFLAGS),
                        build_directory=str(folder),
                        verbose=False,
                    )
            except Exception as exc:  # no compiler, no ninja, a failed compile: fall back
                lines = str(exc).strip().splitlines()
                _module, _error = None, f"{type(exc).__name__}: {lines[-1] if lines else ''}"
            _tried = True
    return _module


def avx512_kernels() -> ModuleType | None:
    """:func:`kernels` where they include the AVX-512 ones (the block MLP, depth-wise conv and head
    kernels: builds for CPUs with AVX-512), else None."""
    k = kernels()
    return k if k is not None and k.avx512_available() else None


def loaded() -> bool:
    """Whether :func:`kernels` has loaded the module in this process (False before the first call and
    after a failed build; either way a later call returns at once once one was tried)."""
    return _tried and _module is not None


def build_error() -> str | None:
    """Why the last :func:`kernels` call found no module (None when it has one or was not called)."""
    return _error if _tried and _module is None else None
