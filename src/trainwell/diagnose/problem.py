"""What the doctor works on: a module, its data, the task, the loss and an optimizer factory."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainwell.errors import ConfigError, DataError

OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]
TASKS = ("binary", "multiclass", "regression")

_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": lambda p, lr, **kw: torch.optim.SGD(
        p, lr=lr, momentum=kw.pop("momentum", 0.9), **kw
    ),
    "nesterov": lambda p, lr, **kw: torch.optim.SGD(
        p, lr=lr, momentum=kw.pop("momentum", 0.9), nesterov=True, **kw
    ),
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def optimizer_factory(spec: str | dict[str, Any] | OptimizerFactory | None) -> OptimizerFactory:
    """``"adam"``, ``{"name": "sgd", "momentum": 0.9}`` or ``f(params, lr)`` -> ``f(params, lr)``.

    The LR is left out of the spec: the doctor's loops set it themselves.
    """
    if spec is None:
        spec = "adam"
    if callable(spec) and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    opts = {k: v for k, v in dict(spec).items() if k not in {"name", "lr"}}
    name = str(spec.get("name", "adam")).lower()
    if name not in _OPTIMIZERS:
        from trainwell.registry import unknown_name_message

        raise ConfigError(unknown_name_message("optimizer", name, list(_OPTIMIZERS)))
    ctor = _OPTIMIZERS[name]

    def make(params: Any, lr: float) -> torch.optim.Optimizer:
        return ctor(params, lr=lr, **dict(opts))

    return make


def as_split(data: Any, what: str = "data") -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(X, y)``, a ``Split`` (``.X``, ``.y``) or None -> ``(X, y)`` tensors or None."""
    if data is None:
        return None
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y = data.X, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise DataError(f"{what} must be a pair (X, y) of tensors; got {type(data).__name__}")
    if not isinstance(X, torch.Tensor):
        if isinstance(X, torch.utils.data.Dataset):
            X, y = _materialise(X)
        else:
            X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.ndim == 0 or len(X) != len(y):
        raise DataError(
            f"{what}: X and y must have the same number of rows; got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    if len(X) == 0:
        return None
    return X.float(), y


def _materialise(ds: Any, limit: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(len(ds), limit)
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)


@dataclass
class Problem:
    """A module and the data the doctor checks it on."""

    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    task: str
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss_name: str
    n_outputs: int
    n_classes: int | None
    optimizer: OptimizerFactory
    lr: float | None = None
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    test: tuple[torch.Tensor, torch.Tensor] | None = None
    seed: int = 0

    def fresh(self) -> nn.Module:
        """A copy of the module at its initial weights (the doctor never trains the original)."""
        return copy.deepcopy(self.model)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(out, y)

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """Labels in the form the loss takes (float for BCE and regression)."""
        if self.task == "binary" and self.loss_name in {"bce", "bce_with_logits"}:
            return y.float().reshape(-1, 1) if self.n_outputs == 1 else y.float()
        if self.task == "regression":
            return y.float().reshape(len(y), -1)
        return y

    def accuracy(self, out: torch.Tensor, y: torch.Tensor) -> float | None:
        """Training accuracy of the outputs (None for regression)."""
        if self.task == "regression":
            return None
        scores = out.reshape(len(out), -1)
        if scores.shape[1] == 1:  # one logit: class 1 where it is positive
            pred = (scores[:, 0] > 0).long()
        else:
            pred = scores.argmax(1)
        return (pred == y.reshape(-1).long()).float().mean().item()

    @property
    def expected_initial_loss(self) -> float | None:
        """The loss of an uninformed model at step 0 (lecture 002, step 1)."""
        if self.loss_name == "cross_entropy" and self.n_classes:
            return math.log(self.n_classes)
        if self.loss_name in {"bce", "bce_probs"}:
            return math.log(2.0)
        if self.loss_name == "mse":
            # outputs near 0 at init: MSE ~ E[y^2] = var(y) + mean(y)^2
            return float((self.y.float() ** 2).mean())
        return None


def infer_task(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[str, int]:
    """(task, n_outputs) from the labels' dtype and the model's output width."""
    with torch.no_grad():
        was = model.training
        model.eval()
        out = model(X[:2])
        model.train(was)
    n_out = int(out.shape[1]) if out.ndim >= 2 else 1
    if y.is_floating_point():
        return "regression", n_out
    n_classes = int(y.max().item()) + 1 if len(y) else 0
    if n_out == 1 and n_classes <= 2:
        return "binary", n_out
    return "multiclass", n_out


def make_loss(spec: Any, task: str) -> tuple[Callable, str]:
    """A loss callable and its canonical name (``"custom"`` for user callables)."""
    if spec is None:
        spec = {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}[task]
    if isinstance(spec, str):
        name = spec.lower().replace("-", "_")
        table: dict[str, tuple[Callable, str]] = {
            "cross_entropy": (nn.CrossEntropyLoss(), "cross_entropy"),
            "ce": (nn.CrossEntropyLoss(), "cross_entropy"),
            "bce": (nn.BCEWithLogitsLoss(), "bce"),
            "bce_with_logits": (nn.BCEWithLogitsLoss(), "bce"),
            "mse": (nn.MSELoss(), "mse"),
            "l2": (nn.MSELoss(), "mse"),
            "l1": (nn.L1Loss(), "l1"),
            "mae": (nn.L1Loss(), "l1"),
            "huber": (nn.HuberLoss(), "huber"),
            "hinge": (nn.MultiMarginLoss(), "hinge"),
            "nll": (nn.NLLLoss(), "nll"),
        }
        if name == "auto":
            return make_loss(None, task)
        if name not in table:
            from trainwell.registry import unknown_name_message

            raise ConfigError(unknown_name_message("loss", spec, list(table)))
        return table[name]
    kinds = [
        (nn.CrossEntropyLoss, "cross_entropy"),
        (nn.BCEWithLogitsLoss, "bce"),
        (nn.BCELoss, "bce_probs"),
        (nn.MSELoss, "mse"),
        (nn.L1Loss, "l1"),
        (nn.HuberLoss, "huber"),
        (nn.SmoothL1Loss, "huber"),
        (nn.MultiMarginLoss, "hinge"),
        (nn.NLLLoss, "nll"),
    ]
    for cls, name in kinds:
        if isinstance(spec, cls):
            return spec, name
    if callable(spec):
        return spec, "custom"
    raise ConfigError(
        f"loss must be a name or a callable (out, y) -> loss; got {type(spec).__name__}"
    )


def batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless shuffled minibatch indices."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            yield perm[i : i + batch_size]
