"""trainwell's table steps as scikit-learn transformers: the same numbers as scikit-learn's own
transformers, feature names through a ColumnTransformer, set_output, and a pickle-free save."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from trainwell.data.sklearn_steps import StepTransformer
from trainwell.errors import ConfigError, DataError, NotFittedError


@pytest.fixture(scope="module")
def wine():
    X, _ = load_wine(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6].copy()
    X.loc[::7, "magnesium"] = np.nan
    X["band"] = pd.cut(X["alcohol"], 3, labels=["low", "mid", "high"]).astype(object)
    X.loc[::11, "band"] = None
    return X


@parametrize_with_checks(
    [StepTransformer("standardize"), StepTransformer("impute"),
     StepTransformer("pca")]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_matrix_steps_give_scikit_learns_numbers(wine):
    X = wine.drop(columns="band").fillna(0.0).to_numpy()
    assert np.allclose(StepTransformer("standardize").fit_transform(X),
                       StandardScaler().fit_transform(X))
    assert np.allclose(StepTransformer("minmax", {"range": [-1.0, 1.0]}).fit_transform(X),
                       MinMaxScaler((-1, 1)).fit_transform(X))
    assert np.allclose(StepTransformer("pca", {"components": 3}).fit_transform(X),
                       PCA(3, svd_solver="full").fit_transform(X))
    white = StepTransformer("whiten", {"eps": 0.0}).fit_transform(X)
    assert np.allclose(np.cov(white, rowvar=False), np.eye(X.shape[1]), atol=1e-6)


def test_column_steps_give_scikit_learns_numbers(wine):
    num = wine.drop(columns="band")
    imputed = StepTransformer("impute", {"strategy": "median"}).fit(num)
    expected = SimpleImputer(strategy="median", add_indicator=True).fit_transform(num)
    assert np.allclose(imputed.transform(num), expected)
    assert list(imputed.get_feature_names_out())[-1] == "missing_magnesium"
    cats = wine[["band"]].fillna("none")
    onehot = StepTransformer("onehot").fit(cats)
    assert np.array_equal(onehot.transform(cats),
                          OneHotEncoder(sparse_output=False).fit_transform(cats))
    assert list(onehot.get_feature_names_out()) == ["band=high", "band=low", "band=mid",
                                                    "band=none"]


def test_imputed_categories_stay_text_after_the_numbers(wine):
    out = StepTransformer("impute").fit_transform(wine)
    assert out.dtype == object and out.shape == (178, 9)  # 6 numbers, 2 indicators, band
    assert set(out[:, -1]) == {"low", "mid", "high"}  # filled with the most frequent
    assert not pd.isna(out[:, :-1].astype(float)).any()


def test_in_a_column_transformer_with_names_and_pandas_output(wine):
    numeric = [c for c in wine.columns if c != "band"]
    ct = ColumnTransformer([
        ("num", make_pipeline(StepTransformer("impute"), StepTransformer("standardize")),
         numeric),
        ("cat", make_pipeline(StepTransformer("impute", {"indicator": False}),
                              StepTransformer("onehot")), ["band"]),
    ]).set_output(transform="pandas")
    out = ct.fit_transform(wine)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [
        *(f"num__{c}" for c in numeric), "num__missing_magnesium",
        "cat__band=high", "cat__band=low", "cat__band=mid",
    ]
    assert np.allclose(out["num__alcohol"].std(ddof=0), 1.0)
    assert np.array_equal(out.filter(like="cat__").sum(axis=1), np.ones(178))


def test_feature_names_follow_the_given_input_names():
    X = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])
    t = StepTransformer("impute").fit(X)
    assert list(t.get_feature_names_out()) == ["x0", "x1", "missing_x1"]
    assert list(t.get_feature_names_out(["a", "b"])) == ["a", "b", "missing_b"]
    with pytest.raises(ValueError, match="input_features should be the 2 input columns"):
        t.get_feature_names_out(["a"])


def test_saved_as_json_and_safetensors_and_loaded_back(wine, tmp_path):
    for step, params, X in [
        ("impute", None, wine),
        ("onehot", None, wine[["band"]]),
        ("pca", {"components": 2}, wine.drop(columns="band").fillna(0.0)),
        ("minmax", {"range": [0.0, 2.0]}, wine.drop(columns="band").fillna(0.0)),
    ]:
        fitted = StepTransformer(step, params).fit(X)
        fitted.save(tmp_path / step)
        assert sorted(p.name for p in tmp_path.glob(f"{step}.*")) == [
            f"{step}.json", f"{step}.safetensors"]
        doc = json.loads((tmp_path / f"{step}.json").read_text())
        assert doc["step"] == step and doc["feature_names_in"] == list(X.columns)
        loaded = StepTransformer.load(tmp_path / step)
        assert np.array_equal(pd.DataFrame(loaded.transform(X)).fillna(-1).to_numpy(),
                              pd.DataFrame(fitted.transform(X)).fillna(-1).to_numpy())
        assert list(loaded.get_feature_names_out()) == list(fitted.get_feature_names_out())
    with pytest.raises(ValueError, match="feature names"):
        StepTransformer.load(tmp_path / "pca").transform(X[X.columns[::-1]])


def test_misuse_is_refused_clearly(wine):
    with pytest.raises(ConfigError, match="unknown preprocessing step 'standardise_all'"):
        StepTransformer("standardise_all").fit(wine)
    with pytest.raises(ConfigError, match="components"):
        StepTransformer("pca", {"components": -1}).fit(wine)
    with pytest.raises(DataError, match="works on images, not on a table"):
        StepTransformer("channel_mean").fit(wine)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        StepTransformer("standardize").transform(wine)
    with pytest.raises(SklearnNotFittedError):
        StepTransformer("standardize").get_feature_names_out()
    with pytest.raises(ValueError, match="Input X contains NaN"):
        StepTransformer("standardize").fit(wine.drop(columns="band"))
    with pytest.raises(DataError, match="takes a dense array or a DataFrame"):
        StepTransformer("standardize").fit(OneHotEncoder().fit_transform(wine[["alcohol"]]))
