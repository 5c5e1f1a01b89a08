"""Several heads, one step: the weighted sum of per-head losses, with per-row masks.

Lecture 002: shared lower layers and one head per task. A :class:`Multitask` objective trains a
model whose forward returns one output per head (a :class:`~trainwell.nn.heads.MultiHead`, or
any module returning ``{name: output}`` or a tuple in head order). Each head names its targets,
task, loss, weight and metrics; the step minimizes

    L = sum_h w_h * L_h,   L_h = the head's loss averaged over its labelled rows of the batch,

which is Keras's ``loss_weights`` (and its per-output ``metrics``). A row may carry labels for
some heads only: a missing label is NaN (any task) or a negative class index (-1), and a head
with no labels in a batch contributes exactly zero (no NaN, no gradient).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError, DataError
from trainwell.tasks import check_task, infer_task
from trainwell.train.losses import LossFn, loss_tasks, make_loss, resolve_loss
from trainwell.train.metrics import metric_names, task_metrics
from trainwell.train.objective import (
    Objective,
    StepResult,
    forward_quietly,
    hard_targets,
    loss_name_of,
    output_width,
    split_batch,
)

if TYPE_CHECKING:
    from trainwell.train.config import LossConfig

#: the class index that marks a missing label (NaN marks one in any float target)
MISSING_CLASS = -1


@dataclass
class Head:
    """One head of a :class:`Multitask` objective.

    Args:
        name: the head's name: its key in the model's output dict and in the logged names
            (``train_<name>_loss``, ``val_<name>_loss``, ``val_<name>_<metric>``).
        target: where its targets are in a batch ``(x, y)``: a key of a dict ``y``, or a column
            index (a list of indices for several regression outputs) of a target matrix ``y``;
            default: the head's name for a dict, its position among the heads for a matrix.
        task: ``binary``, ``multiclass`` or ``regression``; default: the loss's when it fits
            one task only, else inferred from the labelled targets and the head's output width.
        loss: a registered loss name (``auto`` picks the task's), a ``LossConfig`` or a dict.
        weight: the head's weight in the total loss (Keras's ``loss_weights``), >= 0.
        metrics: the task's metrics to log for this head (``accuracy``, ``f1_macro``,
            ``rmse``, ...); default: all of them.
    """

    name: str
    target: str | int | list[int] | None = None
    task: str | None = None
    loss: str | LossConfig | dict[str, Any] = "auto"
    weight: float = 1.0
    metrics: list[str] | None = None
    # resolved by Multitask.setup
    n_outputs: int | None = field(default=None, init=False, repr=False)
    loss_name: str = field(default="", init=False, repr=False)
    loss_fn: LossFn | None = field(default=None, init=False, repr=False, compare=False)


_HEAD_FIELDS = [f.name for f in fields(Head) if f.init and f.name != "name"]


def _as_head(name: str, spec: Head | Mapping[str, Any]) -> Head:
    if isinstance(spec, Head):
        if spec.name != name:
            raise ConfigError(f"heads.{name}: the Head is named {spec.name!r}; use one name")
        return replace(spec)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"heads.{name} must be a Head or a dict of {', '.join(_HEAD_FIELDS)}; "
            f"got {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - set(_HEAD_FIELDS))
    if unknown:
        raise ConfigError(
            f"heads.{name}: unknown field(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(_HEAD_FIELDS)}"
        )
    return Head(name, **spec)


def _check_weights(heads: list[Head]) -> None:
    for h in heads:
        w = h.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"heads.{h.name}.weight must be a finite number >= 0; got {w!r}")
    if all(h.weight == 0 for h in heads):
        raise ConfigError(
            "heads: every weight is 0 ("
            + ", ".join(f"{h.name}={h.weight:g}" for h in heads)
            + "), so nothing would be trained; give at least one head a weight > 0"
        )


def _unknown_names(what: str, names: Iterable[str], heads: Sequence[str]) -> None:
    unknown = [n for n in names if n not in heads]
    if unknown:
        raise ConfigError(
            f"{what} names unknown head(s) {', '.join(map(repr, unknown))}; heads: "
            f"{', '.join(heads)}"
        )


def missing_rows(y: Tensor, task: str) -> Tensor:
    """A bool ``(n,)`` mask of the rows whose label is missing: NaN anywhere in the row, or a
    negative class index (:data:`MISSING_CLASS`) for classification."""
    rows = y.reshape(len(y), -1)
    missing = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    if rows.is_floating_point():
        missing |= rows.isnan().any(1)
    if task != "regression":
        missing |= (rows < 0).any(1)  # probabilities and class indices are never negative
    return missing


def _loss_targets(y: Tensor, task: str) -> Tensor:
    """What the head's loss takes: class indices as int64, soft targets and 0/1 floats as they
    are, regression values as float."""
    if task == "multiclass":
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            return y.reshape(-1).long()
        return y
    if task == "regression":
        return y if y.is_floating_point() else y.float()
    return y.reshape(-1)


class Multitask(Objective):
    """Named heads on one model; the step's loss is the weighted sum of the heads' losses.

    Batches are ``(x, {head: y})`` (a dict of targets, as a ``DataLoader`` over dict samples
    yields) or ``(x, Y)`` with one column of ``Y`` per head. The model returns ``{head: output}``
    (or a tuple in head order). Logged: ``train_<head>_loss`` each epoch, and per evaluation
    ``val_loss`` (the weighted total), ``val_<head>_loss`` and ``val_<head>_<metric>``.

    Args:
        heads: ``{name: Head or dict of Head's fields}``, or a list of :class:`Head`.
        loss_weights: ``{name: weight}``, Keras's words; overrides the heads' ``weight``.
        metrics: ``{name: [metric, ...]}``, Keras's per-output metrics; overrides the heads'.
        top_k: top-k accuracy is logged for heads with more than ``top_k`` classes.

    Raises:
        ConfigError: a negative or non-finite weight, all weights 0, an unknown head name in
            ``loss_weights`` or ``metrics``, an unknown task.

    Example:
        >>> from trainwell.nn.heads import MultiHead
        >>> net = MultiHead(nn.Linear(4, 8), {"digit": nn.Linear(8, 10), "odd": nn.Linear(8, 1)})
        >>> obj = Multitask({"digit": {"task": "multiclass"}, "odd": {"task": "binary"}},
        ...                 loss_weights={"digit": 1.0, "odd": 0.5})
        >>> x = torch.randn(6, 4)
        >>> y = torch.tensor([[3, 1], [4, 0], [-1, 1], [0, 0], [7, 1], [2, 0]])  # -1: no label
        >>> obj.setup(net, (x, y))
        >>> obj.metric_names()[:3]
        ['val_loss', 'val_digit_loss', 'val_digit_accuracy']
    """

    def __init__(
        self,
        heads: Mapping[str, Head | Mapping[str, Any]] | Sequence[Head],
        *,
        loss_weights: Mapping[str, float] | None = None,
        metrics: Mapping[str, Sequence[str]] | None = None,
        top_k: int = 5,
    ) -> None:
        if isinstance(heads, Mapping):
            items = [_as_head(str(k), v) for k, v in heads.items()]
        elif isinstance(heads, Sequence) and all(isinstance(h, Head) for h in heads):
            items = [replace(h) for h in heads]
        else:
            raise ConfigError(
                f"heads must be a dict {{name: Head or dict}} or a list of Head; got "
                f"{type(heads).__name__}"
            )
        if not items:
            raise ConfigError("heads is empty; give at least one head")
        names = [h.name for h in items]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ConfigError(f"heads: the head name(s) {', '.join(doubled)} appear twice")
        _unknown_names("loss_weights", loss_weights or {}, names)
        _unknown_names("metrics", metrics or {}, names)
        for h in items:
            if loss_weights is not None and h.name in loss_weights:
                h.weight = loss_weights[h.name]
            if metrics is not None and h.name in metrics:
                h.metrics = list(metrics[h.name])
            if h.task is not None:
                h.task = check_task(h.task, f"heads.{h.name}.task")
        _check_weights(items)
        self.heads = items
        self.top_k = top_k
        self.task = None
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.heads]

    # ------------------------------------------------------------------ batches and outputs

    def outputs(self, out: Any) -> dict[str, Tensor]:
        """The model's output as ``{head: tensor}``: a dict, or a tuple / list in head order."""
        names = self.head_names
        if isinstance(out, Mapping):
            missing = [n for n in names if n not in out]
            if missing:
                raise ConfigError(
                    f"the model's output has no head {', '.join(map(repr, missing))} (it gives "
                    f"{', '.join(map(repr, out))}); heads: {', '.join(names)}"
                )
            return {n: out[n] for n in names}
        if isinstance(out, (tuple, list)) and len(out) == len(names):
            return dict(zip(names, out, strict=True))
        if isinstance(out, Tensor) and len(names) == 1:
            return {names[0]: out}
        got = f"{len(out)} outputs" if isinstance(out, (tuple, list)) else type(out).__name__
        raise ConfigError(
            f"a model trained with {len(names)} heads ({', '.join(names)}) must return a dict "
            f"{{head: output}} or a tuple of {len(names)} outputs; got {got}"
        )

    def target_key(self, y: Any, head: Head) -> str | int | tuple[int, ...]:
        """Where ``head``'s targets are in ``y``: a dict key, or the matrix column(s)."""
        if isinstance(y, Mapping):
            key = head.name if head.target is None else head.target
            if not isinstance(key, str) or key not in y:
                raise DataError(
                    f"heads.{head.name}.target {key!r} is not in the batch's targets; they "
                    f"hold {', '.join(map(repr, y))}"
                )
            return key
        if not isinstance(y, Tensor):
            raise DataError(
                f"multitask targets must be a dict {{head: tensor}} or a tensor with one column "
                f"per head; got {type(y).__name__}"
            )
        if y.ndim == 1:
            if len(self.heads) == 1 and head.target in (None, 0):
                return 0
            raise DataError(
                f"multitask targets are one column but there are {len(self.heads)} heads: give "
                "an (n, heads) target matrix or a dict {head: tensor}"
            )
        target = head.target
        if isinstance(target, str):
            raise DataError(
                f"heads.{head.name}.target {target!r} is a key, but the batch's targets are a "
                "matrix: give a column index"
            )
        if target is None:
            target = self.head_names.index(head.name)
        cols = [target] if isinstance(target, int) else list(target)
        width = y.shape[1]
        bad = [c for c in cols if not 0 <= c < width]
        if bad or not cols:
            raise DataError(
                f"heads.{head.name}.target names column {bad[0] if bad else '(none)'} but the "
                f"targets have {width} column(s) (0..{width - 1})"
            )
        return cols[0] if len(cols) == 1 else tuple(cols)

    def targets(self, y: Any, head: Head) -> Tensor:
        """The targets of ``head`` in a batch's ``y``: a dict entry or a column of a matrix."""
        key = self.target_key(y, head)
        if isinstance(key, str):
            value = y[key]
            return value if isinstance(value, Tensor) else torch.as_tensor(value)
        if y.ndim == 1:
            return y
        return y[:, key] if isinstance(key, int) else y[:, list(key)]

    # ------------------------------------------------------------------ setup

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        x, y = split_batch(first_batch)
        if y is None:
            raise DataError("multitask training data has no targets: give (x, {head: y}) or (x, Y)")
        outs = self.outputs(forward_quietly(model, x))
        for h in self.heads:
            yh = self.targets(y, h)
            h.n_outputs = output_width(outs[h.name])
            if h.task is None:
                tasks = loss_tasks(loss_name_of(h.loss))
                h.task = infer_task(_labelled(yh), n_outputs=h.n_outputs, loss_tasks=tasks)
            if h.task == "regression" and h.n_outputs is not None and len(yh):
                per_row = yh[0].numel() if yh.ndim > 1 else 1
                if per_row != h.n_outputs:
                    raise DataError(
                        f"heads.{h.name}: the model gives {h.n_outputs} output(s) per sample but "
                        f"its regression targets have {per_row}: they must match"
                    )
            try:
                cfg = resolve_loss(h.loss, h.task, h.n_outputs)
            except ConfigError as exc:
                raise ConfigError(
                    str(exc).replace("train.loss", f"heads.{h.name}.loss", 1)
                ) from None
            h.loss_name, h.loss_fn = cfg.name, make_loss(cfg, h.task, h.n_outputs)
            self._check_metrics(h)
        self._check_shared_targets(y)

    def _check_metrics(self, h: Head) -> None:
        assert h.task is not None  # set by setup
        allowed = [m.removeprefix("_") for m in metric_names(h.task, h.n_outputs, self.top_k, "")]
        allowed.remove("loss")
        if h.metrics is None:
            h.metrics = allowed
            return
        bad = [m for m in h.metrics if m not in allowed]
        if bad:
            raise ConfigError(
                f"heads.{h.name}.metrics: {', '.join(map(repr, bad))} is not a metric of a "
                f"{h.task} head; allowed: {', '.join(allowed)}"
            )

    def _check_shared_targets(self, y: Any) -> None:
        """Two heads may read one target only with one task."""
        seen: dict[Any, Head] = {}
        for h in self.heads:
            key = self.target_key(y, h)
            other = seen.setdefault(key, h)
            if other.task != h.task:
                raise ConfigError(
                    f"heads.{other.name} and heads.{h.name} both read target {key!r} with "
                    f"conflicting tasks ({other.task} and {h.task}); one target has one task"
                )

    # ------------------------------------------------------------------ the step

    def head_loss(self, h: Head, out: Tensor, y: Tensor) -> tuple[Tensor | None, int]:
        """The head's loss over its labelled rows (None when it has none), and their count."""
        assert h.task is not None and h.loss_fn is not None  # set by setup
        keep = ~missing_rows(y, h.task)
        count = int(keep.sum())  # one sync per head and step
        if count == 0:
            return None, 0
        if count < len(y):
            out, y = out[keep], y[keep]
        return h.loss_fn(out, _loss_targets(y, h.task)), count

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        x, y = split_batch(batch)
        outs = self.outputs(model(x))
        total: Tensor | None = None
        for h in self.heads:
            term, count = self.head_loss(h, outs[h.name], self.targets(y, h))
            if term is None:
                continue  # no labels for this head in this batch: it contributes exactly 0
            weighted = term * h.weight
            total = weighted if total is None else total + weighted
            if model.training:  # the epoch's mean of the head's loss, over its labelled rows
                d = term.detach().double() * count
                self._sums[h.name] = self._sums[h.name] + d if h.name in self._sums else d
                self._counts[h.name] = self._counts.get(h.name, 0) + count
        if total is None:  # no head has a label in this batch: a zero with no gradient anywhere
            first = next(iter(outs.values()))
            total = torch.zeros((), dtype=first.dtype, device=first.device, requires_grad=True)
        return StepResult(total, outs, y)

    def epoch_end(self) -> dict[str, float]:
        names = self.head_names
        nan = torch.tensor(math.nan, dtype=torch.float64)
        means = [(self._sums[n] / self._counts[n]).cpu() if n in self._sums else nan for n in names]
        values = torch.stack(means).tolist()  # one sync
        self._sums, self._counts = {}, {}
        return {f"train_{n}_loss": v for n, v in zip(names, values, strict=True)}

    def train_metric_names(self) -> list[str]:
        return [f"train_{n}_loss" for n in self.head_names]

    # ------------------------------------------------------------------ evaluation

    def metric_names(self, prefix: str = "val") -> list[str]:
        names = [f"{prefix}_loss"]
        for h in self.heads:
            names.append(f"{prefix}_{h.name}_loss")
            names += [f"{prefix}_{h.name}_{m}" for m in h.metrics or []]
        return names

    def evaluate(
        self, model: nn.Module, batches: Iterable[Any], prefix: str = "val"
    ) -> dict[str, float]:
        """Per head, its loss and metrics over all its labelled rows at once; ``<prefix>_loss``
        is the weighted sum of the heads' losses (heads without labels left out)."""
        outs: dict[str, list[Tensor]] = {n: [] for n in self.head_names}
        ys: dict[str, list[Tensor]] = {n: [] for n in self.head_names}
        model.eval()
        with torch.inference_mode():
            for batch in batches:
                x, y = split_batch(batch)
                if y is None:
                    raise DataError("multitask evaluation data has no targets")
                out = self.outputs(model(x))
                for h in self.heads:
                    outs[h.name].append(out[h.name].float())
                    ys[h.name].append(self.targets(y, h))
            if not any(outs.values()):
                return {}
            res: dict[str, float] = {f"{prefix}_loss": 0.0}
            total = 0.0
            for h in self.heads:
                assert h.task is not None and h.loss_fn is not None  # set by setup
                out_h, y_h = torch.cat(outs[h.name]), torch.cat(ys[h.name])
                keep = ~missing_rows(y_h, h.task)
                names = [f"{prefix}_{h.name}_{m}" for m in ["loss", *(h.metrics or [])]]
                if not bool(keep.any()):
                    res.update(dict.fromkeys(names, math.nan))
                    continue
                out_h, y_h = out_h[keep], _loss_targets(y_h[keep], h.task)
                head_loss = float(h.loss_fn(out_h, y_h))
                total += h.weight * head_loss
                res[f"{prefix}_{h.name}_loss"] = head_loss
                metrics = task_metrics(out_h, hard_targets(y_h, h.task), h.task, self.top_k)
                res.update({f"{prefix}_{h.name}_{m}": metrics[m] for m in h.metrics or []})
        res[f"{prefix}_loss"] = total
        return res


def _labelled(y: Tensor) -> Tensor:
    """The rows of ``y`` a task is inferred from: no NaN, no :data:`MISSING_CLASS`; a class
    column in a float matrix is inferred as regression unless it holds 0/1 only (give ``task``)."""
    rows = y.reshape(len(y), -1)
    gone = (rows == MISSING_CLASS).any(1)
    if rows.is_floating_point():
        gone |= rows.isnan().any(1)
    return y[~gone]


__all__ = ["MISSING_CLASS", "Head", "Multitask", "missing_rows"]
