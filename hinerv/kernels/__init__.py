"""One registry of the CPU kernel tiers: which implementation of each op runs, chosen in one place.

Tiers, lowest first (:data:`TIERS`):

- ``torch``: PyTorch / ATen / oneDNN compositions (:mod:`hinerv.model.layers`, :mod:`hinerv.metrics`);
  always available, on every device and dtype.
- ``portable``: the C++ kernels of :mod:`hinerv.fused` that build on any x86/ARM compiler
  (:mod:`hinerv.kernels.portable`).
- ``avx512``: the register-tiled kernels of builds for CPUs with AVX-512 (:mod:`hinerv.kernels.avx512`).

Each op (:data:`OPS`) has its implementations registered once, in the table at the end of this module.
A call ``op(*args)`` of a call-site handle (:func:`op`) tries the op's implementations from the highest
tier allowed down: a ``portable`` or ``avx512`` implementation returns None where it does not apply
(not float32 CPU tensors, :func:`fused_applies`; its kernels not built on this machine), the ``torch``
one always computes. With no forcing every tier is allowed, so each op runs on the best kernel that
applies, as the call sites chose by hand before this registry.

Forcing caps the tier (each op then runs its best implementation at or below it): the context manager
:func:`force`, else the environment variable ``HINERV_KERNELS`` (``torch``, ``portable`` or ``avx512``).
``HINERV_FUSED_CPU=0`` (:mod:`hinerv.fused`) leaves only ``torch`` available. Forcing a tier this machine
does not have is a :class:`KernelError`. A handle resolves its implementation list once per forcing
state, so a hot op pays one context-variable read, one environment read and a short loop per call.

Under ``torch.compile`` (:func:`torch.compiler.is_compiling`) an op whose first argument is a float32 CPU
tensor runs the same choice of tier, with the fused kernels as the custom ops of :mod:`hinerv.kernels.ops`
(``torch.ops.hinerv.*``: opaque nodes to dynamo and inductor, with fake functions and their backward
kernels as ops too). Every other op (CUDA, other dtypes, the ``torch`` tier) runs its ``torch``
implementation, and those take their plain ATen form (``F.layer_norm``, ``F.linear``, ``F.gelu``,
``F.conv2d``...), with no C++ kernel or hand-written autograd.Function: inductor fuses what CUDA runs,
and the graph CUDA compiles has no custom op. Either way dynamo traces the model without graph breaks:
the tier allowed and the availability of the kernels are constants to the compiler, read when a function
is traced (:func:`built`; a later :func:`force` does not change code already compiled). Eager calls are
unchanged.

Block configurations are checked against every registered implementation, available here or not
(:func:`require`), so a model accepted on one machine is accepted, and computes the same function, on all.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import torch

from hinerv import fused
from hinerv.errors import ConfigError

__all__ = [
    "KERNELS_ENV",
    "LN_EPS",
    "OPS",
    "TIERS",
    "KernelError",
    "Op",
    "active_tier",
    "available",
    "built",
    "cpu_float32",
    "force",
    "fused_applies",
    "implementation",
    "op",
    "register",
    "require",
]

#: the tiers, lowest first
TIERS = ("torch", "portable", "avx512")
#: environment variable forcing a tier (the :func:`force` context manager takes precedence)
KERNELS_ENV = "HINERV_KERNELS"
#: LayerNorm epsilon of the model (reference ``layernorm-no-affine``), shared by every tier
LN_EPS = 1e-6

_RANK = {t: i for i, t in enumerate(TIERS)}
_forced: ContextVar[str | None] = ContextVar("hinerv_kernels_forced", default=None)


class KernelError(ConfigError):
    """A forced kernel tier that is unknown or not available on this machine, or a block configuration
    a registered kernel does not support."""


def fused_applies(device: torch.device | str) -> bool:
    """Whether hinerv's C++ kernels may run for tensors on ``device``: CPU only (CUDA and other devices
    always take the ``torch`` tier). The per-call form is :func:`cpu_float32`."""
    return torch.device(device).type == "cpu"


def cpu_float32(*tensors: torch.Tensor | None) -> bool:
    """Whether every given tensor (None skipped) is a float32 tensor on a device where the C++ kernels
    apply (:func:`fused_applies`: the CPU); the condition every ``portable`` and ``avx512`` kernel needs."""
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def available(tier: str) -> bool:
    """Whether ``tier`` can run here. ``portable`` and ``avx512`` load (first call: build) the kernels
    of :mod:`hinerv.fused`; both are unavailable with ``HINERV_FUSED_CPU=0``."""
    if tier == "torch":
        return True
    if tier == "portable":
        return fused.kernels() is not None
    if tier == "avx512":
        return fused.avx512_kernels() is not None
    raise KernelError(f"unknown kernel tier {tier!r} (expected one of {', '.join(TIERS)})")


@torch.compiler.assume_constant_result
def built(tier: str) -> bool:
    """:func:`available`, and to ``torch.compile`` a constant of the trace (its first trace builds the
    kernels, outside the graph; code compiled earlier does not see a later ``HINERV_FUSED_CPU``)."""
    return available(tier)


def _check(tier: str, source: str) -> str:
    """``tier`` if it is known and available, else a :class:`KernelError` naming ``source``."""
    if tier not in _RANK:
        raise KernelError(f"{source}: unknown kernel tier {tier!r} (expected one of {', '.join(TIERS)})")
    if not available(tier):
        why = fused.build_error() or (f"{fused.FUSED_ENV}=0" if not fused.enabled() else "no AVX-512 build")
        raise KernelError(f"{source}: kernel tier {tier!r} is not available on this machine ({why})")
    return tier


def _forced_tier() -> str | None:
    """The tier forced by :func:`force` or ``HINERV_KERNELS`` (unchecked), None when nothing is forced."""
    return _forced.get() or os.environ.get(KERNELS_ENV) or None


def active_tier() -> str:
    """The highest tier ops may use now: the forced one (checked), else the best one available here."""
    tier = _forced_tier()
    if tier is not None:
        return _check(tier, KERNELS_ENV if _forced.get() is None else "force()")
    return next(t for t in reversed(TIERS) if available(t))


@contextlib.contextmanager
def force(tier: str) -> Iterator[None]:
    """Within the block, every op uses its best implementation at or below ``tier`` (``torch``,
    ``portable`` or ``avx512``); raises :class:`KernelError` at once if ``tier`` is not available."""
    token = _forced.set(_check(tier, "force()"))
    try:
        yield
    finally:
        _forced.reset(token)


class _Impl:
    """One registered implementation: ``target`` (``"module:function"``, imported on first use) and the
    configuration predicate ``supports(**config) -> bool`` (None: every configuration)."""

    __slots__ = ("op", "tier", "target", "supports", "_fn")

    def __init__(self, op: str, tier: str, target: str, supports: Callable[..., bool] | None) -> None:
        self.op, self.tier, self.target, self.supports = op, tier, target, supports
        self._fn: Callable[..., Any] | None = None

    def fn(self) -> Callable[..., Any]:
        if self._fn is None:
            module, _, name = self.target.partition(":")
            # sys.modules first: dynamo traces that lookup, but not import_module (a graph break)
            obj: Any = sys.modules.get(module) or importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
            self._fn = obj
        return self._fn


_REGISTRY: dict[str, list[_Impl]] = {}


def register(name: str, tier: str, target: str, supports: Callable[..., bool] | None = None) -> None:
    """Register ``target`` (``"module:function"``) as the ``tier`` implementation of op ``name``.

    A ``torch`` implementation computes for any arguments; the others return None where they do not
    apply (:func:`cpu_float32`, their kernels unavailable), so that the next tier down runs.
    """
    if tier not in _RANK:
        raise ValueError(f"unknown tier {tier!r}")
    impls = _REGISTRY.setdefault(name, [])
    if any(i.tier == tier for i in impls):
        raise ValueError(f"op {name!r} already has a {tier!r} implementation")
    impls.append(_Impl(name, tier, target, supports))
    impls.sort(key=lambda i: -_RANK[i.tier])  # highest tier first


def implementation(name: str, tier: str) -> Callable[..., Any]:
    """The ``tier`` implementation of op ``name`` itself (tests; KeyError when there is none)."""
    for impl in _REGISTRY[name]:
        if impl.tier == tier:
            return impl.fn()
    raise KeyError(f"op {name!r} has no {tier!r} implementation")


def require(name: str, **config: Any) -> None:
    """Refuse (:class:`KernelError`) a configuration of op ``name`` that one of its registered
    implementations does not support, whichever tier would run here."""
    for impl in _REGISTRY[name]:
        if impl.supports is not None and not impl.supports(**config):
            shown = ", ".join(f"{k}={v}" for k, v in config.items())
            raise KernelError(f"{name}: the {impl.tier} kernel does not support {shown}")


class Op:
    """A call-site handle of one op: ``handle(*args)`` runs the best implementation allowed that applies.

    The list of allowed implementations is resolved once per forcing state (the :func:`force` tier and
    ``HINERV_KERNELS``), not on every call.
    """

    __slots__ = ("name", "_key", "_fns", "_plain")

    def __init__(self, name: str) -> None:
        if name not in _REGISTRY:
            raise KeyError(f"no kernel op {name!r}")
        self.name = name
        self._key: tuple[str | None, str | None] | None = None
        self._fns: tuple[Callable[..., Any], ...] = ()
        self._plain: Callable[..., Any] | None = None

    def plain(self) -> Callable[..., Any]:
        """The ``torch`` implementation of this op (imported on first use)."""
        if self._plain is None:
            for impl in _REGISTRY[self.name]:
                if impl.tier == "torch":
                    self._plain = impl.fn()
        assert self._plain is not None, f"op {self.name!r} has no torch implementation"
        return self._plain

    def _resolve(self, key: tuple[str | None, str | None]) -> tuple[Callable[..., Any], ...]:
        top = active_tier() if key != (None, None) else TIERS[-1]  # unforced: the impls check availability
        fns = tuple(i.fn() for i in _REGISTRY[self.name] if _RANK[i.tier] <= _RANK[top])
        self._key, self._fns = key, fns
        return fns

    def __call__(self, *args: Any) -> Any:
        if torch.compiler.is_compiling():
            return self._traced(*args)
        key = (_forced.get(), os.environ.get(KERNELS_ENV) or None)
        fns = self._fns if key == self._key else self._resolve(key)
        for fn in fns:
            out = fn(*args)
            if out is not None:
                return out
        raise AssertionError(f"op {self.name!r}: no implementation computed")  # the torch one always does

    def _traced(self, *args: Any) -> Any:
        """The call as dynamo traces it. On a float32 CPU first argument the best implementation allowed
        that applies, the fused ones through their custom ops (:mod:`hinerv.kernels.ops`); otherwise (CUDA,
        other dtypes: the kernels are never built for them) the ``torch`` implementation, whose functions
        take their plain ATen form when compiling, so inductor sees and fuses every op."""
        x = args[0]
        if x.device.type == "cpu" and x.dtype == torch.float32:
            top = _traced_top()
            for impl in _REGISTRY[self.name]:
                if impl.tier != "torch" and _RANK[impl.tier] <= _RANK[top]:
                    out = impl.fn()(*args)
                    if out is not None:
                        return out
        return self.plain()(*args)


@torch.compiler.assume_constant_result
def _traced_top() -> str:
    """:func:`active_tier`, and to ``torch.compile`` a constant of the trace: the forcing in effect when a
    function is traced holds for its compiled code (dynamo cannot trace the context variable's read).
    Imports every implementation first, so that the trace only reads them (an import is a graph break)."""
    for impls in _REGISTRY.values():
        for impl in impls:
            impl.fn()
    return active_tier()


def op(name: str) -> Op:
    """A call-site handle for op ``name`` (create it once per module, call it per use)."""
    return Op(name)


# ---- supports(config) predicates: what the kernels compute, checked where a block is built ---------------


def _odd_square_kernel(kernel: int) -> bool:
    """'same' padding by ``kernel // 2`` is symmetric only for odd kernels (the AVX-512 conv has no other)."""
    return kernel >= 1 and kernel % 2 == 1


def _nonempty_mlp(c_in: int, hidden: int, c_out: int) -> bool:
    return min(c_in, hidden, c_out) >= 1


# ---- the registration table: one line per implementation -------------------------------------------------
# op              tier        implementation                                     supports(config)
register("layer_norm", "torch", "hinerv.model.layers:layer_norm_torch")
register("layer_norm", "portable", "hinerv.kernels.portable:layer_norm")
register("gelu", "torch", "torch.nn.functional:gelu")
register("gelu", "portable", "hinerv.kernels.portable:gelu")
register("upsample_add", "torch", "hinerv.model.layers:upsample_add_torch")
register("upsample_add", "portable", "hinerv.kernels.portable:upsample_add")
register("ssim_terms", "torch", "hinerv.metrics:ssim_terms_torch")
register("ssim_terms", "portable", "hinerv.kernels.portable:ssim_terms")
register("dwconv", "torch", "hinerv.model.layers:dwconv_torch", _odd_square_kernel)
register("dwconv", "avx512", "hinerv.kernels.avx512:dwconv", _odd_square_kernel)
register("block_mlp", "torch", "hinerv.model.layers:block_mlp_torch", _nonempty_mlp)
register("block_mlp", "avx512", "hinerv.kernels.avx512:block_mlp", _nonempty_mlp)
register("head", "torch", "hinerv.model.hinerv:head_torch")
register("head", "avx512", "hinerv.kernels.avx512:head")

#: the registered ops
OPS = tuple(_REGISTRY)
