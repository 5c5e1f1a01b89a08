"""The targets of several heads: one block of columns per head, missing labels kept as NaN.

With ``[heads]`` a row may carry labels for some heads only (lecture 002's multitask learning on
partly labelled data). Each head's columns are checked like a single target (task inferred or
checked, class labels mapped to indices in sorted order) on its labelled rows; the result is one
float32 matrix with a block of columns per head (class indices as floats, NaN where a label is
missing) that the :class:`~trainwell.train.multitask.Multitask` objective reads by column index.
Rows without any label are dropped (they would train nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.data.targets import make_target, missing_mask
from trainwell.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

#: what preparation needs of one head: its target columns and task (``auto`` to infer it)
HeadTargetSpec = tuple[list[str], str]


@dataclass
class HeadTarget:
    """One head's targets inside the matrix: its columns, task and classes."""

    name: str
    columns: list[str]          # the data's columns
    index: list[int]            # the head's columns of the target matrix
    task: str
    classes: list[Any] | None
    n_outputs: int
    labelled: int               # rows with a label

    def info(self) -> dict[str, Any]:
        return {"columns": self.columns, "index": self.index, "task": self.task,
                "classes": self.classes, "n_outputs": self.n_outputs, "labelled": self.labelled}


def head_targets(frame: pd.DataFrame, heads: dict[str, HeadTargetSpec], origin: str
                 ) -> tuple[np.ndarray, np.ndarray, list[HeadTarget]]:
    """The target matrix of ``heads`` over the rows of ``frame``.

    Returns:
        ``kept`` (positions of the rows with at least one label), ``Y`` float32 ``(len(kept),
        k)`` and the heads in order.

    Raises:
        DataError: a head's column is missing, a head has no labelled row, or its labels do not
            fit its task (named ``heads.<name>``).
    """
    from trainwell.data.tables import require_columns

    blocks: list[np.ndarray] = []
    out: list[HeadTarget] = []
    labelled_any = np.zeros(len(frame), dtype=bool)
    start = 0
    for name, (cols, task) in heads.items():
        try:
            require_columns(frame, cols, f"heads.{name}.target column", origin)
        except DataError as exc:
            raise DataError(f"{exc}; set heads.{name}.target to a column of the data") from None
        values = frame[cols].to_numpy()
        miss = missing_mask(values)
        ok = np.flatnonzero(~miss)
        if not len(ok):
            raise DataError(f"heads.{name}: every row of {origin} misses its target {cols}; a "
                            "head needs labelled rows")
        try:
            target = make_target(values[ok], cols, task, origin)
        except DataError as exc:
            raise DataError(f"heads.{name}: {str(exc).replace('data.task', f'heads.{name}.task')}"
                            ) from None
        width = target.y.shape[1] if target.y.ndim == 2 else 1
        block = np.full((len(frame), width), np.nan, dtype=np.float32)
        block[ok] = target.y.reshape(len(ok), width).astype(np.float32)
        blocks.append(block)
        labelled_any[ok] = True
        out.append(HeadTarget(name, cols, list(range(start, start + width)), target.task,
                              target.classes, target.n_outputs, len(ok)))
        start += width
    kept = np.flatnonzero(labelled_any)
    return kept, np.concatenate(blocks, axis=1)[kept], out


def heads_info(heads: list[HeadTarget]) -> dict[str, dict[str, Any]]:
    """What ``data.json`` records of the heads."""
    return {h.name: h.info() for h in heads}


__all__ = ["HeadTarget", "HeadTargetSpec", "head_targets", "heads_info"]
