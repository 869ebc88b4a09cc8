"""The training loop's optimizers (hinerv.optim): SOAP's invariants and its state."""

from __future__ import annotations

import io

import pytest
import torch

from hinerv.optim import OPTIMIZER_PLANS, OPTIMIZERS, SOAP, make_optimizer, stage_optimizer


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(6, 5, generator=g)),  # both sides rotated
        torch.nn.Parameter(torch.randn(4, 3, 2, 2, generator=g)),  # a conv kernel: [4, 12]
        torch.nn.Parameter(torch.randn(7, generator=g)),  # 1-D: plain Adam
    ]


def _loss(ps: list[torch.Tensor], k: int) -> torch.Tensor:
    """A smooth, ill-conditioned loss that changes with the step ``k``."""
    g = torch.Generator().manual_seed(100 + k)
    out = torch.zeros(())
    for p in ps:
        t = torch.randn(p.shape, generator=g)
        scale = torch.logspace(-1, 1, p.numel()).reshape(p.shape)
        out = out + (scale * (p - t) ** 2).sum() + 0.1 * (p**4).sum()
    return out


def _run(opt: torch.optim.Optimizer, ps: list[torch.nn.Parameter], steps: int, start: int = 0) -> None:
    for k in range(start, start + steps):
        opt.zero_grad(set_to_none=True)
        _loss(ps, k).backward()
        opt.step()


def test_without_bases_soap_is_adam() -> None:
    """With no side short enough to rotate, every tensor takes Adam's update."""
    a, b = _params(), _params()
    _run(torch.optim.Adam(a, lr=1e-2, betas=(0.9, 0.99), foreach=False), a, 25)
    _run(SOAP(b, lr=1e-2, betas=(0.9, 0.99), max_precond_dim=0), b, 25)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _rotations(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rows, cols = shape[0], int(torch.tensor(shape[1:]).prod())
    u = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))[0]
    return u, v


@pytest.mark.parametrize("make", [lambda ps: SOAP(ps, lr=1e-2), lambda ps: torch.optim.Adam(ps, lr=1e-2)])
def test_soap_is_rotation_equivariant_and_adam_is_not(make) -> None:  # type: ignore[no-untyped-def]
    """Training ``W' = U W Vᵀ`` on ``f(Uᵀ W' V)`` follows ``W``'s path exactly under SOAP (it is Adam in the
    preconditioner's eigenbasis, which rotates with the problem), not under Adam; the basis refreshes
    (every 10 steps) are inside the 25 steps."""
    g = torch.Generator().manual_seed(1)
    target = torch.randn(6, 5, generator=g, dtype=torch.float64)
    scale = torch.logspace(-1, 1, 30, dtype=torch.float64).reshape(6, 5)
    u, v = _rotations((6, 5), 2)
    w = torch.nn.Parameter(torch.randn(6, 5, generator=g, dtype=torch.float64))
    w2 = torch.nn.Parameter((u @ w.detach() @ v.T).clone())

    def f(x: torch.Tensor) -> torch.Tensor:
        return (scale * (x - target) ** 2).sum() + 0.05 * (x**4).sum()

    o1, o2 = make([w]), make([w2])
    for _ in range(25):
        for opt, loss in ((o1, lambda: f(w)), (o2, lambda: f(u.T @ w2 @ v))):
            opt.zero_grad(set_to_none=True)
            loss().backward()
            opt.step()
    moved = (w.detach() - (u.T @ w2.detach() @ v)).abs().max().item()
    if isinstance(o1, SOAP):
        assert moved < 1e-5  # float64 rounding through eigh and QR
    else:
        assert moved > 1e-3


def test_first_step_of_a_rotated_tensor_only_collects_its_statistics() -> None:
    ps = _params()
    before = [p.detach().clone() for p in ps]
    opt = SOAP(ps, lr=1e-2)
    _run(opt, ps, 1)
    assert torch.equal(ps[0], before[0]) and torch.equal(ps[1], before[1])
    assert not torch.equal(ps[2], before[2])  # 1-D: Adam from the first step
    st = opt.state[ps[1]]
    assert st["L"].shape == (4, 4) and st["R"].shape == (12, 12) and st["v"].shape == (4, 12)
    for q in (st["QL"], st["QR"]):
        torch.testing.assert_close(q.T @ q, torch.eye(q.shape[0]), atol=1e-5, rtol=0)
    assert "L" not in opt.state[ps[2]]


def test_a_long_side_keeps_the_identity_basis() -> None:
    p = torch.nn.Parameter(torch.randn(3, 20))
    opt = SOAP([p], lr=1e-2, max_precond_dim=8)
    _run(opt, [p], 2)
    st = opt.state[p]
    assert st["L"] is not None and st["R"] is None and st["QR"] is None


def test_state_round_trips_through_a_weights_only_load() -> None:
    """A checkpoint of the optimizer resumes to the same parameters, bit for bit (trainer checkpoints
    are read with ``weights_only``)."""
    a, b = _params(), _params()
    oa, ob = SOAP(a, lr=1e-2), SOAP(b, lr=1e-2)
    _run(oa, a, 13)
    _run(ob, b, 13)
    buf = io.BytesIO()
    torch.save({"opt": ob.state_dict(), "p": [p.detach() for p in b]}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    c = [torch.nn.Parameter(t.clone()) for t in saved["p"]]
    oc = SOAP(c, lr=1e-2)
    oc.load_state_dict(saved["opt"])
    _run(oa, a, 12, start=13)
    _run(oc, c, 12, start=13)
    for p, q in zip(a, c, strict=True):
        assert torch.equal(p, q)


def _reference_soap(ps: list[torch.nn.Parameter], steps: int, lr: float, b1: float, b2: float,
                    freq: int, start: int = 0, states: list[dict] | None = None) -> list[dict]:  # fmt: skip
    """SOAP written out per tensor, as the paper's algorithm reads (first moment in the parameter's basis,
    rotated every step): what the vectorised step must equal. Returns the states (the first release's
    layout: ``m`` in the parameter's basis)."""
    sts: list[dict] = states if states is not None else [{} for _ in ps]
    for k in range(start, start + steps):
        for p in ps:
            p.grad = None
        _loss(ps, k).backward()
        with torch.no_grad():
            for p, st in zip(ps, sts, strict=True):
                G = p.grad
                if G.dim() < 2:  # plain Adam
                    st.setdefault("step", 0)
                    st.setdefault("m", torch.zeros_like(G))
                    st.setdefault("v", torch.zeros_like(G))
                    st["step"] += 1
                    t = st["step"]
                    st["m"].mul_(b1).add_(G, alpha=1 - b1)
                    st["v"].mul_(b2).addcmul_(G, G, value=1 - b2)
                    p.addcdiv_(st["m"], (st["v"] / (1 - b2**t)).sqrt() + 1e-8, value=-lr / (1 - b1**t))
                    continue
                G2 = G.reshape(G.shape[0], -1)
                if not st:
                    st.update(step=0, m=torch.zeros_like(G), v=torch.zeros_like(G2), L=G2 @ G2.T * (1 - b2),
                              R=G2.T @ G2 * (1 - b2))  # fmt: skip
                    st["QL"] = torch.linalg.eigh(st["L"])[1].flip(-1)
                    st["QR"] = torch.linalg.eigh(st["R"])[1].flip(-1)
                    continue
                st["step"] += 1
                t = st["step"]
                st["m"].mul_(b1).add_(G, alpha=1 - b1)
                Gr = st["QL"].T @ G2 @ st["QR"]
                Mr = st["QL"].T @ st["m"].reshape(G2.shape) @ st["QR"]
                st["v"].mul_(b2).addcmul_(Gr, Gr, value=1 - b2)
                N = st["QL"] @ (Mr / ((st["v"] / (1 - b2**t)).sqrt() + 1e-8)) @ st["QR"].T
                p.add_(N.reshape(p.shape), alpha=-lr / (1 - b1**t))
                st["L"].mul_(b2).add_(G2 @ G2.T, alpha=1 - b2)
                st["R"].mul_(b2).add_(G2.T @ G2, alpha=1 - b2)
                if t % freq == 0:
                    st["QL"] = torch.linalg.qr(st["L"] @ st["QL"])[0]
                    st["QR"] = torch.linalg.qr(st["R"] @ st["QR"])[0]
    return sts


def test_the_vectorised_step_is_the_papers_algorithm_and_loads_the_first_releases_state() -> None:
    """The step keeps the first moment in the rotated basis and runs Adam's arithmetic over all tensors at
    once; it follows the per-tensor algorithm (up to float rounding), across basis refreshes, and a state
    saved in the first release's layout (``m`` in the parameter's basis) resumes on the same path."""
    a, b = _params(), _params()
    _reference_soap(a, 23, 1e-2, 0.9, 0.99, freq=4)
    opt = SOAP(b, lr=1e-2, betas=(0.9, 0.99), precondition_frequency=4)
    _run(opt, b, 23)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    c, d = _params(), _params()
    old = _reference_soap(c, 9, 1e-2, 0.9, 0.99, freq=4)
    state = {i: {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in st.items()}
             for i, st in enumerate(old)}  # fmt: skip
    with torch.no_grad():
        for p, q in zip(c, d, strict=True):
            q.copy_(p)
    od = SOAP(d, lr=1e-2, betas=(0.9, 0.99), precondition_frequency=4)
    od.load_state_dict({"state": state, "param_groups": od.state_dict()["param_groups"]})
    _reference_soap(c, 14, 1e-2, 0.9, 0.99, freq=4, start=9, states=old)
    _run(od, d, 14, start=9)
    for p, q in zip(c, d, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_soap_lowers_an_ill_conditioned_loss_faster_than_adam() -> None:
    """The reason it exists: on a least-squares problem whose bad scaling is not aligned with the
    coordinates (which Adam's per-coordinate scaling cannot undo), SOAP gets closer to the optimum than
    Adam in the same steps at the same learning rate."""
    g = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]
    a_mat = torch.randn(64, 16, generator=g) @ q @ torch.diag(torch.logspace(-1.5, 0.5, 16)) @ q.T
    y = torch.randn(64, 12, generator=g)
    best = ((a_mat @ torch.linalg.lstsq(a_mat, y).solution - y) ** 2).mean().item()
    excess = {}
    for name in OPTIMIZERS:
        w = torch.nn.Parameter(torch.zeros(16, 12))
        opt = make_optimizer(name, [{"params": [w]}], lr=3e-2, betas=(0.9, 0.99), adam_flags={})
        for _ in range(150):
            opt.zero_grad(set_to_none=True)
            ((a_mat @ w - y) ** 2).mean().backward()
            opt.step()
        excess[name] = ((a_mat @ w - y) ** 2).mean().item() - best
    assert excess["soap"] < 0.5 * excess["adam"], excess


def test_make_optimizer_knows_its_names() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2, 2))]}]
    flags = {"fused": None, "foreach": None}
    adam = make_optimizer("adam", groups, lr=1e-3, betas=(0.9, 0.999), adam_flags=flags)
    assert isinstance(adam, torch.optim.Adam)
    assert isinstance(make_optimizer("soap", groups, lr=1e-3, betas=(0.9, 0.999), adam_flags={}), SOAP)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", groups, lr=1e-3, betas=(0.9, 0.999), adam_flags={})


def test_a_plan_names_an_optimizer_for_every_stage() -> None:
    assert [stage_optimizer(p, True) for p in OPTIMIZER_PLANS] == ["adam", "soap", "soap"]
    assert [stage_optimizer(p, False) for p in OPTIMIZER_PLANS] == ["adam", "soap", "adam"]
    assert set(OPTIMIZERS) <= set(OPTIMIZER_PLANS)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        stage_optimizer("sgd", True)
