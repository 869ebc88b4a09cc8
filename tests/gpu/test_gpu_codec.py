"""Both pipelines encode and decode on CUDA; a CUDA-encoded stream decodes to the same 8-bit frames on
CUDA and on the CPU; ``--precision`` encodes on CUDA.

Same frames: the decoder runs in float32 on both devices (TF32 off, see ``hinerv.codec.decode_frames``),
so the two outputs differ only by float rounding (~1e-6 relative). After rounding to 8 bits a sample can
then differ by exactly 1 where its value lies within that distance of a rounding boundary; that is rare
(the issue's 1080p check found no difference in 3 frames). The bound below allows such isolated ±1
samples and nothing more: a decode that silently ran in fp16 / TF32, or with other weights, differs by
more than 1 or in far more than 0.1 % of the samples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from gpu_util import TINY, Cli, planes

from hinerv.codec import decode_file

#: at most this share of 8-bit samples may differ (by exactly 1) between CUDA and CPU decodes
MAX_DIFFERING_SHARE = 1e-3

#: the options that choose each pipeline
PIPELINES = {"paper": ["--bits", "6"], "rd": ["--pipeline", "rd"]}


def encode(cli: Cli, clip: Path, out: Path, *extra: str) -> dict[str, object]:
    code, stdout, err = cli(["encode", str(clip), "-o", str(out), *TINY, "--device", "cuda", *extra])
    assert code == 0, err
    rep = json.loads(stdout)
    assert out.is_file() and rep["bytes"] == out.stat().st_size
    assert 5.0 < float(rep["psnr-rgb"]) <= 100.0 and 0.0 < float(rep["ms-ssim-rgb"]) <= 1.0
    return rep


def same_frames(a: Path, b: Path) -> tuple[int, float]:
    """(max |difference|, share of differing samples) over every plane of two decodes."""
    pa, pb = planes(a), planes(b)
    assert len(pa) == len(pb) and all(x.shape == y.shape for x, y in zip(pa, pb, strict=True))
    diff = np.concatenate(
        [np.abs(x.astype(np.int32) - y.astype(np.int32)).ravel() for x, y in zip(pa, pb, strict=True)]
    )
    return int(diff.max()), float(np.count_nonzero(diff)) / diff.size


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_encode_on_cuda_decodes_to_the_same_frames_on_cuda_and_cpu(
    pipeline: str, clip: Path, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / f"{pipeline}.bin"
    rep = encode(cli, clip, out, *PIPELINES[pipeline])
    assert rep["pipeline"] == pipeline
    for dev in ("cuda", "cpu"):
        code, stdout, err = cli(
            ["decode", str(out), "-o", str(tmp_path / f"{dev}.y4m"), "--device", dev, "--json"]
        )
        assert code == 0, err
        assert json.loads(stdout)["frames"] == 4
    worst, share = same_frames(tmp_path / "cuda.y4m", tmp_path / "cpu.y4m")
    # past the captured output (cli() reads stdout as JSON); tools/gpu_check.sh collects this line
    sys.__stderr__.write(f"{pipeline}: CUDA vs CPU decode: max |d| {worst}, differing samples {share:.2e}\n")
    assert worst <= 1 and share <= MAX_DIFFERING_SHARE
    # the encoder's own measurement is of exactly the frames a CUDA decoder writes
    code, stdout, _ = cli(["eval", str(clip), str(tmp_path / "cuda.y4m"), "--json"])
    assert code == 0
    assert json.loads(stdout)["psnr-rgb"] == pytest.approx(float(rep["psnr-rgb"]), abs=1e-3)


def test_random_access_on_cuda_equals_the_full_decode(clip: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "p.bin"
    encode(cli, clip, out, "--bits", "6")
    decode_file(out, tmp_path / "all.y4m", device="cuda")
    decode_file(out, tmp_path / "part.y4m", frames=(1, 3), device="cuda")
    full, part = planes(tmp_path / "all.y4m"), planes(tmp_path / "part.y4m")
    assert len(part) == 6
    for x, y in zip(full[3:9], part, strict=True):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_precision_encodes_on_cuda(precision: str, clip: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / f"{precision}.bin"
    rep = encode(cli, clip, out, "--bits", "6", "--precision", precision)
    assert rep.get("precision", precision) == precision
    code, _, err = cli(["decode", str(out), "-o", str(tmp_path / "d.y4m"), "--device", "cuda"])
    assert code == 0, err
