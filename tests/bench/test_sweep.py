from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from hinerv.bench.codecs import HiNeRVCodec, HMCodec, X265Codec, x265_info
from hinerv.bench.results import RESULT_KEYS
from hinerv.bench.sweep import SourceSpec, SweepReporter, point_path, run_sweep
from hinerv.errors import ConfigError


class _Log(SweepReporter):
    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []
        self.stages: set[str] = set()

    def point_started(self, job):  # type: ignore[no-untyped-def]
        self.started.append(job.key)

    def point_progress(self, job, stage, done, total):  # type: ignore[no-untyped-def]
        self.stages.add(stage)


def _x265(**kw):  # type: ignore[no-untyped-def]
    return X265Codec(preset="ultrafast", **kw)


def test_later_sweep_with_another_ladder_extends_the_curve(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep([_x265(qps=(24,))], [SourceSpec("clip", clip)], out)
    run_sweep([_x265(qps=(40,))], [SourceSpec("clip", clip)], out)
    res = json.loads((out / "x265-ultrafast-ra.json").read_text())["results"]
    assert res["q"] == ["qp40", "qp24"]  # both sweeps' points, ordered by rate
    assert res["bpp"][0] < res["bpp"][1]


def test_x265_sweep_layout_ordering_and_resume(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    codec = _x265(qps=(40, 24))
    log = _Log()
    s = run_sweep([codec], [SourceSpec("clip", clip)], out, reporter=log)
    assert (s.ran, s.skipped_done, s.failed) == (2, 0, {})
    assert {"encode", "decode", "measure"} <= log.stages

    agg = json.loads((out / "x265-ultrafast-ra.json").read_text())
    assert set(agg) >= {"name", "description", "results", "sequences"}
    assert agg["name"] == "x265-ultrafast-ra"
    assert "6:1:1" in agg["description"] and "x265 " in agg["description"]
    res = agg["results"]
    for k in RESULT_KEYS:
        assert len(res[k]) == 2, k
    assert res["q"] == ["qp40", "qp24"] and res["qp"] == [40, 24]
    # lower QP: more bits, higher quality
    assert res["bpp"][1] > res["bpp"][0] > 0
    assert res["psnr-y"][1] > res["psnr-y"][0] > 25
    assert res["ms-ssim-rgb"][1] > res["ms-ssim-rgb"][0]
    assert res["frames"] == [6, 6]
    assert res["bpp"][0] == pytest.approx(res["bytes"][0] * 8 / (6 * 64 * 48))
    assert res["bitrate"][0] == pytest.approx(res["bytes"][0] * 8 * 25 / 6 / 1000)
    per_seq = json.loads((out / "x265-ultrafast-ra" / "clip.json").read_text())
    assert per_seq["source"] == "clip" and per_seq["results"]["q"] == ["qp40", "qp24"]
    stream = out / "x265-ultrafast-ra" / "streams" / "clip" / "qp24.hevc"
    assert stream.stat().st_size == res["bytes"][1]
    assert stream.read_bytes()[:4] == b"\x00\x00\x00\x01"  # raw Annex-B, no container

    # resume: everything done -> nothing runs
    again = run_sweep([codec], [SourceSpec("clip", clip)], out)
    assert (again.ran, again.skipped_done) == (0, 2)
    # drop one finished point: only that one runs again
    keep = point_path(out, codec.name, "clip", "qp40")
    gone = point_path(out, codec.name, "clip", "qp24")
    before = keep.stat().st_mtime_ns
    gone.unlink()
    log2 = _Log()
    third = run_sweep([codec], [SourceSpec("clip", clip)], out, reporter=log2)
    assert (third.ran, third.skipped_done) == (1, 1)
    assert log2.started == [("x265-ultrafast-ra", "clip", "qp24")]
    assert keep.stat().st_mtime_ns == before
    assert gone.is_file()
    assert json.loads((out / "x265-ultrafast-ra.json").read_text())["results"]["q"] == ["qp40", "qp24"]


def test_interrupted_point_leaves_no_result(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    class Boom(SweepReporter):
        def point_progress(self, job, stage, done, total):  # type: ignore[no-untyped-def]
            if job.point.label == "qp24" and stage == "decode":
                raise KeyboardInterrupt

    codec = _x265(qps=(40, 24))
    with pytest.raises(KeyboardInterrupt):
        run_sweep([codec], [SourceSpec("clip", clip)], out, reporter=Boom())
    assert point_path(out, codec.name, "clip", "qp40").is_file()
    assert not point_path(out, codec.name, "clip", "qp24").exists()
    s = run_sweep([codec], [SourceSpec("clip", clip)], out)
    assert (s.ran, s.skipped_done) == (1, 1)


def test_low_delay_frames_and_scale(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    codec = _x265(qps=(30,), config="ld")
    s = run_sweep([codec], [SourceSpec("clip", clip)], out, frames=4, scale=0.5)
    assert s.ran == 1
    rec = json.loads(point_path(out, codec.name, "clip", "qp30").read_text())
    assert (rec["width"], rec["height"]) == (32, 24)
    assert rec["results"]["frames"] == 4
    assert "bframes=0" in codec.params_string(30)
    assert list((out / "work" / "sources").glob("clip_32x24_4f.y4m"))


def test_x265_version_and_settings() -> None:
    version, opts = x265_info("ultrafast", "")
    assert version != "unknown"
    assert "qp=" in opts or "crf=" in opts


def test_hm_skipped_without_binary_and_runs_a_given_one(clip: Path, tmp_path: Path) -> None:
    assert "--hm-bin" in (HMCodec().available() or "")
    with pytest.raises(ConfigError, match="no runnable codec"):
        run_sweep([HMCodec()], [SourceSpec("clip", clip)], tmp_path / "o")
    # A stand-in encoder with the HM command line: copies the input to the reconstruction and
    # writes a small "bitstream"; exercises the plumbing (paths, arguments, rate, metrics).
    enc = tmp_path / "fake_enc.py"
    enc.write_text(
        f"#!{sys.executable}\n"
        "import sys, shutil\n"
        "a = sys.argv[1:]\n"
        "get = lambda k: a[a.index(k) + 1]\n"
        "assert get('-wdt') == '64' and get('-hgt') == '48' and get('-f') == '6'\n"
        "shutil.copyfile(get('-i'), get('-o'))\n"
        "open(get('-b'), 'wb').write(b'x' * (1000 - 10 * int(get('-q'))))\n"
    )
    enc.chmod(enc.stat().st_mode | stat.S_IXUSR)
    cfg = tmp_path / "encoder_randomaccess_main.cfg"
    cfg.write_text("# cfg\n")
    hm = HMCodec(encoder=enc, cfg=cfg, qps=(22, 37), label="HM-18.0")
    s = run_sweep([hm], [SourceSpec("clip", clip)], tmp_path / "o")
    assert s.ran == 2, s.failed
    res = json.loads((tmp_path / "o" / "HM-18.0-randomaccess_main.json").read_text())["results"]
    assert res["bytes"] == [630, 780]
    assert res["psnr-y"][0] > 90  # lossless stand-in
    log = tmp_path / "o" / "HM-18.0-randomaccess_main" / "streams" / "clip" / "qp22.log"
    assert "--InputBitDepth=8" in log.read_text()


def test_parallel_pool_matches_serial(clip: Path, tmp_path: Path) -> None:
    codec = _x265(qps=(36, 28))
    run_sweep([codec], [SourceSpec("clip", clip)], tmp_path / "a")
    s = run_sweep([codec], [SourceSpec("clip", clip)], tmp_path / "b", jobs=2)
    assert s.ran == 2
    a = json.loads((tmp_path / "a" / f"{codec.name}.json").read_text())["results"]
    b = json.loads((tmp_path / "b" / f"{codec.name}.json").read_text())["results"]
    assert a["bytes"] == b["bytes"]
    assert a["psnr-rgb"] == pytest.approx(b["psnr-rgb"])


def test_bad_options(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        X265Codec(qps=(60,))
    with pytest.raises(ConfigError):
        X265Codec(config="xx")
    with pytest.raises(ConfigError):
        run_sweep([_x265(qps=(30,))], [], tmp_path)
    with pytest.raises(ConfigError, match="duplicate"):
        run_sweep([_x265(qps=(30,))], [SourceSpec("a", clip), SourceSpec("a", clip)], tmp_path)
    with pytest.raises(ConfigError, match="Ray"):
        if "ray" in sys.modules or _has_ray():
            pytest.skip("ray is installed")
        run_sweep([_x265(qps=(30,))], [SourceSpec("a", clip)], tmp_path, ray_address="auto")


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@pytest.mark.slow
def test_hinerv_codec_ladder_and_adapter(clip: Path, tmp_path: Path) -> None:
    codec = HiNeRVCodec(sizes=("xxs", "xs"), bits=(6, 8), schedule="tiny", device="cpu", pipeline="paper")
    pts = codec.points()
    assert [p.label for p in pts] == ["xxs-q6", "xxs-q8", "xs-q6", "xs-q8"]
    assert [p.group for p in pts] == ["xxs", "xxs", "xs", "xs"]
    assert codec.name == "hinerv-tiny"
    reason = codec.available()
    if reason:
        pytest.skip(f"HiNeRV adapter not run: {reason}")
    c = HiNeRVCodec(sizes=("xxs",), bits=(6, 8), schedule="tiny", device="cpu", pipeline="paper")
    s = run_sweep([c], [SourceSpec("clip", clip)], tmp_path / "o")
    assert s.ran == 2, s.failed
    res = json.loads((tmp_path / "o" / "hinerv-tiny.json").read_text())["results"]
    assert res["bytes"][1] > res["bytes"][0]
    assert all(v > 10 for v in res["psnr-rgb"])


def test_hinerv_codec_time_budget_names_the_run() -> None:
    from hinerv.bench.specs import codec_from_fields

    c = HiNeRVCodec(sizes=("xxs",), schedule="short", time_budget=600.0, pipeline="paper")
    assert c.name == "hinerv-short-t600s" and "600 s per encode" in c.description()
    assert codec_from_fields({"codec": "hinerv", "time_budget": 90}).time_budget == 90


def test_hinerv_codec_mse_distortion_names_the_run() -> None:
    """Two distortions of one ladder must not share a run folder (bench run resumes by name)."""
    mse = HiNeRVCodec(sizes=("xxs",), schedule="fast", time_budget=600.0, distortion="mse", optimizer="adam")
    assert mse.name == "hinerv-rd-mse-fast-t600s"
    ref = HiNeRVCodec(sizes=("xxs",), schedule="fast", time_budget=600.0, distortion="reference",
                      optimizer="adam")  # fmt: skip
    assert ref.name == "hinerv-rd-fast-t600s"  # the paper's loss with Adam: the published ladders' name
    adam = HiNeRVCodec(sizes=("xxs",), schedule="fast", time_budget=600.0, optimizer="adam")
    assert adam.name == "hinerv-rd-blend-fast-t600s"  # Adam: the name of the ladders before SOAP
    assert HiNeRVCodec(sizes=("xxs",), pipeline="paper", distortion="mse").name == "hinerv-full"


def test_hinerv_codec_optimizer_names_the_run_and_reaches_the_encode() -> None:
    from hinerv.bench.specs import codec_from_fields

    soap = HiNeRVCodec(sizes=("xxs",), schedule="fast", time_budget=600.0, optimizer="soap")
    assert soap.name == "hinerv-rd-blend-soap-fast-t600s" and "(blend, soap)" in soap.description()
    point = soap.points()[0]
    assert soap.encode_options(point, "cpu").settings.optimizer == "soap"
    assert codec_from_fields({"codec": "hinerv", "optimizer": "soap"}).optimizer == "soap"
    pre = HiNeRVCodec(sizes=("xxs",), schedule="fast", time_budget=600.0, optimizer="soap-pretrain")
    assert pre.name == "hinerv-rd-blend-soap-pretrain-fast-t600s"
    assert pre.encode_options(pre.points()[0], "cpu").settings.optimizer == "soap-pretrain"
    with pytest.raises(ConfigError, match="unknown optimizer"):
        HiNeRVCodec(sizes=("xxs",), optimizer="sgd")
    # the default, auto: each point trains with its size's plan, Adam at xs, soap-pretrain at s
    auto = HiNeRVCodec(sizes=("xs", "s"), schedule="fast", time_budget=600.0)
    assert auto.optimizer == "auto" and "(blend, auto)" in auto.description()
    plans = {p.params["size"]: auto.encode_options(p, "cpu").resolve().settings.optimizer
             for p in auto.points()}
    assert plans == {"xs": "adam", "s": "soap-pretrain"}


def test_hinerv_codec_auto_schedule_keeps_the_full_run_name_without_a_budget() -> None:
    """``auto`` (the default) is ``full`` without a budget: the same encodes, so the same run folder."""
    assert HiNeRVCodec(sizes=("xxs",)).schedule == "auto"
    full = HiNeRVCodec(sizes=("xxs",), schedule="full")
    assert HiNeRVCodec(sizes=("xxs",)).name == full.name == "hinerv-rd-blend-auto-full"
    budget = HiNeRVCodec(sizes=("xxs",), time_budget=600.0)
    assert budget.name == "hinerv-rd-blend-auto-auto-t600s"  # optimizer auto (by size) since #19's 8th round
    adam = HiNeRVCodec(sizes=("xxs",), time_budget=600.0, optimizer="adam")
    assert adam.name == "hinerv-rd-blend-auto-t600s"


def test_x265_ten_bit_source(tmp_path: Path) -> None:
    from fractions import Fraction

    import numpy as np

    from hinerv.io import open_writer
    from hinerv.types import VideoInfo

    info = VideoInfo(width=64, height=48, frames=3, fps=Fraction(30), bit_depth=10)
    yy, xx = np.mgrid[0:48, 0:64]
    src = tmp_path / "c10.y4m"
    with open_writer(src, info) as w:
        for t in range(3):
            y = (512 + 300 * np.sin((xx + t) / 5.0) * np.cos(yy / 6.0)).astype(np.uint16)
            c = np.full((24, 32), 512, np.uint16)
            w.write_yuv(y, c, c)
    codec = _x265(qps=(24,))
    s = run_sweep([codec], [SourceSpec("c10", src)], tmp_path / "o")
    assert s.ran == 1, s.failed
    res = json.loads(point_path(tmp_path / "o", codec.name, "c10", "qp24").read_text())["results"]
    assert res["psnr-y"] > 35


def test_build_codecs_from_command_line_options(tmp_path: Path) -> None:
    from hinerv.bench.specs import CodecOptions, build_codecs

    enc = tmp_path / "TAppEncoder"
    opts = CodecOptions(qps=(30, 40), preset="ultrafast", gops=("ra", "ld"), intra_period=32,
                        sizes=("xxs",), bits=(), schedule="tiny", hm_bin=enc, hm_qps=(22,),
                        hm_name="HM-18.0", pipeline="paper")  # fmt: skip
    x_ra, x_ld, ours, hm, vtm = build_codecs(["x265", "hinerv", "hm", "vtm"], opts)
    assert isinstance(x_ra, X265Codec)
    assert (x_ra.name, x_ld.name) == ("x265-ultrafast-ra", "x265-ultrafast-ld")
    assert x_ra.qps == (40, 30) and x_ld.intra_period == 32 and x_ld.x265_params == ""
    assert isinstance(ours, HiNeRVCodec) and ours.sizes == ("xxs",) and ours.bits == (6,)  # empty: default
    assert ours.name == "hinerv-tiny"
    assert isinstance(hm, HMCodec)
    assert (hm.encoder, hm.qps, hm.label, hm.intra_period) == (enc, (22,), "HM-18.0", 32)
    assert vtm.label == "HM-18.0"
    (named,) = build_codecs(["x265-veryslow-ld"], CodecOptions(hm_bin=enc))
    assert named.name == "x265-veryslow-ld" and named.config == "ld"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown codec"):
        build_codecs(["nope"], CodecOptions())
