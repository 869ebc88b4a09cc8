"""Rate–distortion training (the ``rd`` pipeline): the network learns what its parameters cost.

The loss is ``D + λ·R``: ``D`` the distortion of the decoded patch (the reference
``0.7·L1 + 0.3·(1 − MS-SSIM)``, or ``"mse"``), ``R`` the estimated bits of every coded parameter (feature
grids, weights, biases; :class:`hinerv.rate.RateModel`) per pixel of the video. The stages take the paper
pipeline's slots of the same :class:`~hinerv.train.Schedule` (equal epochs), each with a fresh Adam:

1. ``main`` (``main_epochs``): float training for distortion only, exactly the paper's main stage;
2. ``prune`` (``prune_epochs``): the steps are initialised from the trained weights, then the rounding
   proxy (straight-through by default; uniform noise measured 8–12 % worse) + rate term: zeros appear
   here, in place of magnitude pruning;
3. ``qat`` (``qat_epochs``, lr × ``qat_lr_scale``): straight-through rounding + rate term, so the
   network adapts to the exact values the decoder will see.

The slot names are the paper's, so time budgets, plans and ETAs treat both pipelines alike. There is
no mask and no fixed bit depth: zeros and bit depths come out of the rate term. With ``target_bpp``
the trade-off ``λ`` is adapted after every rate-aware *step* (:func:`adapt_lambda` with
:data:`STEP_GAIN` / :data:`STEP_LIMIT`) from the rate model's estimate of that step, corrected by
``rate_probe`` (the codec's measurement of the real file size) at the start of the rate-aware stages
and after every rate-aware epoch. A per-epoch controller bounded to ×1.5 had only the 5–6 rate-aware
epochs of a short schedule: every target far from the ladder's λ hit the bound at every epoch, so
different targets trained the same network and the final step fit had to scale steps by 8–16×,
which the network never trained for (issue #16).

``pretrain=False`` is the first design, kept for the ablation: stages ``main`` (noise + rate from
the first step, λ ramped in) and ``ste`` (``prune_epochs + qat_epochs``). Measured on real footage,
rate and quantization noise from the first step slow convergence so much that it loses to the paper
pipeline at short schedules (+67 % BD-rate); pre-training keeps the paper's quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from hinerv.errors import ConfigError
from hinerv.rate import Granularity, Proxy, RateModel, laplace_bits
from hinerv.ratecontrol import fit_step_factor
from hinerv.train import Schedule, Trainer

__all__ = [
    "RDSettings",
    "RDTrainer",
    "RD_STAGES",
    "LADDER_LAMBDA",
    "default_lambda",
    "grid_names",
    "adapt_lambda",
    "STEP_GAIN",
    "STEP_LIMIT",
]

RD_STAGES = ("main", "ste")
RD_STAGES_PRETRAIN = ("main", "prune", "qat")

Distortion = Literal["mse", "reference"]

#: λ of each model size when none is given (reference distortion): the rd pipeline's size ladder.
#: At one λ every size settles near the same rate–distortion trade-off (the demo clip's xs–l at
#: λ = 1 all land at 21.4–22.2 dB), so a larger model only buys quality with a smaller λ: each
#: size up halves it. Measured on vtest and the demo clip, see the README.
LADDER_LAMBDA: dict[str, float] = {
    "xxs": 4.0,
    "xs": 2.0,
    "s": 1.0,
    "m": 0.5,
    "l": 0.25,
    "xl": 0.125,
    "xxl": 0.0625,
}

#: λ scale of the ``mse`` distortion against the reference one (MSE of [0, 1] pixels is ~20x smaller).
MSE_LAMBDA_SCALE = 0.05


def default_lambda(model: str | None, distortion: str = "reference") -> float:
    """The ladder's λ for a model size or preset name (``"m"``, ``"uvg-hinerv-m"``; 1 when unknown).

    A preset is matched by its size suffix; anything else (a custom preset) gets the ``s`` value.
    """
    name = (model or "s").rsplit("-", 1)[-1]
    lam = LADDER_LAMBDA.get(name, LADDER_LAMBDA["s"])
    return lam * (MSE_LAMBDA_SCALE if distortion == "mse" else 1.0)


@dataclass(frozen=True)
class RDSettings:
    """How the ``rd`` pipeline trains.

    Attributes:
        lam: λ, the weight of the rate (bits per pixel) against the distortion.
        distortion: ``"mse"`` (PSNR) or ``"reference"`` (0.7·L1 + 0.3·(1 − MS-SSIM)).
        granularity: learned steps per ``"tensor"`` or per output ``"channel"`` of layer weights.
        proxy: rounding proxy of the first rate-aware stage, ``"ste"`` or ``"noise"``.
        rate: False trains without the rate term (λ = 0; an ablation).
        target_bpp: when set, λ is adapted after every epoch to land the file at this rate.
        float_epochs: the first epochs of the main stage run the network on float parameters (the
            rate term already shapes them; quantization noise starts afterwards).
        step_lr_scale: learning-rate multiplier of the steps and entropy-model scales (log2 units).
        lambda_ramp: fraction of the main stage over which λ rises linearly from 0 (the network
            first learns what matters, then what it costs); without ``pretrain`` only.
        pretrain: float, distortion-only main stage first (see the module docstring).
    """

    lam: float = 1.0
    distortion: Distortion = "reference"
    granularity: Granularity = "tensor"
    proxy: Proxy = "ste"
    rate: bool = True
    target_bpp: float | None = None
    float_epochs: int = 0
    step_lr_scale: float = 30.0
    lambda_ramp: float = 0.5
    pretrain: bool = True

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise ConfigError(f"--lambda must be >= 0, got {self.lam}")
        if self.distortion not in ("mse", "reference"):
            raise ConfigError(f"unknown distortion {self.distortion!r} (mse or reference)")
        if self.proxy not in ("noise", "ste"):
            raise ConfigError(f"unknown rounding proxy {self.proxy!r} (noise or ste)")
        if self.target_bpp is not None and not self.target_bpp > 0:
            raise ConfigError(f"--target-bpp must be > 0, got {self.target_bpp}")


def grid_names(model: torch.nn.Module) -> list[str]:
    """Names of the feature-grid parameters (base grid and local grids) of a HiNeRV."""
    return [n for n, _ in model.named_parameters() if n.startswith("base.grids.") or ".enc.grids." in n]


#: λ control of every rate-aware training step: gain and bound (×/÷ per step) of :func:`adapt_lambda`.
#: 16 steps (one epoch of a 16-frame clip) can move λ up to ×35; a step's estimate responds to λ
#: within a few steps (the log2-steps learn at 30× the learning rate), so a gain well below 1 keeps
#: the loop from oscillating.
STEP_GAIN = 1.0
STEP_LIMIT = 1.25

#: How far (log2) :meth:`RDTrainer.fit_steps_to_target` may move the initial steps.
INIT_OCTAVES = 8.0

#: log2 Laplace scales tried by :meth:`RDTrainer.fit_steps_to_target` (the rate model's clamp range)
_SCALE_GRID = torch.linspace(-4.3, 12.0, 66)

#: λ stays within these bounds under control (a target beyond them is beyond what training can do).
LAMBDA_RANGE = (1e-6, 1e6)


def adapt_lambda(
    lam: float, measured_bpp: float, target_bpp: float, gain: float = 1.5, limit: float = 1.5
) -> float:
    """One step of λ control: ``λ · (measured / target) ** gain``, limited to ×/÷ ``limit`` per call.

    More rate than wanted raises λ (rate costs more), less lowers it.
    """
    if not (measured_bpp > 0 and target_bpp > 0 and math.isfinite(measured_bpp)):
        return lam
    f = (measured_bpp / target_bpp) ** gain
    return max(lam / limit, min(lam * limit, lam * f)) if lam > 0 else lam


class RDTrainer(Trainer):
    """Rate–distortion over-fitting (see the module docstring).

    Args:
        model, frames, peak, schedule: as :class:`~hinerv.train.Trainer`.
        rd: λ, distortion, proxies, rate target.
        pixels: ``T * H * W`` of the video (unpadded), the rate's normaliser.
        rate_probe: ``(trainer) -> bpp`` of the file as it would be coded now; called at the start
            of the rate-aware training and after each rate-aware epoch when ``rd.target_bpp`` is set,
            to correct the rate model's estimate (side information, the coder's fitted models).
        **kwargs: ``device``, ``seed``, ``amp``, ``compile`` of :class:`~hinerv.train.Trainer`.
    """

    stages = RD_STAGES
    qat_lr_stages = ("ste", "qat")

    def __init__(
        self,
        model: torch.nn.Module,
        frames: torch.Tensor,
        peak: int,
        schedule: Schedule,
        *,
        rd: RDSettings,
        pixels: int,
        rate_probe: Callable[[RDTrainer], float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.rd = rd
        self.rate = RateModel(
            dict(model.named_parameters()), grids=grid_names(model), granularity=rd.granularity
        ).to(next(model.parameters()).device)
        if rd.pretrain:
            self.stages = RD_STAGES_PRETRAIN
        super().__init__(model, frames, peak, schedule, **kwargs)
        self.lam = rd.lam if rd.rate else 0.0
        self.pixels = int(pixels)
        self.rate_probe = rate_probe
        self.last_bits = 0.0
        self._bits: torch.Tensor | None = None
        self.lam_history: list[tuple[int, float, float]] = []  # (epoch, bpp measured, λ after)
        #: real bpp minus the rate model's estimate (hard rounding), measured by ``rate_probe``; None
        #: until the first probe of the rate-aware stages
        self.rate_offset: float | None = None
        #: the factor :meth:`fit_steps_to_target` applied to the initial steps (1 when it did not run)
        self.init_step_factor = 1.0

    # ------------------------------------------------------------------ schedule / state
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        rate = getattr(self, "rate", None)
        return list(self.model.parameters()) + (list(rate.parameters()) if rate is not None else [])

    def stage_epochs(self, stage: str) -> int:
        s = self.schedule
        if self.rd.pretrain:
            return s.epochs(stage)
        return {"main": s.main_epochs, "ste": s.prune_epochs + s.qat_epochs}[stage]

    @property
    def rate_active(self) -> bool:
        """Whether the current stage trains with quantization and the rate term."""
        return not (self.rd.pretrain and self.stage == "main")

    def _new_optimizer(self) -> torch.optim.Optimizer:
        rate = getattr(self, "rate", None)
        groups: list[dict[str, Any]] = [{"params": list(self.model.parameters()), "lr_scale": 1.0}]
        if rate is not None:
            groups.append({"params": list(rate.parameters()), "lr_scale": self.rd.step_lr_scale})
        adam = self._adam_impl()
        return torch.optim.Adam(groups, lr=self.schedule.lr, betas=self.adam_betas, eps=1e-8, **adam)

    def lam_now(self, progress: float = 0.0) -> float:
        """λ in effect now (with the main-stage ramp); ``progress`` is the fraction of the epoch."""
        ramp = self.rd.lambda_ramp * self.stage_epochs("main")
        if self.stage != "main" or ramp <= 0 or self.rd.pretrain:
            return self.lam
        return self.lam * min(1.0, (self.epoch + progress) / ramp)

    def _start_stage(self, stage: str) -> None:
        self.stage, self.epoch = stage, 0
        if self.rd.pretrain and stage == "prune":
            self.rate.reset(dict(self.model.named_parameters()))
        self.optimizer = self._new_optimizer()

    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d["rate"] = {k: v.detach().cpu() for k, v in self.rate.state_dict().items()}
        d["lam"] = self.lam
        d["rate_offset"] = self.rate_offset
        d["rd"] = asdict(self.rd)
        return d

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rate.load_state_dict(state["rate"])
        self.lam = float(state["lam"])
        off = state.get("rate_offset")
        self.rate_offset = None if off is None else float(off)
        super().load_state_dict(state)

    @property
    def qat_key(self) -> tuple[int, str]:
        return 0, "rd"

    # ------------------------------------------------------------------ forward / loss
    def proxy(self, training: bool) -> Proxy:
        """The rounding proxy of the current stage (``"round"`` outside training)."""
        if not training:
            return "round"
        return self.rd.proxy if self.stage in ("main", "prune") else "ste"

    def effective_params(self, training: bool) -> dict[str, torch.Tensor]:
        if training and not self.rate_active:
            self._bits = None
            return {}
        params = dict(self.model.named_parameters())
        warm = training and self.stage == "main" and self.epoch < self.rd.float_epochs
        out, bits = self.rate(params, self.proxy(training), self.noise_gen, float_forward=warm)
        self._bits = bits
        return out

    def _loss(self, out: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rd.distortion == "mse":
            out = out.float()
            d = F.mse_loss(out, tgt)
            return d, d.detach()
        return super()._loss(out, tgt)

    def step_penalty(self) -> torch.Tensor | None:
        """``λ · bits / pixels`` of the parameters of this step's forward pass (None while pre-training)."""
        if self._bits is None:  # float pre-training: distortion only
            return None
        self.last_bits = float(self._bits.detach())
        lam = self.lam_now()
        if lam <= 0:
            return 0.0 * self._bits  # keeps the rate model's scales in the graph
        return lam * self._bits / self.pixels

    @property
    def controls_rate(self) -> bool:
        """Whether λ is being adapted to ``rd.target_bpp`` now (a rate-aware stage with a probe)."""
        return (
            self.rd.target_bpp is not None
            and self.rate_probe is not None
            and self.rd.rate
            and self.rate_active
            and not self.done
        )

    def _probe_offset(self) -> float:
        """Measure the real rate; update :attr:`rate_offset`; return the real bpp."""
        assert self.rate_probe is not None
        bpp = float(self.rate_probe(self))
        self.rate_offset = bpp - self.estimated_bits() / self.pixels
        return bpp

    @torch.no_grad()
    def fit_steps_to_target(self) -> float:
        """Scale every step by one factor so the file as coded now lands on ``rd.target_bpp``.

        Run before the first rate-aware step: the initial steps (a 6-bit quantizer, see
        :meth:`hinerv.rate.RateModel.reset`) can be many octaves from the target, and the steps move
        at most ~``lr · step_lr_scale`` octaves per step (Adam), whatever λ is. Starting at the target,
        the rate-aware stages train the network on the steps it will be coded with. Each tensor's
        Laplace scale is set to the one that codes its integers at the scaled step in the fewest
        bits (a grid search), so the rate estimate follows the steps.

        Returns:
            The factor applied (within :data:`INIT_OCTAVES` octaves).
        """
        assert self.rate_probe is not None and self.rd.target_bpp is not None
        probe = self.rate_probe
        saved = [p.detach().clone() for p in self.rate.log2_step]

        params = dict(self.model.named_parameters())

        def set_factor(f: float) -> None:
            for i, (p, s) in enumerate(zip(self.rate.log2_step, saved, strict=True)):
                p.copy_(s + math.log2(f))
                # the Laplace scale that codes these integers in the fewest bits
                q = torch.round(params[self.rate.names[i]].detach() / self.rate.step(i)).flatten()
                q = q[:: max(1, q.numel() // 65536)]
                cost = laplace_bits(q[None, :], torch.exp2(_SCALE_GRID.to(q.device))[:, None]).sum(1)
                self.rate.log2_scale[i].fill_(float(_SCALE_GRID[int(cost.argmin())]))

        def bpp_at(f: float) -> float:
            set_factor(f)
            return probe(self)

        f, _ = fit_step_factor(
            bpp_at, self.rd.target_bpp, tolerance=0.02, max_octaves=INIT_OCTAVES, iterations=16
        )
        set_factor(f)
        return f

    def train_step(self, idx: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float]:
        """One optimizer step; with a target rate, then one λ control step on this step's rate."""
        if self.controls_rate and self.rate_offset is None:
            # first rate-aware step: start at the target, measure the estimate's offset to the file
            self.init_step_factor = self.fit_steps_to_target()
            self._probe_offset()
        res = super().train_step(idx, tgt)
        if self.controls_rate:
            est = self.last_bits / self.pixels + (self.rate_offset or 0.0)
            assert self.rd.target_bpp is not None
            lam = adapt_lambda(self.lam, est, self.rd.target_bpp, gain=STEP_GAIN, limit=STEP_LIMIT)
            self.lam = min(LAMBDA_RANGE[1], max(LAMBDA_RANGE[0], lam))
        return res

    def run_epoch(self, callback: Callable[..., None] | None = None) -> float:
        mse = super().run_epoch(callback)
        if self.controls_rate and self.rate_offset is not None:  # after a rate-aware epoch
            bpp = self._probe_offset()
            self.lam_history.append((self.epochs_done, bpp, self.lam))
        return mse

    @torch.no_grad()
    def estimated_bits(self) -> float:
        """The rate model's estimate of the payload bits with hard rounding."""
        _, bits = self.rate(dict(self.model.named_parameters()), "round")
        return float(bits)
