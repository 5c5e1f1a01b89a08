"""Data: sources, task inference, label mapping, splits, train-only preprocessing, describe.

Public names are imported lazily, so that reading the config does not load scikit-learn or torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "prepare": "trainwell.data.preparation",
    "PreparedData": "trainwell.data.prepared",
    "Split": "trainwell.data.prepared",
    "Pipeline": "trainwell.data.pipeline",
    "InferenceData": "trainwell.data.inference",
    "load_inference": "trainwell.data.inference",
    "load_prepared_transform": "trainwell.data.inference",
    "describe": "trainwell.data.summary",
    "DataConfig": "trainwell.data.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainwell.data' has no attribute {name!r}")
