"""Training precision (issue #17 item 4): ``DevicePolicy.precision``, ``EncodeOptions.precision``, tested
on the CPU (CUDA's defaults with ``torch.cuda.is_available`` faked; nothing runs on a GPU)."""

from __future__ import annotations

import warnings

import pytest
import torch

from hinerv.codec import EncodeOptions
from hinerv.device import PRECISIONS, DevicePolicy
from hinerv.errors import ConfigError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--device cuda`` resolves (only the name; no tensor goes to a GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def test_default_precision_follows_the_device(fake_cuda: None) -> None:
    assert DevicePolicy.resolve("cpu").precision == "fp32"
    assert DevicePolicy.resolve("cuda").precision == "fp16"  # fp16 autocast stays the CUDA default
    assert DevicePolicy.resolve("cuda", "bf16").precision == "bf16"
    assert DevicePolicy.resolve("cuda:1", "fp32").precision == "fp32"
    # the former boolean: amp=False is fp32, amp=True the device default; precision wins over it
    assert DevicePolicy.resolve("cuda", amp=False).precision == "fp32"
    assert DevicePolicy.resolve("cpu", amp=True).precision == "fp32"
    assert DevicePolicy.resolve("cuda", "bf16", amp=False).precision == "bf16"
    assert DevicePolicy(CUDA, amp=True).precision == "fp16" and DevicePolicy(CUDA).precision == "fp32"


def test_the_cpu_trains_in_fp32_only_and_unknown_precisions_are_refused(fake_cuda: None) -> None:
    for p in ("fp16", "bf16"):
        with pytest.raises(ConfigError, match=f"--precision {p} needs a CUDA device"):
            DevicePolicy.resolve("cpu", p)
    for bad in ("fp64", "FP16", "half", ""):
        with pytest.raises(ConfigError, match="unknown precision .*use fp32, fp16, bf16"):
            DevicePolicy.resolve("cuda", bad)
    with pytest.raises(ConfigError, match="unknown precision"):
        DevicePolicy(CPU, "int8")
    with pytest.raises(ConfigError, match="contradicts"):
        DevicePolicy(CUDA, "fp32", amp=True)


def test_bf16_is_refused_on_a_gpu_without_bfloat16(fake_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(ConfigError, match="bf16 needs a GPU with bfloat16 arithmetic"):
        DevicePolicy.resolve("cuda", "bf16")
    assert DevicePolicy.resolve("cuda", "fp16").precision == "fp16"


@pytest.mark.parametrize(
    "precision,amp,scaled,nbytes",
    [("fp32", False, False, 4), ("fp16", True, True, 2), ("bf16", True, False, 2)],
)
def test_what_each_precision_means(precision: str, amp: bool, scaled: bool, nbytes: int) -> None:
    with warnings.catch_warnings():  # GradScaler("cuda") on a machine without CUDA disables itself
        warnings.simplefilter("ignore")
        gpu = DevicePolicy(CUDA, precision)
        assert gpu.amp is amp and gpu.activation_dtype_bytes() == nbytes
        if torch.cuda.is_available():
            assert gpu.grad_scaler().is_enabled() is scaled
    cpu = DevicePolicy(CPU, precision)  # constructed directly: the CPU runs the same autocast/scaler rules
    assert cpu.grad_scaler().is_enabled() is scaled  # bf16 needs no loss scaling
    a = torch.randn(8, 8)
    with cpu.autocast():
        y = a @ a
    assert y.dtype == {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def test_encode_options_carry_the_precision_into_the_plan(fake_cuda: None) -> None:
    def plan(**kw: object) -> str:  # max_memory given: the plan asks no (faked) GPU for its memory
        return EncodeOptions(max_memory=1 << 30, **kw).resolve().policy.precision  # type: ignore[arg-type]

    assert plan(device="cpu") == "fp32" and plan(device="cuda") == "fp16"
    assert plan(device="cuda", precision="bf16") == "bf16" and plan(device="cuda", amp=False) == "fp32"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        plan(device="cpu", precision="bf16")
    with pytest.raises(ConfigError, match="unknown precision"):
        plan(device="cuda", precision="tf32")


def test_reconstruction_runs_in_float32_whatever_the_training_precision() -> None:
    """Decoding (here the trainer's reconstruction, as the verification decode) is float32: a bf16 trainer
    reconstructs exactly what the network computes outside autocast."""
    from test_train import TINY, _frames

    from hinerv.model import HiNeRV
    from hinerv.pipelines.paper import PaperRecipe
    from hinerv.train import Schedule, Trainer

    sched = Schedule(name="t", main_epochs=1, warmup_epochs=0, prune_epochs=0, qat_epochs=0)
    torch.manual_seed(0)
    tr = Trainer(HiNeRV(TINY, 4, 64, 64), _frames(), 255, sched, recipe=PaperRecipe(bits=6),
                 device=DevicePolicy(CPU, "bf16"))  # fmt: skip
    tr.run_epoch()
    t = torch.tensor([0, 2])
    out = tr.reconstruct(t)
    idx = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], 1)
    with torch.no_grad():
        ref = tr.model(idx, (1, 1))
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    assert set(PRECISIONS) == {"fp32", "fp16", "bf16"}


def test_bench_hinerv_takes_a_precision() -> None:
    from hinerv.bench.codecs import HiNeRVCodec
    from hinerv.bench.specs import CodecOptions, build_codecs

    c = HiNeRVCodec(sizes=("xxs",), schedule="tiny", precision="bf16", optimizer="adam")
    assert c.name == "hinerv-rd-blend-tiny-bf16" and "training precision bf16" in c.description()
    assert c.encode_options(c.points()[0], "cuda").precision == "bf16"
    # default precision: no suffix
    assert HiNeRVCodec(sizes=("xxs",), schedule="tiny", optimizer="adam").name == "hinerv-rd-blend-tiny"
    (b,) = build_codecs(["hinerv"], CodecOptions(sizes=("xxs",), schedule="tiny", precision="fp32"))
    assert b.precision == "fp32" and b.name.endswith("-fp32")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown precision"):
        HiNeRVCodec(sizes=("xxs",), precision="fp8")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        HiNeRVCodec(sizes=("xxs",), device="cpu", precision="fp16")
