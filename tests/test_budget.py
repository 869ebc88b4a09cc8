"""Time budgets: durations, proportional schedule fitting, calibration that leaves no trace, planning."""

from __future__ import annotations

import pytest
import torch

from hinerv.budget import (
    BudgetKeeper,
    StepCosts,
    fit_schedule,
    measure_step_seconds,
    parse_duration,
    plan_training,
)
from hinerv.config import ModelConfig
from hinerv.errors import ConfigError
from hinerv.model import HiNeRV
from hinerv.pipelines.paper import PaperRecipe
from hinerv.train import Schedule, Trainer, load_schedule

TINY = ModelConfig(
    channels=8,
    depths=(1, 1, 1, 1),
    scales=(2, 2, 2, 2),
    base_grid_channels=2,
    enc_channels=2,
    base_grid_frames=2,
)
SCHED = Schedule(name="t", main_epochs=3, warmup_epochs=1, prune_epochs=1, qat_epochs=1)


def _trainer(sched: Schedule = SCHED) -> Trainer:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    return Trainer(HiNeRV(TINY, 3, 32, 32), frames, 255, sched, recipe=PaperRecipe(), seed=0)


def test_parse_duration() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("45") == 45
    assert parse_duration(" 2 min ") == 120
    for bad in ("", "abc", "10x", "0s", "-5m", "m"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_fit_schedule_keeps_proportions() -> None:
    full = load_schedule("full")  # 300 + 60 + 30
    s = fit_schedule(full, 78)
    assert (s.main_epochs, s.prune_epochs, s.qat_epochs) == (60, 12, 6)
    assert s.warmup_epochs == 6 and s.total_epochs == 78 and s.lr == full.lr
    for n in (3, 4, 7, 13, 100, 391):
        f = fit_schedule(full, n)
        assert f.total_epochs == n
        assert min(f.main_epochs, f.prune_epochs, f.qat_epochs) >= 1  # every stage still happens
        assert f.main_epochs >= f.prune_epochs >= f.qat_epochs
    with pytest.raises(ConfigError):
        fit_schedule(full, 2)
    # zero-epoch stages stay at zero; a partial refit leaves the other stages alone
    no_prune = Schedule(main_epochs=10, warmup_epochs=1, prune_epochs=0, qat_epochs=5)
    assert fit_schedule(no_prune, 6).prune_epochs == 0
    part = fit_schedule(full, 9, ("prune", "qat"))
    assert (part.main_epochs, part.prune_epochs, part.qat_epochs) == (300, 6, 3)


def test_calibration_does_not_change_training() -> None:
    a, b = _trainer(), _trainer()
    sps = measure_step_seconds(b)
    assert set(sps) == {"main", "prune", "qat"} and all(v > 0 for v in sps.values())
    assert b.stage == "main" and b.epoch == 0 and not b.masks and b.elapsed == 0
    a.fit()
    b.fit()
    for (n, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), n
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)


def test_calibration_mid_run_restores_the_stage() -> None:
    tr = _trainer()
    tr.run_epoch()
    tr.run_epoch()
    tr.run_epoch()  # now in the prune stage, masks made
    assert tr.stage == "prune"
    masks = {k: v.clone() for k, v in tr.masks.items()}
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    measure_step_seconds(tr, steps=1)
    assert tr.stage == "prune" and tr.epoch == 0
    assert all(torch.equal(masks[k], tr.masks[k]) for k in masks)
    assert all(torch.equal(before[k], v) for k, v in tr.model.state_dict().items())


def test_plan_fits_the_budget() -> None:
    tr = _trainer(load_schedule("full"))
    costs = StepCosts({"main": 0.1, "prune": 0.12, "qat": 0.2}, forward=0.05)
    # T = 3 steps per epoch: a main epoch costs 0.3 s; finishing reserves 4 * 3 * 0.05 = 0.6 s
    plan = plan_training(tr, 30.0, elapsed_seconds=2.0, costs=costs)
    assert plan.fits and plan.expected_seconds <= 30.0
    assert plan.expected_seconds > 30.0 - 0.7  # within one epoch of the budget
    s = plan.schedule
    assert tr.schedule is s and s.main_epochs > s.prune_epochs > s.qat_epochs >= 1
    assert plan.steps == s.total_epochs * 3
    assert "budget" in plan.message() and plan.hint is None
    # no budget: the schedule is kept and an hour-plus run gets the hint
    tr2 = _trainer(load_schedule("full"))
    slow = StepCosts({"main": 5.0, "prune": 5.0, "qat": 5.0}, forward=1.0)
    p2 = plan_training(tr2, None, costs=slow)
    assert tr2.schedule == load_schedule("full") and p2.steps == 390 * 3
    assert p2.hint is not None and "--time-budget" in p2.hint and "--schedule short" in p2.hint
    assert "cuda" in p2.hint and "--schedule fast" not in p2.hint  # auto fits the rates to a budget itself
    # a budget below one epoch per stage: the minimum runs and the plan says it does not fit
    tr3 = _trainer(load_schedule("full"))
    p3 = plan_training(tr3, 1.0, costs=slow)
    assert not p3.fits and p3.schedule.total_epochs == 3


def test_keeper_refits_the_schedule_to_the_time_left() -> None:
    import time

    tr = _trainer(Schedule(name="k", main_epochs=2, warmup_epochs=1, prune_epochs=4, qat_epochs=2))
    costs = StepCosts({"main": 1.0, "prune": 1.0, "qat": 1.0}, forward=0.0)
    # a budget that has already run out: the running main stage ends, later stages drop to one epoch
    keeper = BudgetKeeper(
        tr, budget_seconds=1.0, started=time.perf_counter() - 10, costs=costs, finish_seconds=0
    )
    tr.fit(epoch_hook=keeper)
    assert (tr.schedule.main_epochs, tr.schedule.prune_epochs, tr.schedule.qat_epochs) == (1, 1, 1)
    assert tr.done and tr.masks and keeper.refits >= 1
    # time to spare (the real steps take milliseconds against a calibrated second): the schedule grows,
    # in the planned proportions
    tr = _trainer(Schedule(name="g", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1))
    keeper = BudgetKeeper(tr, budget_seconds=10.0, started=time.perf_counter(), costs=costs, finish_seconds=0)
    tr.fit(epoch_hook=keeper)
    s = tr.schedule
    assert s.total_epochs > 4 and s.main_epochs >= s.prune_epochs >= 1 and s.qat_epochs >= 1
    assert tr.done


def test_eta_weights_stages_by_their_step_cost() -> None:
    from hinerv.budget import EtaEstimator
    from hinerv.train import TrainEvent

    tr = _trainer(Schedule(name="e", main_epochs=2, warmup_epochs=0, prune_epochs=1, qat_epochs=1))
    costs = StepCosts({"main": 1.0, "prune": 1.0, "qat": 3.0}, forward=0.0)
    now = [0.0]
    eta = EtaEstimator(tr, costs, clock=lambda: now[0])

    def ev(stage: str, epoch: int, step: int, stage_epochs: int) -> TrainEvent:
        return TrainEvent(stage, epoch, stage_epochs, step, 3, 0, 4, 0.0, 0.0, 0.0, False)

    # the machine runs at half the calibrated speed: 2 s per calibrated second
    now[0] = 2.0
    first = eta(ev("main", 1, 1, 2))
    assert first == pytest.approx(5 * 1 + 3 * 1 + 3 * 3)  # ratio 1 until a second step is seen
    now[0] = 4.0
    left = eta(ev("main", 1, 2, 2))
    # 4 main steps + 3 prune steps at 1 s, 3 QAT steps at 3 s, at the observed 2x
    assert left == pytest.approx(2 * (4 + 3 + 9))


def test_a_budget_beyond_the_schedule_plans_it_whole_and_at_once() -> None:
    """Issue #16.3: ``--time-budget 100h`` stalled the planner (a linear scan over epoch counts)."""
    import time

    full = load_schedule("full")
    costs = StepCosts({"main": 0.1, "prune": 0.12, "qat": 0.2}, forward=0.05)  # full: ~2 min
    for hours in (100.0, 10000.0):
        tr = _trainer(full)
        t0 = time.perf_counter()
        plan = plan_training(tr, hours * 3600, costs=costs)
        assert time.perf_counter() - t0 < 0.5
        assert tr.schedule == full and plan.steps == full.total_epochs * 3  # not stretched
        assert plan.fits and plan.spare
        assert len(plan.notes) == 1 and "more than schedule full needs" in plan.notes[0]
        assert "more than the schedule needs" in plan.message()
    # a budget the schedule just fits: it runs whole, but the budget is not "spare" (a keeper runs)
    need = costs.schedule_seconds(full, 3) + 4 * 3 * 0.05 / 2 + 2.0
    plan = plan_training(_trainer(full), need * 1.1, costs=costs)
    assert plan.schedule == full and plan.fits and not plan.spare and not plan.notes


def test_planning_any_budget_below_the_schedule_is_fast_and_largest() -> None:
    import time

    full = load_schedule("full")
    costs = StepCosts({"main": 1e-4, "prune": 1.2e-4, "qat": 2e-4}, forward=0.0)
    for budget in (0.02, 0.05, 0.1):  # the whole schedule needs 0.13 s
        tr = _trainer(full)
        t0 = time.perf_counter()
        plan = plan_training(tr, budget + 2.0, costs=costs)  # 2 s of finishing reserved
        assert time.perf_counter() - t0 < 0.5
        s = plan.schedule
        assert plan.fits and costs.schedule_seconds(s, 3) <= budget and s.total_epochs < full.total_epochs
        bigger = fit_schedule(full, s.total_epochs + 1)
        assert costs.schedule_seconds(bigger, 3) > budget  # the next epoch count does not fit


def test_keeper_is_fast_with_a_huge_budget() -> None:
    import time

    tr = _trainer(Schedule(name="h", main_epochs=2, warmup_epochs=1, prune_epochs=1, qat_epochs=1))
    costs = StepCosts({"main": 1e-3, "prune": 1e-3, "qat": 1e-3}, forward=0.0)
    keeper = BudgetKeeper(tr, budget_seconds=1e4, started=time.perf_counter(), costs=costs, finish_seconds=0)
    t0 = time.perf_counter()
    keeper(tr)
    assert time.perf_counter() - t0 < 0.5
    assert keeper.refits == 1 and tr.schedule.total_epochs > 1000


def test_auto_schedule_takes_fast_rates_when_few_epochs_fit() -> None:
    """``--schedule auto`` with a budget: ``full``'s stages fitted, at ``fast``'s learning rates and Adam
    β2 when at most FAST_MAX_STEPS steps fit; otherwise exactly what ``full`` would do."""
    from hinerv.budget import FAST_MAX_STEPS, rates_for_length

    full, fast = load_schedule("full"), load_schedule("fast")
    assert load_schedule("auto") == full  # without a budget, auto is full
    costs = StepCosts({"main": 0.1, "prune": 0.12, "qat": 0.2}, forward=0.05)
    tr = _trainer(full)
    assert tr.optimizer.param_groups[0]["betas"][1] == full.adam_beta2
    plan = plan_training(tr, 30.0, elapsed_seconds=2.0, costs=costs, auto=True)
    s = plan.schedule
    assert tr.schedule is s and s.total_epochs * 3 <= FAST_MAX_STEPS and s.name == f"fast~{s.total_epochs}e"
    rates = lambda x: (x.lr, x.warmup_lr, x.min_lr, x.adam_beta2)  # noqa: E731
    assert rates(s) == rates(fast)
    assert tr.optimizer.param_groups[0]["betas"][1] == fast.adam_beta2  # the fresh trainer's Adam follows
    # the same fit without auto differs only in the rates and the name
    tr_full = _trainer(full)
    s_full = plan_training(tr_full, 30.0, elapsed_seconds=2.0, costs=costs).schedule
    assert s == rates_for_length(s_full, 3) and s_full.lr == full.lr
    assert tr_full.optimizer.param_groups[0]["betas"][1] == full.adam_beta2
    # longer fits move smoothly towards full's rates (no jump past FAST_MAX_STEPS) and reach them at
    # full's own length (390 epochs); one beyond the schedule runs it whole
    fit_100 = fit_schedule(full, 100)
    assert rates_for_length(fit_100, FAST_MAX_STEPS // 100).lr == fast.lr
    just_over = rates_for_length(fit_100, FAST_MAX_STEPS // 100 + 1)  # 1 step per epoch too many
    assert full.lr < just_over.lr < fast.lr and just_over.lr > 0.95 * fast.lr
    assert fast.adam_beta2 < just_over.adam_beta2 < full.adam_beta2 and just_over.name == "auto~100e"
    lrs = [rates_for_length(fit_100, spe).lr for spe in (130, 200, 400, 800, 1600)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] > full.lr
    assert rates_for_length(full, 1000) == full  # full's length: the reference's rates
    tr_spare = _trainer(full)  # 390 epochs of 3 steps: whole, and short enough for fast's rates
    spare = plan_training(tr_spare, 1e6, costs=costs, auto=True)
    assert spare.spare and spare.schedule == rates_for_length(full, 3) and spare.schedule.total_epochs == 390
    # a resumed (already stepped) trainer keeps its optimizer when the schedule changes
    tr.run_epoch()
    opt = tr.optimizer
    tr.set_schedule(fit_schedule(tr.schedule, 10))
    assert tr.optimizer is opt


def test_auto_is_the_default_and_only_changes_budgeted_encodes() -> None:
    from hinerv.codec import EncodeOptions

    plan = EncodeOptions(size="xxs").resolve()
    assert plan.auto_schedule and plan.schedule == load_schedule("full") and plan.schedule.name == "full"
    assert not EncodeOptions(size="xxs", schedule="full").resolve().auto_schedule
