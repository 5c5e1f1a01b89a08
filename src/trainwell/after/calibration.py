"""Calibration of predicted probabilities, as the ensemble report uses it: the functions live
in :mod:`trainwell.train.calibration` (one home, shared with the ``ece`` and ``log_loss``
metrics of ``[train] metrics``) and are named here for the ensemble modules."""

from __future__ import annotations

from trainwell.train.calibration import (
    DEFAULT_BINS,
    accuracy,
    expected_calibration_error,
    log_loss,
    reliability_bins,
)

__all__ = ["DEFAULT_BINS", "accuracy", "expected_calibration_error", "log_loss",
           "reliability_bins"]
