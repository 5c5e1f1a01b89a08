"""The exception tree: every error a user can cause is one of these."""

from __future__ import annotations


class TrainwellError(Exception):
    """Base of every error trainwell raises on purpose."""


class ConfigError(TrainwellError, ValueError):
    """A config field is unknown, of the wrong type, or out of range."""


class DataError(TrainwellError, ValueError):
    """Input data cannot be used as given (missing file, bad target, corrupt image ...)."""


class ModelSpecError(TrainwellError, ValueError):
    """A model spec cannot work (unknown layer, sizes that do not fit ...)."""


class RunError(TrainwellError, RuntimeError):
    """A run directory cannot be created, resumed or read."""


class DivergenceError(TrainwellError, FloatingPointError):
    """The loss became NaN or inf during training."""


class NotFittedError(TrainwellError, ValueError):
    """A transformer or predictor is used before it was fitted."""


__all__ = [
    "ConfigError",
    "DataError",
    "DivergenceError",
    "ModelSpecError",
    "NotFittedError",
    "RunError",
    "TrainwellError",
]
