"""The doctor: lecture 002/004's sanity-check recipe, the LR range test, in-training statistics.

Public names are imported lazily, so that the command line and config loading do not load torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "DoctorConfig": "trainwell.diagnose.config",
    "DoctorReport": "trainwell.diagnose.report",
    "Finding": "trainwell.diagnose.report",
    "LRRangeResult": "trainwell.diagnose.lr",
    "TrainingMonitor": "trainwell.diagnose.monitor",
    "coarse_probe": "trainwell.diagnose.lr",
    "doctor": "trainwell.diagnose.recipe",
    "find_lr": "trainwell.diagnose.lr",
    "lr_range_test": "trainwell.diagnose.lr",
    "verdict": "trainwell.diagnose.curves",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainwell.diagnose' has no attribute {name!r}")
