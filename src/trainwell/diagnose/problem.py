"""What the doctor works on: a module, its data, the task, the loss and an optimizer factory.

The doctor speaks the trainer's vocabulary: its loss comes from the loss registry
(:mod:`trainwell.train.losses`), its optimizers from :func:`trainwell.train.optim.make_optimizer`
and its task from :func:`trainwell.tasks.infer_task`, so a name means the same to
``trainwell doctor`` as to ``trainwell train``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from trainwell.errors import ConfigError, DataError
from trainwell.registry import Registry
from trainwell.schema import format_validation_error
from trainwell.train import losses, optim
from trainwell.train.config import OPTIMIZER_NAMES, LossConfig, OptimizerConfig

OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]
OptimizerSpec = str | dict[str, Any] | OptimizerConfig | OptimizerFactory | None
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

M = TypeVar("M", bound=BaseModel)

#: torch loss modules that compute a registered loss when they average over the batch
#: (``reduction="mean"``); the doctor knows their value at init (the expected initial loss).
TORCH_LOSSES: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.CrossEntropyLoss, "cross_entropy"),
    (nn.BCEWithLogitsLoss, "bce"),
    (nn.MSELoss, "l2"),
    (nn.L1Loss, "l1"),
    (nn.HuberLoss, "huber"),
)


def validated(model: type[M], value: Any, field: str, names: Registry[Any] | None = None) -> M:
    """``value`` as a ``model`` section, or a ConfigError naming ``field`` and what is wrong.

    With ``names``, the ``name`` of a table is looked up there first (its own message, with
    the closest valid name).
    """
    if isinstance(value, model):
        return value
    name = value.get("name") if isinstance(value, dict) else None
    if names is not None and isinstance(name, str) and name.strip().lower() != "auto":
        try:
            names.canonical(name)
        except ConfigError as exc:
            raise ConfigError(f"doctor: {field}: {exc}") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        lines = format_validation_error(exc, model)
        raise ConfigError(f"doctor: invalid {field}:\n{lines}") from None


def optimizer_factory(spec: OptimizerSpec) -> OptimizerFactory:
    """An optimizer as the trainer takes it (name, dict / config, factory) -> ``f(params, lr)``.

    Names and dicts are built by the trainer's :func:`~trainwell.train.optim.make_optimizer`.
    The LR is left out of the spec: the doctor's loops set it themselves. The fused kernel is off
    unless ``fused`` is set, so the loops take the same path on every device.

    Example:
        >>> make = optimizer_factory({"name": "momentum"})
        >>> make(nn.Linear(2, 1).parameters(), 0.1).param_groups[0]["momentum"]
        0.9
    """
    if spec is None:
        spec = "adam"
    if isinstance(spec, torch.optim.Optimizer):
        raise ConfigError(
            f"doctor: optimizer must be a name, a dict / OptimizerConfig or a factory "
            f"f(params, lr); got a {type(spec).__name__} instance (every loop of the doctor "
            "trains a fresh copy of the module with a fresh optimizer)"
        )
    if isinstance(spec, str):
        spec = {"name": spec}
    if callable(spec) and not isinstance(spec, (dict, OptimizerConfig)):
        return spec
    cfg = validated(OptimizerConfig, spec, "optimizer", OPTIMIZER_NAMES)
    if cfg.fused is None:
        cfg = cfg.model_copy(update={"fused": False})

    def make(params: Any, lr: float) -> torch.optim.Optimizer:
        return optim.make_optimizer(cfg.model_copy(update={"lr": lr}), params)

    return make


def torch_loss_config(module: Any) -> LossConfig | None:
    """The registered loss a torch loss module computes, or None (then it is a custom loss)."""
    if getattr(module, "reduction", None) != "mean":
        return None
    if getattr(module, "pos_weight", None) is not None or (
        isinstance(module, nn.BCEWithLogitsLoss) and module.weight is not None
    ):
        return None  # weighted BCE: its value at init is not log 2
    for cls, name in TORCH_LOSSES:
        if isinstance(module, cls):
            delta = float(getattr(module, "delta", 1.0))
            return LossConfig(name=name, delta=delta)
    return None


def loss_config(spec: Any) -> tuple[LossConfig | None, LossFn | None]:
    """``(config, callable)`` of a loss given as the trainer takes it.

    A name, a dict or a :class:`LossConfig` gives ``(config, None)``: the loss is built by the
    registry once the task is known. A torch loss module of :data:`TORCH_LOSSES` gives
    ``(config, module)``; any other callable ``(None, callable)`` (a custom loss).
    """
    if spec is None:
        spec = "auto"
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, (dict, LossConfig)):
        return validated(LossConfig, spec, "loss", losses.LOSSES), None
    if callable(spec):
        return torch_loss_config(spec), spec
    raise ConfigError(
        "doctor: loss must be a loss name, a dict / LossConfig or a callable (out, y) -> loss; "
        f"got {type(spec).__name__}"
    )


def output_width(model: nn.Module, X: torch.Tensor) -> int:
    """The width of the model's output on a 2-row batch (1 for a flat output), in eval mode."""
    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            out = model(X[:2])
        finally:
            model.train(was)
    return int(out.shape[1]) if out.ndim >= 2 else 1


def as_split(data: Any, what: str = "data") -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(X, y)``, a ``Split`` (``.X``, ``.y``), a ``Dataset`` of ``(x, y)`` items, a
    ``DataLoader`` of ``(x, y)`` batches (what ``Trainer.fit`` takes; up to 4096 rows are read
    into memory) or None -> ``(X, y)`` tensors or None."""
    if data is None:
        return None
    if isinstance(data, torch.utils.data.DataLoader):
        X, y = _from_loader(data, what)
    elif isinstance(data, torch.utils.data.Dataset):
        X, y = _materialise(data)
    elif hasattr(data, "X") and hasattr(data, "y"):
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
            f"{what}: X and y must have the same number of rows; got {tuple(X.shape)} and "
            f"{tuple(y.shape)}"
        )
    if len(X) == 0:
        return None
    return X.float(), y


def _from_loader(loader: Any, what: str, limit: int = 4096
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` rows of a DataLoader's ``(x, y)`` batches, joined (its generator, if
    any, and torch's RNG are left as they were)."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    gen = getattr(loader, "generator", None)
    state = gen.get_state() if gen is not None else None
    try:
        with torch.random.fork_rng(devices=[]):
            for batch in loader:
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                    raise DataError(f"{what}: the DataLoader must yield (x, y) batches; got "
                                    f"{type(batch).__name__}")
                xs.append(torch.as_tensor(batch[0]))
                ys.append(torch.as_tensor(batch[1]))
                if sum(len(x) for x in xs) >= limit:
                    break
    finally:
        if gen is not None and state is not None:
            gen.set_state(state)
    if not xs:
        raise DataError(f"{what}: the DataLoader yields no batches")
    return torch.cat(xs)[:limit], torch.cat(ys)[:limit]


def _materialise(ds: Any, limit: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(len(ds), limit)
    xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)


@dataclass
class Problem:
    """A module and the data the doctor checks it on.

    Attributes:
        loss_name: the registered loss name, or ``"custom"`` for a user's callable.
        loss_cfg: the loss as the trainer configures it (None for a custom loss).
        loss_error: why the loss does not fit the task and the outputs (the trainer would refuse
            it); the loss-based checks are skipped then.
    """

    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    task: str
    loss_fn: LossFn
    loss_name: str
    n_outputs: int
    n_classes: int | None
    optimizer: OptimizerFactory
    loss_cfg: LossConfig | None = None
    loss_error: str | None = None
    lr: float | None = None
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    test: tuple[torch.Tensor, torch.Tensor] | None = None
    seed: int = 0

    def fresh(self) -> nn.Module:
        """A copy of the module at its initial weights (the doctor never trains the original)."""
        return copy.deepcopy(self.model)

    @contextmanager
    def seeded(self) -> Iterator[None]:
        """torch's RNG seeded from ``seed`` inside; the caller's RNG state as it was afterwards.

        Dropout draws from the RNG of the module's device, so that one is forked and seeded too:
        the doctor never changes the numbers of a training run that follows it.
        """
        device = self.X.device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if (
            device.type == "cuda") else []
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(self.seed)
            for index in cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(self.seed)
            yield

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(out, y)

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """Labels in the form the loss takes (float for BCE and regression)."""
        if self.task == "binary" and self.loss_name == "bce":
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
        """The loss of an uninformed model, all outputs 0, at step 0 (lecture 002, step 1).

        Lecture 003: log C for softmax cross-entropy, (C - 1) * margin for the hinge loss,
        log 2 for sigmoid + BCE; for regression the loss of all-zero outputs on the targets.
        """
        if self.loss_cfg is None or self.loss_error is not None:
            return None
        classes = self.n_outputs if self.task == "multiclass" else self.n_classes
        return losses.chance_loss(self.loss_cfg, self.task, classes, self.y)


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled minibatch indices."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            yield perm[i : i + batch_size]
