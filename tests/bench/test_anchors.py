from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hinerv.bench.anchors import import_csv, import_dcvc_json, list_anchors, load_anchor
from hinerv.errors import ConfigError, InputError


def test_every_builtin_anchor_loads() -> None:
    for a in list_anchors():
        rs = load_anchor(a.name)
        assert rs.results["bpp"], a.name
        assert rs.description
        bpp = [b for b in rs.results["bpp"] if b is not None]
        assert bpp == sorted(bpp)


def test_hinerv_uvg_anchor_matches_published_average() -> None:
    rs = load_anchor("@hinerv-uvg")
    assert len(rs.sequences) == 7
    assert rs.results["bpp"][0] == pytest.approx(0.01489, abs=1e-5)
    assert rs.results["psnr-rgb"][-1] == pytest.approx(39.626, abs=1e-3)
    assert rs.results["ms-ssim-rgb"][0] == pytest.approx(0.9551, abs=1e-4)
    hm = load_anchor("hm18-ra-uvg")
    assert hm.results["bpp"] == [0.0075, 0.0155, 0.0324, 0.073, 0.1878, 0.754]


def test_unknown_anchor() -> None:
    with pytest.raises(ConfigError, match="unknown anchor"):
        load_anchor("@nope")


def test_import_dcvc_json(tmp_path: Path) -> None:
    def rec(bpp: float, psnr: float) -> dict:
        return {"ave_all_frame_bpp": bpp, "ave_all_frame_psnr": psnr, "ave_all_frame_psnr_y": psnr,
                "ave_all_frame_psnr_u": psnr + 2, "ave_all_frame_psnr_v": psnr + 3,
                "ave_all_frame_msssim_y": 0.95, "frame_pixel_num": 1920 * 1080,
                "i_frame_num": 1, "p_frame_num": 599, "qp": 22, "test_time": 10.0}

    data = {"UVG": {"Beauty_1920x1080_120fps_420_8bit_YUV.yuv": {"000": rec(0.02, 35.0),
                                                                  "001": rec(0.01, 33.0)},
                    "Jockey_1920x1080_120fps_420_8bit_YUV.yuv": {"000": rec(0.04, 37.0),
                                                                  "001": rec(0.02, 35.0)}}}
    p = tmp_path / "dcvc.json"
    p.write_text(json.dumps(data))
    rs = import_dcvc_json(p)
    assert rs.name == "dcvc-uvg"
    beauty = rs.sequences["Beauty_1920x1080_120fps_420_8bit_YUV"]
    assert beauty["bpp"] == [0.01, 0.02]
    assert beauty["psnr-yuv"] == [33.0, 35.0]
    assert beauty["frames"] == [600, 600]
    assert beauty["bitrate"][0] == pytest.approx(0.01 * 1920 * 1080 * 120 / 1000)
    assert rs.results["bpp"] == pytest.approx([0.015, 0.03])
    with pytest.raises(InputError):
        import_dcvc_json(p, dataset="MCL-JCV")


def test_import_csv_with_average_rows_and_codec_filter() -> None:
    text = (
        "dataset,sequence,codec,rate_point,bpp,psnr,msssim,psnr_space\n"
        "UVG,A,foo,1,0.1,30,0.9,RGB\nUVG,A,foo,2,0.2,32,0.95,RGB\n"
        "UVG,B,foo,1,0.3,31,0.91,RGB\nUVG,B,foo,2,0.4,33,0.96,RGB\n"
        "UVG,AVERAGE,foo,1,0.2,30.5,0.905,RGB\nUVG,AVERAGE,foo,2,0.3,32.5,0.955,RGB\n"
        "UVG,A,bar,1,9,9,0.9,RGB\n"
    )
    with pytest.raises(InputError, match="several codecs"):
        import_csv(io.StringIO(text))
    rs = import_csv(io.StringIO(text), codec="foo")
    assert set(rs.sequences) == {"A", "B"}
    assert rs.results["psnr-rgb"] == [30.5, 32.5]
    assert rs.sequences["B"]["ms-ssim-rgb"] == [0.91, 0.96]
    rs2 = import_csv(io.StringIO(text), codec="foo", psnr_key="psnr-yuv",
                     row_filter=lambda r: r["sequence"] != "AVERAGE")
    assert rs2.results["psnr-yuv"] == [30.5, 32.5]  # mean over sequences
