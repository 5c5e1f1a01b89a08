"""Learning-rate schedules, stepped every iteration (lectures 000 and 002).

Each decay is a small pure function of the time ``t`` (in epochs or steps) returning the factor
that multiplies the initial LR ``lr0``; :class:`LRSchedule` puts a linear warmup in front and
sets the optimizer's LR before every step. Reduce-on-plateau and one-cycle come from torch.

Every name of :data:`~trainwell.train.config.SCHEDULE_NAMES` is registered here once, in
:data:`SCHEDULES`, with its decay and, for the two torch drives, the torch scheduler that
sets the LR instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau

from trainwell.errors import ConfigError
from trainwell.registry import Registry
from trainwell.tasks import metric_mode
from trainwell.train.config import SCHEDULE_NAMES, ScheduleConfig

# ---------------------------------------------------------------------------- decay factors


def time_based(t: float, k: float) -> float:
    """lr = lr0 / (1 + k*t) (lecture 000, "time-based decay")."""
    return 1.0 / (1.0 + k * t)


def step_decay(t: float, milestones: list[float], gamma: float = 0.1) -> float:
    """lr = lr0 * gamma^(milestones passed); lecture 002: x0.1 after epochs 30, 60 and 90."""
    return gamma ** sum(1 for m in milestones if t >= m)


def exponential(t: float, k: float) -> float:
    """lr = lr0 / exp(k*t) (lecture 000, "exponential decay")."""
    return math.exp(-k * t)


def cosine(t: float, total: float) -> float:
    """alpha_t = 1/2 alpha_0 (1 + cos(t*pi/T)) (lecture 002); 0 from t = T on."""
    return 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))


def cosine_restarts(t: float, total: float, cycles: int) -> float:
    """Cosine annealing restarted ``cycles`` times over ``total`` (Huang et al. 2017, snapshot
    ensembles): each cycle of length ``total / cycles`` starts again at lr0; 0 from t = T on."""
    if t >= total:
        return 0.0
    length = total / cycles
    return cosine(t - length * math.floor(t / length), length)


def linear(t: float, total: float) -> float:
    """alpha_t = alpha_0 (1 - t/T) (lecture 002); 0 from t = T on."""
    return max(0.0, 1.0 - t / total)


def inverse_sqrt(t: float) -> float:
    """alpha_t = alpha_0 / sqrt(t) (lecture 002), held at alpha_0 while t < 1."""
    return 1.0 / math.sqrt(max(t, 1.0))


def warmup(step: int, warmup_steps: int) -> float:
    """Linear warmup from 0 (lecture 002): the LR of update ``step`` (0-based) is lr0*(step+1)/W."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


# ---------------------------------------------------------------------------- the registry

#: ``(t, cfg, T) -> lr / lr0`` at time ``t`` after the warmup; ``T`` is the run's length
Decay = Callable[[float, ScheduleConfig, float], float]
#: ``(optimizer, cfg, schedule) -> a torch scheduler`` that drives the LR itself
Driver = Callable[[torch.optim.Optimizer, ScheduleConfig, "LRSchedule"], Any]


@dataclass(frozen=True)
class ScheduleSpec:
    """A registered schedule: its decay factor, or the torch scheduler that sets the LR."""

    name: str
    decay: Decay
    driver: Driver | None = None


SCHEDULES: Registry[ScheduleSpec] = Registry("schedule", ConfigError)


def register_schedule(name: str, decay: Decay, driver: Driver | None = None) -> ScheduleSpec:
    """Register the schedule ``name`` of :data:`~trainwell.train.config.SCHEDULE_NAMES`."""
    name = SCHEDULE_NAMES.canonical(name)
    return SCHEDULES.register(name)(ScheduleSpec(name, decay, driver))


def list_schedules() -> list[str]:
    """The schedule names ``train.schedule.name`` accepts (canonical; aliases map to them)."""
    return SCHEDULE_NAMES.names()


def _plateau(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, _s: LRSchedule) -> Any:
    return ReduceLROnPlateau(
        optimizer, mode=metric_mode(cfg.metric), factor=cfg.factor, patience=cfg.patience,
        threshold=cfg.threshold, min_lr=cfg.min_lr,
    )


def _onecycle(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, s: LRSchedule) -> Any:
    d = optimizer.defaults
    cycle = "betas" in d or d.get("momentum", 0) > 0
    return OneCycleLR(
        optimizer, max_lr=[(cfg.max_lr or s.base_lrs[0]) * b / s.base_lrs[0] for b in s.base_lrs],
        total_steps=max(s.total_steps, 2),
        pct_start=cfg.pct_start, cycle_momentum=cycle,
    )


def _one(t: float, c: ScheduleConfig, total: float) -> float:
    return 1.0


register_schedule("constant", _one)
register_schedule("time", lambda t, c, total: time_based(t, c.k))
register_schedule("step", lambda t, c, total: step_decay(t, c.milestones, c.gamma))
register_schedule("exponential", lambda t, c, total: exponential(t, c.k))
register_schedule("cosine", lambda t, c, total: cosine(t, total))
register_schedule("linear", lambda t, c, total: linear(t, total))
register_schedule("inverse_sqrt", lambda t, c, total: inverse_sqrt(t))
register_schedule("cosine_restarts", lambda t, c, total: cosine_restarts(t, total, c.cycles))
register_schedule("plateau", _one, _plateau)  # torch scales the LR at epoch ends
register_schedule("onecycle", _one, _onecycle)  # torch sets the LR of every step


# ---------------------------------------------------------------------------- the scheduler


class LRSchedule:
    """Sets the optimizer's LR before each update from a :class:`ScheduleConfig`.

    Args:
        optimizer: the optimizer whose ``lr`` (per group) is ``lr0``.
        cfg: the schedule.
        steps_per_epoch: updates per epoch (converts epochs into steps).
        epochs: length of the run (the default ``T`` of cosine, linear and one-cycle).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = LRSchedule(opt, ScheduleConfig(name="step", milestones=[1]), 10, 3)
        >>> [s.lr_at(i) for i in (0, 9, 10)]
        [1.0, 1.0, 0.1]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig | str | None,
                 steps_per_epoch: int, epochs: int) -> None:
        if cfg is None or isinstance(cfg, str):
            cfg = ScheduleConfig(name=cfg or "constant")
        self.optimizer = optimizer
        self.cfg = cfg
        self.unit_steps = steps_per_epoch if cfg.unit == "epoch" else 1
        self.total_steps = steps_per_epoch * epochs
        self.warmup_steps = round(cfg.warmup * self.unit_steps)
        self.total = cfg.total or max(self.total_steps - self.warmup_steps, 1) / self.unit_steps
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.step_count = 0
        self.spec = SCHEDULES.get(cfg.name)
        driver = self.spec.driver(optimizer, cfg, self) if self.spec.driver else None
        self._plateau = driver if isinstance(driver, ReduceLROnPlateau) else None
        self._onecycle = driver if isinstance(driver, OneCycleLR) else None
        self._apply()

    def factor(self, step: int) -> float:
        """The multiplier of lr0 for update ``step`` (warmup, then the decay; plateau: 1)."""
        if step < self.warmup_steps:
            return warmup(step, self.warmup_steps)
        t = (step - self.warmup_steps) / self.unit_steps
        return self.spec.decay(t, self.cfg, self.total)

    def lr_at(self, step: int) -> float:
        """The LR of the first group at update ``step`` (one-cycle and plateau: the current LR)."""
        if self._onecycle is not None or (self._plateau is not None and step >= self.warmup_steps):
            return float(self.optimizer.param_groups[0]["lr"])
        return self.base_lrs[0] * self.factor(step)

    def _apply(self) -> None:
        if self._onecycle is not None:
            return
        if self._plateau is not None and self.step_count > self.warmup_steps:
            return
        f = self.factor(self.step_count)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def step(self) -> None:
        """Call after each optimizer update: sets the LR of the next one."""
        self.step_count += 1
        if self._onecycle is not None:
            if self.step_count < self._onecycle.total_steps:
                self._onecycle.step()
            return
        self._apply()

    def epoch_end(self, metrics: dict[str, float]) -> None:
        """Call after each epoch: reduce-on-plateau looks at its metric."""
        if self._plateau is None or self.step_count < self.warmup_steps:
            return
        value = metrics.get(self.cfg.metric)
        if value is None:
            raise ConfigError(
                f"train.schedule.metric {self.cfg.metric!r} is not logged; logged: "
                f"{', '.join(sorted(metrics))}"
            )
        self._plateau.step(value)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step_count": self.step_count, "base_lrs": self.base_lrs}
        if self._plateau is not None:
            out["plateau"] = {k: v for k, v in self._plateau.state_dict().items()
                              if isinstance(v, (int, float, str, type(None)))}
        if self._onecycle is not None:
            out["onecycle_last_epoch"] = self._onecycle.last_epoch
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.base_lrs = list(state["base_lrs"])
        if self._plateau is not None and "plateau" in state:
            self._plateau.load_state_dict({**self._plateau.state_dict(), **state["plateau"]})
        if self._onecycle is not None:
            done = int(state["onecycle_last_epoch"])  # torch's own state keys, through its API
            own = self._onecycle.state_dict()
            self._onecycle.load_state_dict({**own, "last_epoch": done, "_step_count": done + 1})
            return
        self._apply()


__all__ = [
    "SCHEDULES",
    "LRSchedule",
    "ScheduleSpec",
    "cosine",
    "cosine_restarts",
    "exponential",
    "inverse_sqrt",
    "linear",
    "list_schedules",
    "register_schedule",
    "step_decay",
    "time_based",
    "warmup",
]
