"""Targets: missing / infinite values, mixed label types, the task, the label mapping.

Task inference (override with ``data.task``) is :func:`trainwell.tasks.infer_task_from_labels`:
several target columns -> regression; text or boolean labels -> classification; numbers with a
fractional part -> regression; whole numbers with at most
:data:`~trainwell.tasks.MAX_INFERRED_CLASSES` distinct values -> classification, more ->
regression. Classification with two classes is ``binary``, with more ``multiclass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainwell.errors import DataError
from trainwell.tasks import infer_task_from_labels


@dataclass
class Target:
    """The target after the checks: y for the model, the task and the label mapping."""

    y: np.ndarray                 # int64 (n,) class indices, or float32 (n, k)
    task: str
    classes: list[Any] | None     # index -> original label (JSON-able)
    n_outputs: int


def _py(v: Any) -> Any:
    """A JSON-able Python scalar for a label."""
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return int(f) if f.is_integer() else f
    return str(v) if not isinstance(v, (int, str)) else v


def _is_number_text(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (int, float, np.number)):
        return "number"
    if isinstance(v, str):
        return "number" if _is_number_text(v) else "text"
    return type(v).__name__


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a target value is missing (None / NaN)."""
    import pandas as pd

    flags = np.asarray(pd.isna(values), dtype=bool).reshape(len(values), -1)
    return np.asarray(flags.any(axis=1), dtype=bool)


def check_finite(values: np.ndarray, names: list[str], origin: str) -> None:
    """Raise when a numeric target holds +-inf."""
    for j, name in enumerate(names):
        col = values[:, j] if values.ndim == 2 else values
        if np.issubdtype(col.dtype, np.number):
            bad = np.isinf(col.astype(np.float64))
        else:
            bad = np.array([isinstance(v, (float, np.floating)) and np.isinf(v) for v in col])
        if bad.any():
            raise DataError(
                f"target {name!r} of {origin} holds an infinite value "
                f"(row {int(np.flatnonzero(bad)[0])}); "
                "targets must be finite"
            )


def _check_float32(y: np.ndarray, names: list[str], origin: str) -> None:
    """Raise when a regression target is too large for float32 (it would become inf)."""
    huge = np.abs(y) > np.finfo(np.float32).max
    if huge.any():
        row, j = (int(i) for i in np.argwhere(huge)[0])
        raise DataError(
            f"target {names[j]!r} of {origin} holds {y[row, j]:g} (row {row}), beyond what "
            f"float32 targets can hold (|y| <= {np.finfo(np.float32).max:.3g}); rescale the target"
        )


def check_label_types(values: np.ndarray, name: str, origin: str) -> str:
    """The one kind of label (``number``, ``text``, ``boolean``); raise if labels mix kinds."""
    if np.issubdtype(values.dtype, np.bool_):
        return "boolean"
    if np.issubdtype(values.dtype, np.number):
        return "number"
    examples: dict[str, Any] = {}
    for v in values:
        examples.setdefault(_kind(v), v)
    if len(examples) > 1:
        shown = ", ".join(f"{k} (e.g. {v!r})" for k, v in examples.items())
        raise DataError(
            f"label column {name!r} of {origin} mixes types: {shown}; use one type for every label"
        )
    kind = next(iter(examples), "text")
    return kind


def _sorted_labels(values: np.ndarray, kind: str) -> tuple[list[Any], np.ndarray]:
    """Sorted distinct labels and each row's index into them."""
    if kind == "number":
        nums = values.astype(np.float64)
        uniq, inv = np.unique(nums, return_inverse=True)
        return [_py(u) for u in uniq], inv
    if kind == "boolean":
        flags = np.array([str(v).strip().lower() in {"true", "1", "t", "yes", "y"} for v in values])
        uniq, inv = np.unique(flags, return_inverse=True)
        return [bool(u) for u in uniq], inv
    text = np.array([str(v) for v in values], dtype=object)
    uniq, inv = np.unique(text, return_inverse=True)
    return [str(u) for u in uniq], inv


def make_target(values: np.ndarray, names: list[str], task: str, origin: str) -> Target:
    """Check the target, infer or check the task, and map labels to class indices.

    ``values`` is (n,) for one target column or (n, k); missing values must be gone already.

    Raises:
        DataError: inf values, mixed label types, one class only, a task that does not fit.
    """
    values = values if values.ndim == 2 else values[:, None]
    check_finite(values, names, origin)
    kinds = [check_label_types(values[:, j], names[j], origin) for j in range(values.shape[1])]
    if task == "auto":
        task = infer_task_from_labels(values, kinds)
    if task == "regression":
        for j, kind in enumerate(kinds):
            if kind != "number":
                raise DataError(
                    f"target {names[j]!r} of {origin} holds {kind} values (e.g. {values[0, j]!r}) "
                    "but data.task is regression, which needs numbers; set data.task to "
                    "\"binary\" or \"multiclass\""
                )
        y64 = values.astype(np.float64)
        _check_float32(y64, names, origin)
        y = y64.astype(np.float32)
        return Target(y, task, None, y.shape[1])
    if values.shape[1] > 1:
        raise DataError(f"classification takes one target column; got {names}; use data.task = "
                        "\"regression\" for several targets")
    classes, idx = _sorted_labels(values[:, 0], kinds[0])
    if len(classes) < 2:
        raise DataError(
            f"target {names[0]!r} of {origin} has one class only ({classes[0]!r} in all "
            f"{len(idx)} rows); classification needs at least 2 classes"
        )
    if task == "binary" and len(classes) != 2:
        raise DataError(f"data.task is binary but target {names[0]!r} has {len(classes)} classes: "
                        f"{classes[:10]}; set data.task = \"multiclass\" or \"auto\"")
    n_out = 1 if task == "binary" else len(classes)
    return Target(idx.astype(np.int64), task, classes, n_out)


__all__ = ["Target", "check_finite", "check_label_types", "make_target", "missing_mask"]
