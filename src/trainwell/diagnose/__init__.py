"""The doctor: lecture 002/004's sanity-check recipe, the LR range test, in-training statistics."""

from __future__ import annotations

from trainwell.diagnose.config import DoctorConfig
from trainwell.diagnose.doctor import doctor
from trainwell.diagnose.lr import LRRangeResult, coarse_probe, lr_range_test
from trainwell.diagnose.report import DoctorReport, Finding

__all__ = ["DoctorConfig", "DoctorReport", "Finding", "LRRangeResult", "TrainingMonitor", "coarse_probe",
           "doctor", "lr_range_test", "verdict"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: the monitor is imported by the trainer's user
    if name == "TrainingMonitor":
        from trainwell.diagnose.monitor import TrainingMonitor

        return TrainingMonitor
    if name == "verdict":
        from trainwell.diagnose.verdict import verdict

        return verdict
    raise AttributeError(f"module 'trainwell.diagnose' has no attribute {name!r}")
