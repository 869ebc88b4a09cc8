"""tools/rd_tensors.py prices a real rd stream's integers: per-tensor rows and the coder ablation."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hinerv.codec import EncodeOptions, encode_file
from hinerv.pipelines.rd import RDOptions
from hinerv.sample import write_sample

_TOOL = Path(__file__).resolve().parents[1] / "tools" / "rd_tensors.py"


@pytest.fixture(scope="module")
def tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("rd_tensors", _TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_empirical_entropy_bits(tool) -> None:  # type: ignore[no-untyped-def]
    assert tool.empirical_entropy_bits(np.zeros(0, dtype=np.int32)) == 0.0
    assert tool.empirical_entropy_bits(np.full(7, 3)) == 0.0
    assert tool.empirical_entropy_bits(np.array([0, 1, 0, 1])) == pytest.approx(4.0)
    q = np.array([-2, 0, 0, 0, 1, 1, 5, 0])  # p = 1/8, 4/8, 2/8, 1/8
    assert tool.empirical_entropy_bits(q) == pytest.approx(8 * 1.75)


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
