"""The training loop's optimizers: torch's Adam, or SOAP.

SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321) runs Adam
in the eigenbasis of Shampoo's preconditioner. For a weight viewed as a matrix ``G`` of ``[rows, cols]``
(a conv kernel ``[out, in, kh, kw]`` as ``[out, in*kh*kw]``), it keeps running averages of ``G Gᵀ``
(``L``, ``[rows, rows]``) and ``Gᵀ G`` (``R``, ``[cols, cols]``) and their eigenvectors ``QL`` and
``QR``; the gradient is rotated into that basis (``QLᵀ G QR``), Adam's second moment is kept there, and
the normalized first moment is rotated back. The eigenvectors are found once with ``eigh`` and then
refreshed every ``precondition_frequency`` steps by one power-iteration step and a QR decomposition, as
the paper does. A side longer than ``max_precond_dim`` (or of length 1) keeps the identity basis, so a
1-D tensor (biases, norms, the rate model's scalars) gets plain Adam.

Written from the paper's algorithm. Issue #19, at 10 minutes an encode (docs/results/budget/README.md, fifth
to seventh rounds): in every stage, 9-26 % less rate than Adam at sizes s and m on both clips, even at xs,
erratic at λ 0.25 (two of three vtest runs far worse: a fresh SOAP in each rate-aware stage); in pre-training
only (``soap-pretrain``, the rd pipeline's default from size s up), 10-14 % less rate than Adam over the
four-size ladder of both clips, won at s and m (xs: 2-8 % behind Adam on both clips, which is why ``auto``
trains xs with Adam). Its step costs 3.2 / 3.9 / 5.4 / 8.6 ms at sizes xs / s / m / l on one CPU thread
(rotations of ~50 small matrices, one by one) against 0.2 / 0.2 / 0.3 / 0.4 ms for fused Adam (a whole
training step at s: 64 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["OPTIMIZERS", "OPTIMIZER_PLANS", "OPTIMIZER_CHOICES", "AUTO_OPTIMIZER", "SOAP", "make_optimizer",
           "stage_optimizer"]

#: optimizers :func:`make_optimizer` builds
OPTIMIZERS = ("adam", "soap")
#: what a pipeline may be told to train with: one optimizer in every stage, or ``soap-pretrain``: SOAP while
#: pre-training (distortion only, float parameters) and Adam in the rate-aware stages
OPTIMIZER_PLANS = ("adam", "soap", "soap-pretrain")
#: a request for the plan the pipeline picks for the model (the rd pipeline: by size,
#: :func:`hinerv.pipelines.rd.default_optimizer`); resolved before training, never a plan itself
AUTO_OPTIMIZER = "auto"
#: what a user may ask for: ``auto`` or a plan
OPTIMIZER_CHOICES = (AUTO_OPTIMIZER, *OPTIMIZER_PLANS)


def stage_optimizer(plan: str, pretraining: bool) -> str:
    """The optimizer (one of :data:`OPTIMIZERS`) that ``plan`` (one of :data:`OPTIMIZER_PLANS`) uses in a
    stage; ``pretraining``: the stage trains for distortion only, before the rate term.

    Raises:
        ValueError: an unknown plan.
    """
    if plan in OPTIMIZERS:
        return plan
    if plan == "soap-pretrain":
        return "soap" if pretraining else "adam"
    raise ValueError(f"unknown optimizer {plan!r} ({', '.join(OPTIMIZER_PLANS)})")


def make_optimizer(
    name: str,
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float],
    adam_flags: dict[str, bool | None],
) -> torch.optim.Optimizer:
    """A fresh optimizer ``name`` (one of :data:`OPTIMIZERS`) over parameter ``groups``.

    ``adam_flags`` (``fused`` / ``foreach``, the device policy's choice) apply to Adam only.

    Raises:
        ValueError: an unknown name.
    """
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=1e-8, **adam_flags)
    if name == "soap":
        return SOAP(groups, lr=lr, betas=betas, eps=1e-8)
    raise ValueError(f"unknown optimizer {name!r} ({', '.join(OPTIMIZERS)})")


class SOAP(torch.optim.Optimizer):
    """Adam in the eigenbasis of Shampoo's preconditioner (see the module docstring).

    Args:
        params: tensors or parameter groups, as for any torch optimizer.
        lr: learning rate (Adam's scale: SOAP's update has Adam's magnitude).
        betas: Adam's moment decays ``(β1, β2)``.
        eps: Adam's denominator term.
        shampoo_beta: decay of the ``L``/``R`` averages; None: ``β2``.
        precondition_frequency: steps between refreshes of the eigenbases.
        max_precond_dim: longest side that gets a basis; longer ones stay in the identity basis.

    Per-parameter state: ``step`` (int); for a tensor in the identity basis Adam's ``m`` and ``v`` (its
    shape); for a rotated tensor ``mr`` and ``v``, both moments in the rotated basis (the matrix view's
    shape), and ``L``, ``R``, ``QL``, ``QR`` (None for a side in the identity basis). ``mr`` moves to the
    new basis at each refresh, which is the same as keeping the first moment in the parameter's basis and
    rotating it every step (the first release did that, under ``m``; its states still load). The first
    step of a rotated tensor only collects ``L``/``R`` and their bases and does not move it (as the paper).
    Everything is plain tensors, ints and None: ``state_dict`` round-trips through
    ``torch.load(weights_only=True)``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        shampoo_beta: float | None = None,
        precondition_frequency: int = 10,
        max_precond_dim: int = 512,
    ) -> None:
        if not lr >= 0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid betas {betas}")
        if precondition_frequency < 1:
            raise ValueError("precondition_frequency must be >= 1")
        defaults = dict(lr=lr, betas=betas, eps=eps, shampoo_beta=shampoo_beta,
                        precondition_frequency=precondition_frequency,
                        max_precond_dim=max_precond_dim)  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient; returns ``closure()``'s loss when given.

        The element-wise parts run as one ``torch._foreach_*`` call over all of a group's tensors; only the
        rotations are per tensor (a few small matmuls each), so the step's cost is mostly those.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            self._group_step(g)
        return loss

    def _group_step(self, g: dict[str, Any]) -> None:
        b1, b2 = g["betas"]
        sb = g["shampoo_beta"] if g["shampoo_beta"] is not None else b2
        dim = g["max_precond_dim"]
        params, sts, grads = [], [], []  # tensors that move this step, their state, their (rotated) gradient
        for p in g["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            G2 = _matrix(p.grad, dim)
            if not st:
                if _init(st, p.grad, G2, dim, sb):
                    continue  # a rotated tensor's first step only collects L/R and their bases
            elif G2 is not None and "m" in st:  # state of the first release: m in the parameter's basis
                st["mr"] = _rotate(st, st.pop("m").reshape(G2.shape))
            st["step"] += 1
            params.append(p)
            sts.append(st)
            grads.append(p.grad if G2 is None else _rotate(st, G2))
        if not params:
            return
        ms = [st["mr"] if "mr" in st else st["m"] for st in sts]
        vs = [st["v"] for st in sts]
        torch._foreach_mul_(ms, b1)
        torch._foreach_add_(ms, grads, alpha=1 - b1)
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
        denom = torch._foreach_div(vs, [1 - b2 ** st["step"] for st in sts])
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, g["eps"])
        upd = torch._foreach_div(ms, denom)
        for p, st, u in zip(params, sts, upd, strict=True):
            step = -g["lr"] / (1 - b1 ** st["step"])
            if "mr" not in st:  # plain Adam
                p.add_(u, alpha=step)
                continue
            p.add_(_rotate_back(st, u).view(p.shape), alpha=step)
            _accumulate(st, p.grad.reshape(u.shape), sb)
            if st["step"] % g["precondition_frequency"] == 0:
                _refresh_basis(st)


def _init(st: dict[str, Any], G: torch.Tensor, G2: torch.Tensor | None, dim: int, sb: float) -> bool:
    """Fill a fresh state for gradient ``G`` (matrix view ``G2``, None: not rotated); True when the tensor is
    rotated (its first step then only collects ``L``/``R`` and their bases)."""
    st["step"] = 0
    if G2 is None:
        st["m"], st["v"] = torch.zeros_like(G), torch.zeros_like(G)
        return False
    n, k = G2.shape
    st["L"] = G2.new_zeros(n, n) if 1 < n <= dim else None
    st["R"] = G2.new_zeros(k, k) if 1 < k <= dim else None
    _accumulate(st, G2, sb)
    _new_basis(st)
    st["mr"], st["v"] = torch.zeros_like(G2), torch.zeros_like(G2)
    return True


def _matrix(G: torch.Tensor, max_dim: int) -> torch.Tensor | None:
    """``G`` as ``[rows, cols]`` when it has a side to rotate (2+ dims, a side in ``(1, max_dim]``)."""
    if G.dim() < 2:
        return None
    G2 = G.reshape(G.shape[0], -1)
    if any(1 < s <= max_dim for s in G2.shape):
        return G2
    return None


def _accumulate(st: dict[str, Any], G2: torch.Tensor, sb: float) -> None:
    if st["L"] is not None:
        st["L"].mul_(sb).addmm_(G2, G2.T, alpha=1 - sb)
    if st["R"] is not None:
        st["R"].mul_(sb).addmm_(G2.T, G2, alpha=1 - sb)


def _new_basis(st: dict[str, Any]) -> None:
    """Eigenvectors of ``L`` and ``R``, largest eigenvalue first."""
    for k in ("L", "R"):
        P = st[k]
        if P is None:
            st["Q" + k] = None
            continue
        eye = torch.eye(P.shape[0], dtype=P.dtype, device=P.device)
        st["Q" + k] = torch.linalg.eigh(P + 1e-30 * eye)[1].flip(-1)


def _refresh_basis(st: dict[str, Any]) -> None:
    """One power-iteration step and a QR decomposition per side (the paper's cheap refresh); the first
    moment, kept in the rotated basis, moves to the new one."""
    m = _rotate_back(st, st["mr"])
    for k in ("L", "R"):
        if st[k] is not None:
            st["Q" + k] = torch.linalg.qr(st[k] @ st["Q" + k])[0]
    st["mr"] = _rotate(st, m)


def _rotate(st: dict[str, Any], X: torch.Tensor) -> torch.Tensor:
    """``QLᵀ X QR`` (a missing side: identity)."""
    if st["QL"] is not None:
        X = st["QL"].T @ X
    if st["QR"] is not None:
        X = X @ st["QR"]
    return X


def _rotate_back(st: dict[str, Any], X: torch.Tensor) -> torch.Tensor:
    """``QL X QRᵀ``, the inverse of :func:`_rotate`."""
    if st["QL"] is not None:
        X = st["QL"] @ X
    if st["QR"] is not None:
        X = X @ st["QR"].T
    return X
