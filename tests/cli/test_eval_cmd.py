from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hinerv.cli import main

W, H, T = 48, 32, 2


def _planes(rng: np.random.Generator, w: int = W, h: int = H) -> list[np.ndarray]:
    return [
        rng.integers(16, 236, size=(h, w), dtype=np.uint8),
        rng.integers(16, 241, size=(h // 2, w // 2), dtype=np.uint8),
        rng.integers(16, 241, size=(h // 2, w // 2), dtype=np.uint8),
    ]


def _write_yuv(path: Path, frames: list[list[np.ndarray]]) -> Path:
    with open(path, "wb") as f:
        for planes in frames:
            for p in planes:
                f.write(np.ascontiguousarray(p).tobytes())
    return path


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ref = [_planes(rng) for _ in range(T)]
    dist = [[y + np.uint8(1), u, v] for y, u, v in ref]  # Y + 1 LSB everywhere
    return _write_yuv(tmp_path / "ref.yuv", ref), _write_yuv(tmp_path / "dist.yuv", dist)


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def test_eval_json(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ref, dist = pair
    code = _run(["eval", str(ref), str(dist), "--width", str(W), "--height", str(H), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    d = json.loads(out)
    assert list(d) == [
        "psnr-rgb",
        "psnr-y",
        "psnr-u",
        "psnr-v",
        "psnr-yuv",
        "psnr-yuv-411",
        "ms-ssim-rgb",
        "ms-ssim-y",
        "frames",
    ]
    assert d["frames"] == T
    assert d["psnr-y"] == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert d["psnr-u"] == d["psnr-v"] == 100.0
    assert d["psnr-yuv"] == pytest.approx((6 * d["psnr-y"] + 200) / 8)
    # a +1 luma offset moves RGB by about 1.16 LSB: finite, high PSNR
    assert 40 < d["psnr-rgb"] < 100
    assert 0.99 < d["ms-ssim-rgb"] < 1.0 and 0.99 < d["ms-ssim-y"] < 1.0


def test_eval_json_frames_and_per_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    ref = [_planes(rng) for _ in range(3)]
    dist = [[y, u, v] for y, u, v in ref]
    # geometry and bit depth from the names
    a = _write_yuv(tmp_path / f"a_{W}x{H}_25fps.yuv", ref)
    b = _write_yuv(tmp_path / f"b_{W}x{H}_25fps.yuv", dist)
    code = _run(["eval", str(a), str(b), "--frames", "2", "--json", "--per-frame"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    assert d["frames"] == 2
    assert d["psnr-rgb"] == d["psnr-y"] == 100.0
    assert d["ms-ssim-rgb"] == pytest.approx(1.0, abs=1e-6)
    assert len(d["per_frame"]["psnr-y"]) == 2


def test_eval_table(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ref, dist = pair
    code = _run(
        [
            "eval",
            str(ref),
            str(dist),
            "--width",
            str(W),
            "--height",
            str(H),
            "--fps",
            "30000/1001",
            "--bit-depth",
            "8",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for key in ("psnr-rgb", "psnr-yuv-411", "ms-ssim-y", "frames"):
        assert key in out
    assert f"{20 * math.log10(255):.4f}" in out


def test_eval_missing_file(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, _ = pair
    code = _run(["eval", str(ref), str(tmp_path / "nope.yuv"), "--width", str(W), "--height", str(H)])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.yuv" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_eval_size_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    a = _write_yuv(tmp_path / f"a_{W}x{H}.yuv", [_planes(rng)])
    b = _write_yuv(tmp_path / "b_32x32.yuv", [_planes(rng, 32, 32)])
    code = _run(["eval", str(a), str(b)])
    err = capsys.readouterr().err
    assert code == 2
    assert "frame size mismatch" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_eval_frame_count_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    frames = [_planes(rng) for _ in range(2)]
    a = _write_yuv(tmp_path / f"a_{W}x{H}.yuv", frames)
    b = _write_yuv(tmp_path / f"b_{W}x{H}.yuv", frames[:1])
    assert _run(["eval", str(a), str(b), "--json"]) == 2
    captured = capsys.readouterr()
    assert "frame count mismatch" in captured.err
    assert captured.out == ""


def test_eval_frames_after_encode_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #9, item 6: the normal case after ``encode --frames N``: the decoded video is
    shorter than the source, and ``--frames N`` compares the first N frames of both."""
    rng = np.random.default_rng(4)
    frames = [_planes(rng) for _ in range(5)]
    src = _write_yuv(tmp_path / f"src_{W}x{H}.yuv", frames)
    dec = _write_yuv(tmp_path / f"dec_{W}x{H}.yuv", frames[:3])
    assert _run(["eval", str(src), str(dec), "--frames", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["frames"] == 3 and d["psnr-y"] == 100.0
    assert _run(["eval", str(dec), str(src), "--frames", "2", "--json"]) == 0  # either order
    assert json.loads(capsys.readouterr().out)["frames"] == 2
    assert _run(["eval", str(src), str(dec), "--frames", "4"]) == 2  # more than one of them holds
    err = capsys.readouterr().err
    assert "cannot compare 4 frames" in err and len(err.strip().splitlines()) == 1


def test_a_source_against_its_png_folder_in_either_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #16.5: a 4:2:0 source and a PNG folder (RGB) are compared with the PNG's planes at 4:2:0."""
    from dataclasses import replace

    from hinerv.io import open_video, open_writer
    from hinerv.sample import write_sample

    src, pngs, y4m = tmp_path / "src.y4m", tmp_path / "dec", tmp_path / "dec.y4m"
    write_sample(src, width=64, height=48, frames=3)
    with open_video(src) as r, open_writer(pngs, replace(r.info, chroma="444")) as w, \
            open_writer(y4m, r.info) as w2:  # fmt: skip
        for t in range(len(r)):
            rgb = r.read_rgb_float(t)
            w.write_rgb(rgb)
            w2.write_rgb(rgb)  # what a 4:2:0 decode of the same RGB frames stores
    results = []
    for a, b in ((src, pngs), (pngs, src), (src, y4m)):
        assert _run(["eval", str(a), str(b), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    png_ab, png_ba, via_y4m = results
    assert png_ab == png_ba
    assert png_ab["frames"] == 3 and png_ab["psnr-rgb"] == 100.0  # the PNGs hold the source's RGB
    for k in ("psnr-y", "psnr-u", "psnr-v"):
        assert png_ab[k] == pytest.approx(via_y4m[k], abs=1e-6)
