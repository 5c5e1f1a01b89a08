"""Data losses by name (lectures 003-004), each averaged over the batch, in one registry.

Every loss takes the model's raw output (scores / logits, never probabilities) and the targets
as ``PreparedData`` holds them: int64 class indices for classification (or a float ``(n, C)``
matrix of class probabilities, the soft targets of mixup and label smoothing), float32
``(n, k)`` for regression.

The registry :data:`LOSSES` is the one place a loss name is written: the config validates
``train.loss`` against it, the trainer and the doctor build their loss from it, and each entry
says which tasks it fits and what it is for an uninformed model (the doctor's initial-loss
check). This module imports torch only when a loss is built, so ``trainwell check`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError
from trainwell.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

    from trainwell.train.config import LossConfig

LossFn = Callable[["Tensor", "Tensor"], "Tensor"]


# ---------------------------------------------------------------------------- the losses


def l1_loss(out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """L1 = sum_i |y_i - f(x_i)| over a sample's outputs (lecture 003), averaged over the batch.

    ``reduction="mean"`` averages over the output components instead of summing them.
    """
    err = (out - y.reshape(out.shape)).abs()
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def l2_loss(out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """L2 = sum_i (y_i - f(x_i))^2 over a sample's outputs (lecture 003), batch-averaged."""
    err = (out - y.reshape(out.shape)).square()
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def huber_loss(out: Tensor, y: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber: quadratic below ``delta``, linear above (robust like L1, smooth like L2)."""
    import torch.nn.functional as F

    err = F.huber_loss(out, y.reshape(out.shape).to(out.dtype), reduction="none", delta=delta)
    return err.mean() if reduction == "mean" else err.reshape(len(err), -1).sum(1).mean()


def bce_loss(out: Tensor, y: Tensor, weight: Tensor | None = None,
             label_smoothing: float = 0.0) -> Tensor:
    """Sigmoid + binary cross-entropy on logits, -y log s - (1-y) log(1-s) (lecture 004), stably.

    ``y`` may hold hard 0/1 labels or soft probabilities of class 1.

    ``weight = (w0, w1)`` (``train.class_weight``) weighs each row by its class:
    ``mean_i(w1 y_i (-log s_i) + w0 (1 - y_i) (-log(1 - s_i)))``, computed as ``w0`` times
    torch's ``binary_cross_entropy_with_logits`` with ``pos_weight = w1 / w0``. It is a mean over
    the rows, not divided by the sum of the weights as torch's weighted ``cross_entropy`` is;
    with ``balanced`` weights the two agree on the training set, whose mean weight is 1.
    ``label_smoothing = e`` replaces the targets by ``y (1 - e) + e / 2``, the form torch's
    ``cross_entropy(label_smoothing=e)`` documents, with two classes.
    """
    import torch.nn.functional as F

    target = y.reshape(-1).to(out.dtype)
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / 2
    if weight is None:
        return F.binary_cross_entropy_with_logits(out.reshape(-1), target)
    w = weight.to(device=out.device, dtype=out.dtype)
    return w[0] * F.binary_cross_entropy_with_logits(out.reshape(-1), target,
                                                     pos_weight=w[1] / w[0])


def cross_entropy_loss(out: Tensor, y: Tensor, weight: Tensor | None = None,
                       label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy L_i = -log(e^{s_y} / sum_k e^{s_k}) (lecture 003).

    Computed as -log_softmax, which subtracts max_k s_k first (lecture 003, numerical stability).
    Soft targets (a float ``(n, C)`` matrix of probabilities) give -sum_k y_k log softmax(s)_k.
    On log-probabilities instead of scores it equals torch's ``nll_loss`` (log_softmax of
    log-probabilities is the identity), which is why ``nll`` names this loss.

    ``weight`` (one per class, ``train.class_weight``) and ``label_smoothing``
    (``train.label_smoothing``) are torch's own arguments of ``cross_entropy``: with class
    indices the weighted mean is ``sum_i w_{y_i} L_i / sum_i w_{y_i}``.
    """
    import torch.nn.functional as F

    w = weight.to(device=out.device, dtype=out.dtype) if weight is not None else None
    if y.is_floating_point():
        return F.cross_entropy(out, y.to(out.dtype), weight=w, label_smoothing=label_smoothing)
    return F.cross_entropy(out, y, weight=w, label_smoothing=label_smoothing)


def hinge_loss(out: Tensor, y: Tensor, margin: float = 1.0) -> Tensor:
    """Multiclass SVM loss L_i = sum_{k != y_i} max(0, s_k - s_{y_i} + 1) (lecture 003).

    torch's ``multi_margin_loss`` divides by the class count; the lecture's loss does not.
    """
    if y.is_floating_point():
        raise ConfigError(
            "train.loss 'hinge' takes class indices, not soft targets (mixup, "
            "label smoothing); use cross_entropy with soft targets"
        )
    true = out.gather(1, y.reshape(-1, 1))  # (n, 1)
    margins = (out - true + margin).clamp_min(0)  # (n, C); the k = y_i term equals margin
    return (margins.sum(1) - margin).mean()


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the tasks it fits, how to build it, its value for an uninformed model.

    Attributes:
        name: the canonical name.
        tasks: the tasks it fits (lectures 003-004).
        outputs: ``"one"`` (one logit), ``"classes"`` (one score per class, >= 2) or ``"any"``.
        build: ``LossConfig -> loss function (out, y) -> scalar``.
        chance: ``(loss config, n_classes, y) -> the loss of a model whose outputs are all 0``
            (small init), the doctor's expected initial loss (lecture 002, step 1; lecture 003:
            "all s ~ 0 at initialization").
    """

    name: str
    tasks: tuple[str, ...]
    outputs: str
    build: Callable[[LossConfig], LossFn]
    chance: Callable[[LossConfig, int | None, Tensor], float | None]
    doc: str = ""


LOSSES: Registry[LossSpec] = Registry("loss", ConfigError)

#: the loss ``auto`` picks for each task (lecture 004: losses for regression / binary / multiclass)
AUTO_LOSS = {"binary": "bce", "multiclass": "cross_entropy", "regression": "l2"}


def _zeros_loss(cfg: LossConfig, _n: int | None, y: Tensor) -> float:
    """The loss of all-zero outputs on ``y``: what a small init starts at for regression."""
    import torch

    y = y.float().reshape(len(y), -1)
    return float(LOSSES.get(cfg.name).build(cfg)(torch.zeros_like(y), y))


def _register(
    name: str,
    *aliases: str,
    tasks: tuple[str, ...],
    outputs: str,
    build: Callable[[LossConfig], LossFn],
    chance: Callable[[LossConfig, int | None, Tensor], float | None],
    doc: str,
) -> None:
    LOSSES.register(name, *aliases)(LossSpec(name, tasks, outputs, build, chance, doc))


_register(
    "l1",
    "mae",
    "abs",
    tasks=("regression",),
    outputs="any",
    build=lambda c: lambda out, y: l1_loss(out, y, c.reduction),
    chance=_zeros_loss,
    doc="sum (or mean) of |y - f(x)| over outputs (lecture 003)",
)
_register(
    "l2",
    "mse",
    "squared",
    tasks=("regression",),
    outputs="any",
    build=lambda c: lambda out, y: l2_loss(out, y, c.reduction),
    chance=_zeros_loss,
    doc="sum (or mean) of (y - f(x))^2 over outputs (lecture 003)",
)
_register(
    "huber",
    "smooth_l1",
    tasks=("regression",),
    outputs="any",
    build=lambda c: lambda out, y: huber_loss(out, y, c.reduction, c.delta),
    chance=_zeros_loss,
    doc="quadratic below delta, linear above",
)
_register(
    "bce",
    "binary_cross_entropy",
    "bce_with_logits",
    "sigmoid",
    tasks=("binary",),
    outputs="one",
    build=lambda c: bce_loss,
    chance=lambda c, n, y: math.log(2.0),
    doc="sigmoid + binary cross-entropy on one logit (lecture 004)",
)
_register(
    "cross_entropy",
    "ce",
    "softmax",
    "nll",
    tasks=("multiclass",),
    outputs="classes",
    build=lambda c: cross_entropy_loss,
    chance=lambda c, n, y: math.log(n) if n else None,
    doc="softmax cross-entropy (lecture 003); takes soft targets",
)
_register(
    "hinge",
    "svm",
    "multiclass_hinge",
    "multi_margin",
    tasks=("multiclass",),
    outputs="classes",
    build=lambda c: lambda out, y: hinge_loss(out, y, c.margin),
    chance=lambda c, n, y: (n - 1) * c.margin if n else None,
    doc="multiclass SVM loss, summed over wrong classes (lecture 003)",
)


def list_losses() -> list[str]:
    """The canonical names of every registered loss."""
    return LOSSES.names()


def check_loss_for_task(loss: str, task: str, n_outputs: int | None = None) -> str:
    """The canonical loss name for ``task``, or a ConfigError saying which losses fit.

    Args:
        loss: a registered loss name (or an alias), or ``auto``.
        task: ``binary``, ``multiclass`` or ``regression`` (``auto`` accepts every loss).
        n_outputs: the model's output count, when known (BCE needs 1, the multiclass losses >= 2).

    Example:
        >>> check_loss_for_task("auto", "multiclass")
        'cross_entropy'
    """
    if loss.strip().lower() == "auto":
        if task == "auto":
            return "auto"
        name = AUTO_LOSS[task]
    else:
        name = LOSSES.canonical(loss)
    if task == "auto":
        return name
    spec = LOSSES.get(name)
    if task not in spec.tasks:
        fits = sorted(n for n in LOSSES.names() if task in LOSSES.get(n).tasks)
        raise ConfigError(
            f"train.loss {loss!r} does not fit a {task} task; losses for {task}: {', '.join(fits)}"
        )
    if n_outputs is not None and spec.outputs == "one" and n_outputs != 1:
        raise ConfigError(f"train.loss {name!r} needs 1 output; this model has {n_outputs}")
    if n_outputs is not None and spec.outputs == "classes" and n_outputs < 2:
        raise ConfigError(f"train.loss {name!r} needs >= 2 class outputs; got {n_outputs}")
    return name


def loss_tasks(loss: str) -> tuple[str, ...] | None:
    """The tasks the named loss fits (None for ``auto``, which fits every task)."""
    if loss.strip().lower() == "auto":
        return None
    return LOSSES.get(loss).tasks


def _as_config(cfg: LossConfig | str | dict[str, Any]) -> LossConfig:
    from pydantic import ValidationError

    from trainwell.train.config import LossConfig

    if isinstance(cfg, LossConfig):
        return cfg
    try:
        return LossConfig(name=cfg) if isinstance(cfg, str) else LossConfig(**cfg)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'loss'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"train.loss: {problems}") from None


def resolve_loss(
    cfg: LossConfig | str | dict[str, Any], task: str, n_outputs: int | None = None
) -> LossConfig:
    """``cfg`` as a :class:`LossConfig` named canonically, fitting ``task`` (``auto`` resolved)."""
    cfg = _as_config(cfg)
    return cfg.model_copy(update={"name": check_loss_for_task(cfg.name, task, n_outputs)})


def make_loss(
    cfg: LossConfig | str | dict[str, Any], task: str, n_outputs: int | None = None, *,
    class_weight: Any = None, label_smoothing: float = 0.0,
) -> LossFn:
    """The loss function named by ``cfg`` for ``task``; refuses one that does not fit.

    ``class_weight`` (one weight per class index) and ``label_smoothing`` apply to the
    cross-entropy losses (``cross_entropy``, ``bce``) only; another loss given either is a
    ConfigError naming ``train.class_weight`` / ``train.label_smoothing``.

    Example:
        >>> import torch
        >>> fn = make_loss("cross_entropy", "multiclass")
        >>> round(fn(torch.tensor([[3.2, 5.1, -1.7]]), torch.tensor([0])).item(), 2)
        2.04
    """
    cfg = resolve_loss(cfg, task, n_outputs)
    if class_weight is None and not label_smoothing:
        return LOSSES.get(cfg.name).build(cfg)
    return _weighted_loss(cfg.name, class_weight, label_smoothing)


def _weighted_loss(name: str, class_weight: Any, label_smoothing: float) -> LossFn:
    import torch

    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"train.label_smoothing must be in [0, 1); got {label_smoothing}")
    if name not in ("cross_entropy", "bce"):
        field = "train.class_weight" if class_weight is not None else "train.label_smoothing"
        raise ConfigError(
            f"{field} applies to the cross-entropy losses (cross_entropy, bce); train.loss is "
            f"{name!r}"
        )
    weight = None
    if class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32).reshape(-1)
        if not bool(torch.isfinite(weight).all()) or bool((weight <= 0).any()):
            raise ConfigError(
                f"train.class_weight: every weight must be a positive number; got "
                f"{weight.tolist()}")
    if name == "bce":
        if weight is not None and len(weight) != 2:
            raise ConfigError(f"train.class_weight: a binary task takes 2 weights; got "
                              f"{len(weight)}")
        return lambda out, y: bce_loss(out, y, weight, label_smoothing)
    return lambda out, y: cross_entropy_loss(out, y, weight, label_smoothing)


def class_weights(spec: Any, y: Any, n_classes: int, classes: list[Any] | None = None
                  ) -> list[float] | None:
    """``train.class_weight`` as one weight per class index.

    Args:
        spec: None; ``"balanced"``: ``n / (C * n_c)`` from the training targets ``y``
            (scikit-learn's ``compute_class_weight``); a mapping ``{label: weight}`` (labels as
            in the data, mapped through ``classes``, the label mapping; classes not named weigh
            1); or a sequence of C weights in class-index order.
        y: the training split's class indices (for ``balanced``).
        n_classes: C (2 for a binary task).
        classes: the label of each class index (``data.json``'s ``classes``); None: the
            mapping's keys are class indices.

    Raises:
        ConfigError: a label that is not a class of the data (named, with the classes), or a
            class absent from the training split under ``balanced``.

    Example:
        >>> class_weights("balanced", [0, 0, 0, 1], 2)
        [0.6666666666666666, 2.0]
        >>> class_weights({"cat": 3}, None, 2, ["cat", "dog"])
        [3.0, 1.0]
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.strip().lower() != "balanced":
            raise ConfigError(
                f"train.class_weight must be \"balanced\" or a table {{label = weight}}; got "
                f"{spec!r}")
        import numpy as np
        from sklearn.utils.class_weight import compute_class_weight

        labels = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y).reshape(-1)
        labels = labels.astype(np.int64)
        counts = np.bincount(labels, minlength=n_classes)
        missing = [c for c in range(n_classes) if counts[c] == 0]
        if missing:
            name = classes[missing[0]] if classes is not None else missing[0]
            raise ConfigError(
                f"train.class_weight \"balanced\": class {name!r} has no rows in the training "
                "split; give the weights as a table {label = weight}"
            )
        return [float(w) for w in
                compute_class_weight("balanced", classes=np.arange(n_classes), y=labels)]
    if isinstance(spec, dict):
        names = [str(c) for c in classes] if classes is not None else [
            str(i) for i in range(n_classes)]
        out = [1.0] * n_classes
        for label, w in spec.items():
            if str(label) not in names:
                raise ConfigError(
                    f"train.class_weight names the label {label!r}, which is not a class of the "
                    f"data; classes: {', '.join(names)}"
                )
            out[names.index(str(label))] = float(w)
        return out
    weights = [float(w) for w in spec]
    if len(weights) != n_classes:
        raise ConfigError(
            f"train.class_weight: {len(weights)} weights for {n_classes} classes")
    return weights


def chance_loss(
    cfg: LossConfig | str | dict[str, Any], task: str, n_classes: int | None, y: Tensor
) -> float | None:
    """The loss of an uninformed model (all outputs 0) on targets ``y``: the expected initial loss.

    Example:
        >>> import torch
        >>> round(chance_loss("cross_entropy", "multiclass", 10, torch.tensor([0, 1])), 4)
        2.3026
    """
    cfg = resolve_loss(cfg, task)
    return LOSSES.get(cfg.name).chance(cfg, n_classes, y)


__all__ = [
    "AUTO_LOSS",
    "LOSSES",
    "LossSpec",
    "bce_loss",
    "chance_loss",
    "check_loss_for_task",
    "class_weights",
    "cross_entropy_loss",
    "hinge_loss",
    "huber_loss",
    "l1_loss",
    "l2_loss",
    "list_losses",
    "loss_tasks",
    "make_loss",
    "resolve_loss",
]
