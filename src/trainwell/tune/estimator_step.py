"""The training step of the scikit-learn estimators: each sample's loss times its weight.

Kept apart from :mod:`trainwell.tune.estimator` so that importing the estimators loads no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainwell.train.objective import Objective, StepResult, forward_quietly


class WeightedStep(Objective):
    """Weighted cross-entropy (binary or multiclass) or squared error on ``(x, rows)`` batches.

    ``rows`` are the sample indices into the targets ``y`` and the weights ``w`` the step
    holds. The batch loss is ``sum(w_i * l_i) / (batch_rows * mean_w)`` with ``mean_w`` the
    mean weight of the training rows: an unbiased estimate of the weighted mean loss over the
    training set, and equal to it when one batch holds every row (then a weight of 0 equals
    leaving the row out, and a weight of k equals repeating the row k times).

    Args:
        task: ``binary`` (one logit, or two with softmax), ``multiclass`` or ``regression``.
        y: class indices (int64) or float targets ``(n, k)``, for every row of train and
            validation.
        w: the weight of every row.
        train_rows: the rows trained on (their mean weight scales the loss).
    """

    def __init__(self, task: str, y: Tensor, w: Tensor, train_rows: np.ndarray) -> None:
        self.task = self.kind = task
        self.y, self.w = y, w
        self.mean_w = float(w[torch.from_numpy(train_rows)].mean())

    def bind(self, trainer: Any) -> None:
        super().bind(trainer)
        self.y, self.w = self.y.to(trainer.device), self.w.to(trainer.device)

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        x, _rows = first_batch
        check_width(forward_quietly(model, x), self.kind, self.y, type(model).__name__)

    def per_sample(self, out: Tensor, rows: Tensor) -> Tensor:
        """Each row's loss (no reduction)."""
        y = self.y[rows]
        out = out.reshape(len(y), -1)
        if self.kind == "regression":
            return ((out - y) ** 2).mean(dim=1)
        if out.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(out[:, 0], y.to(out.dtype), reduction="none")
        return F.cross_entropy(out, y, reduction="none")

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        x, rows = batch
        out = model(x)
        w = self.w[rows]
        loss = (self.per_sample(out, rows) * w).sum() / (len(rows) * self.mean_w)
        return StepResult(loss.to(out.dtype), out, self.y[rows])

    def metric_names(self, prefix: str = "val") -> list[str]:
        return [f"{prefix}_loss"]

    def evaluate(self, model: nn.Module, batches: Any, prefix: str = "val") -> dict[str, float]:
        """``<prefix>_loss``: the weighted mean loss over all rows of ``batches``."""
        total = torch.zeros((), dtype=torch.float64)
        weight = torch.zeros((), dtype=torch.float64)
        model.eval()
        with torch.inference_mode():
            for x, rows in batches:
                w = self.w[rows].double()
                total += (self.per_sample(model(x), rows).double() * w).sum().cpu()
                weight += w.sum().cpu()
        if not weight > 0:
            return {}
        return {f"{prefix}_loss": float(total / weight)}


def check_width(out: Tensor, task: str, y: Tensor, model_name: str) -> None:
    """Refuse a model whose output width does not fit the targets, naming both."""
    width = int(out.shape[1]) if out.ndim >= 2 else 1
    if task == "regression":
        need = int(y.shape[1]) if y.ndim > 1 else 1
        ok, allowed = width == need, f"{need}"
    else:
        n_classes = max(int(y.max()) + 1, 2)
        ok = width == n_classes or (task == "binary" and width == 1)
        allowed = f"{n_classes}" + (" (or 1 logit for two classes)" if task == "binary" else "")
    if not ok:
        raise ValueError(
            f"the module {model_name} gives {width} output(s) per sample; these targets need "
            f"{allowed}"
        )


__all__ = ["WeightedStep", "check_width"]
