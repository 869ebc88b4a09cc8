"""Tests for hinerv.validate: the up-front checks (pure: nothing is written or deleted)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hinerv import validate as V
from hinerv.codec import EncodeOptions
from hinerv.errors import ConfigError, InputError
from hinerv.pipelines.paper import PaperOptions
from hinerv.pipelines.rd import RDOptions


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    p = tmp_path / "victim.y4m"
    p.write_bytes(b"YUV4MPEG2 W16 H16 F25:1\nFRAME\n" + bytes(384))
    return p


def test_same_file_by_identity(src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "link.y4m").symlink_to(src)
    os.link(src, tmp_path / "hard.y4m")
    monkeypatch.chdir(tmp_path)
    for other in (src, tmp_path / "link.y4m", tmp_path / "hard.y4m", Path("./victim.y4m"),
                  tmp_path / "sub" / ".." / "victim.y4m"):  # fmt: skip
        if "sub" in str(other):
            (tmp_path / "sub").mkdir(exist_ok=True)
        assert V.same_file(src, other)
        with pytest.raises(InputError, match="refusing to write"):
            V.check_not_same_file([src], [other])
    assert not V.same_file(src, tmp_path / "new.bin")
    V.check_not_same_file([src], [tmp_path / "new.bin", None])


def test_distinct_outputs_and_not_inside(src: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="same file"):
        V.check_distinct_outputs([tmp_path / "a.bin", tmp_path / "." / "a.bin"])
    V.check_distinct_outputs([tmp_path / "a.bin", None, tmp_path / "b.y4m"])
    with pytest.raises(InputError, match="work folder"):
        V.check_not_inside([src], tmp_path)
    V.check_not_inside([src], tmp_path / "elsewhere")


def test_bits_epochs_frames() -> None:
    assert V.check_bits(6, V.CLI_BITS) == 6
    for bad in (5, 9, 99, 0):
        with pytest.raises(ConfigError, match="6, 7 or 8"):
            V.check_bits(bad, V.CLI_BITS)
    assert V.check_bits(2) == 2 and V.check_bits(16) == 16  # the library range
    with pytest.raises(ConfigError, match="2..16"):
        V.check_bits(17)
    assert V.check_epochs(None) is None and V.check_epochs(1) == 1
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="at least 1"):
            V.check_epochs(bad)
    with pytest.raises(InputError):
        V.check_frame_count(0)


@pytest.mark.parametrize(
    "text,want", [("3:", (3, None)), (":3", (0, 3)), ("1:4", (1, 4)), (None, None), (" 2 : 5 ", (2, 5))]
)
def test_frame_ranges(text: str | None, want: tuple[int, int | None] | None) -> None:
    assert V.parse_frame_range(text) == want


@pytest.mark.parametrize("text", ["3", "a:b", "1:2:3", "4:4", "5:2", "-1:3", ""])
def test_bad_frame_ranges(text: str) -> None:
    with pytest.raises(InputError, match="--frames"):
        V.parse_frame_range(text)


def test_output_paths(tmp_path: Path) -> None:
    V.check_output_path(tmp_path / "x.bin", "bitstream")
    V.check_output_path(tmp_path / "new" / "deeper" / "x.bin", "bitstream", create_parent=True)
    for bad in ("x.y4m", "x.yuv", "x.mp4"):
        with pytest.raises(InputError, match="video extension"):
            V.check_output_path(tmp_path / bad, "bitstream")
    with pytest.raises(InputError, match="is a folder"):
        V.check_output_path(tmp_path, "bitstream")
    for ok in ("r.y4m", "r.yuv", "r.mp4", "r.mkv", "frames"):
        V.check_output_path(tmp_path / ok, "video")
    with pytest.raises(InputError, match="unknown output extension"):
        V.check_output_path(tmp_path / "out.bin", "video")
    with pytest.raises(InputError, match="does not exist"):
        V.check_output_path(tmp_path / "missing" / "r.y4m", "video")
    with pytest.raises(InputError, match=".json"):
        V.check_output_path(tmp_path / "r.csv", "json")
    V.check_output_path(tmp_path / "rd.svg", "image")
    with pytest.raises(InputError, match="image extension"):
        V.check_output_path(tmp_path / "rd.json", "image")


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    real = os.access
    # as root os.access says yes to everything; emulate an ordinary user's answer for ro/
    monkeypatch.setattr(V.os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    try:
        with pytest.raises(InputError, match="permission denied"):
            V.check_output_path(ro / "x.bin", "bitstream")
        with pytest.raises(InputError, match="permission denied"):
            V.check_writable_dir(ro / "a" / "b", create=True)
    finally:
        ro.chmod(0o700)


def test_schedule_and_model(tmp_path: Path) -> None:
    assert V.check_schedule("tiny", 2).main_epochs == 2
    with pytest.raises(ConfigError, match="unknown schedule"):
        V.check_schedule("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("main_epochs = [\n")
    with pytest.raises(ConfigError, match="not valid"):
        V.check_schedule(str(bad))
    with pytest.raises(ConfigError, match="at least 1"):
        V.check_schedule("tiny", 0)
    V.check_model("s", None)
    with pytest.raises(ConfigError, match="unknown model size"):
        V.check_model("huge", None)
    with pytest.raises(ConfigError):
        V.check_model("s", "no-such-preset")


def _paper(**kw: object) -> EncodeOptions:
    return EncodeOptions(schedule="tiny", pipeline="paper", **kw)  # type: ignore[arg-type]


def test_encode_request(src: Path, tmp_path: Path) -> None:
    ok = EncodeOptions(size="xxs", schedule="tiny", device="cpu", pipeline="paper")
    wd = tmp_path / "o.bin.work"
    V.check_encode_request(src, tmp_path / "o.bin", ok, recon=tmp_path / "r.y4m", default_workdir=wd)
    cases: list[tuple[dict, type[Exception], str]] = [
        ({"dst": src}, InputError, "refusing to write"),
        ({"recon": src}, InputError, "refusing to write"),
        ({"recon": tmp_path / "r.bin"}, InputError, "unknown output extension"),
        ({"opts": _paper(settings=PaperOptions(bits=99))}, ConfigError, "--bits"),
        ({"opts": _paper(epochs=0)}, ConfigError, "at least 1"),
        ({"opts": _paper(size="zz")}, ConfigError, "size"),
        ({"opts": _paper(settings=PaperOptions(scale_mode="x"))}, ConfigError, "scale-mode"),  # type: ignore[arg-type]
        ({"opts": _paper(device="tpu")}, ConfigError, "device"),
        ({"recon": tmp_path / "o.bin"}, InputError, "unknown output extension|same file"),
    ]
    for change, exc, match in cases:
        kw = {"dst": tmp_path / "o.bin", "opts": ok, "recon": None, "workdir": None,
              "default_workdir": wd, **change}  # fmt: skip
        dst, opts = kw.pop("dst"), kw.pop("opts")
        with pytest.raises(exc, match=match):
            V.check_encode_request(src, dst, opts, **kw)
    V.check_encode_request(src, tmp_path / "x.bin", ok, workdir=tmp_path)  # kept, input untouched
    with pytest.raises(InputError, match="work folder"):  # the default one is deleted afterwards
        V.check_encode_request(src, tmp_path / "x.bin", ok, default_workdir=tmp_path)
    src2 = tmp_path / "recon.y4m"  # the encoder's own reconstruction file in the work folder
    src2.write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="refusing"):
        V.check_encode_request(src2, tmp_path / "x.bin", ok, workdir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recon.y4m", "victim.y4m"]  # nothing made


def test_decode_request(src: Path, tmp_path: Path) -> None:
    stream = tmp_path / "s.yuv"  # a bitstream with a video's name, decoded onto itself
    stream.write_bytes(b"HNRV")
    with pytest.raises(InputError, match="refusing"):
        V.check_decode_request(stream, stream)
    with pytest.raises(InputError, match="no such bitstream"):
        V.check_decode_request(tmp_path / "missing.bin", tmp_path / "x.y4m")
    with pytest.raises(InputError, match="unknown output extension"):
        V.check_decode_request(stream, tmp_path / "x.bin")
    V.check_decode_request(stream, tmp_path / "x.y4m", (3, None))


# ------------------------------------------------------------------------------ issue #16
def test_lambda_must_be_finite(src: Path, tmp_path: Path) -> None:
    assert V.check_lambda(None) is None and V.check_lambda(0.0) == 0.0 and V.check_lambda(2.5) == 2.5
    for bad in (float("inf"), float("-inf"), float("nan"), -1.0):
        with pytest.raises(ConfigError, match="--lambda must be a finite number >= 0"):
            V.check_lambda(bad)
    with pytest.raises(ConfigError, match="finite"):  # the library's request check too
        inf = EncodeOptions(schedule="tiny", pipeline="rd", settings=RDOptions(lam=float("inf")))
        V.check_encode_request(src, tmp_path / "o.bin", inf)


def test_optimizer_is_auto_or_a_plan() -> None:
    from hinerv.optim import OPTIMIZER_CHOICES

    assert [V.check_optimizer(n) for n in OPTIMIZER_CHOICES] == list(OPTIMIZER_CHOICES)
    for bad in ("sgd", "SOAP", ""):
        msg = f"unknown optimizer {bad!r} \\(auto, adam, soap, soap-pretrain\\)"
        with pytest.raises(ConfigError, match=msg):
            V.check_optimizer(bad)


def test_time_budget_needs_a_unit() -> None:
    assert V.parse_time_budget(None) is None
    assert V.parse_time_budget("10m") == 600 and V.parse_time_budget("1h30m") == 5400
    for bare in ("10", "2.5", " 600 "):
        with pytest.raises(ConfigError, match="has no unit: add one"):
            V.parse_time_budget(bare)
    with pytest.raises(ConfigError, match="duration"):
        V.parse_time_budget("soon")


def test_frames_within_and_device() -> None:
    V.check_frames_within(None, 4)
    V.check_frames_within(4, 4)
    with pytest.raises(InputError, match="--frames 5 is more than the source's 4 frames"):
        V.check_frames_within(5, 4)
    V.check_device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        V.check_device("tpu")


def test_cli_workdir_must_be_new_empty_or_ours(tmp_path: Path) -> None:
    V.check_cli_workdir(None)
    V.check_cli_workdir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    V.check_cli_workdir(tmp_path / "empty")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "job.json").write_text("{}")
    (ours / "state.ckpt").write_bytes(b"")
    V.check_cli_workdir(ours)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a hinerv work folder"):
        V.check_cli_workdir(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        V.check_cli_workdir(tmp_path / "notes.txt")


def test_encode_refuses_a_missing_output_folder_like_decode(src: Path, tmp_path: Path) -> None:
    ok = EncodeOptions(size="xxs", schedule="tiny", device="cpu")
    with pytest.raises(InputError, match="does not exist"):
        V.check_encode_request(src, tmp_path / "missing" / "o.bin", ok)
    with pytest.raises(InputError, match="does not exist"):
        V.check_encode_request(src, tmp_path / "o.bin", ok, workdir=tmp_path / "missing" / "wd")
    with pytest.raises(InputError, match="does not exist"):
        V.check_decode_request(src, tmp_path / "missing" / "d.y4m")
    V.check_encode_request(src, tmp_path / "o.bin", ok, workdir=tmp_path / "wd")  # the work folder is ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.y4m"]
