"""SOAP (hinerv.optim) on CUDA: its state lives on the parameters' device, its steps follow the CPU's,
and a CUDA checkpoint of it resumes on the CPU."""

from __future__ import annotations

import io

import torch

from hinerv.optim import SOAP


def _steps(p: torch.nn.Parameter, opt: SOAP, n: int, start: int = 0) -> None:
    for k in range(start, start + n):
        g = torch.Generator().manual_seed(k)
        target = torch.randn(p.shape, generator=g).to(p.device)
        scale = torch.linspace(0.1, 10, p.numel(), device=p.device).reshape(p.shape)
        opt.zero_grad(set_to_none=True)
        ((p - target) ** 2 * scale).sum().backward()
        opt.step()


def test_soap_on_cuda_follows_the_cpu_and_resumes_there() -> None:
    w0 = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    cpu, cuda = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone().cuda())
    oc, og = SOAP([cpu], lr=1e-2), SOAP([cuda], lr=1e-2)
    _steps(cpu, oc, 23)
    _steps(cuda, og, 23)
    st = og.state[cuda]
    assert all(st[k].is_cuda for k in ("mr", "v", "L", "R", "QL", "QR"))
    torch.testing.assert_close(cuda.detach().cpu(), cpu.detach(), rtol=1e-3, atol=1e-4)
    buf = io.BytesIO()
    torch.save(og.state_dict(), buf)
    buf.seek(0)
    back = torch.nn.Parameter(cuda.detach().cpu().clone())
    ob = SOAP([back], lr=1e-2)
    ob.load_state_dict(torch.load(buf, weights_only=True, map_location="cpu"))
    assert not ob.state[back]["QL"].is_cuda
    _steps(back, ob, 5, start=23)
    _steps(cpu, oc, 5, start=23)
    torch.testing.assert_close(back.detach(), cpu.detach(), rtol=1e-3, atol=1e-4)
