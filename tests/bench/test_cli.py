from __future__ import annotations

import json
from pathlib import Path

import pytest

from hinerv.cli import main


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def test_bench_run_bdrate_plot(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                               ) -> None:
    out = tmp_path / "out"
    code = _run(["bench", "run", str(clip), "-o", str(out), "-c", "x265", "--preset",
                 "ultrafast", "--gop", "ra,ld", "-q", "24:40:8", "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ran"] == 6 and summary["failed"] == {}
    ra, ld = out / "x265-ultrafast-ra.json", out / "x265-ultrafast-ld.json"
    assert json.loads(ra.read_text())["results"]["qp"] == [40, 32, 24]

    assert _run(["bdrate", str(ld), str(ra), "--metric", "psnr-yuv", "--json"]) == 0
    bd = json.loads(capsys.readouterr().out)
    assert bd["metric"] == "psnr-yuv" and "clip" in bd["per_sequence"]
    assert isinstance(bd["average"]["bd_rate"], float)
    assert _run(["bdrate", str(ra), str(ra)]) == 0
    assert "Average" in capsys.readouterr().out

    png = tmp_path / "rd.png"
    assert _run(["plot", str(ra), str(ld), "@hinerv-uvg", "-o", str(png), "--x", "bitrate"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run(["plot", str(ra), "-o", str(png), "-m", "psnr-nope"]) == 2
    assert "nothing to draw" in capsys.readouterr().err

    # dry run lists nothing new: all done
    assert _run(["bench", "run", str(clip), "-o", str(out), "-c", "x265", "--preset",
                 "ultrafast", "-q", "24:40:8", "-n", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_done"] == 3


def test_bdrate_builtin_anchors_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path
                                           ) -> None:
    assert _run(["bdrate", "@hinerv-uvg", "@hm18-ra-uvg", "--method", "cubic", "--json"]) == 0
    bd = json.loads(capsys.readouterr().out)
    assert bd["overall"]["bd_rate"] == pytest.approx(7.6, abs=0.05)
    assert _run(["bdrate", "@hinerv-uvg-new", "@hinerv-uvg", "-m", "ms-ssim-rgb", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["per_sequence"]) == 7
    assert _run(["bdrate", "@hinerv-uvg", "@nope"]) == 2
    assert "unknown anchor" in capsys.readouterr().err
    assert _run(["bdrate", str(tmp_path / "x.json"), "@hinerv-uvg"]) == 2
    assert _run(["bdrate", "@hinerv-uvg", "@hm18-ra-uvg", "--method", "linear"]) == 2


def test_anchors_and_import_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["bench", "anchors", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = {a["anchor"] for a in listing["anchors"]}
    assert {"@hinerv-uvg", "@hinerv-mcljcv", "@hm18-ra-uvg"} <= names
    assert "x265-veryslow-ra" in listing["codec_configs"]

    csv = tmp_path / "r.csv"
    csv.write_text("sequence,qp,bitrate_kbps,psnr_yuv\nA,22,100,40\nA,27,50,37\nA,32,25,34\n"
                   "A,37,12,31\n")
    out = tmp_path / "r.json"
    assert _run(["bench", "import-csv", str(csv), "-o", str(out), "--map",
                 "psnr_yuv=psnr-yuv-411", "--name", "imp"]) == 0
    obj = json.loads(out.read_text())
    assert obj["name"] == "imp"
    assert obj["results"]["psnr-yuv-411"] == [31, 34, 37, 40]
    assert obj["results"]["bitrate"] == [12, 25, 50, 100]

    dcvc = tmp_path / "d.json"
    dcvc.write_text(json.dumps({"X": {"s_64x48_25.yuv": {"0": {"ave_all_frame_bpp": 0.1,
                                                               "ave_all_frame_psnr": 30.0}}}}))
    assert _run(["bench", "import-dcvc", str(dcvc), "-o", str(tmp_path / "d2.json")]) == 0
    assert json.loads((tmp_path / "d2.json").read_text())["results"]["psnr-yuv"] == [30.0]
    assert _run(["bench", "run", "-o", str(tmp_path / "o"), "--dataset", "uvg"]) == 2
    assert "--root" in capsys.readouterr().err


def _curve_file(path: Path, name: str, seq: str, bpp: list[float], psnr: list[float]) -> Path:
    curve = {"bpp": bpp, "psnr-rgb": psnr, "q": [f"p{i}" for i in range(len(bpp))]}
    path.write_text(json.dumps({"name": name, "description": "", "results": curve,
                                "sequences": {seq: curve}}))
    return path


def test_bdrate_without_overlap_is_strict_json_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #9, item 7: curves whose quality ranges do not overlap give no NaN and no reversed
    range, --json stays valid JSON, and the user is told why there is no number."""
    low = _curve_file(tmp_path / "low.json", "low", "clip", [0.01, 0.02, 0.04, 0.08], [20, 22, 24, 26])
    high = _curve_file(tmp_path / "high.json", "high", "clip", [0.1, 0.2, 0.4, 0.8], [30, 32, 34, 36])
    assert _run(["bdrate", str(low), str(high), "--json"]) == 0
    out = capsys.readouterr()
    assert "NaN" not in out.out and "nan" not in out.out

    def no_nan(c: str) -> None:
        raise ValueError(c)

    d = json.loads(out.out, parse_constant=no_nan)  # strict: no NaN / Infinity
    seq = d["per_sequence"]["clip"]
    assert seq["bd_rate"] is None and seq["quality_overlap"] is None
    assert d["average"]["bd_rate"] is None
    assert any("do not overlap" in w for w in d["warnings"])
    assert _run(["bdrate", str(low), str(high)]) == 0
    out = capsys.readouterr()
    assert "nan" not in out.out.lower() and "none" in out.out and "n/a" in out.out
    assert "do not overlap" in out.err


def test_bdrate_warns_when_the_videos_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #9, item 7: a small clip against UVG anchors is compared only on average curves of
    different videos; say so."""
    mine = _curve_file(tmp_path / "mine.json", "mine", "clip", [0.01, 0.02, 0.05, 0.1], [30, 33, 36, 38])
    cases = (("@hm18-ra-uvg", "only a dataset average"), ("@hinerv-uvg", "no sequence in common"))
    for anchor, words in cases:
        assert _run(["bdrate", str(mine), anchor]) == 0
        assert words in capsys.readouterr().err


def test_plot_legend_hides_no_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #9, item 8: the legend lies outside every panel, so it can hide no curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hinerv.bench.anchors import load_results
    from hinerv.bench.plot import plot_rd

    # a curve in the lower right corner, where the old fixed legend sat
    f = _curve_file(tmp_path / "c.json", "corner", "clip", [1.0, 1.1, 1.2, 1.3], [20, 20.1, 20.2, 20.3])
    figs = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figs.append(fig), real_close(fig)))
    plot_rd([load_results(f), load_results("@hinerv-uvg")], tmp_path / "rd.png")
    fig = figs[-1]
    fig.canvas.draw()
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    box = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())
