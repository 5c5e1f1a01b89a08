"""After training: ensembles (independent members, snapshots, a study's best trials), their
averaging and calibration; transfer learning from pretrained weights (docs/transfer.md).

Public names are imported lazily, so that config loading stays free of torch.

Example:
    >>> from trainwell.after import average_predictions  # doctest: +SKIP
    >>> average_predictions([p1, p2], method="geometric")  # doctest: +SKIP
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "average_predictions": "trainwell.after.averaging",
    "list_averaging": "trainwell.after.averaging",
    "expected_calibration_error": "trainwell.after.calibration",
    "reliability_bins": "trainwell.after.calibration",
    "EnsembleConfig": "trainwell.after.config",
    "EnsemblePredictor": "trainwell.after.ensemble",
    "read_ensemble": "trainwell.after.ensemble",
    "SnapshotSaver": "trainwell.after.snapshot",
    "write_ensemble_report": "trainwell.after.report",
    "freeze_": "trainwell.after.transfer",
    "layer_names": "trainwell.after.transfer",
    "list_pretrained": "trainwell.after.transfer",
    "load_matching_": "trainwell.after.transfer",
    "read_weights": "trainwell.after.transfer",
    "unfreeze_": "trainwell.after.transfer",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
