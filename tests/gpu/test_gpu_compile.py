"""``--compile`` on CUDA: a compiled encode succeeds, and a compiled decode of its stream gives the frames
the eager decode gives (within the rounding bound of ``test_gpu_codec``: inductor may fuse and reorder
float32 arithmetic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_util import Cli
from test_gpu_codec import MAX_DIFFERING_SHARE, PIPELINES, encode, same_frames

from hinerv.codec import decode_file


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_compiled_encode_on_cuda_decodes(pipeline: str, clip: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "c.bin"
    encode(cli, clip, out, *PIPELINES[pipeline], "--compile")
    eager = decode_file(out, tmp_path / "eager.y4m", device="cuda")
    compiled = decode_file(out, tmp_path / "compiled.y4m", device="cuda", compile=True)
    assert eager.frames == compiled.frames == 4
    worst, share = same_frames(tmp_path / "eager.y4m", tmp_path / "compiled.y4m")
    print(f"{pipeline}: compiled vs eager CUDA decode: max |d| {worst}, differing samples {share:.2e}")
    assert worst <= 1 and share <= MAX_DIFFERING_SHARE
