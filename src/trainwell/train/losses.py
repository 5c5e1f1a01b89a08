"""Data losses by name (lectures 003-004), each averaged over the batch.

Every loss takes the model's raw output (scores / logits, never probabilities) and the targets
as ``PreparedData`` holds them: int64 class indices for classification, float32 ``(n, k)`` for
regression.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from trainwell.train.config import LossConfig, check_loss_for_task

LossFn = Callable[[Tensor, Tensor], Tensor]


def l1_loss(out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """L1 = sum_i |y_i - f(x_i)| over a sample's outputs (lecture 003), averaged over the batch.

    ``reduction="mean"`` averages over the output components instead of summing them.
    """
    err = (out - y.reshape(out.shape)).abs()
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def l2_loss(out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """L2 = sum_i (y_i - f(x_i))^2 over a sample's outputs (lecture 003), averaged over the batch."""
    err = (out - y.reshape(out.shape)).square()
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def huber_loss(out: Tensor, y: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber: quadratic below ``delta``, linear above (robust like L1, smooth like L2)."""
    err = F.huber_loss(out, y.reshape(out.shape).to(out.dtype), reduction="none", delta=delta)
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def bce_loss(out: Tensor, y: Tensor) -> Tensor:
    """Sigmoid + binary cross-entropy on logits, -y log s - (1-y) log(1-s) (lecture 004), stably."""
    return F.binary_cross_entropy_with_logits(out.reshape(-1), y.reshape(-1).to(out.dtype))


def cross_entropy_loss(out: Tensor, y: Tensor) -> Tensor:
    """Softmax cross-entropy L_i = -log(e^{s_y} / sum_k e^{s_k}) (lecture 003).

    Computed as -log_softmax, which subtracts max_k s_k first (lecture 003, numerical stability).
    """
    return F.cross_entropy(out, y)


def hinge_loss(out: Tensor, y: Tensor, margin: float = 1.0) -> Tensor:
    """Multiclass SVM loss L_i = sum_{k != y_i} max(0, s_k - s_{y_i} + 1) (lecture 003).

    torch's ``multi_margin_loss`` divides by the class count; the lecture's loss does not.
    """
    true = out.gather(1, y.reshape(-1, 1))  # (n, 1)
    margins = (out - true + margin).clamp_min(0)  # (n, C); the k = y_i term equals margin
    return (margins.sum(1) - margin).mean()


def make_loss(cfg: LossConfig | str, task: str, n_outputs: int | None = None) -> LossFn:
    """The loss function named by ``cfg`` for ``task``; refuses one that does not fit.

    Example:
        >>> import torch
        >>> fn = make_loss("cross_entropy", "multiclass")
        >>> round(fn(torch.tensor([[3.2, 5.1, -1.7]]), torch.tensor([0])).item(), 2)
        2.04
    """
    if isinstance(cfg, str):
        cfg = LossConfig(name=cfg)
    name = check_loss_for_task(cfg.name, task, n_outputs)
    if name == "l1":
        return lambda out, y: l1_loss(out, y, cfg.reduction)
    if name == "l2":
        return lambda out, y: l2_loss(out, y, cfg.reduction)
    if name == "huber":
        return lambda out, y: huber_loss(out, y, cfg.reduction, cfg.delta)
    if name == "bce":
        return bce_loss
    if name == "hinge":
        return lambda out, y: hinge_loss(out, y, cfg.margin)
    return cross_entropy_loss


__all__ = [
    "bce_loss",
    "cross_entropy_loss",
    "hinge_loss",
    "huber_loss",
    "l1_loss",
    "l2_loss",
    "make_loss",
]
