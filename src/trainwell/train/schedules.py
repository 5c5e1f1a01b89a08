"""Learning-rate schedules, stepped every iteration (lectures 000 and 002).

Each decay is a small pure function of the time ``t`` (in epochs or steps) returning the factor
that multiplies the initial LR ``lr0``; :class:`LRSchedule` puts a linear warmup in front and
sets the optimizer's LR before every step. Reduce-on-plateau and one-cycle come from torch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainwell.train.config import ScheduleConfig

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


def linear(t: float, total: float) -> float:
    """alpha_t = alpha_0 (1 - t/T) (lecture 002); 0 from t = T on."""
    return max(0.0, 1.0 - t / total)


def inverse_sqrt(t: float) -> float:
    """alpha_t = alpha_0 / sqrt(t) (lecture 002), held at alpha_0 while t < 1."""
    return 1.0 / math.sqrt(max(t, 1.0))


def warmup(step: int, warmup_steps: int) -> float:
    """Linear warmup from 0 (lecture 002): the LR of update ``step`` (0-based) is lr0*(step+1)/W."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


# ---------------------------------------------------------------------------- the scheduler


def _metric_mode(metric: str) -> str:
    return "max" if any(w in metric for w in ("acc", "f1", "r2", "top")) else "min"


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
        self._plateau: Any = None
        self._onecycle: Any = None
        if cfg.name == "plateau":
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=_metric_mode(cfg.metric), factor=cfg.factor, patience=cfg.patience,
                threshold=cfg.threshold, min_lr=cfg.min_lr,
            )
        elif cfg.name == "onecycle":
            d = optimizer.defaults
            cycle = "betas" in d or d.get("momentum", 0) > 0
            self._onecycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.max_lr or self.base_lrs[0], total_steps=max(self.total_steps, 2),
                pct_start=cfg.pct_start, cycle_momentum=cycle,
            )
        self._apply()

    def factor(self, step: int) -> float:
        """The multiplier of lr0 for update ``step`` (warmup, then the decay; plateau: 1)."""
        if step < self.warmup_steps:
            return warmup(step, self.warmup_steps)
        t = (step - self.warmup_steps) / self.unit_steps
        c, name = self.cfg, self.cfg.name
        if name == "time":
            return time_based(t, c.k)
        if name == "step":
            return step_decay(t, c.milestones, c.gamma)
        if name == "exponential":
            return exponential(t, c.k)
        if name == "cosine":
            return cosine(t, self.total)
        if name == "linear":
            return linear(t, self.total)
        if name == "inverse_sqrt":
            return inverse_sqrt(t)
        return 1.0  # constant, plateau (scaled by torch at epoch ends)

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
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
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
            from trainwell.errors import ConfigError

            raise ConfigError(
                f"train.schedule.metric {self.cfg.metric!r} is not logged; logged: {', '.join(sorted(metrics))}"
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
            self._onecycle.last_epoch = int(state["onecycle_last_epoch"])
            self._onecycle._step_count = self._onecycle.last_epoch + 1
            return
        self._apply()


__all__ = [
    "LRSchedule",
    "cosine",
    "exponential",
    "inverse_sqrt",
    "linear",
    "step_decay",
    "time_based",
    "warmup",
]
