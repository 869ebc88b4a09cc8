"""Process settings of the ``hinerv`` programs."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import resource, sys, torch
from hinerv.runtime import keep_freed_memory
if sys.argv[1] == "1":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # like a training step: activations of several sizes alive together, then all freed
    bufs = [torch.ones((k + 1) << 19) for k in range(8)]  # 2..16 MB, 72 MB in all
    bufs.append(torch.ones(10 << 20))  # 40 MB: above glibc's largest default mmap threshold
    del bufs
for _ in range(3):  # warm-up: the first allocations always fault
    step()
before = faults()
for _ in range(20):
    step()
print(faults() - before)
"""


def _faults(keep: bool) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "1" if keep else "0"], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_stops_page_faults_on_reused_buffers() -> None:
    # with glibc's defaults at least the 40 MB buffer (10k pages) is a fresh mmap on each of the 20
    # steps; kept memory is reused (seen: 0, and now and then 30720 when the heap grows a few times)
    assert _faults(keep=False) > 20 * 10000
    assert _faults(keep=True) < 6 * 10000


def test_allocator_setting_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import hinerv.runtime as rt

    calls: list[int] = []
    monkeypatch.setattr(rt, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv(rt.KEEP_MEMORY_ENV, raising=False)
    rt.configure_process(flush_denormal=False)
    assert calls == []  # off by default (it raised the 1080p encode's peak RSS from 3.4 to 7.7 GB)
    monkeypatch.setenv(rt.KEEP_MEMORY_ENV, "1")
    rt.configure_process(flush_denormal=False)
    assert calls == [1]
    rt.configure_process(flush_denormal=False, keep_memory=False)
    assert calls == [1]


def test_allocator_setting_follows_the_frame_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import hinerv.runtime as rt

    calls: list[int] = []
    monkeypatch.setattr(rt, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv(rt.KEEP_MEMORY_ENV, raising=False)
    assert rt.keep_freed_memory_for(384, 288) and calls == [1]  # small frames: on
    assert not rt.keep_freed_memory_for(1920, 1080) and calls == [1]  # large frames: glibc's defaults
    monkeypatch.setenv(rt.KEEP_MEMORY_ENV, "0")
    assert not rt.keep_freed_memory_for(384, 288) and calls == [1]
    monkeypatch.setenv(rt.KEEP_MEMORY_ENV, "1")
    assert rt.keep_freed_memory_for(1920, 1080) and calls == [1, 1]
