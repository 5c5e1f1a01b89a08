"""Early stopping on any logged metric, with patience and min_delta (lecture 002).

"Always do this: ... train for a long time, but always keep track of the model snapshot that
worked best on val." The trainer keeps that snapshot; this object decides what "best" is.
"""

from __future__ import annotations

import math
from typing import Any

from trainwell.errors import ConfigError
from trainwell.tasks import metric_mode


class EarlyStopping:
    """Tracks the best value of ``metric`` and says when to stop.

    Args:
        metric: a key of the epoch record (``val_loss``, ``val_accuracy``, ``train_loss`` ...).
        mode: ``min``, ``max``, or ``auto``: max where a larger value is better (accuracy, F1,
            AUC, R^2, top-k; :func:`trainwell.tasks.metric_mode`).
        patience: epochs without an improvement of at least ``min_delta`` before stopping;
            None never stops.
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> es = EarlyStopping("val_loss", patience=2)
        >>> [es.update(v, e) for e, v in enumerate([3.0, 2.0, 2.5, 2.1], 1)]
        [True, True, False, False]
        >>> es.should_stop, es.best_epoch
        (True, 2)
    """

    def __init__(self, metric: str = "val_loss", mode: str = "auto", patience: int | None = 10,
                 min_delta: float = 0.0) -> None:
        self.metric = metric
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                f"train.early_stopping.mode must be one of auto, min, max; got {mode!r}"
            )
        self.mode = metric_mode(metric, mode)
        self.patience = patience
        self.min_delta = min_delta
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = 0
        self.bad_epochs = 0

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; True when it is the new best."""
        if self.improved(value) or self.best_epoch == 0 and not math.isnan(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


__all__ = ["EarlyStopping"]
