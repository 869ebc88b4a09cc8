"""End-to-end codec on a tiny clip: encode -> bitstream -> decode, exactness, random access, resume,
determinism and hostile bitstreams."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hinerv.bitstream import Stream, pack, unpack
from hinerv.codec import EncodeOptions, decode_file, encode_file, inspect_file, load_decoder
from hinerv.errors import BitstreamError, ConfigError, InputError
from hinerv.io import open_video
from hinerv.metrics import compare_videos
from hinerv.pipelines.paper import PaperOptions
from hinerv.sample import write_sample
from hinerv.types import VideoInfo

OPTS = EncodeOptions(
    size="xxs", schedule="tiny", device="cpu", seed=0, pipeline="paper", settings=PaperOptions(bits=6)
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("clip") / "clip.y4m"
    write_sample(p, width=64, height=48, frames=4, fps=25)
    return p


@pytest.fixture(scope="module")
def encoded(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("enc") / "clip.bin"
    rep = encode_file(clip, out, OPTS)
    return out, rep


def test_report_matches_file(encoded: tuple[Path, object]) -> None:
    out, rep = encoded
    data = out.read_bytes()
    assert rep.bytes == len(data)  # type: ignore[attr-defined]
    assert rep.bpp == pytest.approx(8 * len(data) / (4 * 48 * 64))  # type: ignore[attr-defined]
    assert rep.bitrate == pytest.approx(8 * len(data) * 25 / (4 * 1000))  # type: ignore[attr-defined]
    assert not out.with_name(out.name + ".work").exists()  # default work folder removed on success
    d = rep.as_dict()  # type: ignore[attr-defined]
    for k in ("psnr-rgb", "psnr-y", "psnr-yuv", "ms-ssim-rgb", "bytes", "bpp", "encode_seconds"):
        assert k in d
    assert "distortion" not in d and "optimizer" not in d  # rd settings; this is the paper pipeline


def test_decode_reproduces_encoder_metrics(clip: Path, encoded: tuple[Path, object], tmp_path: Path) -> None:
    out, rep = encoded
    dec = tmp_path / "dec.y4m"
    r = decode_file(out, dec, device="cpu")
    assert r.frames == 4
    with open_video(clip) as a, open_video(dec) as b:
        m = compare_videos(a, b).as_dict()
    assert m["psnr-rgb"] == pytest.approx(rep.metrics["psnr-rgb"], abs=1e-3)  # type: ignore[attr-defined]
    assert m["psnr-y"] == pytest.approx(rep.metrics["psnr-y"], abs=1e-3)  # type: ignore[attr-defined]


def test_random_access_equals_full_decode(encoded: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = encoded
    decode_file(out, tmp_path / "all.y4m", device="cpu")
    decode_file(out, tmp_path / "part.y4m", frames=(1, 3), device="cpu")
    with open_video(tmp_path / "all.y4m") as a, open_video(tmp_path / "part.y4m") as b:
        assert len(b) == 2
        for i in range(2):
            for pa, pb in zip(a.read_yuv(i + 1), b.read_yuv(i), strict=True):
                assert np.array_equal(pa, pb)
    with pytest.raises(InputError):
        decode_file(out, tmp_path / "bad.y4m", frames=(3, 9), device="cpu")
    assert not (tmp_path / "bad.y4m").exists()


def test_decoder_gets_exactly_the_coded_integers(encoded: tuple[Path, object]) -> None:
    out, _ = encoded
    data = out.read_bytes()
    model, info, stream = load_decoder(data)
    again = pack(stream)
    assert again == data  # unpack -> pack is the identity: the decoder saw exactly what was coded
    assert info.width == 64 and info.height == 48 and info.frames == 4


def test_seeded_encode_is_deterministic(clip: Path, encoded: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = encoded
    out2 = tmp_path / "again.bin"
    encode_file(clip, out2, OPTS)
    assert out2.read_bytes() == out.read_bytes()


def test_killed_encode_resumes_to_the_same_bitstream(
    clip: Path, encoded: tuple[Path, object], tmp_path: Path
) -> None:
    out, _ = encoded
    dst, wd = tmp_path / "r.bin", tmp_path / "work"
    calls = {"n": 0}

    def killer(ev: object) -> None:
        if not isinstance(ev, str):
            calls["n"] += 1
            if calls["n"] == 20:  # in the middle of training (tiny: 6 epochs x 4 steps)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_file(clip, dst, OPTS, workdir=wd, progress=killer)
    assert not dst.exists()
    assert (wd / "state.ckpt").exists() or (wd / "pruned.ckpt").exists()
    rep = encode_file(clip, dst, OPTS, workdir=wd, resume=True)
    assert dst.read_bytes() == out.read_bytes()
    # the report counts the training done before the kill too
    final = torch.load(wd / "qat-b6.ckpt", weights_only=True)
    assert rep.train_seconds == pytest.approx(final["elapsed"]) and rep.train_seconds > 0
    assert rep.encode_seconds >= rep.train_seconds
    # another bit depth reuses the pruned model: only QAT runs again
    encode_file(
        clip, tmp_path / "b8.bin", replace(OPTS, settings=PaperOptions(bits=8)), workdir=wd, resume=True
    )
    assert (wd / "qat-b8.ckpt").exists() and (wd / "qat-b6.ckpt").exists()
    b6, b8 = (torch.load(wd / f"qat-b{b}.ckpt", weights_only=True) for b in (6, 8))
    assert b6["bits"] == 6 and b8["bits"] == 8
    assert any(not torch.equal(b6["model"][k], b8["model"][k]) for k in b6["model"])  # QAT ran again
    assert (tmp_path / "b8.bin").stat().st_size > dst.stat().st_size
    # ... and so does another scale rule; coming back to the first settings reproduces its stream
    ch = replace(OPTS, settings=PaperOptions(scale_mode="channel"))
    encode_file(clip, tmp_path / "ch.bin", ch, workdir=wd, resume=True)
    assert (wd / "qat-b6-channel.ckpt").exists()
    encode_file(clip, tmp_path / "again.bin", OPTS, workdir=wd, resume=True)
    assert (tmp_path / "again.bin").read_bytes() == out.read_bytes()


def test_info_without_decoding(encoded: tuple[Path, object]) -> None:
    out, _ = encoded
    d = inspect_file(out)
    assert d["video"]["width"] == 64 and d["total_bytes"] == out.stat().st_size
    assert d["meta"]["bits"] == 6


def test_truncated_and_corrupt_bitstreams(encoded: tuple[Path, object], tmp_path: Path) -> None:
    data = encoded[0].read_bytes()
    for i, bad in enumerate([data[: len(data) // 2], data[:10], b"", b"NOPE" + data[4:]]):
        p = tmp_path / f"bad{i}.bin"
        p.write_bytes(bad)
        with pytest.raises(BitstreamError):
            decode_file(p, tmp_path / f"out{i}.y4m", device="cpu")
        assert not (tmp_path / f"out{i}.y4m").exists()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    p = tmp_path / "flip.bin"
    p.write_bytes(bytes(flipped))
    with pytest.raises(BitstreamError):
        decode_file(p, tmp_path / "flip.y4m", device="cpu")


def test_lying_model_config_is_refused_before_allocation(encoded: tuple[Path, object]) -> None:
    s = unpack(encoded[0].read_bytes())
    huge = dict(s.model)
    huge["channels"] = 1_000_000
    lie = Stream(info=s.info, model=huge, meta=s.meta, tensors=s.tensors, vectors=s.vectors)
    with pytest.raises(BitstreamError):
        load_decoder(pack(lie))
    # a header claiming a million frames (the container's limit) would need a huge model: refused
    lie2 = Stream(
        info=VideoInfo(width=64, height=48, frames=1 << 20),
        model=dict(s.model),
        tensors=s.tensors,
        vectors=s.vectors,
    )
    with pytest.raises(BitstreamError):
        load_decoder(pack(lie2))


def test_compile_on_cpu_is_refused_and_leaves_nothing(clip: Path, tmp_path: Path) -> None:
    """``--compile`` is a CUDA option: on CPU the encode stops with a ConfigError before training and leaves
    neither the output nor a work folder behind."""
    from hinerv.errors import ConfigError

    out = tmp_path / "c.bin"
    with pytest.raises(ConfigError, match="--compile"):
        encode_file(clip, out, replace(OPTS, compile=True))
    assert sorted(tmp_path.iterdir()) == []


def test_report_times_each_phase(encoded: tuple[Path, object]) -> None:
    _, rep = encoded
    t = rep.timings  # type: ignore[attr-defined]
    assert list(t) == ["load", "setup", "train", "export", "verify", "write", "metrics"]
    assert all(v >= 0 for v in t.values()) and t["train"] > 0
    assert sum(t.values()) <= rep.encode_seconds + 1e-3  # type: ignore[attr-defined]
    assert rep.as_dict()["timings"] == t  # type: ignore[attr-defined]


def test_encoder_metrics_are_those_of_the_written_reconstruction(clip: Path, tmp_path: Path) -> None:
    wd = tmp_path / "work"
    rep = encode_file(clip, tmp_path / "o.bin", OPTS, workdir=wd, recon=tmp_path / "rec.yuv")
    with open_video(clip) as a, open_video(wd / "recon.y4m") as b:
        m = compare_videos(a, b).as_dict()
    assert rep.metrics == m  # exactly: measured on the device batches, equal to measuring the files
    with open_video(wd / "recon.y4m") as a, open_video(tmp_path / "rec.yuv", width=64, height=48) as b:
        for t in range(4):
            for pa, pb in zip(a.read_yuv(t), b.read_yuv(t), strict=True):
                assert np.array_equal(pa, pb)


@pytest.mark.parametrize("name", ["d.y4m", "d.yuv", "png/"])
def test_decode_file_writes_what_the_frame_by_frame_path_writes(
    name: str, encoded: tuple[Path, object], tmp_path: Path
) -> None:
    from hinerv.codec import decode_frames
    from hinerv.io import open_writer

    out, _ = encoded
    model, info, _ = load_decoder(out.read_bytes())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref = tmp_path / "a" / name
    with open_writer(ref, replace(info, frames=3)) as w:
        for f in decode_frames(model, info, range(1, 4)):
            w.write_rgb(f)
    decode_file(out, tmp_path / "b" / name, frames=(1, 4), device="cpu")
    got = tmp_path / "b" / name
    if ref.is_dir():
        assert [p.read_bytes() for p in sorted(ref.iterdir())] == [
            p.read_bytes() for p in sorted(got.iterdir())
        ]
    else:
        assert got.read_bytes() == ref.read_bytes()


def test_compiled_decode_is_refused_on_the_cpu(encoded: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = encoded
    with pytest.raises(ConfigError, match="CUDA only"):
        decode_file(out, tmp_path / "d.y4m", device="cpu", compile=True)
    assert list(tmp_path.iterdir()) == []



def test_rgb_cache_is_the_edge_padded_read_rgb(clip: Path) -> None:
    from hinerv.codec import load_rgb_cache

    with open_video(clip) as r:
        cache = load_rgb_cache(r, 48 + 5, 64 + 3)
        assert cache.dtype == torch.uint8 and cache.shape == (4, 3, 53, 67)
        for t in range(4):
            ref = np.pad(r.read_rgb(t), ((0, 0), (0, 5), (0, 3)), mode="edge")
            assert np.array_equal(cache[t].numpy(), ref)


def test_decode_report_times_its_phases(encoded: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = encoded
    r = decode_file(out, tmp_path / "d.y4m", device="cpu")
    assert list(r.timings) == ["load", "decode", "write"]
    assert all(v >= 0 for v in r.timings.values()) and r.timings["decode"] > 0
    assert sum(r.timings.values()) <= r.seconds + 1e-6


def test_resume_key_follows_the_schedule_and_keeps_old_keys(tmp_path: Path) -> None:
    """A work folder is resumed only by an encode with the same schedule: changing Adam's β1 or adding an
    MSE term changes the key; the fields at the value they had before they existed (β1 0.9, no MSE term)
    give the key of a plan that never set them."""
    from hinerv.codec import _fingerprint, build_config

    src = tmp_path / "c.y4m"
    write_sample(src, width=64, height=48, frames=2, fps=25)
    with open_video(src) as r:
        info = r.info
    plan = EncodeOptions(size="xxs", pipeline="rd").resolve()
    cfg = build_config(plan, info)

    def key(**fields: float) -> str:
        return _fingerprint(src, info, cfg, replace(plan, schedule=replace(plan.schedule, **fields)))

    base = key()
    assert key(adam_beta1=0.9, mse_weight=0.0) == base
    assert len({base, key(adam_beta1=0.8), key(mse_weight=14.0), key(adam_beta2=0.99)}) == 4
