"""Training: losses, penalties, optimizers, schedules, the Trainer and its events, checkpoints."""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Callback": "trainwell.train.callbacks",
    "EVENTS": "trainwell.train.callbacks",
    "EarlyStopping": "trainwell.train.early_stopping",
    "LRSchedule": "trainwell.train.schedules",
    "Trainer": "trainwell.train.trainer",
    "make_loss": "trainwell.train.losses",
    "make_optimizer": "trainwell.train.optim",
    "make_penalty": "trainwell.train.penalties",
    "task_metrics": "trainwell.train.metrics",
    "TrainConfig": "trainwell.train.config",
}

__all__ = [
    "EVENTS",
    "Callback",
    "EarlyStopping",
    "LRSchedule",
    "TrainConfig",
    "Trainer",
    "make_loss",
    "make_optimizer",
    "make_penalty",
    "task_metrics",
]


def __getattr__(name: str) -> Any:
    # lazy, so that importing trainwell.train.config (for ``trainwell check``) loads no torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainwell.train' has no attribute {name!r}")
