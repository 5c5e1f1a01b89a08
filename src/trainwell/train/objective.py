"""What one training step computes: the seam between the Trainer's loop and the model.

The loop is the same for every model; what a step computes from a batch is an
:class:`Objective` the loop calls once per batch::

    loss, outputs, targets = objective.loss(model, batch)

:class:`Supervised` is the default: one head, ``batch = (x, y)``, ``loss = L(model(x), y)``, with
``y`` as class indices, 0/1 labels, soft targets (an ``(n, C)`` matrix of class probabilities,
as mixup and label smoothing make) or regression values. :class:`UserStep` wraps a user's own
``training_step``-style callable for models that take several inputs, return several outputs
or read dict batches. Multitask heads, mixup and domain-adversarial training are further
objectives of the same shape.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError, DataError
from trainwell.tasks import check_task, infer_task, is_soft_target
from trainwell.train.losses import LossFn, class_weights, loss_tasks, make_loss, resolve_loss
from trainwell.train.metric_registry import Metric, resolve_metrics
from trainwell.train.metrics import metric_names, task_metrics

if TYPE_CHECKING:
    from trainwell.train.config import LossConfig
    from trainwell.train.trainer import Trainer

logger = logging.getLogger(__name__)


class StepResult(NamedTuple):
    """What a step computed: the scalar loss to minimize, and the outputs and targets it used."""

    loss: Tensor
    outputs: Any = None
    targets: Any = None


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a supervised batch: a pair, or ``x`` alone (``y`` None)."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 1:
            return batch[0], None
    if isinstance(batch, Tensor):
        return batch, None
    kind = (
        f"a dict with keys {sorted(batch)}"
        if isinstance(batch, Mapping)
        else f"{type(batch).__name__}"
        + (f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
    )
    raise DataError(
        f"the default training step takes (x, y) batches; got {kind}. For several inputs, "
        "several outputs or dict batches pass step= (a callable (model, batch) -> loss, or an "
        "Objective), or give the model a training_step(batch, batch_idx) method"
    )


def batch_len(batch: Any) -> int:
    """The number of samples in a batch: the length of its first tensor."""
    if isinstance(batch, Tensor):
        return len(batch)
    items: Iterable[Any] = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(batch, (Mapping, tuple, list)):
        for item in items:
            if item is not None:
                return batch_len(item)
    raise DataError(f"cannot tell the batch size of a {type(batch).__name__} batch")


def output_width(out: Any) -> int | None:
    """Outputs per sample of a model's output tensor (None for anything else)."""
    if not isinstance(out, Tensor):
        return None
    return int(out.shape[1]) if out.ndim >= 2 else 1


class Objective(ABC):
    """What a step computes from a batch. Subclass and implement :meth:`loss`.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression`` when the step has one, which decides
            the metrics logged beside the loss; None for none.
        top_k: top-k accuracy is logged for more than ``top_k`` classes.
        extra_metrics: metrics logged beside the task's own (``[train] metrics``,
            :mod:`trainwell.train.metric_registry`).
    """

    task: str | None = None
    top_k: int = 5
    extra_metrics: list[Metric] = []  # noqa: RUF012 - never mutated; set per instance
    eval_index: int = 0  # the index of the evaluation batch being computed

    def bind(self, trainer: Trainer) -> None:
        """Called once when a fit starts, before :meth:`setup`: the trainer running this objective.

        An objective that needs the training progress (a schedule over ``trainer.step`` and
        ``trainer.epochs * trainer.steps_per_epoch``) or the device keeps it.
        """
        self.trainer = trainer

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        """Called once before training with the first training batch (on the device)."""
        return None

    def epoch_end(self) -> dict[str, float]:
        """Extra terms of the epoch's record (``train_<name>``), computed from what the steps kept;
        called once at the end of each training epoch, before evaluation. None by default."""
        return {}

    def train_metric_names(self) -> list[str]:
        """The names :meth:`epoch_end` logs, known before training."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What exact resume needs of the objective (its generators, counters); tensors, lists,
        dicts and numbers only, as a checkpoint holds them."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        return None

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        """The step's loss on ``batch`` (in training mode), with the outputs and targets it used."""

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        """The loss on an evaluation batch (eval mode, no gradients); :meth:`loss` by default."""
        return self.loss(model, batch)

    def metric_names(self, prefix: str = "val") -> list[str]:
        """The names :meth:`evaluate` logs, known before training (for early stopping's check)."""
        if self.task is None:
            return [f"{prefix}_loss"]
        return metric_names(self.task, getattr(self, "n_outputs", None), self.top_k, prefix,
                            self.extra_metrics)

    def evaluate(
        self, model: nn.Module, batches: Iterable[Any], prefix: str = "val"
    ) -> dict[str, float]:
        """``<prefix>_loss`` averaged over samples, and the task's metrics on the outputs."""
        total, count = torch.zeros((), dtype=torch.float64), 0
        outs: list[Tensor] = []
        ys: list[Tensor] = []
        model.eval()
        with torch.inference_mode():
            for self.eval_index, batch in enumerate(batches):
                res = as_step_result(self.eval_loss(model, batch))
                n = len(res.targets) if isinstance(res.targets, Tensor) else batch_len(batch)
                total = total + res.loss.double().cpu() * n
                count += n
                if isinstance(res.outputs, Tensor) and isinstance(res.targets, Tensor):
                    outs.append(res.outputs.float())
                    ys.append(res.targets)
        if not count:
            return {}
        out: dict[str, float] = {f"{prefix}_loss": float(total / count)}
        if self.task is not None and outs and len(outs) == len(ys):
            metrics = task_metrics(
                torch.cat(outs), hard_targets(torch.cat(ys), self.task), self.task, self.top_k,
                self.extra_metrics,
            )
            out.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        return out


def hard_targets(y: Tensor, task: str) -> Tensor:
    """Class indices for metrics: soft targets -> their argmax, 0/1 floats -> int64."""
    if task == "regression":
        return y
    if is_soft_target(y) and task == "multiclass":
        return y.argmax(1)
    if y.is_floating_point():  # 0/1 labels, or probabilities of class 1
        return (y.reshape(-1) >= 0.5).long()
    return y


def _not_set_up(out: Tensor, y: Tensor) -> Tensor:
    raise ConfigError("Supervised: call setup(model, first_batch) first (a Trainer does)")


class Supervised(Objective):
    """One head: ``loss(model(x), y)`` on ``(x, y)`` batches. The default objective.

    The task comes from the loss when it fits one task only, else from the targets and the
    model's output width on the first batch (:func:`trainwell.tasks.infer_task`), never from
    the order in which the model's layers were declared.

    Args:
        loss: a registered loss name (``auto`` picks the task's), a ``LossConfig`` or dict, or a
            callable ``(output, target) -> scalar``.
        task: the task; default: inferred.
        top_k: see :class:`Objective`.
        target_units: regression trained on standardized targets (``data.target_scale``): a
            function taking outputs and targets back to the target's own units, so that RMSE
            and MAE are reported in them; the loss stays on the scale the model trains on.
        metrics: metrics logged beside the task's own: registered names,
            ``"python:module:function"`` or callables ``fn(y_true, y_pred[, proba=])``
            (:func:`~trainwell.train.metric_registry.resolve_metrics`).
        class_weight: the cross-entropy losses' weight per class: ``"balanced"`` (from the
            training targets, as scikit-learn's ``compute_class_weight``), a sequence of one
            weight per class index, or a mapping ``{class index: weight}``
            (:func:`~trainwell.train.losses.class_weights`).
        label_smoothing: the cross-entropy losses' label smoothing in [0, 1).

    Example:
        >>> obj = Supervised("cross_entropy")
        >>> net = nn.Linear(4, 3)
        >>> obj.setup(net, (torch.randn(8, 4), torch.randint(0, 3, (8,))))
        >>> obj.task, obj.n_outputs
        ('multiclass', 3)
    """

    def __init__(
        self,
        loss: str | LossConfig | dict[str, Any] | LossFn = "auto",
        task: str | None = None,
        top_k: int = 5,
        target_units: Callable[[Tensor], Tensor] | None = None,
        *,
        metrics: Any = None,
        class_weight: Any = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self.loss_spec = loss
        self.task = check_task(task) if task is not None else None
        self.top_k = top_k
        self.target_units = target_units
        self.extra_metrics = resolve_metrics(metrics)
        self.class_weight = class_weight
        self.label_smoothing = float(label_smoothing)
        #: the weight of each class index the loss uses (None: unweighted), once set up
        self.class_weights: list[float] | None = None
        self.n_outputs: int | None = None
        self.loss_fn: LossFn = _not_set_up
        self.loss_name: str = "custom"

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        x, y = split_batch(first_batch)
        if y is None:
            raise DataError(
                "the training data has no targets: give (X, y), or pass step= for a "
                "step that needs none"
            )
        self.n_outputs = output_width(forward_quietly(model, x))
        custom = (
            callable(self.loss_spec)
            and not isinstance(self.loss_spec, (str, dict))
            and not hasattr(self.loss_spec, "model_fields")
        )
        if self.task is None:
            tasks = None if custom else loss_tasks(loss_name_of(self.loss_spec))
            self.task = infer_task(y, n_outputs=self.n_outputs, loss_tasks=tasks)
        resolve_metrics(self.extra_metrics, self.task)  # each metric fits the task
        if custom:
            if self.class_weight is not None or self.label_smoothing:
                raise ConfigError("class_weight and label_smoothing apply to a named "
                                  "cross-entropy loss, not to a loss function of one's own")
            self.loss_fn = cast("LossFn", self.loss_spec)
            return
        if self.task == "regression" and isinstance(y, Tensor) and self.n_outputs is not None:
            per_sample = y[0].numel() if y.ndim > 1 else 1
            if per_sample != self.n_outputs:
                raise DataError(
                    f"the model gives {self.n_outputs} output(s) per sample but the "
                    f"regression targets have {per_sample}: they must match"
                )
        spec = cast("LossConfig | str | dict[str, Any]", self.loss_spec)
        cfg = resolve_loss(spec, self.task, self.n_outputs)
        self.loss_name = cfg.name
        if self.class_weight is not None:
            if self.task == "regression":
                raise ConfigError("train.class_weight applies to classification; this task is "
                                  "regression")
            n_classes = 2 if self.task == "binary" else int(self.n_outputs or 2)
            self.class_weights = class_weights(self.class_weight, self._train_targets(),
                                               n_classes)
        self.loss_fn = make_loss(cfg, self.task, self.n_outputs, class_weight=self.class_weights,
                                 label_smoothing=self.label_smoothing)
        if isinstance(y, Tensor) and is_soft_target(y) and cfg.name != "cross_entropy":
            raise ConfigError(
                f"soft targets (rows of class probabilities) need train.loss "
                f"cross_entropy; got {cfg.name!r}"
            )

    def _train_targets(self) -> Any:
        """The whole training split's targets, for ``class_weight = "balanced"``."""
        if not (isinstance(self.class_weight, str) and self.class_weight == "balanced"):
            return None
        batches = getattr(getattr(self, "trainer", None), "train_batches", None)
        y = getattr(batches, "y", None)
        if not isinstance(y, Tensor):
            raise ConfigError(
                'class_weight = "balanced" counts the classes of in-memory training targets; '
                "with a Dataset or DataLoader give one weight per class"
            )
        return hard_targets(y, self.task or "multiclass")

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        x, y = batch  # (x, y): the loop's in-memory batches are pairs
        out = model(x)
        return StepResult(self.loss_fn(out, y), out, y)

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        x, y = split_batch(batch)
        out = model(x)
        if y is None:
            raise DataError("evaluation data has no targets")
        return StepResult(self.loss_fn(out, y), out, y)

    def evaluate(
        self, model: nn.Module, batches: Iterable[Any], prefix: str = "val"
    ) -> dict[str, float]:
        """The loss on all outputs at once (not averaged per batch), and the task's metrics."""
        outs: list[Tensor] = []
        ys: list[Tensor] = []
        model.eval()
        with torch.inference_mode():
            for batch in batches:
                x, y = split_batch(batch)
                outs.append(model(x).float())
                if y is not None:
                    ys.append(y)
            if not outs or not ys:
                return {}
            out, y = torch.cat(outs), torch.cat(ys)
            res = {f"{prefix}_loss": float(self.loss_fn(out, y))}
            if self.task == "regression" and self.target_units is not None:
                out = self.target_units(out)
                y = self.target_units(y.reshape(out.shape))
            metrics = task_metrics(
                out,
                hard_targets(y, self.task or "multiclass"),
                self.task or "multiclass",
                self.top_k,
                self.extra_metrics,
            )
        res.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        return res


class UserStep(Objective):
    """A user's own step: ``fn(model, batch)`` returns the loss, ``(loss, outputs, targets)``
    or a dict with ``loss`` (and optionally ``outputs``, ``targets``).

    For models that take several inputs, return several outputs or read dict batches. Metrics
    beside ``val_loss`` are logged when ``task`` is given and the step returns output and target
    tensors.

    Args:
        fn: the training step.
        eval_fn: the evaluation step (same contract); default: ``fn``.
        task: the task of the returned outputs and targets, for metrics.

    Example:
        >>> def step(model, batch):
        ...     out = model(batch["x"])
        ...     return nn.functional.cross_entropy(out, batch["label"]), out, batch["label"]
        >>> obj = UserStep(step, task="multiclass")
    """

    def __init__(
        self,
        fn: Callable[[nn.Module, Any], Any],
        eval_fn: Callable[[nn.Module, Any], Any] | None = None,
        task: str | None = None,
        top_k: int = 5,
        metrics: Any = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(
                f"step must be callable (model, batch) -> loss; got {type(fn).__name__}"
            )
        self.fn, self.eval_fn = fn, eval_fn or fn
        self.task = check_task(task) if task is not None else None
        self.top_k = top_k
        self.extra_metrics = resolve_metrics(metrics, self.task)

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        return as_step_result(self.fn(model, batch))

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        return as_step_result(self.eval_fn(model, batch))


def as_step_result(value: Any) -> StepResult:
    """A step's return value (loss, tuple or dict) as a :class:`StepResult`."""
    if isinstance(value, StepResult):
        result = value
    elif isinstance(value, Tensor):
        result = StepResult(value)
    elif isinstance(value, Mapping):
        if "loss" not in value:
            raise ConfigError(
                f"a training step returned a dict without 'loss' (keys: {sorted(value)})"
            )
        result = StepResult(value["loss"], value.get("outputs"), value.get("targets"))
    elif isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
        result = StepResult(*value)
    else:
        raise ConfigError(
            "a training step must return the loss tensor, (loss, outputs, targets) or "
            f"a dict with 'loss'; got {type(value).__name__}"
        )
    if not isinstance(result.loss, Tensor) or result.loss.numel() != 1:
        shape = (
            tuple(result.loss.shape)
            if isinstance(result.loss, Tensor)
            else type(result.loss).__name__
        )
        raise ConfigError(f"a training step's loss must be a scalar tensor; got {shape}")
    return result


def make_objective(
    step: Any,
    model: nn.Module,
    *,
    loss: Any = "auto",
    task: str | None = None,
    top_k: int = 5,
    batch_index: Callable[[], int] = lambda: 0,
    metrics: Any = None,
    class_weight: Any = None,
    label_smoothing: float = 0.0,
) -> Objective:
    """The objective for ``Trainer(step=...)``.

    ``step`` may be an :class:`Objective`, a callable ``(model, batch) -> loss | (loss, outputs,
    targets) | dict``, or None: then a model with a ``training_step(batch[, batch_idx])`` method
    (and optionally ``validation_step``) uses it, as Lightning modules do, and any other model
    gets :class:`Supervised` with ``loss``, ``task``, ``metrics``, ``class_weight`` and
    ``label_smoothing`` (an objective of one's own keeps its own metrics, if it has any).
    """
    if isinstance(step, Objective):
        if task is not None and step.task is None:
            step.task = check_task(task)
        if metrics and not step.extra_metrics:
            step.extra_metrics = resolve_metrics(metrics)
        return step
    if step is not None:
        return UserStep(step, task=task, top_k=top_k, metrics=metrics)
    own = getattr(model, "training_step", None)
    if callable(own):
        val = getattr(model, "validation_step", None)
        obj = UserStep(_method_step(own, batch_index), task=task, top_k=top_k, metrics=metrics)
        obj.eval_fn = _method_step(val if callable(val) else own, lambda: obj.eval_index)
        return obj
    return Supervised(loss, task=task, top_k=top_k, metrics=metrics, class_weight=class_weight,
                      label_smoothing=label_smoothing)


def _method_step(
    method: Callable[..., Any], batch_index: Callable[[], int]
) -> Callable[[nn.Module, Any], Any]:
    """``model.training_step(batch[, batch_idx])`` as a ``(model, batch)`` step."""
    try:
        takes_index = len(inspect.signature(method).parameters) >= 2
    except (TypeError, ValueError):
        takes_index = False
    if takes_index:
        return lambda _model, batch: method(batch, batch_index())
    return lambda _model, batch: method(batch)


def loss_name_of(spec: Any) -> str:
    """The loss name in a loss spec (a name, a dict or a ``LossConfig``); ``auto`` if none."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return str(spec.get("name", "auto"))
    return str(getattr(spec, "name", "auto"))


def forward_quietly(model: nn.Module, x: Any) -> Any:
    """``model(x[:2])`` in eval mode without gradients, leaving every RNG and mode as it was."""
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            return model(x[:2] if isinstance(x, Tensor) else x)
    finally:
        model.train(was)


def concat_outputs(outs: list[Any]) -> Any:
    """Batches of model outputs joined along the rows, as float32: one tensor, or ``{head:
    tensor}`` for a model with several heads (empty input: an empty tensor)."""
    if not outs:
        return torch.empty(0)
    if isinstance(outs[0], Mapping):
        return {k: torch.cat([o[k] for o in outs]).float() for k in outs[0]}
    return torch.cat(outs).float()


__all__ = [
    "Objective",
    "StepResult",
    "Supervised",
    "UserStep",
    "as_step_result",
    "batch_len",
    "concat_outputs",
    "forward_quietly",
    "hard_targets",
    "loss_name_of",
    "make_objective",
    "output_width",
    "split_batch",
]
