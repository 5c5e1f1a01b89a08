"""Deploying a run: ``export`` writes its model, fitted preprocessing and label mapping as one
ONNX, TorchScript or ``torch.export`` file that predicts without trainwell (docs/export.md).
Public names are imported lazily: importing this package loads no torch."""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "ExportResult": "trainwell.deploy.export",
    "encode_table": "trainwell.deploy.export",
    "export": "trainwell.deploy.export",
    "read_metadata": "trainwell.deploy.export",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
