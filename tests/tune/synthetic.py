"""Synthetic objectives for the tuning tests and ``benchmarks/tuning.py``.

* Branin and Hartmann-6, box-bounded minimization problems with known optima, for the samplers;
* ``f(cfg, trial)`` objectives for ``tune(..., objective="synthetic:quadratic")``: they exercise
  the whole study machinery (spaces, workers, storage, pruning) without training.

The tests put this folder on ``sys.path`` (workers are forked, so they import it too); the
benchmark imports it by path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]; three global minima of 0.397887.

    Example:
        >>> round(branin(math.pi, 2.275), 6)
        0.397887
    """
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x: np.ndarray) -> float:
    """Hartmann-6 on [0, 1]^6; global minimum -3.32237 at (0.20169, 0.150011, 0.476874,
    0.275332, 0.311652, 0.6573)."""
    x = np.asarray(x, dtype=float)
    inner = (_H6_A * (x[None, :] - _H6_P) ** 2).sum(axis=1)
    return float(-(_H6_ALPHA * np.exp(-inner)).sum())


@dataclass(frozen=True)
class Problem:
    """A box-bounded minimization problem with a known optimum."""

    name: str
    bounds: tuple[tuple[float, float], ...]
    func: Callable[[np.ndarray], float]
    optimum: float

    @property
    def dim(self) -> int:
        return len(self.bounds)

    def objective(self, trial: optuna.Trial) -> float:
        x = np.array(
            [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(self.bounds)]
        )
        return self.func(x)


PROBLEMS = {
    "branin": Problem(
        "branin", ((-5.0, 10.0), (0.0, 15.0)), lambda x: branin(x[0], x[1]), 0.39788735772973816
    ),
    "hartmann6": Problem("hartmann6", ((0.0, 1.0),) * 6, hartmann6, -3.322368011415515),
}

__all__ = [
    "BRANIN_SPACE",
    "PROBLEMS",
    "Problem",
    "branin",
    "branin_config",
    "hartmann6",
    "quadratic",
    "slow_quadratic",
]


# ---------------------------------------------------------------------------- config objectives


def quadratic(cfg: Any, trial: optuna.Trial) -> float:
    """``(log10(lr) + 2)^2 + (dropout - 0.2)^2`` (+ 0.1 unless the activation is tanh), with
    three per-epoch reports so pruners have something to read; minimum 0 at lr = 1e-2,
    dropout = 0.2, tanh."""
    from trainwell.schema import get_path

    raw = cfg.to_dict()
    lr = float(get_path(raw, "train.optimizer.lr") or 1e-3)
    act = get_path(raw, "model.activation.name")
    value = (
        (math.log10(lr) + 2) ** 2 + (cfg.model.dropout - 0.2) ** 2 + (0.0 if act == "tanh" else 0.1)
    )
    momentum = (
        get_path(raw, "train.optimizer.momentum")
        if get_path(raw, "train.optimizer.name") == "sgd"
        else None
    )
    if momentum is not None:
        value += (float(momentum) - 0.9) ** 2
    for epoch in (1, 2, 3):
        trial.report(value * (1 + 1 / epoch), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def branin_config(cfg: Any, trial: optuna.Trial) -> float:
    """Branin through two config fields, for studies run by ``tune``: ``x1 = -5 + 20 *
    model.dropout`` (dropout in [0, 0.75]) and ``x2 = 100 * train.optimizer.weight_decay``
    (weight decay in [0, 0.15]); minimum 0.397887 (:data:`PROBLEMS` ``["branin"]``)."""
    from trainwell.schema import get_path

    raw = cfg.to_dict()
    x1 = -5.0 + 20.0 * float(cfg.model.dropout)
    x2 = 100.0 * float(get_path(raw, "train.optimizer.weight_decay") or 0.0)
    return branin(x1, x2)


#: the space of :func:`branin_config`
BRANIN_SPACE = {
    "model.dropout": "uniform(0, 0.75)",
    "train.optimizer.weight_decay": "uniform(0, 0.15)",
}


def slow_quadratic(cfg: Any, trial: optuna.Trial) -> float:
    """:func:`quadratic` taking 30 seconds, so that a test can kill a worker in the middle of a
    trial however slowly a loaded machine notices the trial has started."""
    import time

    time.sleep(30.0)
    return quadratic(cfg, trial)
