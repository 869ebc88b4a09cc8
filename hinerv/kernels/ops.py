"""hinerv's fused CPU kernels (:mod:`hinerv.fused`) as torch custom ops, namespace ``hinerv``.

Each kernel of ``csrc/fused_cpu.cpp`` is called from exactly one Python function here, and that function
is registered with :func:`torch.library.custom_op` (``device_types="cpu"``), with a fake (meta) function
that gives the output shapes and dtypes without running it, and, where the op is differentiated, with
:meth:`register_autograd` whose backward calls the backward kernel as a custom op too (so a compiled
backward, traced by AOT autograd, holds it as one opaque node as well):

====================================  ==============================================================
op                                    kernel
====================================  ==============================================================
``hinerv::layer_norm``                LayerNorm over the last axis, no affine (eps :data:`LN_EPS`)
``hinerv::layer_norm_backward``       its input gradient from the output and ``rstd``
``hinerv::gelu``                      exact (erf) GELU, inference
``hinerv::gelu_train``                GELU and GELU'(x) (the backward is one multiplication)
``hinerv::upsample_add``              bilinear x s up-sampling of NHWC frames plus an s x s table
``hinerv::ssim_terms``                per-plane mean SSIM and cs of one MS-SSIM scale, y constant
``hinerv::ssim_terms_backward``       their gradient with respect to x
``hinerv::dwconv``                    depth-wise 'same' conv of NHWC frames (AVX-512 builds)
``hinerv::dwconv_weight_grad``        its weight gradient (AVX-512 builds)
``hinerv::block_mlp``                 a ConvNeXt block's MLP, inference (AVX-512 builds)
``hinerv::block_mlp_train``           the same, keeping what the backward needs (AVX-512 builds)
``hinerv::block_mlp_backward``        its gradients at z, fc1 and fc2 (AVX-512 builds)
``hinerv::head``                      the RGB head ``sigmoid(w x + b)``, inference (AVX-512 builds)
====================================  ==============================================================

The kernels need float32 CPU tensors (contiguity is arranged here) and a build that has them: the
``portable`` and ``avx512`` tiers (:mod:`hinerv.kernels.portable`, :mod:`hinerv.kernels.avx512`) check
that before calling the public functions below (:func:`layer_norm`, :func:`gelu`, ...), which choose:

- under ``torch.compile`` the custom op, opaque to dynamo and inductor (no graph break, no tracing into
  C++);
- eagerly with a gradient, an :class:`torch.autograd.Function` made of the same pieces (the op's own
  Python function as its forward, the same ``setup_context`` and the same backward formula, its backward
  kernels called directly);
- eagerly without a gradient, the op's Python function itself.

So the math has one implementation and the eager results are those of the custom op bit for bit; eager
calls skip only the dispatcher, which costs ~25 us a differentiated call (measured on one thread: 36 us
through the op against 11 us through the autograd.Function, for a 16-element GELU), and the model makes
hundreds a step. Registering the ops does not build the kernels: that happens on the first call.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from hinerv import fused
from hinerv.kernels import LN_EPS

__all__ = [
    "OP_NAMES",
    "block_mlp",
    "dwconv",
    "gelu",
    "head",
    "layer_norm",
    "ssim_terms",
    "upsample_add",
]

_Ctx = Any  # torch.autograd.function.FunctionCtx and custom_op's context both


def _k() -> ModuleType:
    k = fused.kernels()
    if k is None:
        raise RuntimeError(f"hinerv's fused CPU kernels are not available ({fused.build_error()})")
    return k


def _op(name: str, fn: Callable[..., Any]) -> Any:
    """Register ``fn`` as the CPU custom op ``hinerv::name`` (its schema from the annotations)."""
    return torch.library.custom_op(f"hinerv::{name}", fn, mutates_args=(), device_types="cpu")


def _non_differentiable(ctx: _Ctx, *tensors: Tensor) -> None:
    """The saved-for-backward outputs: no gradient flows into them, None (not zeros) reaches backward."""
    ctx.mark_non_differentiable(*tensors)
    ctx.set_materialize_grads(False)


# ---- LayerNorm -----------------------------------------------------------------------------------------


def _layer_norm(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(y, rstd)``: ``x`` ``[..., C]`` normalised over the last axis (no affine, eps :data:`LN_EPS`),
    ``[..., C]``, and ``1 / sqrt(var + eps)``, ``[...]``."""
    y, rstd = _k().layer_norm_forward(x.contiguous(), LN_EPS)
    return y, rstd


def _layer_norm_backward(gy: Tensor, y: Tensor, rstd: Tensor) -> Tensor:
    """The input gradient ``[..., C]`` of :func:`_layer_norm` from ``gy`` and its outputs ``y``, ``rstd``."""
    return _k().layer_norm_backward(gy.contiguous(), y.contiguous(), rstd.contiguous())  # type: ignore[no-any-return]


layer_norm_op = _op("layer_norm", _layer_norm)
layer_norm_backward_op = _op("layer_norm_backward", _layer_norm_backward)


@layer_norm_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), x.new_empty(x.shape[:-1])


@layer_norm_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(gy: Tensor, y: Tensor, rstd: Tensor) -> Tensor:
    return y.new_empty(y.shape)


def _layer_norm_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(*output)  # the output and rstd, not the input
    _non_differentiable(ctx, output[1])


def _layer_norm_grad(kern: Any, ctx: _Ctx, gy: Tensor | None, _g_rstd: None) -> Tensor | None:
    y, rstd = ctx.saved_tensors
    return None if gy is None else kern.layer_norm_backward(gy, y, rstd)


# ---- GELU ----------------------------------------------------------------------------------------------


def _gelu(x: Tensor) -> Tensor:
    """The exact (erf) GELU of ``x`` (any shape)."""
    return _k().gelu_forward(x.contiguous(), False)[0]  # type: ignore[no-any-return]


def _gelu_train(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(GELU(x), GELU'(x))``, both of ``x``'s shape."""
    y, d = _k().gelu_forward(x.contiguous(), True)
    return y, d


gelu_op = _op("gelu", _gelu)
gelu_train_op = _op("gelu_train", _gelu_train)


@gelu_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor) -> Tensor:
    return x.new_empty(x.shape)


@gelu_train_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), x.new_empty(x.shape)


def _gelu_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(output[1])  # GELU'(x), not x
    _non_differentiable(ctx, output[1])


def _gelu_grad(kern: Any, ctx: _Ctx, gy: Tensor | None, _g_d: None) -> Tensor | None:
    (d,) = ctx.saved_tensors
    return None if gy is None else gy * d


# ---- up-sampling plus the encoding table ---------------------------------------------------------------


def _upsample_add(x: Tensor, scale: int, table: Tensor) -> Tensor:
    """Bilinear x ``scale`` up-sampling (align_corners=False) of NHWC ``x`` ``[N, H, W, C]`` plus the
    ``[N, s, s, C]`` sub-pixel ``table``: ``[N, s H, s W, C]``."""
    return _k().upsample_add(x.contiguous(), scale, table.contiguous())  # type: ignore[no-any-return]


upsample_add_op = _op("upsample_add", _upsample_add)


@upsample_add_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, scale: int, table: Tensor) -> Tensor:
    n, h, w, c = x.shape
    return x.new_empty((n, h * scale, w * scale, c))


def _upsample_add_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.scale = inputs[1]


def _upsample_add_grad(kern: Any, ctx: _Ctx, g: Tensor | None) -> tuple[Tensor | None, ...]:
    """ATen's bilinear backward for ``x`` and a band sum for the table (no kernel of its own)."""
    if g is None:
        return None, None, None
    s = ctx.scale
    n, oh, ow, c = g.shape
    h, w = oh // s, ow // s  # from the gradient's shape: symbolic sizes of one trace under dynamic shapes
    gx = None
    if ctx.needs_input_grad[0]:
        gx = torch.ops.aten.upsample_bilinear2d_backward.default(
            g.permute(0, 3, 1, 2), [oh, ow], [n, c, h, w], False, None, None
        ).permute(0, 2, 3, 1)
    gt = None
    if ctx.needs_input_grad[2]:
        # over the row bands (one contiguous outer-axis sum), then over the cells of a band
        gt = g.reshape(n, oh // s, s * ow * c).sum(1).view(n, s, ow // s, s, c).sum(2)
    return gx, None, gt


# ---- SSIM terms ----------------------------------------------------------------------------------------

#: the moment maps ssim_forward keeps for its backward (``[_SSIM_SAVED, N, C, h, w]``)
_SSIM_SAVED = 6


def _ssim_terms(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(s, cs, maps)``: the per-plane mean SSIM and contrast-structure terms ``[N, C]`` of ``x``
    against ``y`` (``[N, C, H, W]``) under the ``[k]`` window ``win``, and the ``[6, N, C, h, w]`` maps
    (``h = H - k + 1``, ``w = W - k + 1``) the backward needs."""
    s, cs, maps = _k().ssim_forward(x.contiguous(), y.contiguous(), win.contiguous(), c1, c2)
    return s.clone(), cs.clone(), maps  # s and cs are views of one tensor: ops' outputs may not alias


def _ssim_terms_backward(
    x: Tensor, y: Tensor, win: Tensor, maps: Tensor, g_s: Tensor, g_cs: Tensor
) -> Tensor:
    """The gradient ``[N, C, H, W]`` with respect to ``x`` of ``sum(g_s * s + g_cs * cs)`` (``[N, C]``
    each) for :func:`_ssim_terms`'s ``s``, ``cs`` and its ``maps``."""
    return _k().ssim_backward(  # type: ignore[no-any-return]
        x.contiguous(), y.contiguous(), win.contiguous(), maps.contiguous(), g_s, g_cs
    )


ssim_terms_op = _op("ssim_terms", _ssim_terms)
ssim_terms_backward_op = _op("ssim_terms_backward", _ssim_terms_backward)


@ssim_terms_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor, Tensor]:
    n, c, h, w = x.shape
    k = win.numel()
    return x.new_empty((n, c)), x.new_empty((n, c)), x.new_empty((_SSIM_SAVED, n, c, h - k + 1, w - k + 1))


@ssim_terms_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, y: Tensor, win: Tensor, maps: Tensor, g_s: Tensor, g_cs: Tensor) -> Tensor:
    return x.new_empty(x.shape)


def _ssim_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor, Tensor]) -> None:
    x, y, win, _, _ = inputs
    ctx.save_for_backward(x, y, win, output[2])
    _non_differentiable(ctx, output[2])


def _ssim_grad(
    kern: Any, ctx: _Ctx, g_s: Tensor | None, g_cs: Tensor | None, _g_maps: None
) -> tuple[Tensor | None, ...]:
    """Only ``x``'s gradient: ``y`` (the target) and the window are constants."""
    x, y, win, maps = ctx.saved_tensors
    if g_s is None and g_cs is None:
        return None, None, None, None, None
    g_s = torch.zeros_like(g_cs) if g_s is None else g_s
    g_cs = torch.zeros_like(g_s) if g_cs is None else g_cs
    return kern.ssim_terms_backward(x, y, win, maps, g_s, g_cs), None, None, None, None


# ---- depth-wise conv (AVX-512 builds) ------------------------------------------------------------------


def _dwconv(x: Tensor, weight: Tensor) -> Tensor:
    """Depth-wise 'same' conv (zero padding) of NHWC ``x`` ``[N, H, W, C]`` by ``weight`` ``[C, 1, k, k]``
    (odd k): ``[N, H, W, C]``."""
    return _k().dwconv_forward(x.contiguous(), weight.contiguous())  # type: ignore[no-any-return]


def _dwconv_weight_grad(x: Tensor, g: Tensor, k: int) -> Tensor:
    """The weight gradient ``[C, 1, k, k]`` of :func:`_dwconv` from its input ``x`` and output gradient
    ``g`` (``[N, H, W, C]`` both), summed per image row and the rows added in order."""
    return _k().dwconv_weight_grad(x.contiguous(), g.contiguous(), k)  # type: ignore[no-any-return]


dwconv_op = _op("dwconv", _dwconv)
dwconv_weight_grad_op = _op("dwconv_weight_grad", _dwconv_weight_grad)


@dwconv_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, weight: Tensor) -> Tensor:
    return x.new_empty(x.shape)


@dwconv_weight_grad_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, g: Tensor, k: int) -> Tensor:
    return x.new_empty((x.shape[-1], 1, k, k))


def _dwconv_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _dwconv_grad(kern: Any, ctx: _Ctx, g: Tensor | None) -> tuple[Tensor | None, ...]:
    """The input gradient is the conv of ``g`` with the kernel turned by 180 degrees ('same', odd k)."""
    x, weight = ctx.saved_tensors
    if g is None:
        return None, None
    gx = kern.dwconv(g, weight.flip(-1, -2)) if ctx.needs_input_grad[0] else None
    gw = kern.dwconv_weight_grad(x, g, weight.shape[-1]) if ctx.needs_input_grad[1] else None
    return gx, gw


# ---- the ConvNeXt block's MLP (AVX-512 builds) ---------------------------------------------------------


def _block_mlp(z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None) -> Tensor:
    """``[residual +] [mask *] fc2(GELU(fc1(LN(z))))``: ``z`` ``[..., K]``, ``w1`` ``[Hd, K]``, ``w2``
    ``[C, Hd]``, ``residual`` ``[..., C]`` or None, ``mask`` float32 ``[M]`` (one per row of ``z``) or
    None; returns ``[..., C]``."""
    r = residual.contiguous() if residual is not None else None
    m = mask.contiguous() if mask is not None else None
    out = _k().mlp_forward(z.contiguous(), w1.contiguous(), w2.contiguous(), r, m, True, LN_EPS, False)
    return out[0]  # type: ignore[no-any-return]


def _block_mlp_train(
    z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`_block_mlp` and what its backward needs: ``(out, xn, rstd, y, d)``, the LayerNorm output
    ``[..., K]`` and ``rstd`` ``[...]``, the GELU output and GELU'(fc1's output) ``[..., Hd]``."""
    r = residual.contiguous() if residual is not None else None
    m = mask.contiguous() if mask is not None else None
    out, xn, rstd, y, d = _k().mlp_forward(
        z.contiguous(), w1.contiguous(), w2.contiguous(), r, m, True, LN_EPS, True
    )
    return out, xn, rstd, y, d


def _block_mlp_backward(
    g: Tensor, w1: Tensor, w2: Tensor, xn: Tensor, rstd: Tensor, y: Tensor, d: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(gz, gw1, gw2)``: the gradients at ``z`` ``[..., K]``, fc1 ``[Hd, K]`` and fc2 ``[C, Hd]`` from the
    output gradient ``g`` ``[..., C]`` (already times the mask) and :func:`_block_mlp_train`'s saved
    outputs; one kernel pass over row blocks, the weight gradients summed in a fixed order."""
    gz, gw1, gw2 = _k().mlp_backward(g.contiguous(), w1.contiguous(), w2.contiguous(), xn, rstd, y, d, True)
    return gz, gw1, gw2


block_mlp_op = _op("block_mlp", _block_mlp)
block_mlp_train_op = _op("block_mlp_train", _block_mlp_train)
block_mlp_backward_op = _op("block_mlp_backward", _block_mlp_backward)


def _mlp_out(z: Tensor, w2: Tensor) -> Tensor:
    return z.new_empty((*z.shape[:-1], w2.shape[0]))


@block_mlp_op.register_fake  # type: ignore[untyped-decorator]
def _(z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None) -> Tensor:
    return _mlp_out(z, w2)


@block_mlp_train_op.register_fake  # type: ignore[untyped-decorator]
def _(
    z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    hidden = (*z.shape[:-1], w1.shape[0])
    out, xn, rstd = _mlp_out(z, w2), z.new_empty(z.shape), z.new_empty(z.shape[:-1])
    return out, xn, rstd, z.new_empty(hidden), z.new_empty(hidden)


@block_mlp_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(
    g: Tensor, w1: Tensor, w2: Tensor, xn: Tensor, rstd: Tensor, y: Tensor, d: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    return xn.new_empty(xn.shape), w1.new_empty(w1.shape), w2.new_empty(w2.shape)


def _block_mlp_setup(ctx: _Ctx, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    _, w1, w2, residual, mask = inputs
    _, xn, rstd, y, d = output
    ctx.save_for_backward(w1, w2, xn, rstd, y, d, mask)
    ctx.residual = residual is not None
    _non_differentiable(ctx, xn, rstd, y, d)


def _block_mlp_grad(kern: Any, ctx: _Ctx, g: Tensor | None, *_saved: None) -> tuple[Tensor | None, ...]:
    w1, w2, xn, rstd, y, d, mask = ctx.saved_tensors
    if g is None:
        return None, None, None, None, None
    gm = g if mask is None else g * mask.view(*g.shape[:-1], 1)
    gz, gw1, gw2 = kern.block_mlp_backward(gm, w1, w2, xn, rstd, y, d)
    return gz, gw1, gw2, (g if ctx.residual else None), None


# ---- the RGB head (AVX-512 builds) ---------------------------------------------------------------------


def _head(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``sigmoid(w x + b)`` of NHWC ``x`` ``[N, H, W, C]`` (``w`` ``[3, C]``, ``b`` ``[3]``) as
    ``[N, 3, H, W]`` planes; an inference kernel (no gradient)."""
    return _k().head_forward(x.contiguous(), w.contiguous(), b.contiguous())  # type: ignore[no-any-return]


head_op = _op("head", _head)


@head_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    n, h, wd, _ = x.shape
    return x.new_empty((n, 3, h, wd))


# ---- autograd: one backward formula per op, on the ops (compiled) or on the kernels (eager) -------------

#: the backward kernels the formulas call when compiled (custom ops) and eagerly (the ops' functions)
_OPS = SimpleNamespace(
    layer_norm_backward=layer_norm_backward_op,
    ssim_terms_backward=ssim_terms_backward_op,
    dwconv=dwconv_op,
    dwconv_weight_grad=dwconv_weight_grad_op,
    block_mlp_backward=block_mlp_backward_op,
)
_RAW = SimpleNamespace(
    layer_norm_backward=_layer_norm_backward,
    ssim_terms_backward=_ssim_terms_backward,
    dwconv=_dwconv,
    dwconv_weight_grad=_dwconv_weight_grad,
    block_mlp_backward=_block_mlp_backward,
)


def _eager_function(
    name: str, forward: Callable[..., Any], setup: Callable[..., None], grad: Callable[..., Any]
) -> type[torch.autograd.Function]:
    """The eager form of a differentiated op: ``forward`` (the op's function), ``setup`` and the formula
    ``grad`` on the kernels themselves."""

    def backward(ctx: _Ctx, *grads: Tensor | None) -> Any:
        return grad(_RAW, ctx, *grads)

    body = {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup),
        "backward": staticmethod(backward),
        "__doc__": f"The eager, differentiated ``hinerv::{forward.__name__.lstrip('_')}``.",
    }
    return type(name, (torch.autograd.Function,), body)


_DIFFERENTIATED = (
    (layer_norm_op, "_FusedLayerNormFn", _layer_norm, _layer_norm_setup, _layer_norm_grad),
    (gelu_train_op, "_FusedGELUFn", _gelu_train, _gelu_setup, _gelu_grad),
    (upsample_add_op, "_UpsampleAddFn", _upsample_add, _upsample_add_setup, _upsample_add_grad),
    (ssim_terms_op, "_FusedSSIMTerms", _ssim_terms, _ssim_setup, _ssim_grad),
    (dwconv_op, "_DWConvFn", _dwconv, _dwconv_setup, _dwconv_grad),
    (block_mlp_train_op, "_FusedMLPFn", _block_mlp_train, _block_mlp_setup, _block_mlp_grad),
)
_EAGER: dict[str, type[torch.autograd.Function]] = {}
for _opdef, _cls, _fwd, _setup, _formula in _DIFFERENTIATED:

    def _compiled_backward(ctx: _Ctx, *grads: Tensor | None, _formula: Callable[..., Any] = _formula) -> Any:
        return _formula(_OPS, ctx, *grads)

    _opdef.register_autograd(_compiled_backward, setup_context=_setup)
    _EAGER[_cls] = _eager_function(_cls, _fwd, _setup, _formula)
del _opdef, _cls, _fwd, _setup, _formula

_FusedLayerNormFn = _EAGER["_FusedLayerNormFn"]
_FusedGELUFn = _EAGER["_FusedGELUFn"]
_UpsampleAddFn = _EAGER["_UpsampleAddFn"]
_FusedSSIMTerms = _EAGER["_FusedSSIMTerms"]
_DWConvFn = _EAGER["_DWConvFn"]
_FusedMLPFn = _EAGER["_FusedMLPFn"]

#: every op registered here, as ``torch.ops.hinerv.<name>``
OP_NAMES = (
    "layer_norm",
    "layer_norm_backward",
    "gelu",
    "gelu_train",
    "upsample_add",
    "ssim_terms",
    "ssim_terms_backward",
    "dwconv",
    "dwconv_weight_grad",
    "block_mlp",
    "block_mlp_train",
    "block_mlp_backward",
    "head",
)


# ---- the public functions: the op when compiling, else its eager form ----------------------------------


def _grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def layer_norm(x: Tensor) -> Tensor:
    """LayerNorm of float32 CPU ``x`` ``[..., C]`` over the last axis (no affine, eps :data:`LN_EPS`):
    ``[..., C]`` contiguous; the gradient keeps the output and ``rstd``, not the input."""
    if torch.compiler.is_compiling():
        return layer_norm_op(x)[0]  # type: ignore[no-any-return]
    if _grad(x):
        return _FusedLayerNormFn.apply(x)[0]  # type: ignore[no-any-return]
    return _layer_norm(x)[0]


def gelu(x: Tensor) -> Tensor:
    """The exact (erf) GELU of float32 CPU ``x`` (any shape); with a gradient the forward also writes
    GELU'(x), which the backward multiplies by (instead of keeping x and re-evaluating erf and exp)."""
    if _grad(x):
        fn = gelu_train_op if torch.compiler.is_compiling() else _FusedGELUFn.apply
        return fn(x)[0]  # type: ignore[no-any-return]
    return gelu_op(x) if torch.compiler.is_compiling() else _gelu(x)  # type: ignore[no-any-return]


def upsample_add(x: Tensor, scale: int, table: Tensor) -> Tensor:
    """Bilinear x ``scale`` up-sampling of float32 CPU NHWC ``x`` ``[N, H, W, C]`` plus the ``[N, s, s, C]``
    ``table``: ``[N, s H, s W, C]`` in one pass; the backward is ATen's bilinear backward and a band sum."""
    if torch.compiler.is_compiling():
        return upsample_add_op(x, scale, table)  # type: ignore[no-any-return]
    if _grad(x, table):
        return _UpsampleAddFn.apply(x, scale, table)  # type: ignore[no-any-return]
    return _upsample_add(x, scale, table)


def ssim_terms(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """Per-plane mean SSIM and contrast-structure terms ``[N, C]`` of float32 CPU ``x`` against the
    constant ``y`` (``[N, C, H, W]``), window ``win`` ``[k]``; differentiable in ``x`` only."""
    if torch.compiler.is_compiling():
        s, cs, _ = ssim_terms_op(x, y, win, c1, c2)
    else:
        s, cs, _ = _FusedSSIMTerms.apply(x, y, win, c1, c2)
    return s, cs


def dwconv(x: Tensor, weight: Tensor) -> Tensor:
    """Depth-wise 'same' conv of float32 CPU NHWC ``x`` ``[N, H, W, C]`` by ``weight`` ``[C, 1, k, k]`` (odd
    k): ``[N, H, W, C]``; the same sums in the same order as oneDNN's."""
    if torch.compiler.is_compiling():
        return dwconv_op(x, weight)  # type: ignore[no-any-return]
    if _grad(x, weight):
        return _DWConvFn.apply(x, weight)  # type: ignore[no-any-return]
    return _dwconv(x, weight)


def block_mlp(z: Tensor, w1: Tensor, w2: Tensor, residual: Tensor | None, mask: Tensor | None) -> Tensor:
    """A ConvNeXt block's ``[residual +] [mask *] fc2(GELU(fc1(LN(z))))`` on float32 CPU tensors, over
    blocks of 48 rows whose hidden activations stay in cache.

    Args:
        z: ``[N, H, W, K]``, the depth-wise conv's output.
        w1: ``[Hd, K]``; w2: ``[C, Hd]``.
        residual: ``[N, H, W, C]`` or None.
        mask: ``[N, H, W, 1]`` in-frame mask (bool or float) or None.

    Returns:
        ``[N, H, W, C]`` contiguous; with a gradient the forward keeps the LayerNorm output and ``rstd``,
        the GELU output and GELU'(fc1's output), and the backward is one kernel pass.
    """
    m = mask.reshape(-1).to(torch.float32) if mask is not None else None
    if _grad(z, w1, w2, residual):
        fn = block_mlp_train_op if torch.compiler.is_compiling() else _FusedMLPFn.apply
        return fn(z, w1, w2, residual, m)[0]  # type: ignore[no-any-return]
    if torch.compiler.is_compiling():
        return block_mlp_op(z, w1, w2, residual, m)  # type: ignore[no-any-return]
    return _block_mlp(z, w1, w2, residual, m)


def head(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The RGB head for inference, ``sigmoid(w x + b)`` of float32 CPU ``x`` ``[N, H, W, C]`` written as
    ``[N, 3, H, W]`` planes in one pass (``w`` ``[3, C]``, ``b`` ``[3]``); no gradient."""
    return head_op(x, w, b) if torch.compiler.is_compiling() else _head(x, w, b)  # type: ignore[no-any-return]
