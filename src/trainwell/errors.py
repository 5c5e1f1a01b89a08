"""The exception tree: every error a user can cause is one of these."""

from __future__ import annotations

from typing import Any


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
    """The loss became NaN or inf during training.

    Attributes:
        run: the finished (diverged) run when raised by ``trainwell.fit``, else None.
    """

    run: Any = None


class StopRun(TrainwellError):  # noqa: N818 - a signal, not a failure
    """Raised by a callback to end a run early on purpose (a tuner pruning a trial).

    The run directory ends with ``status`` (default ``"stopped"``; ``"pruned"`` for a trial the
    tuner pruned) instead of ``failed``, and the trainer's ``end`` event still fires.
    """

    def __init__(self, message: str = "", status: str = "stopped") -> None:
        super().__init__(message or f"run {status}")
        self.status = status


class Terminated(KeyboardInterrupt):
    """A stop signal (SIGTERM, as ``kill`` or a scheduler sends) turned into an interrupt by
    the ``trainwell`` command: the run ends as on Ctrl-C, with status ``interrupted`` and a
    checkpoint to resume from, instead of dying with status ``running``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class NotFittedError(TrainwellError, ValueError):
    """A transformer or predictor is used before it was fitted."""


__all__ = [
    "ConfigError",
    "DataError",
    "DivergenceError",
    "ModelSpecError",
    "NotFittedError",
    "RunError",
    "StopRun",
    "Terminated",
    "TrainwellError",
]
