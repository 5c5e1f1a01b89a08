"""Metrics by name (``[train] metrics``), ``python:module:function`` metrics and callables.

Every run logs its task's default metrics (:mod:`trainwell.train.metrics`: accuracy and macro F1,
or RMSE, MAE and R^2). ``[train] metrics`` adds more, each computed on the whole validation (and
test) outputs at the end of an epoch and logged as ``val_<name>`` in ``metrics.jsonl``, where
early stopping (``train.early_stopping.metric``), the plateau schedule and the tuner's objective
(``tune.metric``) can use it.

:data:`METRICS` is the one place a metric name is written: the config validates the names
against it, and each entry says which tasks it fits, which way it improves and, for the
per-class metrics, which names it logs (``precision_macro``, ``precision_0``, ...: one per class
index, in the order of ``data.json``'s ``classes``). The computations are scikit-learn's
(:mod:`sklearn.metrics`) on NumPy arrays, and the calibration error is
:func:`trainwell.train.calibration.expected_calibration_error`.

A metric of one's own is ``"python:module:function"`` in a config (it imports and runs that
module, so only with ``--trust-code`` / ``trust_code=True``), or a callable from Python (a
``Trainer(metrics=[fn])`` or a ``{"name": fn}`` mapping). It is called as scikit-learn's metrics
are, ``fn(y_true, y_pred)`` on NumPy arrays (class indices, or values for regression), and also
gets ``proba=`` (one column per class) when it takes a parameter of that name; it returns a
float. Its direction comes from its name (:func:`trainwell.tasks.metric_mode`: names with
``acc``, ``f1``, ``auc``, ``r2``, ``precision``, ``recall`` or ``score`` improve upwards), or
from ``train.early_stopping.mode`` / ``tune.direction`` when those are set.

This module imports neither torch nor scikit-learn at import time (``trainwell check`` validates
``[train] metrics`` without them).
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError
from trainwell.registry import Registry

if TYPE_CHECKING:
    import numpy as np

CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)


@dataclass(frozen=True)
class MetricInputs:
    """What a metric is computed from, as NumPy arrays.

    Attributes:
        y_true: class indices (classification) or target values (regression, ``(n, k)``).
        y_pred: predicted class indices, or predicted values.
        proba: ``(n, C)`` class probabilities (binary: ``[1 - p, p]``); None for regression.
        n_classes: C (2 for binary); None for regression.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    n_classes: int | None = None


@dataclass(frozen=True)
class Metric:
    """A metric: a name, the tasks it fits, its direction, and what it computes.

    Attributes:
        name: the name logged after the prefix (``val_<name>``).
        tasks: the tasks it fits.
        higher_is_better: its direction (the tuner and early stopping read it from the name;
            a test checks that :func:`trainwell.tasks.metric_mode` agrees for every registered
            metric).
        compute: ``MetricInputs -> float``, or ``-> {name: float}`` for per-class metrics.
        per_class: it logs ``<name>_macro`` and ``<name>_<class index>`` for each class.
        doc: one line for the docs and ``--help``.
    """

    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    compute: Callable[[MetricInputs], float | dict[str, float]]
    per_class: bool = False
    doc: str = ""
    source: str = field(default="", compare=False)  # "python:mod:fn" for a config's own metric

    def names(self, n_classes: int | None) -> list[str]:
        """The names this metric logs for ``n_classes`` classes (without the prefix)."""
        if not self.per_class:
            return [self.name]
        return [f"{self.name}_macro"] + [f"{self.name}_{c}" for c in range(n_classes or 0)]

    def __call__(self, inputs: MetricInputs) -> dict[str, float]:
        value = self.compute(inputs)
        if isinstance(value, Mapping):
            return {k: float(v) for k, v in value.items()}
        try:
            return {self.name: float(value)}
        except (TypeError, ValueError):
            raise ConfigError(
                f"metric {self.source or self.name!r} returned {type(value).__name__}; a metric "
                "returns one number"
            ) from None


METRICS: Registry[Metric] = Registry("metric", ConfigError)


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A scikit-learn metric without its warnings about classes missing from a small split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _register(name: str, *aliases: str, tasks: tuple[str, ...], higher: bool, doc: str,
              per_class: bool = False
              ) -> Callable[[Callable[[MetricInputs], Any]], Callable[[MetricInputs], Any]]:
    def deco(fn: Callable[[MetricInputs], Any]) -> Callable[[MetricInputs], Any]:
        METRICS.register(name, *aliases)(Metric(name, tasks, higher, fn, per_class, doc))
        return fn

    return deco


# ---------------------------------------------------------------------------- classification


@_register("accuracy", "acc", tasks=CLASSIFICATION, higher=True, doc="fraction predicted right")
def _accuracy(m: MetricInputs) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(m.y_true, m.y_pred))


@_register("balanced_accuracy", tasks=CLASSIFICATION, higher=True,
           doc="mean over the classes of each class's recall (chance: 1 / C)")
def _balanced_accuracy(m: MetricInputs) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(_quiet(balanced_accuracy_score, m.y_true, m.y_pred))


def _per_class(kind: str) -> Callable[[MetricInputs], dict[str, float]]:
    def compute(m: MetricInputs) -> dict[str, float]:
        from sklearn.metrics import precision_recall_fscore_support

        labels = list(range(m.n_classes or 2))
        index = {"precision": 0, "recall": 1, "f1": 2}[kind]
        per = _quiet(precision_recall_fscore_support, m.y_true, m.y_pred, labels=labels,
                     zero_division=0)[index]
        # macro: over the classes present in y_true or y_pred, as scikit-learn's average="macro"
        macro = _quiet(precision_recall_fscore_support, m.y_true, m.y_pred, average="macro",
                       zero_division=0)[index]
        return {f"{kind}_macro": float(macro), **{f"{kind}_{c}": float(v)
                                                 for c, v in zip(labels, per, strict=True)}}

    return compute


for _kind, _what in (("precision", "TP / (TP + FP)"), ("recall", "TP / (TP + FN)"),
                     ("f1", "2 TP / (2 TP + FP + FN)")):
    METRICS.register(_kind)(Metric(
        _kind, CLASSIFICATION, True, _per_class(_kind), per_class=True,
        doc=f"per class {_what} (<name>_<class index>) and their macro average (<name>_macro)"))


def _one_vs_rest(m: MetricInputs, score: Callable[..., Any]) -> float:
    """Binary: ``score`` on the probability of class 1; multiclass: the mean over the classes
    of ``score(y == c, proba[:, c])`` (one-vs-rest, macro), over the classes that have both
    positive and negative rows (NaN when none has)."""
    import numpy as np

    assert m.proba is not None
    y = m.y_true.reshape(-1)
    if m.proba.shape[1] == 2 and (m.n_classes or 2) == 2:
        return float(score(y, m.proba[:, 1])) if len(np.unique(y)) == 2 else math.nan
    values = [float(score(y == c, m.proba[:, c])) for c in range(m.proba.shape[1])
              if 0 < int((y == c).sum()) < len(y)]
    return float(np.mean(values)) if values else math.nan


@_register("roc_auc", "auc", "auroc", tasks=CLASSIFICATION, higher=True,
           doc="area under the ROC curve (binary; multiclass: one-vs-rest, macro)")
def _roc_auc(m: MetricInputs) -> float:
    from sklearn.metrics import roc_auc_score

    return _one_vs_rest(m, roc_auc_score)


@_register("pr_auc", "average_precision", "auprc", tasks=CLASSIFICATION, higher=True,
           doc="area under the precision-recall curve as average precision (binary; "
           "multiclass: one-vs-rest, macro)")
def _pr_auc(m: MetricInputs) -> float:
    from sklearn.metrics import average_precision_score

    return _one_vs_rest(m, average_precision_score)


@_register("log_loss", "nll", "cross_entropy", tasks=CLASSIFICATION, higher=False,
           doc="mean -log p(true class) of the predicted probabilities")
def _log_loss(m: MetricInputs) -> float:
    from sklearn.metrics import log_loss

    assert m.proba is not None
    return float(log_loss(m.y_true, m.proba, labels=list(range(m.proba.shape[1]))))


@_register("ece", "calibration_error", "expected_calibration_error", tasks=CLASSIFICATION,
           higher=False, doc="expected calibration error, 15 confidence bins (Guo et al.)")
def _ece(m: MetricInputs) -> float:
    from trainwell.train.calibration import expected_calibration_error

    assert m.proba is not None
    return expected_calibration_error(m.proba, m.y_true)


# ---------------------------------------------------------------------------- regression


@_register("r2", "r_squared", tasks=REGRESSION, higher=True,
           doc="coefficient of determination (averaged over targets)")
def _r2(m: MetricInputs) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(m.y_true, m.y_pred))


@_register("mae", "l1", tasks=REGRESSION, higher=False, doc="mean absolute error")
def _mae(m: MetricInputs) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(m.y_true, m.y_pred))


@_register("rmse", tasks=REGRESSION, higher=False,
           doc="root mean squared error (averaged over targets)")
def _rmse(m: MetricInputs) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(m.y_true, m.y_pred))


@_register("mse", tasks=REGRESSION, higher=False, doc="mean squared error")
def _mse(m: MetricInputs) -> float:
    from sklearn.metrics import mean_squared_error

    return float(mean_squared_error(m.y_true, m.y_pred))


@_register("mape", tasks=REGRESSION, higher=False,
           doc="mean absolute percentage error |y - f| / |y| (a fraction, not x100)")
def _mape(m: MetricInputs) -> float:
    from sklearn.metrics import mean_absolute_percentage_error

    return float(mean_absolute_percentage_error(m.y_true, m.y_pred))


# ---------------------------------------------------------------------------- specs


def list_metrics() -> list[str]:
    """The canonical names of every registered metric."""
    return METRICS.names()


def check_metric_name(spec: str, field: str = "train.metrics") -> str:
    """A registered name (canonical), or a ``python:module:function`` spec checked for its
    form; anything else is a ConfigError naming ``field``, the value and the valid names."""
    text = spec.strip()
    if text.startswith("python:"):
        parts = text.split(":")
        if len(parts) != 3 or not all(p.strip() for p in parts[1:]):
            raise ConfigError(
                f"{field}: {spec!r} must be 'python:module:function' (e.g. "
                "'python:my_metrics:gini')"
            )
        return text
    try:
        return METRICS.canonical(text)
    except ConfigError as exc:
        raise ConfigError(f"{field}: {exc}") from None


def require_metric_trust(specs: Iterable[Any], trust_code: bool = False) -> None:
    """Refuse a ``python:module:function`` metric unless code is trusted here (as
    ``model.arch = "python:..."`` is refused)."""
    from trainwell.nn.build import code_trusted

    for spec in specs:
        if isinstance(spec, str) and spec.startswith("python:") and not (
                trust_code or code_trusted()):
            raise ConfigError(
                f"train.metrics {spec!r} would import and run the Python module "
                f"{spec.split(':')[1]!r}; code named in a config or a run directory runs only if "
                "you trust where it came from: add --trust-code to the command, or pass "
                "trust_code=True in Python"
            )


def _user_metric(name: str, fn: Callable[..., Any], source: str = "") -> Metric:
    """A user's ``fn(y_true, y_pred[, proba=])`` as a :class:`Metric` of every task."""
    if not callable(fn):
        raise ConfigError(f"metric {source or name!r} is not callable; got {type(fn).__name__}")
    try:
        takes_proba = "proba" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_proba = False

    def compute(m: MetricInputs) -> Any:
        if takes_proba:
            return fn(m.y_true, m.y_pred, proba=m.proba)
        return fn(m.y_true, m.y_pred)

    from trainwell.tasks import higher_is_better

    return Metric(name, (*CLASSIFICATION, *REGRESSION), higher_is_better(name), compute,
                  doc=f"user metric {source or name}", source=source or name)


def _import_metric(spec: str) -> Metric:
    _, module_name, fn_name = spec.split(":")
    require_metric_trust([spec])
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            cwd = os.getcwd()
            if exc.name != module_name.split(".")[0] or cwd in sys.path:
                raise
            sys.path.append(cwd)  # the folder the command runs in, as python -m would
            importlib.invalidate_caches()
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a user's module can raise anything on import
        raise ConfigError(
            f"train.metrics {spec!r}: module {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise ConfigError(f"train.metrics {spec!r}: module {module_name!r} has no {fn_name!r}")
    return _user_metric(fn_name, fn, spec)


def resolve_metrics(specs: Any, task: str | None = None) -> list[Metric]:
    """``[train] metrics`` or ``Trainer(metrics=...)`` as :class:`Metric` objects.

    Args:
        specs: None, or a list of registered names, ``"python:module:function"`` strings,
            callables (named by ``__name__``) and :class:`Metric` objects; or a mapping
            ``{name: callable or registered name}``.
        task: when known, each metric must fit it (a ConfigError lists those that do).

    Example:
        >>> [m.name for m in resolve_metrics(["balanced_accuracy", "auc"], "binary")]
        ['balanced_accuracy', 'roc_auc']
    """
    if specs is None:
        return []
    if isinstance(specs, (str, Metric)) or callable(specs):
        specs = [specs]
    items: Iterable[tuple[str | None, Any]] = (
        specs.items() if isinstance(specs, Mapping) else ((None, s) for s in specs)
    )
    out: list[Metric] = []
    for name, spec in items:
        if isinstance(spec, Metric):
            metric = spec
        elif isinstance(spec, str) and spec.strip().startswith("python:"):
            metric = _import_metric(check_metric_name(spec))
        elif isinstance(spec, str):
            metric = METRICS.get(check_metric_name(spec))
        elif callable(spec):
            metric = _user_metric(str(name or getattr(spec, "__name__", "metric")), spec)
        else:
            raise ConfigError(
                f"train.metrics: {spec!r} is neither a metric name, 'python:module:function' "
                "nor a callable"
            )
        if name is not None and name != metric.name and not callable(spec):
            if metric.per_class:
                raise ConfigError(f"metric {metric.name!r} logs one value per class under its "
                                  f"own name; it cannot be renamed {name!r}")
            metric = Metric(name, metric.tasks, metric.higher_is_better, metric.compute,
                            metric.per_class, metric.doc, metric.source)
        if task is not None and task not in metric.tasks:
            fits = sorted(n for n in METRICS.names() if task in METRICS.get(n).tasks)
            raise ConfigError(
                f"train.metrics {metric.name!r} does not fit a {task} task; metrics for "
                f"{task}: {', '.join(fits)}"
            )
        if metric.name in {m.name for m in out}:
            raise ConfigError(f"train.metrics names {metric.name!r} twice")
        out.append(metric)
    return out


def metric_inputs(out: Any, y: Any, task: str) -> MetricInputs:
    """The arrays metrics take, from a model's raw outputs and hard targets (torch tensors)."""
    import numpy as np

    from trainwell.train.metrics import output_predictions

    pred = output_predictions(out.double(), task)  # float64: rows of proba sum to 1
    y_true = y.detach().cpu().numpy()
    if task == "regression":
        return MetricInputs(y_true.reshape(pred["y_pred"].shape), pred["y_pred"])
    proba = pred["proba"].astype(np.float64)
    return MetricInputs(y_true.reshape(-1), pred["y_pred"], proba, proba.shape[1])


def compute_metrics(metrics: Iterable[Metric], inputs: MetricInputs) -> dict[str, float]:
    """Every metric's values, by name."""
    values: dict[str, float] = {}
    for metric in metrics:
        values.update(metric(inputs))
    return values


__all__ = [
    "METRICS",
    "Metric",
    "MetricInputs",
    "check_metric_name",
    "compute_metrics",
    "list_metrics",
    "metric_inputs",
    "require_metric_trust",
    "resolve_metrics",
]
