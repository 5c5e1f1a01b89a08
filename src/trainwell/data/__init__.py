"""Data: sources, task inference, label mapping, splits, train-only preprocessing, describe.

Public names are imported lazily, so that reading the config does not load scikit-learn or torch.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "prepare": "trainwell.data.preparation",
    "PreparedData": "trainwell.data.prepared_data",
    "Split": "trainwell.data.prepared_data",
    "Pipeline": "trainwell.data.pipeline",
    "InferenceData": "trainwell.data.inference",
    "load_inference": "trainwell.data.inference",
    "load_prepared_transform": "trainwell.data.inference",
    "describe": "trainwell.data.summary",
    "DataConfig": "trainwell.data.config",
    "StepTransformer": "trainwell.data.sklearn_steps",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
