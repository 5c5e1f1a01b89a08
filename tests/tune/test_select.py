"""Algorithm selection: scikit-learn candidates beside the network, on the same validation split."""

from __future__ import annotations

import csv

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.neighbors import KNeighborsClassifier

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.tune.select import candidate_names
from trainwell.tune.study import tune


def _cfg(candidates, metric="val_loss", trials=10, method="tpe"):
    return {
        "name": "sel",
        "log": {"report": False},
        "data": {"source": "builtin:iris"},
        "model": {"hidden": [8]},
        "train": {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.05}},
        "tune": {
            "method": method,
            "trials": trials,
            "metric": metric,
            "candidates": candidates,
            "pruner": {"name": "none"},
        },
    }


def test_leaderboard_compares_candidates_on_the_same_validation_split(runs_dir):
    candidates = [
        {"name": "network", "space": {"train.optimizer.lr": "loguniform(1e-2, 1e-1)"}},
        {"name": "logistic_regression", "space": {"C": "loguniform(1e-2, 1e2)"}},
        {"name": "knn", "space": {"n_neighbors": "int(1, 15)"}},
        {"name": "decision_tree", "space": {"max_depth": "int(1, 6)"}},
        {
            "name": "random_forest",
            "space": {"n_estimators": "int(5, 20)"},
            "params": {"max_depth": 4},
        },
        {"name": "svm", "space": {"C": "loguniform(1e-1, 1e1)"}},
    ]
    study = tune(_cfg(candidates, method="grid"), grid_points=2)
    rows = list(csv.DictReader((study.dir / "trials.csv").open()))
    # a grid over the algorithms: two points of each one's parameter
    expected = sorted(c["name"] for c in candidates for _ in (0, 1))
    assert sorted(r["params.candidate"] for r in rows) == expected
    # oracle: refit the scikit-learn candidates on the prepared split ourselves
    from trainwell.data import prepare

    cfg = load_config(_cfg(candidates))
    data = prepare(cfg.data, cfg.seed)
    Xtr, Xva, ytr, yva = (
        data.train.X.numpy(),
        data.val.X.numpy(),
        data.train.y.numpy(),
        data.val.y.numpy(),
    )
    checked = 0
    for r in rows:
        if r["params.candidate"] == "logistic_regression":
            model = LogisticRegression(
                C=float(r["params.sk.logistic_regression.C"]), max_iter=2000
            ).fit(Xtr, ytr)
            assert float(r["value"]) == pytest.approx(
                log_loss(yva, model.predict_proba(Xva), labels=[0, 1, 2])
            )
            checked += 1
        if r["params.candidate"] == "knn":
            model = KNeighborsClassifier(n_neighbors=int(r["params.sk.knn.n_neighbors"])).fit(
                Xtr, ytr
            )
            assert float(r["value"]) == pytest.approx(
                log_loss(yva, model.predict_proba(Xva), labels=[0, 1, 2])
            )
            checked += 1
        if r["params.candidate"] == "network" and r["state"] == "COMPLETE":
            assert r["run_dir"].startswith("trials")
            assert (study.dir / r["run_dir"] / "results.json").is_file()
    assert checked == 4
    text = study.leaderboard()
    assert "candidate" in text and "val_loss" in text
    best = (study.dir / "best_config.toml").read_text()
    assert study.best_params["candidate"] in best


def test_accuracy_metric_is_maximized(runs_dir):
    study = tune(
        _cfg(
            [
                {"name": "knn", "space": {"n_neighbors": "int(1, 30)"}},
                {"name": "logistic_regression"},
            ],
            metric="val_accuracy",
            trials=6,
        )
    )
    assert study.direction == "maximize"
    from trainwell.data import prepare

    cfg = load_config(_cfg([]))
    data = prepare(cfg.data, cfg.seed)
    for r in study.rows:
        if r["params.candidate"] == "knn":
            m = KNeighborsClassifier(n_neighbors=int(r["params.sk.knn.n_neighbors"])).fit(
                data.train.X.numpy(), data.train.y.numpy()
            )
            assert r["value"] == pytest.approx(
                accuracy_score(data.val.y.numpy(), m.predict(data.val.X.numpy()))
            )
    assert study.best_value == max(r["value"] for r in study.rows if r["state"] == "COMPLETE")


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        ([{"name": "svn"}], r"unknown candidate 'svn'; did you mean 'svm'"),
        (
            [{"name": "knn", "space": {"k": "int(1, 5)"}}],
            r"knn\): unknown parameter 'k'.*valid: .*n_neighbors",
        ),
        (
            [{"name": "network", "space": {"model.dropuot": "uniform(0, 0.5)"}}],
            r"did you mean 'model.dropout'",
        ),
        ([{"name": "knn"}, {"name": "knn"}], r"listed twice"),
    ],
)
def test_bad_candidates_are_refused_before_any_trial(runs_dir, candidates, match):
    with pytest.raises(ConfigError, match=match):
        tune(_cfg(candidates))


def test_candidate_names_cover_the_lecture_list():
    assert {
        "network",
        "logistic_regression",
        "knn",
        "decision_tree",
        "random_forest",
        "svm",
    } <= set(candidate_names())
    with pytest.raises(ConfigError, match="cannot score scikit-learn candidates"):
        tune(_cfg([{"name": "knn"}], metric="val_f1"))
