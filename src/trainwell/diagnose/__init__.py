"""The doctor: lecture 002/004's sanity-check recipe, the LR range test, in-training statistics."""

from __future__ import annotations

from trainwell.diagnose.config import DoctorConfig
from trainwell.diagnose.curves import verdict
from trainwell.diagnose.doctor import doctor
from trainwell.diagnose.lr import LRRangeResult, coarse_probe, lr_range_test
from trainwell.diagnose.monitor import TrainingMonitor
from trainwell.diagnose.report import DoctorReport, Finding

__all__ = ["DoctorConfig", "DoctorReport", "Finding", "LRRangeResult", "TrainingMonitor", "coarse_probe",
           "doctor", "lr_range_test", "verdict"]
