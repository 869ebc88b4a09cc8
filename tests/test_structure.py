"""The redesign's invariants (issue #18): one default pipeline, one device policy, recipes planned by name,
checkpoint names from the pipeline, one fsync'd atomic writer, no import circle."""

from __future__ import annotations

import ast
import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

from hinerv.budget import StepCosts, measure_step_seconds, plan_training
from hinerv.config import ModelConfig
from hinerv.device import DevicePolicy, resolve_device
from hinerv.errors import ConfigError, InputError
from hinerv.model import HiNeRV
from hinerv.pipelines import DEFAULT_PIPELINE, PIPELINE_NAMES, get_pipeline
from hinerv.pipelines.rd import RDRecipe, RDSettings
from hinerv.recipe import Recipe, Stage
from hinerv.train import Schedule, Trainer

TINY = ModelConfig(
    channels=8,
    depths=(1, 1, 1, 1),
    scales=(2, 2, 2, 2),
    base_grid_channels=2,
    enc_channels=2,
    base_grid_frames=2,
)


def _frames() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)


def test_rd_is_the_default_pipeline_of_every_entry_point() -> None:
    from hinerv.bench.codecs import HiNeRVCodec
    from hinerv.cli.codec_cmd import _pipeline
    from hinerv.codec import EncodeOptions

    assert DEFAULT_PIPELINE == "rd" and set(PIPELINE_NAMES) == {"paper", "rd"}
    assert EncodeOptions().pipeline == "rd"
    assert HiNeRVCodec(sizes=("xxs",)).pipeline == "rd"
    assert _pipeline(None, None) == ("rd", 6) and _pipeline(None, 8) == ("paper", 8)
    with pytest.raises(ConfigError, match="paper or rd"):
        get_pipeline("jpeg")


def test_device_policy() -> None:
    cpu = DevicePolicy.resolve("cpu", amp=True)
    assert cpu.device == torch.device("cpu") and not cpu.amp  # fp16 autocast is CUDA-only
    assert cpu.adam_flags() == {"fused": True, "foreach": None} and cpu.clip_foreach() is True
    assert cpu.decode_batch() == 1 and cpu.fused_cpu_kernels() and not cpu.frames_on_device()
    with pytest.raises(ConfigError, match="--compile"):
        cpu.check_compile(True)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


class _TwoPhase(Recipe):
    """A third recipe with its own stage names: float training, then the same at a tenth of the lr."""

    def stages(self, schedule: Schedule) -> tuple[Stage, ...]:
        return (
            Stage("warm", schedule.main_epochs, ("main",), warmup=True),
            Stage("cool", schedule.prune_epochs + schedule.qat_epochs, ("prune", "qat"), lr_scale=0.1),
        )


def test_a_recipe_with_its_own_stage_names_trains_and_is_planned() -> None:
    torch.manual_seed(0)
    sched = Schedule(name="t", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1)
    tr = Trainer(HiNeRV(TINY, 3, 32, 32), _frames(), 255, sched, recipe=_TwoPhase())
    assert tr.stages == ("warm", "cool") and tr.total_epochs == 4
    assert set(measure_step_seconds(tr, steps=1)) == {"warm", "cool"}
    seen = []
    tr.fit(callback=lambda ev: seen.append(ev.stage))
    assert tr.done and seen[0] == "warm" and seen[-1] == "cool"
    # a budget for 20 of a 40-epoch schedule's epochs (3 steps per epoch: 0.3 s an epoch)
    long = Schedule(name="l", main_epochs=30, warmup_epochs=3, prune_epochs=5, qat_epochs=5)
    tr = Trainer(HiNeRV(TINY, 3, 32, 32), _frames(), 255, long, recipe=_TwoPhase())
    costs = StepCosts({"warm": 0.1, "cool": 0.1}, forward=0.0)
    plan = plan_training(tr, 2.0 + 6.1, costs=costs)  # 2 s of finishing reserved
    s = plan.schedule
    assert plan.stage_steps.keys() == {"warm", "cool"} and plan.fits and s.total_epochs == 20
    assert plan.stage_steps["cool"] == 3 * (s.prune_epochs + s.qat_epochs)


def test_rd_ablation_without_pretraining_is_measured_on_its_own_stages() -> None:
    """The planner used to time the paper's stage names on this recipe (main, prune, qat)."""
    torch.manual_seed(0)
    sched = Schedule(name="t", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1)
    recipe = RDRecipe(RDSettings(lam=0.1, pretrain=False), pixels=3 * 32 * 32)
    tr = Trainer(HiNeRV(TINY, 3, 32, 32), _frames(), 255, sched, recipe=recipe)
    assert set(measure_step_seconds(tr, steps=1)) == {"main", "ste"}


def test_a_work_folder_input_named_like_an_rd_checkpoint_is_refused(tmp_path: Path) -> None:
    """validate.py listed the paper checkpoints only; the rd encode deletes rd.ckpt on a fresh run."""
    from hinerv import validate as V
    from hinerv.codec import EncodeOptions

    src = tmp_path / "rd.ckpt"
    src.write_bytes(b"YUV4MPEG2 W16 H16 F25:1\nFRAME\n" + bytes(384))
    opts = EncodeOptions(size="xxs", schedule="tiny", device="cpu", pipeline="rd")
    with pytest.raises(InputError, match="refusing"):
        V.check_encode_request(src, tmp_path / "x.bin", opts, workdir=tmp_path)


def test_validate_reads_toml_with_tomli_where_tomllib_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tomli")
    import hinerv.validate as V

    monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: no tomllib
    try:
        assert importlib.reload(V).tomllib.__name__ == "tomli"
    finally:
        monkeypatch.undo()
        importlib.reload(V)


def test_atomic_writes_are_flushed_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bitstream and checkpoint writer (io.base.atomic_write) fsyncs before the rename."""
    from hinerv.io.base import atomic_write

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else str(fd))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "a.bin"
    atomic_write(out, lambda f: f.write(b"abc"))
    assert out.read_bytes() == b"abc" and len(synced) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "b.bin", lambda f: (_ for _ in ()).throw(RuntimeError("x")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # nothing partial left


def _imports(path: Path, package: str) -> set[str]:
    """hinerv modules ``path`` imports anywhere (functions included), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("hinerv"):
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hinerv"))
    return out


def test_no_import_circle_among_the_core_modules() -> None:
    """No module of the library reaches itself again through its imports (bench and cli excluded: entry
    points, which import everything)."""
    root = Path(__file__).resolve().parent.parent / "hinerv"
    mods: dict[str, Path] = {}
    for p in root.rglob("*.py"):
        rel = p.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        name = ".".join(parts)
        if not name.startswith(("hinerv.bench", "hinerv.cli")):
            mods[name] = p
    graph = {m: {i for i in _imports(p, "hinerv") if i in mods and i != m} for m, p in mods.items()}

    def reaches(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    circles = sorted(m for m in graph if m in reaches(m))
    assert circles == []
