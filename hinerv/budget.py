"""Encode-time planning: a wall-clock budget instead of an epoch count, and an estimate before the work.

For an over-fitted codec, encoding *is* training, so its cost is (optimizer steps) x (seconds per step),
and the seconds per step depend on the machine. This module

* parses durations (:func:`parse_duration`: ``90s``, ``10m``, ``2h``, ``1h30m``);
* scales every stage of a :class:`~hinerv.train.Schedule` in proportion to a total number of epochs
  (:func:`fit_schedule`);
* measures seconds per step on the machine by running a few real optimizer steps of each stage on a
  trainer and then restoring the trainer's exact state (:func:`measure_step_seconds`), so the measurement
  does not change the result;
* plans the schedule for a budget and says what to expect (:func:`plan_training` -> :class:`Plan`);
* keeps a running encode on its budget: after each epoch, when the predicted finish drifts, the running
  stage and the stages after it are fitted again to the time left, with the step time actually observed
  (:class:`BudgetKeeper`, an epoch hook);
* estimates the training time left after each step from the per-stage costs (:class:`EtaEstimator`).

Nothing here knows a pipeline: it plans over the trainer's stage list (:meth:`Trainer.stage_list
<hinerv.train.Trainer.stage_list>`: each stage's epochs and the schedule slots they come from) and
measures through the public probe (:class:`hinerv.train.StepProbe`), so it
works for any recipe. Step costs are per stage; schedule fitting is per slot, a slot costing what the
stage that takes it costs. It does no printing: a :class:`Plan` is handed to the caller's progress
callback, and the CLI prints it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from hinerv.errors import ConfigError
from hinerv.train import SCHEDULE_SLOTS, Schedule, StepProbe

if TYPE_CHECKING:
    from hinerv.recipe import Stage
    from hinerv.train import Trainer, TrainEvent

__all__ = [
    "parse_duration",
    "format_duration",
    "fit_schedule",
    "measure_step_seconds",
    "measure_forward_seconds",
    "StepCosts",
    "Plan",
    "plan_training",
    "BudgetKeeper",
    "EtaEstimator",
    "LONG_RUN_SECONDS",
    "finish_seconds",
    "FAST_MAX_STEPS",
    "rates_for_length",
]

#: an expected encode longer than this gets a one-line hint (time budget, shorter schedule, GPU)
LONG_RUN_SECONDS = 3600.0

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")

_FIELDS = {"main": "main_epochs", "prune": "prune_epochs", "qat": "qat_epochs"}

#: a time budget that fits at most this many optimizer steps (all stages; one step per frame and epoch)
#: trains at the ``fast`` schedule's learning rates and Adam β2. ``fast`` won at equal time in fits of
#: 3,200–10,600 steps (25–80 epochs of 128- and 132-frame clips at 10 minutes a point,
#: docs/results/budget/README.md) and at 1,400 steps (44 epochs of 32 frames, README "Time to quality").
#: Above it the rates move towards the reference's (:func:`rates_for_length`): a hard switch to them here
#: lost 21.5 % of rate at equal PSNR on bunny 320x180x132 (12,804 steps at the reference's rates against
#: 11,484 at ``fast``'s, size s, 10 minutes).
FAST_MAX_STEPS = 12_000


def rates_for_length(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """``schedule`` with the learning rates and Adam β2 for its length (the ``auto`` schedule's rule).

    ``full``, ``short`` and ``fast`` share their stage proportions; ``fast`` has 4x the learning rate and
    β2 = 0.99, which win at equal time when few steps fit. With ``N = total_epochs * steps_per_epoch``
    steps:

    - ``N <= FAST_MAX_STEPS``: ``fast``'s ``lr``, ``warmup_lr``, ``min_lr`` and ``adam_beta2`` (named
      ``fast~<E>e``);
    - ``N`` at least what ``full`` runs (390 epochs): the schedule as it is (the reference's rates);
    - in between: each rate (and ``1 - β2``) geometrically between ``fast``'s and the schedule's, at the
      position of ``log N`` between the two ends (named ``auto~<E>e``), so the rates change smoothly with
      the length. The middle is not measured: it only joins the two measured ends without a jump.
    """
    from hinerv.train import load_schedule

    n = schedule.total_epochs
    steps = n * steps_per_epoch
    if steps <= FAST_MAX_STEPS:
        t = 0.0
    else:
        end = load_schedule("full").total_epochs * steps_per_epoch
        if steps >= end:
            return schedule
        t = math.log(steps / FAST_MAX_STEPS) / math.log(end / FAST_MAX_STEPS)
    fast = load_schedule("fast")

    def mix(a: float, b: float) -> float:  # a at t = 0 (fast), b at t = 1 (the schedule's own)
        if t == 0.0:
            return a
        if a <= 0.0 or b <= 0.0:
            return (1 - t) * a + t * b
        return math.exp((1 - t) * math.log(a) + t * math.log(b))

    return replace(
        schedule,
        lr=mix(fast.lr, schedule.lr),
        warmup_lr=mix(fast.warmup_lr, schedule.warmup_lr),
        min_lr=mix(fast.min_lr, schedule.min_lr),
        adam_beta2=1.0 - mix(1.0 - fast.adam_beta2, 1.0 - schedule.adam_beta2),
        name=f"{fast.name}~{n}e" if t == 0.0 else f"auto~{n}e",
    )


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as ``90s``, ``10m``, ``2h``, ``1h30m``, ``1.5h`` or ``600`` (seconds).

    Raises:
        ConfigError: not a duration, or not positive.
    """
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        if not s:
            raise ConfigError("empty duration")
        while pos < len(s):
            m = _PART.match(s, pos)
            if m is None or (m.group(2) and m.group(2) not in _UNITS):
                raise ConfigError(f"cannot read duration {text!r} (use e.g. 90s, 10m, 2h, 1h30m)")
            seconds += float(m.group(1)) * _UNITS[m.group(2) or "s"]
            pos = m.end()
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(f"a duration must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``42 s``, ``12.5 min``, ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fit_schedule(schedule: Schedule, total_epochs: int, stages: Sequence[str] = SCHEDULE_SLOTS) -> Schedule:
    """Scale the given slots (``main``, ``prune``, ``qat``) of ``schedule`` to ``total_epochs`` epochs in
    all, keeping their proportions.

    Every stage that has epochs keeps at least one (so pruning and QAT still happen); the warm-up scales
    with the main stage. Stages not in ``stages`` are left as they are (used to re-fit the rest of a run).

    Raises:
        ConfigError: no stage to fit, or ``total_epochs`` below one per stage.
    """
    active = [st for st in stages if schedule.epochs(st) > 0]
    if not active:
        raise ConfigError("the schedule has no epochs to fit")
    if total_epochs < len(active):
        raise ConfigError(f"{total_epochs} epochs cannot hold the {len(active)} stages {', '.join(active)}")
    weights = {st: schedule.epochs(st) for st in active}
    wsum = sum(weights.values())
    share = {st: total_epochs * w / wsum for st, w in weights.items()}
    alloc = {st: math.floor(share[st]) for st in active}
    left = total_epochs - sum(alloc.values())
    by_remainder = sorted(active, key=lambda k: (share[k] - math.floor(share[k]), weights[k]), reverse=True)
    for st in by_remainder[:left]:
        alloc[st] += 1
    for st in active:  # every stage keeps at least one epoch, taken from the longest one
        if alloc[st] == 0:
            alloc[st] = 1
            alloc[max(active, key=lambda k: alloc[k])] -= 1
    changes: dict[str, object] = {_FIELDS[st]: n for st, n in alloc.items()}
    if "main" in alloc:
        f = alloc["main"] / schedule.main_epochs
        changes["warmup_epochs"] = min(alloc["main"], round(schedule.warmup_epochs * f))
    base = schedule.name.split("~")[0]
    fitted = replace(schedule, **changes)  # type: ignore[arg-type]
    return replace(fitted, name=f"{base}~{fitted.total_epochs}e")


@dataclass(frozen=True)
class StepCosts:
    """Measured seconds per optimizer step for each stage, and per decoded frame (no gradient)."""

    step: dict[str, float]
    forward: float

    def epoch_seconds(self, stage: str, steps_per_epoch: int) -> float:
        """Seconds for one epoch of ``stage`` (a stage not measured costs like the main stage)."""
        return steps_per_epoch * self.step.get(stage, self.step.get("main", max(self.step.values())))

    def schedule_seconds(
        self, schedule: Schedule, steps_per_epoch: int, stages: Sequence[str] = SCHEDULE_SLOTS
    ) -> float:
        """Training seconds of the given slots of ``schedule`` (costs keyed by slot)."""
        return sum(schedule.epochs(st) * self.epoch_seconds(st, steps_per_epoch) for st in stages)


def _slot_costs(costs: StepCosts, stages: Iterable[Stage]) -> StepCosts:
    """``costs`` keyed by schedule slot: a slot costs what the stage that takes its epochs costs."""
    return StepCosts(
        {slot: costs.epoch_seconds(st.name, 1) for st in stages for slot in st.slots}, costs.forward
    )


def measure_step_seconds(
    trainer: Trainer,
    stages: Sequence[str] | None = None,
    *,
    steps: int = 2,
    warmup: int = 1,
    slow: float = 2.0,
) -> dict[str, float]:
    """Seconds per optimizer step of each stage, measured with real steps on ``trainer``.

    For each stage (default: the trainer's current stage and the later ones that have epochs), the stage
    is entered as training would enter it (fresh optimizer, the recipe's preparation), ``warmup`` steps run
    untimed on the first stage only (allocator and kernel caches), then ``steps`` steps are timed (the
    later stages time ``max(1, steps // 2)``). Everything runs inside a
    :class:`~hinerv.train.StepProbe`: private batches, and the trainer's complete state restored afterwards,
    so training after a measurement is bit-identical to training without one.

    When the first (warm-up) step already takes more than ``slow`` seconds, one more step is timed and the
    other stages are taken to cost the same (two steps instead of five): at that scale the stage
    differences (masks, noise) are a few per cent, while a first step carries large one-off costs
    (a 1080p step measured 110 s first, 68 s after).
    """
    if stages is None:
        stages = [st.name for st in trainer.stage_list().start(trainer.stage) if st.epochs > 0]
    if not stages:
        return {}
    out: dict[str, float] = {}
    with StepProbe(trainer) as probe:
        for i, st in enumerate(stages):
            probe.enter(st)
            if i == 0 and warmup > 0:
                probe.synchronize()
                t0 = time.perf_counter()
                for _ in range(warmup):
                    probe.step()
                probe.synchronize()
                first = (time.perf_counter() - t0) / warmup
                if first > slow:
                    t0 = time.perf_counter()
                    probe.step()
                    probe.synchronize()
                    return dict.fromkeys(stages, time.perf_counter() - t0)
            n = steps if i == 0 else max(1, steps // 2)
            probe.synchronize()
            t0 = time.perf_counter()
            for _ in range(n):
                probe.step()
            probe.synchronize()
            out[st] = (time.perf_counter() - t0) / n
    return out


def measure_forward_seconds(trainer: Trainer, slow: float = 2.0) -> float:
    """Seconds to reconstruct one whole frame without gradient (what decoding costs per frame).

    A first call slower than ``slow`` seconds is the measurement (no second call).
    """
    t = torch.zeros(1, dtype=torch.long)
    was_training = trainer.model.training
    try:
        t0 = time.perf_counter()
        trainer.reconstruct(t)
        trainer.policy.synchronize()
        first = time.perf_counter() - t0
        if first > slow:
            return first
        t0 = time.perf_counter()
        trainer.reconstruct(t)
        trainer.policy.synchronize()
        return time.perf_counter() - t0
    finally:
        trainer.model.train(was_training)


#: what the codec does after training, per frame, in units of one frame's forward pass: the decoder
#: run on the packed stream, writing the reconstruction, reading it back and measuring PSNR / MS-SSIM
#: (on CPU: about 2 at 384x288, 1.2 at 1080p), plus FINISH_SECONDS of fixed costs (export, packing)
FINISH_FORWARDS = 2.0
FINISH_SECONDS = 2.0


def finish_seconds(frames: int, forward_seconds: float) -> float:
    """Expected seconds of an encode after training (export, decode, measurement)."""
    return FINISH_SECONDS + FINISH_FORWARDS * frames * forward_seconds


@dataclass(frozen=True)
class Plan:
    """What an encode is going to do, said before the work starts.

    Attributes:
        schedule: the schedule that will run (fitted to the budget when there is one).
        steps: optimizer steps still to run.
        stage_steps: the same, per stage.
        seconds_per_step: measured seconds per step of each stage.
        forward_seconds: measured seconds of one frame's forward pass without gradient.
        train_seconds: expected training wall time.
        finish_seconds: expected time after training (export, decode, measurement).
        elapsed_seconds: time already spent before the plan (loading, measuring).
        budget_seconds: the budget the schedule was fitted to, if any.
        fits: False when even one epoch per stage does not fit the budget.
        spare: True when the budget is more than the whole schedule can use (it then runs whole).
        notes: one-line remarks for the user (a resumed encode, a budget the schedule cannot use).
    """

    schedule: Schedule
    steps: int
    stage_steps: dict[str, int]
    seconds_per_step: dict[str, float]
    forward_seconds: float
    train_seconds: float
    finish_seconds: float
    elapsed_seconds: float = 0.0
    budget_seconds: float | None = None
    fits: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)
    spare: bool = False

    @property
    def costs(self) -> StepCosts:
        """The calibration the plan was made from."""
        return StepCosts(dict(self.seconds_per_step), self.forward_seconds)

    @property
    def expected_seconds(self) -> float:
        """Expected wall time of the whole encode (time already spent included)."""
        return self.elapsed_seconds + self.train_seconds + self.finish_seconds

    @property
    def hint(self) -> str | None:
        """A one-line suggestion when the encode is expected to take more than an hour."""
        if self.expected_seconds <= LONG_RUN_SECONDS:
            return None
        return (
            f"this encode is expected to take {format_duration(self.expected_seconds)}: "
            "--time-budget 30m fits the schedule and its learning rates to a wall time, "
            "--schedule short runs a fifth of it, "
            "--device cuda trains on a GPU"
        )

    def message(self) -> str:
        """One line: planned steps, measured seconds per step, expected wall time (and the budget)."""
        per = ", ".join(f"{st} {n}" for st, n in self.stage_steps.items() if n)
        sps = "/".join(
            f"{self.seconds_per_step[st]:.3g}" for st in self.stage_steps if st in self.seconds_per_step
        )
        line = (
            f"plan: {self.steps} steps ({per}; schedule {self.schedule.name}), measured {sps} s/step, "
            f"expected {format_duration(self.expected_seconds)} "
            f"(training {format_duration(self.train_seconds)})"
        )
        if self.budget_seconds is not None:
            line += f", budget {format_duration(self.budget_seconds)}"
            if not self.fits:
                line += " (does not fit: one epoch per stage is the minimum)"
            elif self.spare:
                line += " (more than the schedule needs: it runs whole)"
        return line


def _remaining(trainer: Trainer) -> dict[str, int]:
    """Epochs still to run per stage, at the trainer's position under its current schedule."""
    stages = trainer.stage_list()
    i = stages.index(trainer.stage)
    out = {
        st.name: 0 if j < i else (st.epochs - trainer.epoch if j == i else st.epochs)
        for j, st in enumerate(stages)
    }
    return {st: max(0, n) for st, n in out.items()}


def _largest_within(cost: Callable[[int], float], lo: int, hi: int, available: float, slack: int) -> int:
    """The largest ``n`` in ``[lo, hi]`` with ``cost(n) <= available`` (``lo`` when none fits).

    ``cost`` grows with ``n`` up to rounding: a proportional refit apportions epochs by largest
    remainders, which can take an epoch from one stage when the total grows, so ``cost`` may dip by a
    few epochs' worth. Bisection finds the boundary in O(log(hi - lo)) evaluations, then a downward scan
    from ``slack`` above it settles the dips: bounded work for any budget (a linear scan from an upper
    bound took minutes for a 100 h budget).
    """
    if hi <= lo or cost(lo) > available:
        return lo
    if cost(hi) <= available:
        return hi
    a, b = lo, hi  # cost(a) <= available < cost(b)
    while b - a > 1:
        m = (a + b) // 2
        if cost(m) <= available:
            a = m
        else:
            b = m
    n = min(hi, a + slack)
    while n > a and cost(n) > available:
        n -= 1
    return n


#: a budget at least this many times what the whole schedule needs is "more than it can use": the
#: schedule runs whole, without a keeper (below it, the keeper may still stretch the schedule a little)
SPARE_BUDGET_RATIO = 1.25


def _best_fit(
    schedule: Schedule, costs: StepCosts, T: int, available: float, stages: Sequence[str]
) -> tuple[Schedule, bool]:
    """The largest proportional refit of ``stages``, at most the schedule's own length, whose training
    time is within ``available``; and whether it fits (False: one epoch per stage is over the budget).

    The schedule is never stretched beyond its length here: a budget larger than the schedule needs
    runs the schedule as it is (:func:`plan_training` says so).
    """
    active = [st for st in stages if schedule.epochs(st) > 0]
    lo, full = len(active), sum(schedule.epochs(st) for st in active)

    def cost(n: int) -> float:
        return costs.schedule_seconds(fit_schedule(schedule, n, active), T, active)

    if cost(full) <= available:
        return schedule, True
    n = _largest_within(cost, lo, full, available, slack=2 * len(active) + 2)
    return fit_schedule(schedule, n, active), cost(n) <= available


def plan_training(
    trainer: Trainer,
    budget_seconds: float | None = None,
    *,
    elapsed_seconds: float = 0.0,
    costs: StepCosts | None = None,
    auto: bool = False,
) -> Plan:
    """Measure the machine and plan the rest of the trainer's schedule.

    With ``budget_seconds``, a trainer that has not started is given ``fit_schedule(schedule, N)`` for the
    largest N, at most the schedule's own length, whose expected wall time (``elapsed_seconds`` already
    spent + training + finishing) fits the budget; ``trainer.schedule`` is replaced. A budget of at
    least :data:`SPARE_BUDGET_RATIO` times what the whole schedule needs is ``spare``: the schedule runs
    whole and a note says so (the notes also tell the codec not to keep a budget). A trainer that has
    already trained (a resumed encode) keeps its schedule: only the estimate is made. Without a budget
    only the estimate is made. With ``auto`` (``--schedule auto``), the fitted schedule also takes the
    learning rates for its length (:func:`rates_for_length`).
    """
    t0 = time.perf_counter()
    if costs is None:
        costs = StepCosts(measure_step_seconds(trainer), measure_forward_seconds(trainer))
    elapsed = elapsed_seconds + (time.perf_counter() - t0)
    T = trainer.T
    finish = finish_seconds(T, costs.forward)
    fits, spare = True, False
    notes: list[str] = []
    if not costs.step:
        raise ConfigError("nothing left to train: no step time to plan with")
    stages = trainer.stage_list()
    fresh = trainer.stage == stages.names[0] and trainer.epoch == 0
    if budget_seconds is not None and fresh:
        available = budget_seconds - elapsed - finish
        slots = [slot for st in stages for slot in st.slots]
        slot_costs = _slot_costs(costs, stages)
        full = trainer.schedule
        fitted, fits = _best_fit(full, slot_costs, T, available, slots)
        trainer.set_schedule(rates_for_length(fitted, T) if auto else fitted)
        need = slot_costs.schedule_seconds(full, T, slots)
        spare = available >= SPARE_BUDGET_RATIO * need
        if spare:
            notes.append(
                f"the budget {format_duration(budget_seconds)} is more than schedule {full.name} needs "
                f"(about {format_duration(elapsed + need + finish)}): it runs whole; a longer schedule "
                "(--schedule full, --epochs N) can use more"
            )
    elif budget_seconds is not None and not fresh:
        notes.append("resumed: the schedule fitted when this encode started is kept")
    rem = _remaining(trainer)
    stage_steps = {st: n * T for st, n in rem.items()}
    train = sum(rem[st] * costs.epoch_seconds(st, T) for st in rem if rem[st])
    return Plan(
        schedule=trainer.schedule,
        steps=sum(stage_steps.values()),
        stage_steps=stage_steps,
        seconds_per_step=dict(costs.step),
        forward_seconds=costs.forward,
        train_seconds=train,
        finish_seconds=finish,
        elapsed_seconds=elapsed,
        budget_seconds=budget_seconds,
        fits=fits,
        notes=tuple(notes),
        spare=spare,
    )


class BudgetKeeper:
    """Epoch hook that keeps a running encode on its budget.

    After every epoch, the time the rest of the schedule will take is predicted from the calibrated
    per-stage step costs times the ratio of training time observed so far to the calibrated one (the
    machine's load may change during an encode). When that prediction misses the time left
    (``budget - elapsed - finish``) by more than ``tolerance`` of the budget (and more than an epoch),
    the current stage and the stages after it are fitted again, in the proportions of the plan, to the
    time left; epochs already done are kept. A changed length of the running stage stretches or shrinks
    the rest of its cosine; corrections are small and gradual because they happen every epoch.

    Args:
        trainer: the trainer, at the point where training is about to start.
        budget_seconds: the whole encode's budget.
        started: ``time.perf_counter()`` when the encode started.
        costs: the calibration.
        finish_seconds: reserved for the work after training (re-scaled by the observed ratio).
        tolerance: share of the budget a prediction may miss by before the schedule is re-fitted.
    """

    def __init__(
        self,
        trainer: Trainer,
        budget_seconds: float,
        started: float,
        costs: StepCosts,
        finish_seconds: float,
        tolerance: float = 0.03,
    ) -> None:
        self.budget = budget_seconds
        self.started = started
        self.costs = costs
        self.finish = finish_seconds
        self.tolerance = tolerance
        self.shape = trainer.schedule  # the planned proportions
        self._elapsed0 = trainer.elapsed
        self._calibrated0 = self._calibrated_done(trainer)
        self.refits = 0

    def _calibrated_done(self, trainer: Trainer) -> float:
        """Calibrated seconds of the epochs the trainer has completed."""
        stages, T = trainer.stage_list(), trainer.T
        done = sum(st.epochs * self.costs.epoch_seconds(st.name, T) for st in stages.before(trainer.stage))
        if not trainer.done:
            done += trainer.epoch * self.costs.epoch_seconds(trainer.stage, T)
        return done

    def ratio(self, trainer: Trainer) -> float:
        """Observed / calibrated training time so far (1 before any epoch), clamped to [0.25, 4]."""
        expected = self._calibrated_done(trainer) - self._calibrated0
        if expected <= 0:
            return 1.0
        return min(max((trainer.elapsed - self._elapsed0) / expected, 0.25), 4.0)

    def __call__(self, trainer: Trainer) -> None:
        stage = trainer.stage
        planned = trainer.stage_list(self.shape)
        if stage not in planned.names:
            return
        now = {st.name: st.epochs for st in trainer.stage_list()}
        todo = [st for st in planned.start(stage) if st.epochs > 0]
        todo = [st for st in todo if now[st.name] > 0 or st.name != stage]
        if not todo:
            return
        r = self.ratio(trainer)
        corrected = StepCosts({k: v * r for k, v in self.costs.step.items()}, self.costs.forward * r)
        T = trainer.T
        todo_names = [st.name for st in todo]
        done = trainer.epoch if stage in todo_names else 0
        available = self.budget - (time.perf_counter() - self.started) - finish_seconds(T, corrected.forward)

        def left(sched: Schedule) -> float:
            epochs = {st.name: st.epochs for st in trainer.stage_list(sched)}
            return sum(
                (epochs[st] - (done if st == stage else 0)) * corrected.epoch_seconds(st, T)
                for st in todo_names
            )

        epoch_cost = corrected.epoch_seconds(stage, T)
        if abs(left(trainer.schedule) - available) <= max(self.tolerance * self.budget, epoch_cost):
            return
        k = sum(len(st.slots) for st in todo)
        cheapest = max(1e-9, min(corrected.epoch_seconds(st, T) for st in todo_names))
        hi = max(k, done + k + int(min(max(0.0, available) / cheapest, 1e9)) + 1)
        n = _largest_within(
            lambda m: left(self._refit(trainer.schedule, m, todo, stage, done)),
            k, hi, available, slack=2 * k + 2,
        )  # fmt: skip
        cand = self._refit(trainer.schedule, n, todo, stage, done)
        if cand != trainer.schedule:
            trainer.schedule = cand
            self.refits += 1

    def _refit(self, current: Schedule, n: int, todo: list[Stage], stage: str, done: int) -> Schedule:
        """The slots of the ``todo`` stages of ``current`` fitted to ``n`` epochs in the planned
        proportions, >= ``done`` epochs for the running stage (the stage ends now when it equals ``done``)."""
        slots = [slot for st in todo for slot in st.slots]
        fitted = fit_schedule(self.shape, max(n, len(slots)), slots)
        changes: dict[str, int] = {_FIELDS[sl]: fitted.epochs(sl) for sl in slots}
        for st in todo:
            if st.name == stage:  # the running stage keeps at least the epochs it has done (and one)
                fields = [_FIELDS[sl] for sl in st.slots]
                changes[fields[0]] += max(0, max(done, 1) - sum(changes[f] for f in fields))
        if "main_epochs" in changes:
            changes["warmup_epochs"] = min(current.warmup_epochs, changes["main_epochs"])
        out = replace(current, **changes)  # type: ignore[arg-type]
        return replace(out, name=f"{self.shape.name.split('~')[0]}~{out.total_epochs}e")


class EtaEstimator:
    """Seconds of training left after each step, from the calibrated per-stage step costs.

    The work left is counted in calibrated seconds (each remaining step of a stage costs that stage's
    measured seconds per step, for the schedule as it stands now, so a re-fitted budget is followed), and
    scaled by the ratio of wall time to calibrated work observed since the first step. A plain
    "progress per second" estimate is biased by the stages' different step costs (Quant-Noise steps are
    slower) and jumps when the budget re-fits the schedule.

    Args:
        trainer: the trainer whose events are estimated (its ``schedule`` and ``T`` are read).
        costs: the calibration.
        clock: a monotonic clock (tests pass a fake one).
    """

    def __init__(
        self, trainer: Trainer, costs: StepCosts, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.trainer = trainer
        self.costs = costs
        self.clock = clock
        self._t0: float | None = None
        self._work = 0.0

    def _step_cost(self, stage: str) -> float:
        return self.costs.epoch_seconds(stage, 1)

    def __call__(self, ev: TrainEvent) -> float:
        now = self.clock()
        c = self._step_cost(ev.stage)
        if self._t0 is None:  # the first step's start is unknown: observe from its end on
            self._t0 = now
        else:
            self._work += c
        ratio = (now - self._t0) / self._work if self._work > 0 else 1.0
        sched = self.trainer.schedule
        left = ((ev.stage_epochs - ev.epoch) * ev.steps + ev.steps - ev.step) * c
        for st in self.trainer.stage_list(sched).after(ev.stage):
            left += st.epochs * ev.steps * self._step_cost(st.name)
        return left * ratio
