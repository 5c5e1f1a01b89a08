"""The network as a scikit-learn estimator: fit, predict, predict_proba, get and set params."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trainwell.errors import ConfigError, NotFittedError
from trainwell.tune.estimator import NetClassifier, NetRegressor


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def test_classifier_in_a_pipeline_learns_iris(iris):
    X, y = iris
    clf = make_pipeline(
        StandardScaler(), NetClassifier(hidden=(16,), lr=3e-2, epochs=40, batch_size=32)
    ).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(y)  # original labels come back
    assert clf.score(X, y) > 0.9
    assert list(clf[-1].classes_) == ["setosa", "versicolor", "virginica"]


def test_binary_classifier_returns_two_columns(iris):
    X, y = iris
    keep = y != "virginica"
    clf = NetClassifier(hidden=(8,), lr=5e-2, epochs=20).fit(
        StandardScaler().fit_transform(X[keep]), y[keep]
    )
    assert clf.task_ == "binary" and clf.predict_proba(
        StandardScaler().fit_transform(X[keep])
    ).shape == (100, 2)


def test_params_and_clone_follow_scikit_learn(iris):
    clf = NetClassifier(hidden=(4, 4), dropout=0.1)
    params = clf.get_params()
    assert params["hidden"] == (4, 4) and params["dropout"] == 0.1 and params["lr"] == 1e-3
    clf.set_params(lr=0.01, epochs=3)
    assert clone(clf).get_params()["lr"] == 0.01
    X, y = iris
    search = GridSearchCV(NetClassifier(hidden=(8,), epochs=5), {"lr": [1e-4, 5e-2]}, cv=2).fit(
        StandardScaler().fit_transform(X), y
    )
    assert search.best_params_ == {"lr": 5e-2}


def test_regressor_fits_a_linear_target():
    X, y = make_regression(n_samples=300, n_features=5, noise=1.0, random_state=0)
    y = (y - y.mean()) / y.std()
    reg = NetRegressor(hidden=(32,), lr=1e-2, epochs=60, batch_size=32).fit(X, y)
    assert reg.predict(X).shape == (300,) and reg.score(X, y) > 0.9


def test_misuse_is_refused_clearly(iris):
    X, y = iris
    with pytest.raises(NotFittedError, match="not fitted yet"):
        NetClassifier().predict(X)
    clf = NetClassifier(hidden=(4,), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but it was fitted with 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ConfigError, match="dropout"):
        NetClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        NetClassifier().fit(X[:10], y[:10])
