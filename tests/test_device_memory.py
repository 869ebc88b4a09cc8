"""The default activation budget follows the device (issue #17 item 1), tested without a GPU."""

from __future__ import annotations

import warnings

import torch

from hinerv.device import DEFAULT_MAX_MEMORY, GPU_MEMORY_SHARE, DevicePolicy
from hinerv.model import HiNeRV, load_preset, padded_size
from hinerv.step import StepRunner

GiB = 1 << 30


def test_cpu_keeps_the_fixed_budget() -> None:
    assert DevicePolicy(torch.device("cpu")).default_max_memory() == DEFAULT_MAX_MEMORY
    assert DevicePolicy(torch.device("cpu")).activation_dtype_bytes() == 4


def test_cuda_budget_is_a_share_of_the_free_memory() -> None:
    gpu = DevicePolicy(torch.device("cuda"), amp=True)
    assert gpu.default_max_memory(free_bytes=140 * GiB) == int(140 * GiB * GPU_MEMORY_SHARE)
    assert gpu.default_max_memory(free_bytes=8 * GiB) == int(8 * GiB * GPU_MEMORY_SHARE)
    assert gpu.default_max_memory(free_bytes=0) == 256 << 20  # never zero: one patch at a time
    assert gpu.activation_dtype_bytes() == 2  # fp16 autocast halves the stored activations
    assert DevicePolicy(torch.device("cuda"), amp=False).activation_dtype_bytes() == 4


def _runner(policy: DevicePolicy, max_memory: int) -> StepRunner:
    cfg, _ = load_preset("uvg-hinerv-s")
    hp, wp = padded_size(1080, 1920, cfg)
    model = HiNeRV(cfg, 2, hp, wp)
    frames = torch.zeros(2, 3, hp, wp, dtype=torch.uint8)
    with warnings.catch_warnings():  # GradScaler("cuda") on a machine without CUDA disables itself
        warnings.simplefilter("ignore")
        return StepRunner(model, frames, 255, policy, max_memory=max_memory)


def test_a_1080p_step_is_one_batch_on_a_40gb_gpu_and_micro_batched_on_the_cpu_budget() -> None:
    gpu = DevicePolicy(torch.device("cuda"), amp=True)
    r = _runner(gpu, gpu.default_max_memory(free_bytes=40 * 10**9))
    assert r.grid[0] * r.grid[1] > 1 and r.micro_batch == r.grid[0] * r.grid[1]
    cpu = DevicePolicy(torch.device("cpu"))
    r = _runner(cpu, cpu.default_max_memory())
    assert r.micro_batch < r.grid[0] * r.grid[1]  # 3 GiB of fp32 activations: micro-batches
