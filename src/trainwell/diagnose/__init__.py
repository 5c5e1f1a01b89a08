"""The doctor: lecture 002/004's sanity-check recipe, the LR range test, in-training statistics.

Public names are imported lazily, so that the command line and config loading do not load torch.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
