"""tools/rd_tensors.py prices a real rd stream's integers: per-tensor rows and the coder ablation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from hinerv.codec import EncodeOptions, encode_file
from hinerv.pipelines.rd import RDOptions
from hinerv.sample import write_sample

if TYPE_CHECKING:
    from conftest import LoadTool  # tests/conftest.py


@pytest.fixture(scope="module")
def tool(load_tool: LoadTool) -> ModuleType:
    return load_tool("rd_tensors")


def test_table_of_an_rd_stream(tool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "clip.y4m"
    write_sample(clip, width=64, height=48, frames=4, fps=25)
    out = tmp_path / "c.bin"
    opts = EncodeOptions(size="xxs", schedule="tiny", device="cpu", seed=0, pipeline="rd",
                         settings=RDOptions(lam=1.0, distortion="reference"))  # fmt: skip
    rep = encode_file(clip, out, opts)
    assert tool.main([str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows, ab = doc["tensors"], doc["ablation"]
    assert rows and all(r["bits"] >= 0 and 0 <= r["zeros"] <= 1 for r in rows)
    coded = sum(r["bits"] for r in rows) / 8
    assert coded == pytest.approx(ab["chosen_models_bytes"], rel=1e-3)
    assert coded < rep.bytes  # the header, steps and framing come on top
    # the empirical entropy is the least cross-entropy of any one distribution a tensor, with no model to pay
    # for: below one geometric model and one histogram table per tensor (context models are not bound by it)
    assert 0 < ab["empirical_entropy_bytes"] <= ab["parametric_per_tensor_bytes"]
    assert ab["empirical_entropy_bytes"] <= ab["histogram_tables_bytes"]
    assert ab["chosen_or_histogram_bytes"] <= min(ab["chosen_models_bytes"], ab["histogram_tables_bytes"]) + 1
    assert all(math.isfinite(v) for v in ab.values())
