"""``PreparedData``: what the model is fed, and how to save it with a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainwell.data.pipeline import Pipeline, TargetScale


@dataclass
class Split:
    """One split. ``X`` is a float32 tensor (N, ...) or, for images read lazily, an
    ``ImageFolderDataset`` whose items are ``(x, y)``; ``y`` is int64 (N,) class indices or
    float32 (N, k) regression targets; ``index`` holds each row's position in the source."""

    X: Any
    y: Any
    index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def lazy(self) -> bool:
        import torch

        return not isinstance(self.X, torch.Tensor)

    def dataset(self) -> Any:
        """A torch Dataset of ``(x, y)`` pairs (a ``TensorDataset`` when in memory)."""
        if self.lazy:
            return self.X
        from torch.utils.data import TensorDataset

        return TensorDataset(self.X, self.y)

    def head(self, n: int) -> Any:
        """The first ``n`` inputs as one tensor (decodes them when lazy)."""
        import torch

        if not self.lazy:
            return self.X[:n]
        k = min(n, len(self))
        if k == 0:
            return torch.empty((0, *self.X.shape[1:]))
        return torch.stack([self.X[i][0] for i in range(k)])


@dataclass
class PreparedData:
    """The result of ``prepare``: splits after preprocessing, plus everything ``describe`` shows.

    Regression targets may be standardized (``data.target_scale``): the splits' ``y`` are then
    on the standardized scale the model trains on, and :attr:`target_scale` turns values back
    into the target's own units.
    """

    source: str
    task: str
    classes: list[Any] | None
    feature_names: list[str]
    input_shape: tuple[int, ...]
    n_outputs: int
    train: Split
    val: Split
    test: Split
    pipeline: Pipeline
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def heads(self) -> dict[str, dict[str, Any]] | None:
        """With ``[heads]``: per head its columns, target-matrix ``index``, task, classes,
        ``n_outputs`` and labelled row count."""
        return self.info.get("heads")

    @property
    def target_scale(self) -> TargetScale | None:
        """The standardization of the regression targets, fitted on train (None: as they are)."""
        return self.pipeline.target_scale

    def class_counts(self) -> dict[str, list[int]] | None:
        if self.classes is None:
            return None
        k = len(self.classes)
        return {name: np.bincount(s.y.numpy(), minlength=k).tolist()
                for name, s in self.splits.items()}

    def summary(self) -> dict[str, Any]:
        """The contents of ``data.json``."""
        return {
            "source": self.source,
            "task": self.task,
            "classes": self.classes,
            "feature_names": self.feature_names,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "splits": {name: len(s) for name, s in self.splits.items()},
            "class_counts": self.class_counts(),
            "missing": self.info.get("missing", {}),
            "dropped_rows": self.info.get("dropped_rows", {}),
            "split_method": self.info.get("split_method"),
            "steps": self.info.get("steps", []),
            "target": self.info.get("target"),
            **({"target_scale": self.target_scale.to_dict()} if self.target_scale else {}),
            **({"heads": self.heads} if self.heads else {}),
            **({"domain": self.info["domain"]} if "domain" in self.info else {}),
            **({"memory": self.info["memory"]} if "memory" in self.info else {}),
        }

    def save(self, run_dir: str | Path) -> None:
        """Write ``data.json``, ``preprocess.json`` and ``preprocess.safetensors`` into
        ``run_dir``."""
        from trainwell.runs import write_json_atomic

        run_dir = Path(run_dir)
        self.pipeline.save(run_dir)
        write_json_atomic(run_dir / "data.json", self.summary())


__all__ = ["PreparedData", "Split"]
