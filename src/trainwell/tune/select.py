"""Algorithm selection (lecture 002, AutoML: search over algorithms and their hyperparameters).

``[[tune.candidates]]`` lists algorithms, each with its own space. A trial first picks one
(the categorical parameter ``candidate``), then samples only that candidate's parameters
(conditional on the choice). ``network`` trains trainwell's network on the config (its space
names config paths); the scikit-learn candidates are fitted on the *same* prepared training split
(same preprocessing, same seed) and scored on the same validation split with the same metric,
so the leaderboard compares like with like.

Metrics: ``val_loss`` (classification: mean cross-entropy of the predicted probabilities, as the
network's loss; regression: mean squared error) and ``val_accuracy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError
from trainwell.registry import Registry, unknown_name_message
from trainwell.tune.results import STAGE_ATTR

if TYPE_CHECKING:
    import optuna

    from trainwell.config import Config

NETWORK = "network"
SK_METRICS = ("val_loss", "val_accuracy")

#: name -> (classifier factory, regressor factory); each takes the fixed + sampled parameters
ESTIMATORS: Registry[tuple[Callable[..., Any], Callable[..., Any]]] = Registry(
    "candidate", ConfigError
)


def _register(
    name: str,
    clf: str,
    reg: str,
    clf_defaults: dict[str, Any] | None = None,
    reg_defaults: dict[str, Any] | None = None,
    *aliases: str,
    calibrate: bool = False,
) -> None:
    def factory(path: str, defaults: dict[str, Any], wrap: bool) -> Callable[..., Any]:
        def make(_bare: bool = False, **params: Any) -> Any:
            import importlib

            module, _, cls = path.rpartition(".")
            est = getattr(importlib.import_module(module), cls)(**{**defaults, **params})
            if wrap and not _bare:
                # probabilities for the log-loss, as scikit-learn now advises for SVC
                from sklearn.calibration import CalibratedClassifierCV

                return CalibratedClassifierCV(est, ensemble=False)
            return est

        return make

    ESTIMATORS.register(name, *aliases)(
        (factory(clf, clf_defaults or {}, calibrate), factory(reg, reg_defaults or {}, False))
    )


_register(
    "logistic_regression",
    "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.Ridge",
    {"max_iter": 2000},
    None,
    "logreg",
    "linear",
)
_register("knn", "sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor")
_register(
    "decision_tree",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.DecisionTreeRegressor",
    {"random_state": 0},
    {"random_state": 0},
    "tree",
)
_register(
    "random_forest",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor",
    {"random_state": 0, "n_jobs": 1},
    {"random_state": 0, "n_jobs": 1},
    "forest",
)
_register(
    "svm", "sklearn.svm.SVC", "sklearn.svm.SVR", {"random_state": 0}, None, "svc", calibrate=True
)


def candidate_names() -> list[str]:
    return [NETWORK, *ESTIMATORS.names()]


def _estimator(name: str, regression: bool) -> Callable[..., Any]:
    clf, reg = ESTIMATORS.get(name)
    return reg if regression else clf


def selection_space(cfg: Config) -> dict[str, Any]:
    """The joint space: ``candidate`` plus each candidate's parameters, conditional on it.

    Network parameters keep their config paths; a scikit-learn candidate's parameter ``C`` of
    ``svm`` is named ``sk.svm.C``.
    """
    from trainwell.search.space import parse_param, to_spec

    names = [c.name for c in cfg.tune.candidates]
    space: dict[str, Any] = {"candidate": list(names)}
    for c in cfg.tune.candidates:
        for path, spec in c.space.items():
            key = path if c.name == NETWORK else f"sk.{c.name}.{path}"
            p = parse_param(key, spec, f"tune.candidates[{c.name}].space")
            table: dict[str, Any] = {"when": {"candidate": c.name}}
            body = to_spec(replace(p, when={}, important=False, points=None))
            table.update({"choices": body} if isinstance(body, list) else {"dist": body})
            space[key] = table
    return space


def validate_candidates(cfg: Config) -> None:
    """Refuse unknown candidates, parameters an estimator does not take, and unsupported metrics."""
    from trainwell.search.space import parse_space, validate_space

    seen = set()
    for i, c in enumerate(cfg.tune.candidates):
        if c.name in seen:
            raise ConfigError(f"tune.candidates[{i}].name: {c.name!r} is listed twice")
        seen.add(c.name)
        if c.name == NETWORK:
            sub = cfg.model_copy(deep=True)
            sub.tune.space = dict(c.space)
            validate_space(sub)
            continue
        try:
            make = _estimator(c.name, False)
        except ConfigError as exc:
            raise ConfigError(f"tune.candidates[{i}].name: {exc}") from None
        valid = sorted(make(_bare=True).get_params())
        for key in [*c.space, *c.params]:
            if key not in valid:
                raise ConfigError(
                    f"tune.candidates[{i}] ({c.name}): "
                    + unknown_name_message("parameter", key, valid)
                )
    if any(c.name != NETWORK for c in cfg.tune.candidates) and cfg.tune.metric not in SK_METRICS:
        raise ConfigError(
            f"tune.metric: {cfg.tune.metric!r} cannot score scikit-learn candidates; use one of "
            f"{', '.join(SK_METRICS)}"
        )
    parse_space(selection_space(cfg))


def score(metric: str, task: str, y_val: Any, model: Any, X_val: Any, n_classes: int) -> float:
    """``metric`` of a fitted scikit-learn model on the validation split."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error

    if task == "regression":
        if metric != "val_loss":
            raise ConfigError(f"tune.metric: {metric!r} does not apply to regression; use val_loss")
        pred = np.asarray(model.predict(X_val)).reshape(len(X_val), -1)
        return float(mean_squared_error(y_val.reshape(len(y_val), -1), pred))
    if metric == "val_accuracy":
        return float(accuracy_score(y_val, model.predict(X_val)))
    if not hasattr(model, "predict_proba"):
        raise ConfigError(
            f"val_loss needs predicted probabilities; {type(model).__name__} has no predict_proba"
        )
    proba = np.zeros((len(X_val), n_classes))
    proba[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X_val)
    proba /= proba.sum(axis=1, keepdims=True)  # some estimators are off by float rounding
    return float(log_loss(y_val, proba, labels=list(range(n_classes))))


class SelectionObjective:
    """The trial function of an algorithm-selection study (see the module docstring)."""

    def __init__(
        self, spec: Any, cfg: Config, custom: Callable[..., float] | None, trials_dir: Path
    ) -> None:
        from trainwell.search.space import parse_space

        self.spec = spec
        self.cfg = cfg
        self.custom = custom
        self.trials_dir = trials_dir
        self.params = parse_space(selection_space(cfg))
        self.fixed = {c.name: dict(c.params) for c in cfg.tune.candidates}
        self._data: Any = None

    def data(self) -> Any:
        if self._data is None:
            from trainwell.data import prepare

            self._data = prepare(self.cfg.data, self.cfg.seed)
        return self._data

    def __call__(self, trial: optuna.Trial) -> float:
        from trainwell.search.space import apply_params, suggest
        from trainwell.tune.objective import evaluate_config

        trial.set_user_attr(STAGE_ATTR, self.spec.stage)
        base = {k: v for k, v in self.spec.config.items() if k != "tune"}
        values = suggest(trial, self.params, base)
        name = values.pop("candidate")
        trial.set_user_attr("candidate", name)
        if name == NETWORK:
            raw = apply_params(base, values)
            return evaluate_config(trial, raw, self.spec, self.custom, self.trials_dir)
        prefix = f"sk.{name}."
        kwargs = {
            **self.fixed.get(name, {}),
            **{k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)},
        }
        data = self.data()
        if data.train.lazy:
            raise ConfigError(
                f"candidate {name!r}: scikit-learn candidates need tabular data held in memory"
            )
        X_tr = data.train.X.reshape(len(data.train), -1).numpy()
        X_va = data.val.X.reshape(len(data.val), -1).numpy()
        y_tr, y_va = data.train.y.numpy(), data.val.y.numpy()
        if len(y_va) == 0:
            raise ConfigError(
                "algorithm selection needs a validation split: set data.split.val > 0"
            )
        regression = data.task == "regression"
        model = _estimator(name, regression)(**kwargs)
        model.fit(X_tr, y_tr.ravel() if regression and y_tr.shape[-1] == 1 else y_tr)
        value = score(self.spec.metric, data.task, y_va, model, X_va, len(data.classes or []) or 2)
        if not math.isfinite(value):
            raise FloatingPointError(f"{self.spec.metric} is {value}")
        return value


__all__ = [
    "ESTIMATORS",
    "NETWORK",
    "SelectionObjective",
    "candidate_names",
    "score",
    "selection_space",
    "validate_candidates",
]
