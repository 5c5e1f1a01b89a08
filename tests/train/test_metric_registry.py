"""``[train] metrics``: every registered metric against scikit-learn on real data, its
direction as the tuner and early stopping read it, python: metrics behind the trust rule, and
callables from Python."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler, label_binarize
from torch import nn

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.nn.build import trusting_code
from trainwell.tasks import metric_direction, metric_mode
from trainwell.train.calibration import expected_calibration_error
from trainwell.train.metric_registry import METRICS, list_metrics, resolve_metrics
from trainwell.train.metrics import metric_names, task_metrics
from trainwell.train.trainer import Trainer


def _classification(task):
    X, y = load_breast_cancer(return_X_y=True) if task == "binary" else load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    # a weak model, so that the metrics are not all 1
    model = LogisticRegression(C=0.01 if task == "binary" else 0.05, max_iter=500).fit(X, y)
    scores = model.decision_function(X)
    return torch.tensor(scores, dtype=torch.float32).reshape(len(y), -1), torch.tensor(y)


def _regression():
    X, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(X[:, :3], y).predict(X[:, :3])
    return torch.tensor(pred, dtype=torch.float32)[:, None], torch.tensor(y, dtype=torch.float32)


def _ece_by_hand(proba, y, bins=15):
    conf, pred = proba.max(1), proba.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total


def _oracle(name, task, out, y):
    """scikit-learn's value(s) of metric ``name``, from the same outputs."""
    y = y.numpy()
    if task == "regression":
        p = out.double().numpy().reshape(-1)
        fn = {"r2": skm.r2_score, "mae": skm.mean_absolute_error,
              "rmse": skm.root_mean_squared_error, "mse": skm.mean_squared_error,
              "mape": skm.mean_absolute_percentage_error}[name]
        return {name: fn(y, p)}
    if task == "binary":
        p1 = torch.sigmoid(out.double().reshape(-1)).numpy()
        proba, pred = np.stack([1 - p1, p1], 1), (p1 > 0.5).astype(int)
    else:
        proba = torch.softmax(out.double(), 1).numpy()
        pred = proba.argmax(1)
    k = proba.shape[1]
    if name in ("precision", "recall", "f1"):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score,
              "f1": skm.f1_score}[name]
        per = fn(y, pred, average=None, labels=list(range(k)), zero_division=0)
        return {f"{name}_macro": fn(y, pred, average="macro", zero_division=0),
                **{f"{name}_{c}": per[c] for c in range(k)}}
    if name == "roc_auc":
        value = (skm.roc_auc_score(y, proba[:, 1]) if task == "binary"
                 else skm.roc_auc_score(y, proba, multi_class="ovr"))
    elif name == "pr_auc":
        value = (skm.average_precision_score(y, proba[:, 1]) if task == "binary" else
                 skm.average_precision_score(label_binarize(y, classes=range(k)), proba))
    else:
        value = {"accuracy": lambda: skm.accuracy_score(y, pred),
                 "balanced_accuracy": lambda: skm.balanced_accuracy_score(y, pred),
                 "log_loss": lambda: skm.log_loss(y, proba),
                 "ece": lambda: _ece_by_hand(proba, y)}[name]()
    return {name: value}


CASES = [(name, task) for name in list_metrics() for task in METRICS.get(name).tasks]


@pytest.mark.parametrize("name, task", CASES)
def test_each_metric_equals_sklearn_on_real_data(name, task):
    out, y = _classification(task) if task != "regression" else _regression()
    metric = resolve_metrics([name], task)
    got = task_metrics(out, y, task, extra=metric)
    expected = _oracle(name, task, out, y)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    n_out = out.shape[1] if task == "multiclass" else 1
    names = metric_names(task, n_out, prefix="val", extra=metric)
    assert {f"val_{k}" for k in expected} <= set(names)


@pytest.mark.parametrize("name", list_metrics())
def test_the_tuner_and_early_stopping_know_each_metrics_direction(name):
    m = METRICS.get(name)
    for logged in m.names(3):
        assert metric_mode(f"val_{logged}") == ("max" if m.higher_is_better else "min"), logged
        assert metric_direction(f"test_{logged}") == (
            "maximize" if m.higher_is_better else "minimize")


def test_ece_is_the_one_of_the_calibration_module():
    out, y = _classification("multiclass")
    proba = torch.softmax(out.double(), 1).numpy()
    value = task_metrics(out, y, "multiclass", extra=resolve_metrics(["ece"]))["ece"]
    assert value == expected_calibration_error(proba, y.numpy())
    from trainwell.after.calibration import expected_calibration_error as after_ece

    assert after_ece is expected_calibration_error  # one home


def test_config_names_are_checked_at_load_with_the_closest_name():
    cfg = load_config({"data": {"source": "builtin:iris"},
                       "train": {"metrics": ["auc", "balanced_accuracy"]}})
    assert cfg.train.metrics == ["roc_auc", "balanced_accuracy"]
    with pytest.raises(ConfigError, match="train.metrics: unknown metric 'balanced_acc'; did "
                       "you mean 'balanced_accuracy'"):
        load_config({"data": {"source": "builtin:iris"}, "train": {"metrics": ["balanced_acc"]}})
    with pytest.raises(ConfigError, match="does not fit a regression task; metrics for "
                       "regression: mae, mape, mse, r2, rmse"):
        resolve_metrics(["roc_auc"], "regression")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_metrics_mod.py").write_text(
        "import numpy as np\n"
        "def miss_rate(y_true, y_pred):\n    return float(np.mean(y_true != y_pred))\n"
        "def top_proba(y_true, y_pred, proba=None):\n    return float(proba.max(1).mean())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_metrics_mod"
    sys.modules.pop("my_metrics_mod", None)


def test_a_python_metric_runs_only_when_code_is_trusted(user_module):
    spec = f"python:{user_module}:miss_rate"
    with pytest.raises(ConfigError, match="would import and run the Python module "
                       "'my_metrics_mod'.*--trust-code"):
        resolve_metrics([spec])
    assert user_module not in sys.modules  # refused before the import
    out, y = _classification("multiclass")
    with trusting_code():
        metrics = resolve_metrics([spec, f"python:{user_module}:top_proba"], "multiclass")
    got = task_metrics(out, y, "multiclass", extra=metrics)
    assert got["miss_rate"] == pytest.approx(1 - got["accuracy"])
    assert got["top_proba"] == pytest.approx(float(torch.softmax(out, 1).max(1).values.mean()))
    assert metric_mode("val_miss_rate") == "min"


def test_a_python_metric_in_a_run_without_trust_is_refused_before_any_file(runs_dir):
    import trainwell as tw

    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(runs_dir),
           "train": {"metrics": ["python:os:getcwd"]}}
    with pytest.raises(ConfigError, match="train.metrics 'python:os:getcwd' would import"):
        tw.fit(cfg, quiet=True)
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize("field, value", [
    ("early_stopping", {"metric": "val_roc_aucc", "patience": 2}),
    ("schedule", {"name": "plateau", "metric": "val_balanced_acc"}),
])
def test_a_monitored_metric_never_logged_is_refused_before_any_file(runs_dir, field, value):
    import trainwell as tw

    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(runs_dir),
           "train": {"epochs": 1, "metrics": ["roc_auc", "balanced_accuracy"], field: value}}
    with pytest.raises(ConfigError, match=f"train.{field}.metric '{value['metric']}' is not "
                       "logged.*val_roc_auc, val_balanced_accuracy"):
        tw.fit(cfg, quiet=True)
    assert list(runs_dir.iterdir()) == []


def test_a_tune_metric_no_trial_logs_is_refused_before_the_study_directory(runs_dir):
    import trainwell as tw

    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(runs_dir),
           "train": {"epochs": 1, "metrics": ["pr_auc", "recall"]},
           "tune": {"space": {"train.optimizer.lr": [1e-3, 1e-2]}, "trials": 1}}
    with pytest.raises(ConfigError, match="tune.metric: unknown metric 'val_pr_aucc'; did you "
                       "mean 'val_pr_auc'?"):
        tw.tune(cfg, metric="val_pr_aucc")
    with pytest.raises(ConfigError, match="unknown metric 'val_recall_x'"):
        tw.tune(cfg, metric="val_recall_x")
    assert list(runs_dir.iterdir()) == []


def test_callables_from_python_are_logged_and_drive_early_stopping():
    X, y = load_iris(return_X_y=True)
    X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    y = torch.tensor(y)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    seen = []

    def hits(y_true, y_pred):
        seen.append(len(y_true))
        return float((y_true == y_pred).sum())

    torch.manual_seed(0)
    t = Trainer(nn.Linear(4, 3), epochs=4, seed=0,
                metrics={"right_score": hits, "bal": "balanced_accuracy"},
                early_stopping={"metric": "val_right_score", "patience": 2})
    t.fit((X[:100], y[:100]), (X[100:], y[100:]))
    rec = t.history[-1]
    assert seen == [50] * len(t.history)
    assert rec["val_right_score"] == pytest.approx(rec["val_accuracy"] * 50)
    assert 0 < rec["val_bal"] <= 1
    assert t.early_stopping.metric == "val_right_score" and t.early_stopping.mode == "max"
    with pytest.raises(ConfigError, match="'val_recall_macro' is not logged"):
        Trainer(nn.Linear(4, 3), epochs=1, seed=0, metrics=["precision"],
                early_stopping={"metric": "val_recall_macro"}).fit((X, y), (X, y))


def test_a_metric_returning_no_number_is_named():
    with pytest.raises(ConfigError, match="metric 'f1' logs one value per class"):
        resolve_metrics({"my_f1": "f1"})
    out, y = _classification("binary")
    bad = resolve_metrics({"odd": lambda a, b: "x"})
    with pytest.raises(ConfigError, match="metric 'odd' returned str; a metric returns one"):
        task_metrics(out, y, "binary", extra=bad)
    assert math.isnan(task_metrics(out[:3], torch.tensor([1, 1, 1]), "binary",
                                   extra=resolve_metrics(["roc_auc"]))["roc_auc"])
