"""tools/bench_budget.py: the fixed-time RD benchmark (issue 19) on a tiny clip with 5-second points,
and its BD-rates computed from the published points."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from hinerv import fused
from hinerv.bench.bdrate import bd_compare
from hinerv.bench.results import ResultSet, read_json

_TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(_TOOLS))
import bench_budget  # noqa: E402


def _curve(bpp: list[float], psnr: list[float], ssim: list[float]) -> dict[str, list]:
    n = len(bpp)
    return {"q": [f"p{i}" for i in range(n)], "bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": ssim,
            "encoding_time": [1.0] * n, "width": [64] * n, "height": [48] * n}


def test_parse_clip() -> None:
    c = bench_budget.parse_clip("v=/x/a.avi:128:384")
    assert (c.name, c.path, c.frames, c.width) == ("v", Path("/x/a.avi"), 128, 384)
    c = bench_budget.parse_clip("b=b.mp4::320")
    assert (c.frames, c.width) == (None, 320)
    assert bench_budget.parse_clip("b=b.mp4").frames is None
    for bad in ("b.mp4", "b=b.mp4:x", "b=b.mp4:0", "b=b.mp4:1:2:3", "=b.mp4"):
        with pytest.raises(Exception, match="--clip"):
            bench_budget.parse_clip(bad)


def test_parse_ladder() -> None:
    assert bench_budget.parse_ladder("xs, s,m,m@0.25") == (("xs", "s", "m"), (("m", 0.25),))
    assert bench_budget.parse_ladder("l@0.1") == ((), (("l", 0.1),))
    for bad in ("", ",", "m@", "m@x", "m@0", "m@-1", "@0.5", "m@inf"):
        with pytest.raises(Exception, match="--sizes"):
            bench_budget.parse_ladder(bad)


def test_choices_follow_the_encoder(capsys: pytest.CaptureFixture[str]) -> None:
    """--distortion and --optimizer offer exactly the encoder's lists, and default to its defaults."""
    from hinerv.optim import OPTIMIZER_CHOICES
    from hinerv.pipelines.rd import DEFAULT_DISTORTION, DISTORTIONS

    with pytest.raises(SystemExit):
        bench_budget.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"--distortion {{{','.join(DISTORTIONS)}}}" in text
    assert f"--optimizer {{{','.join(OPTIMIZER_CHOICES)}}}" in text
    assert f"the encoder's, {DEFAULT_DISTORTION})" in text
    with pytest.raises(SystemExit) as e:
        bench_budget.main(["--distortion", "l1"])
    assert e.value.code == 2


def test_publish_bd_rate_from_points(tmp_path: Path) -> None:
    """The test curve needs 1.5x the anchor's rate at every quality: BD-rate +50 % on both metrics,
    equal to bd_compare on the published points; the copies keep the layout and say how they ran."""
    run = tmp_path / "run"
    bpp = [0.01, 0.02, 0.04, 0.08]
    psnr, ssim = [28.0, 30.0, 32.5, 35.0], [0.90, 0.93, 0.955, 0.97]
    seq = "tiny_64x48_6f"
    for name, scale in (("hinerv-rd-full-t5s", 1.5), ("x265-veryslow-ra", 1.0)):
        c = _curve([b * scale for b in bpp], psnr, ssim)
        ResultSet(name, "desc.", c, {seq: c}).save(run / f"{name}.json")
    note = {"geometry": "64x48x6", "source": "t.y4m", "frames": "0-5", "preparation": "as is"}
    settings = {"time_budget": "5s", "run_note": "one thread"}
    s = bench_budget.publish_clip("tiny", note, run, "hinerv-rd-full-t5s", "x265-veryslow-ra",
                                  tmp_path / "res", settings)
    for m in ("psnr-rgb", "ms-ssim-rgb"):
        got = s["bd_vs_x265"][m]["bd_rate"]
        assert got == pytest.approx(50.0, abs=1e-6)
        q = psnr if m == "psnr-rgb" else ssim
        assert got == pytest.approx(bd_compare(bpp, q, [b * 1.5 for b in bpp], q).bd_rate)
        # each point alone needs 1.5x x265's rate for its quality too
        assert [p["rate_gap_vs_x265"][m] for p in s["hinerv"]["points"]] == pytest.approx([50.0] * 4)
    pub = read_json(tmp_path / "res" / "tiny" / "hinerv-rd-full-t5s.json")
    assert pub["results"]["encoding_time"] == [1.0] * 4 and pub["clip"] == note
    assert "CLIP tiny: 64x48x6" in pub["description"] and "RUN: one thread" in pub["description"]
    assert (tmp_path / "res" / "tiny" / "x265-veryslow-ra.json").is_file()
    assert (tmp_path / "res" / "tiny" / "rd.png").stat().st_size > 0
    assert [p["bpp"] for p in s["hinerv"]["points"]] == pytest.approx([b * 1.5 for b in bpp])


@pytest.mark.filterwarnings("ignore:test curve has only")
def test_tool_end_to_end(clip: Path, tmp_path: Path) -> None:
    """Two hinerv points at 5 s each (xxs at its ladder λ and at λ 2) and four x265 points: result files in
    the CompressAI layout with encoding_time per point, a plot, a summary whose BD entries come from the
    points."""
    res = tmp_path / "res"
    # the first use of the C++ kernels in a fresh environment builds them (tens of seconds on one core):
    # done here, so that the bound on each point's encoding time below measures the encode alone
    fused.kernels()
    fused.avx512_kernels()
    rc = bench_budget.main(["--clip", f"tiny={clip}", "--out", str(tmp_path / "run"), "--results", str(res),
                            "--time-budget", "5s", "--sizes", "xxs,xxs@2", "--qps", "30:51:7"])
    assert rc == 0
    summary = json.loads((res / "summary.json").read_text())
    s = summary["clips"]["tiny"]
    assert s["clip"]["geometry"] == "64x48x6"
    assert summary["settings"]["threads"] == 1 and summary["settings"]["time_budget_s"] == 5.0
    from hinerv.pipelines import DEFAULT_RD_OPTIMIZER

    assert summary["settings"]["optimizer"] == DEFAULT_RD_OPTIMIZER
    files = {}
    for key, n in (("hinerv", 2), ("x265", 4)):
        obj = read_json(res / s[key]["file"])
        assert set(obj) >= {"name", "description", "results", "sequences", "clip"}
        r = obj["results"]
        assert len(r["bpp"]) == n and len(r["encoding_time"]) == n and len(r["psnr-rgb"]) == n
        assert all(t > 0 for t in r["encoding_time"])
        assert [p["bpp"] for p in s[key]["points"]] == r["bpp"]
        files[key] = r
    # each hinerv point says which schedule its budget was fitted to and how long it trained
    for pt in s["hinerv"]["points"]:
        f = pt["fitted"]
        assert f["schedule"].startswith("fast~") and f["main"] >= 1 and f["qat"] >= 1 and f["train_s"] > 0
    # hinerv points stop near their budget (plus the final export and evaluation)
    assert all(t < 60 for t in files["hinerv"]["encoding_time"])
    assert (res / "tiny" / "rd.png").is_file()
    for m in ("psnr-rgb", "ms-ssim-rgb"):
        want = bd_compare(files["x265"]["bpp"], files["x265"][m], files["hinerv"]["bpp"],
                          files["hinerv"][m]).bd_rate
        got = s["bd_vs_x265"][m]["bd_rate"]
        if math.isfinite(want):
            assert got == pytest.approx(want)
        else:  # no overlap on this tiny clip: no value, and a warning that says so
            assert got is None and any("overlap" in w for w in s["bd_vs_x265"][m]["warnings"])
