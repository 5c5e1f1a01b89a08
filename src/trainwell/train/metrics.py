"""The task's metrics, computed in torch on whole outputs (one sync per evaluation).

Classification: accuracy, top-k accuracy (when there are more than k classes) and macro F1;
regression: RMSE, MAE and R^2 (averaged over targets). Tested against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from trainwell.train.metric_registry import Metric


def predict_labels(out: Tensor, task: str) -> Tensor:
    """Class indices from raw outputs: argmax of the scores, or logit > 0 for binary."""
    if task == "binary":
        return (out.reshape(-1) > 0).long()
    return out.argmax(1)


def output_predictions(out: Tensor, task: str) -> dict[str, Any]:
    """``y_pred`` (class indices, or values) and, for classification, ``proba`` (one column per
    class; binary: ``[1 - p, p]``) from raw outputs, as NumPy arrays."""
    if task == "regression":
        return {"y_pred": out.detach().cpu().numpy()}
    if task == "binary":
        p1 = torch.sigmoid(out.detach().reshape(-1))
        proba = torch.stack([1 - p1, p1], dim=1)
    else:
        proba = torch.softmax(out.detach(), dim=1)
    return {"y_pred": predict_labels(out.detach(), task).cpu().numpy(),
            "proba": proba.cpu().numpy()}


def macro_f1(pred: Tensor, y: Tensor, n_classes: int) -> Tensor:
    """Unweighted mean over the classes present in ``y`` or ``pred`` of 2TP / (2TP + FP + FN)."""
    conf = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes)
    conf = conf.reshape(n_classes, n_classes).double()  # rows: true, cols: predicted
    tp = conf.diag()
    denom = conf.sum(0) + conf.sum(1)  # 2TP + FP + FN
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1[present].mean() if bool(present.any()) else torch.zeros((), dtype=torch.float64)


def classification_metrics(out: Tensor, y: Tensor, task: str, top_k: int = 5) -> dict[str, Tensor]:
    n_classes = 2 if task == "binary" else out.shape[1]
    pred = predict_labels(out, task)
    res = {"accuracy": (pred == y).double().mean(), "f1_macro": macro_f1(pred, y, n_classes)}
    if task == "multiclass" and n_classes > top_k:
        top = out.topk(top_k, dim=1).indices  # (n, k)
        res[f"top{top_k}_accuracy"] = (top == y.reshape(-1, 1)).any(1).double().mean()
    return res


def regression_metrics(out: Tensor, y: Tensor) -> dict[str, Tensor]:
    y = y.reshape(out.shape).double()
    err = out.double() - y
    ss_res = err.square().sum(0)
    ss_tot = (y - y.mean(0)).square().sum(0)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), torch.zeros_like(ss_tot))
    return {
        "rmse": err.square().mean(0).sqrt().mean(),
        "mae": err.abs().mean(),
        "r2": r2.mean(),
    }


def task_metrics(out: Tensor, y: Tensor, task: str, top_k: int = 5,
                 extra: Sequence[Metric] = ()) -> dict[str, float]:
    """The task's metrics as Python floats, then those of ``extra`` (``[train] metrics``,
    :mod:`trainwell.train.metric_registry`) computed on the same outputs.

    Example:
        >>> task_metrics(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), "multiclass")
        {'accuracy': 0.5, 'f1_macro': 0.3333333333333333}
    """
    if len(y) == 0:
        return {}
    res = (
        regression_metrics(out, y)
        if task == "regression"
        else classification_metrics(out, y, task, top_k)
    )
    values = torch.stack([v.double() for v in res.values()]).tolist()  # one sync
    out_values = dict(zip(res, values, strict=True))
    if extra:
        from trainwell.train.metric_registry import compute_metrics, metric_inputs

        out_values.update(compute_metrics(extra, metric_inputs(out, y, task)))
    return out_values


def metric_names(
    task: str, n_outputs: int | None, top_k: int = 5, prefix: str = "val",
    extra: Sequence[Metric] = (),
) -> list[str]:
    """The names :func:`task_metrics` gives for ``task``, with ``prefix`` (and its loss)."""
    if task == "regression":
        names = ["rmse", "mae", "r2"]
    else:
        names = ["accuracy", "f1_macro"]
        if task == "multiclass" and n_outputs is not None and n_outputs > top_k:
            names.append(f"top{top_k}_accuracy")
    n_classes = None if task == "regression" else 2 if task == "binary" else n_outputs
    names += [n for m in extra for n in m.names(n_classes) if n not in names]
    return [f"{prefix}_loss"] + [f"{prefix}_{n}" for n in names]


__all__ = ["macro_f1", "metric_names", "output_predictions", "predict_labels", "task_metrics"]
