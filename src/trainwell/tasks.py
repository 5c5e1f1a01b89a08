"""The task vocabulary: the task kinds, inferring a task, and which way a metric improves.

One home for what every package says about tasks: the data side infers a task from raw label
columns, the trainer and the doctor from target tensors, and early stopping, LR schedules and
tuning ask which direction a metric improves in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")

MAX_INFERRED_CLASSES = 20
"""A numeric label column with more distinct integers than this is inferred as regression."""

# substrings of metric names where a larger value is better
_HIGHER_IS_BETTER = ("acc", "f1", "auc", "r2", "precision", "recall", "score", "top")


def check_task(task: str, field: str = "task") -> Task:
    """``task`` if it is one of :data:`TASKS`; else a :class:`ConfigError` naming ``field``."""
    if task not in TASKS:
        from trainwell.errors import ConfigError

        raise ConfigError(f"{field} must be one of {', '.join(TASKS)}; got {task!r}")
    return task


def infer_task_from_labels(values: np.ndarray, kinds: Sequence[str]) -> Task:
    """The task of raw label column(s): several columns or non-integer numbers -> regression.

    Args:
        values: the label values, one row per sample.
        kinds: each column's kind (``number``, ``boolean``, ``text``).
    """
    import numpy as np

    if len(kinds) > 1:
        return "regression"
    if kinds[0] != "number":
        return "binary" if len(np.unique(values.astype(str))) == 2 else "multiclass"
    uniq = np.unique(values.astype(np.float64).ravel())
    if not np.all(np.mod(uniq, 1) == 0) or len(uniq) > MAX_INFERRED_CLASSES:
        return "regression"
    return "binary" if len(uniq) == 2 else "multiclass"


def infer_task(
    y: Tensor | None, *, n_outputs: int | None = None, loss_tasks: Sequence[str] | None = None
) -> Task:
    """The task of target tensors ``y`` for a model with ``n_outputs`` outputs.

    The loss decides when it fits one task only (``loss_tasks``, the tasks the loss takes).
    Otherwise the targets and the output width decide, never the layout of the model:

    - integer targets: ``binary`` with one output, else ``multiclass``;
    - float targets of 0s and 1s with one output: ``binary`` (a column of 0.0 / 1.0 labels);
    - float ``(n, C)`` rows of probabilities summing to 1, with ``C`` outputs: ``multiclass``
      (soft targets, as mixup and label smoothing make);
    - any other float targets: ``regression``.

    Example:
        >>> import torch
        >>> infer_task(torch.tensor([[0.0], [1.0], [1.0]]), n_outputs=1)
        'binary'
        >>> infer_task(torch.tensor([0.3, 2.5]), n_outputs=1)
        'regression'
    """
    if loss_tasks is not None and len(loss_tasks) == 1:
        return check_task(loss_tasks[0])
    if y is None:
        return "regression"
    if not y.is_floating_point():
        if n_outputs != 1:
            return "multiclass"
        if bool(((y == 0) | (y == 1)).all()):
            return "binary"
        from trainwell.errors import DataError

        raise DataError(
            f"the targets are integer labels with {int(y.unique().numel())} distinct values "
            f"(e.g. {int(y.max())}) but the model has 1 output: give it one output per class for "
            "classification, or pass float targets (or a regression loss) to regress them")
    if n_outputs == 1 and y.numel() and (y.ndim == 1 or y.shape[-1] == 1):
        if bool(((y == 0) | (y == 1)).all()):
            return "binary"
    if is_soft_target(y) and n_outputs == y.shape[1] and n_outputs > 1:
        return "multiclass"
    return "regression"


def is_soft_target(y: Tensor) -> bool:
    """Whether ``y`` is a float ``(n, C)`` matrix of class probabilities (rows summing to 1)."""
    import torch

    if not y.is_floating_point() or y.ndim != 2 or y.shape[1] < 2 or not y.numel():
        return False
    rows = y.double().sum(1)
    return bool((y >= 0).all() and torch.allclose(rows, torch.ones_like(rows), atol=1e-4))


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy, F1, AUC, R^2, top-k, scores).

    Example:
        >>> higher_is_better("val_accuracy"), higher_is_better("val_loss")
        (True, False)
    """
    name = metric.lower()
    return any(h in name for h in _HIGHER_IS_BETTER)


def metric_mode(metric: str, mode: str = "auto") -> Literal["min", "max"]:
    """``max`` where a larger ``metric`` is better, else ``min``; an explicit ``mode`` wins."""
    if mode in ("min", "max"):
        return "max" if mode == "max" else "min"
    return "max" if higher_is_better(metric) else "min"


def metric_direction(metric: str, direction: str = "auto") -> Literal["minimize", "maximize"]:
    """Optuna's words for :func:`metric_mode`: ``maximize`` or ``minimize``.

    Example:
        >>> metric_direction("val_accuracy"), metric_direction("val_loss")
        ('maximize', 'minimize')
    """
    if direction in ("minimize", "maximize"):
        return "maximize" if direction == "maximize" else "minimize"
    return "maximize" if higher_is_better(metric) else "minimize"


__all__ = [
    "MAX_INFERRED_CLASSES",
    "TASKS",
    "Task",
    "check_task",
    "higher_is_better",
    "infer_task",
    "infer_task_from_labels",
    "is_soft_target",
    "metric_direction",
    "metric_mode",
]
