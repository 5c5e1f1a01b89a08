"""The network as a scikit-learn estimator: scikit-learn's own estimator checks, input handling,
sample and class weights, early stopping, a user's module, and use in Pipelines and searches."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_regression
from sklearn.exceptions import DataConversionWarning
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

import trainwell as tw
from trainwell.data.sklearn_steps import StepTransformer
from trainwell.errors import ConfigError, NotFittedError
from trainwell.tune.estimator import EXPECTED_FAILED_CHECKS, NetClassifier, NetRegressor


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ---------------------------------------------------------------- scikit-learn's checks

# few epochs at a higher rate: the checks fit some 200 times; check_classifiers_train and
# check_regressors_train still need a model that learns
@pytest.mark.slow
@parametrize_with_checks(
    [NetClassifier(hidden=(16,), lr=3e-2, epochs=5), NetRegressor(hidden=(16,), lr=3e-2, epochs=5)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failures_are_only_the_weight_equivalence_checks():
    assert sorted(EXPECTED_FAILED_CHECKS) == [
        "check_sample_weight_equivalence_on_dense_data",
        "check_sample_weight_equivalence_on_sparse_data",
    ]


# ---------------------------------------------------------------- basics


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
    Xs = StandardScaler().fit_transform(X[keep])
    clf = NetClassifier(hidden=(8,), lr=5e-2, epochs=20).fit(Xs, y[keep])
    assert clf.task_ == "binary" and clf.predict_proba(Xs).shape == (100, 2)
    assert np.allclose(np.exp(clf.predict_log_proba(Xs)), clf.predict_proba(Xs))


def test_params_and_clone_follow_scikit_learn(iris):
    assert tw.NetClassifier is NetClassifier and tw.NetRegressor is NetRegressor
    clf = NetClassifier(hidden=(4, 4), dropout=0.1)
    params = clf.get_params()
    assert params["hidden"] == (4, 4) and params["dropout"] == 0.1 and params["lr"] == 1e-3
    assert params["random_state"] == 0 and params["class_weight"] is None
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
    two = NetRegressor(hidden=(32,), lr=1e-2, epochs=5).fit(X, np.stack([y, -y], axis=1))
    assert two.predict(X).shape == (300, 2) and two.predict(X).dtype == np.float64


# ---------------------------------------------------------------- input handling


def test_misuse_is_refused_clearly(iris):
    X, y = iris
    with pytest.raises(NotFittedError, match="not fitted yet"):
        NetClassifier().predict(X)
    with pytest.raises(SklearnNotFittedError):  # the same error, as scikit-learn's
        NetRegressor().predict(X)
    clf = NetClassifier(hidden=(4,), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but NetClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ConfigError, match="dropout"):
        NetClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes in y; got 1 class"):
        NetClassifier().fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        NetClassifier().fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        NetClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"y should be a 1d array, got an array of shape \(150, 3"):
        NetClassifier().fit(X, np.eye(3, dtype=int)[np.arange(150) % 3])
    with pytest.raises(ValueError, match="Input y contains infinity"):
        NetRegressor().fit(X, np.full(150, np.inf))
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        NetClassifier(epochs=1, class_weight="bal").fit(X, y)
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        NetClassifier(epochs=1).fit(X, y, sample_weight=-np.ones(150))
    labels = y.astype(object)
    labels[0] = "rare"  # one row: early stopping's stratified split names the label
    with pytest.raises(ValueError, match=r"too few members are: \['rare'\]"):
        NetClassifier(epochs=1, early_stopping=True).fit(X, labels)


def test_a_column_vector_y_is_flattened_with_a_warning(iris):
    X, y = iris
    flat = NetClassifier(hidden=(4,), epochs=2).fit(X, y)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        col = NetClassifier(hidden=(4,), epochs=2).fit(X, y[:, None])
    assert np.array_equal(flat.predict_proba(X), col.predict_proba(X))


def test_sparse_input_gives_the_dense_results(iris):
    X, y = iris
    Xs = StandardScaler().fit_transform(X)
    cats = np.array(["a", "b", "c", "d"])[np.arange(150) % 4][:, None]
    onehot = OneHotEncoder().fit_transform(cats)  # a scipy.sparse matrix
    assert sp.issparse(onehot)
    Xsp = sp.hstack([sp.csr_matrix(Xs), onehot]).tocsr()
    dense = NetClassifier(hidden=(8,), epochs=3).fit(Xsp.toarray(), y)
    sparse = NetClassifier(hidden=(8,), epochs=3).fit(Xsp, y)
    assert np.array_equal(dense.predict_proba(Xsp.toarray()), sparse.predict_proba(Xsp))
    assert np.array_equal(sparse.predict_proba(Xsp.tocsc()), sparse.predict_proba(Xsp))


def test_a_dataframe_records_its_feature_names(wine):
    X, y = wine
    names = [f"f{i}" for i in range(X.shape[1])]
    clf = NetClassifier(hidden=(4,), epochs=1).fit(pd.DataFrame(X, columns=names), y)
    assert list(clf.feature_names_in_) == names and clf.n_features_in_ == 13
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(pd.DataFrame(X, columns=names[::-1]))


def test_a_fit_logs_no_warning_and_leaves_global_random_state(wine, caplog):
    X, y = wine
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        NetClassifier(hidden=(8,), epochs=2, dropout=0.2).fit(X, y).predict(X)
        NetRegressor(hidden=(8,), epochs=2, early_stopping=True).fit(X, y.astype(float))
    assert caplog.records == []
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- random_state, device


def test_random_state_fixes_the_fit(wine):
    X, y = wine
    a = NetClassifier(hidden=(8,), epochs=3, dropout=0.3, random_state=7).fit(X, y)
    b = NetClassifier(hidden=(8,), epochs=3, dropout=0.3, random_state=7).fit(X, y)
    c = NetClassifier(hidden=(8,), epochs=3, dropout=0.3, random_state=8).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))
    rs = np.random.RandomState(0)
    d = NetClassifier(hidden=(8,), epochs=1, random_state=rs).fit(X, y)
    assert d.predict_proba(X).shape == (178, 3)


def test_device_is_used_and_checked(wine):
    X, y = wine
    clf = NetClassifier(hidden=(4,), epochs=1, device="cpu").fit(X, y)
    assert next(clf.model_.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            NetClassifier(hidden=(4,), epochs=1, device="cuda").fit(X, y)


# ---------------------------------------------------------------- weights


def _noisy_rows(y, n_noisy, rng):
    """Rows to add whose labels are wrong: weight 0 must make them harmless."""
    idx = rng.choice(len(y), n_noisy, replace=False)
    return idx, (y[idx] + 1) % 3


def test_zero_weight_equals_leaving_rows_out_with_one_batch(wine):
    X, y = wine
    rng = np.random.RandomState(0)
    idx, wrong = _noisy_rows(y, 60, rng)
    Xa, ya = np.concatenate([X, X[idx]]), np.concatenate([y, wrong])
    w = np.concatenate([np.ones(len(y)), np.zeros(len(idx))])
    kw = {"hidden": (8,), "lr": 3e-2, "epochs": 15, "batch_size": 512}  # one batch: exact
    dropped = NetClassifier(**kw).fit(X, y).predict_proba(X)
    weighted = NetClassifier(**kw).fit(Xa, ya, sample_weight=w).predict_proba(X)
    unweighted = NetClassifier(**kw).fit(Xa, ya).predict_proba(X)
    assert np.abs(weighted - dropped).max() < 1e-5
    assert np.abs(unweighted - dropped).max() > 1e-2  # the noisy rows do matter unweighted


def test_integer_weights_equal_repeated_rows_with_one_batch(wine):
    X, y = wine
    reps = np.random.RandomState(1).randint(1, 4, size=len(y))
    kw = {"hidden": (8,), "lr": 3e-2, "epochs": 15, "batch_size": 1024}
    repeated = NetRegressor(**kw).fit(np.repeat(X, reps, axis=0), np.repeat(y, reps) / 2.0)
    weighted = NetRegressor(**kw).fit(X, y / 2.0, sample_weight=reps)
    assert np.abs(repeated.predict(X) - weighted.predict(X)).max() < 1e-5


def test_scaled_weights_give_the_same_minibatch_fit(wine):
    # the loss divides by the mean training weight: only relative weights matter, batch by batch
    X, y = wine
    w = np.random.RandomState(2).uniform(0.1, 3.0, size=len(y))
    kw = {"hidden": (8,), "lr": 1e-2, "epochs": 4, "batch_size": 16}
    a = NetClassifier(**kw).fit(X, y, sample_weight=w).predict_proba(X)
    b = NetClassifier(**kw).fit(X, y, sample_weight=4.0 * w).predict_proba(X)
    c = NetClassifier(**kw).fit(X, y).predict_proba(X)
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(a - c).max() > 1e-3


def test_balanced_class_weight_raises_minority_recall():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    minority, majority = rng.permutation(np.flatnonzero(y == 0)), np.flatnonzero(y == 1)
    majority = rng.permutation(majority)
    train = np.concatenate([majority[:250], minority[:12]])  # 12 malignant in 262 rows
    test = np.concatenate([majority[250:], minority[12:]])
    recall = {}
    for cw in (None, "balanced", {0: 20.0, 1: 1.0}):
        clf = NetClassifier(hidden=(8,), lr=1e-2, epochs=5, class_weight=cw).fit(X[train], y[train])
        recall[str(cw)] = recall_score(y[test], clf.predict(X[test]), pos_label=0)
    assert recall["balanced"] > recall["None"] + 0.05
    assert recall[str({0: 20.0, 1: 1.0})] > recall["None"] + 0.05


# ---------------------------------------------------------------- early stopping


def test_early_stopping_holds_out_a_split_and_keeps_the_best_epoch(wine):
    X, y = wine
    clf = NetClassifier(
        hidden=(32,), lr=0.1, epochs=60, early_stopping=True, validation_fraction=0.25,
        n_iter_no_change=3,
    ).fit(X, y)
    losses = [r["val_loss"] for r in clf.history_]
    assert clf.n_iter_ < 60 and clf.n_iter_ == len(losses)  # stopped early
    assert clf.best_epoch_ == int(np.argmin(losses)) + 1
    assert clf.n_iter_ == clf.best_epoch_ + 3
    plain = NetClassifier(hidden=(32,), lr=0.1, epochs=6).fit(X, y)
    assert plain.n_iter_ == 6 and "val_loss" not in plain.history_[-1]
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        NetClassifier(early_stopping=True, validation_fraction=1.5).fit(X, y)
    # one weighted row: the split leaves either the training or the validation rows unweighted
    w = np.zeros(len(y))
    w[0] = 1.0
    parts = set()
    for seed in range(6):
        est = NetClassifier(hidden=(4,), epochs=1, early_stopping=True, validation_fraction=0.5,
                            random_state=seed)
        with pytest.raises(ValueError, match="leaves sample weight 0 on every") as exc:
            est.fit(X, y, sample_weight=w)
        parts.add(str(exc.value).split("every ")[1].split(" row")[0])
    assert parts == {"training", "validation"}


# ---------------------------------------------------------------- a user's module


class TwoLayer(nn.Module):
    def __init__(self, n_in: int = 13, n_out: int = 3, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_user_module_class_or_instance_is_trained(wine):
    X, y = wine
    clf = NetClassifier(module=TwoLayer, module_params={"width": 12}, lr=3e-2, epochs=15)
    clf.fit(X, y)
    assert isinstance(clf.model_, TwoLayer) and clf.model_.net[0].out_features == 12
    assert clf.score(X, y) > 0.9
    given = TwoLayer()
    before = {k: v.clone() for k, v in given.state_dict().items()}
    a = NetClassifier(module=given, lr=3e-2, epochs=3).fit(X, y)
    b = NetClassifier(module=given, lr=3e-2, epochs=3).fit(X, y)
    assert a.model_ is not given  # each fit trains a copy; the instance is left as given
    assert all(torch.equal(v, given.state_dict()[k]) for k, v in before.items())
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    reg = NetRegressor(module=TwoLayer, module_params={"n_out": 1}, epochs=2).fit(X, y * 1.0)
    assert reg.predict(X).shape == (178,)


def test_a_user_module_of_the_wrong_width_is_refused(wine):
    X, y = wine
    with pytest.raises(ValueError, match="gives 2 output.*these targets need 3"):
        NetClassifier(module=TwoLayer, module_params={"n_out": 2}, epochs=1).fit(X, y)
    two = y[y < 2]
    clf = NetClassifier(module=TwoLayer(n_out=2), epochs=2).fit(X[y < 2], two)  # softmax
    assert clf.predict_proba(X[y < 2]).shape == (len(two), 2)
    with pytest.raises(ValueError, match="module_params is for a module class"):
        NetClassifier(module=TwoLayer(), module_params={"width": 3}).fit(X, y)
    with pytest.raises(ValueError, match="torch.nn.Module class or instance"):
        NetClassifier(module="mlp").fit(X, y)


# ---------------------------------------------------------------- the ecosystem


@pytest.fixture(scope="module")
def wine_frame():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X.copy()
    X["alcohol_band"] = pd.cut(X["alcohol"], 3, labels=["low", "mid", "high"]).astype(str)
    X.loc[::9, "magnesium"] = np.nan  # a few missing values for the imputer
    return X, y.to_numpy()


@pytest.mark.slow
def test_pipeline_with_column_transformer_grid_search_and_cross_validation(wine_frame):
    X, y = wine_frame
    numeric = [c for c in X.columns if c != "alcohol_band"]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(StepTransformer("impute"), StepTransformer("standardize")),
             numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["alcohol_band"]),
        ],
        sparse_threshold=1.0,  # keep the one-hot block sparse: the network takes it as it is
    )
    pipe = make_pipeline(prep, NetClassifier(hidden=(16,), epochs=15, batch_size=32))
    assert sp.issparse(prep.fit_transform(X))
    search = GridSearchCV(pipe, {"netclassifier__lr": [1e-5, 3e-2]}, cv=3).fit(X, y)
    assert search.best_params_ == {"netclassifier__lr": 3e-2}
    assert search.best_score_ > 0.85
    names = search.best_estimator_[0].get_feature_names_out()
    assert "num__missing_magnesium" in names and "cat__alcohol_band_high" in names
    scores = cross_val_score(pipe.set_params(netclassifier__lr=3e-2), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
