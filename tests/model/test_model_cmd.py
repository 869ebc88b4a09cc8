"""``hinerv model`` CLI."""

from __future__ import annotations

import json

import pytest

from hinerv.cli import main

KEYS = {
    "params",
    "params_network",
    "params_grids",
    "params_base_grid",
    "params_local_grids",
    "params_enc_linears",
    "macs_per_pixel",
    "config",
}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_preset_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["model", "--preset", "uvg-hinerv-s", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["params"] == 3_188_933
    assert data["params_grids"] == 345_600 + 226_800
    assert data["architecture"]["scales"] == [5, 3, 2, 2]
    assert data["architecture"]["stage_channels"] == [280, 140, 70, 35]
    assert data["config"]["channels"] == 280
    assert 86_000 < data["macs_per_pixel"] < 88_500


def test_size_json_with_padding(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["model", "--size", "s", "--width", "426", "--height", "240", "--frames", "30", "--json"]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["padded"] == {"height": 240, "width": 432, "pad_bottom": 0, "pad_right": 6}
    assert data["params"] == (data["params_network"] + data["params_grids"] + data["params_enc_linears"])


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["model", "--preset", "mcl-hinerv-xxs"], capsys)
    assert code == 0
    assert "777203" in out and "architecture" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["model", "--preset", "no-such-model"],
        ["model", "--size", "s", "--width", "256"],
        ["model", "--size", "huge", "--width", "256", "--height", "144", "--frames", "8"],
        ["model"],
        ["model", "--preset", "uvg-hinerv-s", "--size", "s"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert "error" in err
