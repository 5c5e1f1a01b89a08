"""Every transformer against scikit-learn (the oracle), and step parsing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from trainwell.data.pipeline import Pipeline
from trainwell.data.steps import KIND_FAMILIES, list_steps, parse_step, parse_steps, step_class
from trainwell.data.table_steps import Table
from trainwell.errors import ConfigError, DataError, NotFittedError, RunError

RNG = np.random.default_rng(0)
TRAIN = RNG.normal(3.0, 2.0, (50, 4)) @ RNG.normal(size=(4, 4))
OTHER = RNG.normal(0.0, 5.0, (20, 4))


def _fit(name, **params):
    return step_class(name)(**params).fit(Table(TRAIN.copy(), list("abcd")))


def _apply(step, X):
    return step.transform(Table(X.copy(), list("abcd"))).num


@pytest.mark.parametrize("name,oracle", [
    ("center", StandardScaler(with_std=False)),
    ("standardize", StandardScaler()),
    ("minmax", MinMaxScaler(feature_range=(-1, 2))),
])
def test_scalers_match_sklearn(name, oracle):
    step = _fit(name, **({"range": [-1.0, 2.0]} if name == "minmax" else {}))
    oracle.fit(TRAIN)
    np.testing.assert_allclose(_apply(step, OTHER), oracle.transform(OTHER), rtol=1e-12, atol=1e-12)


def test_standardize_is_the_lecture_z_score():
    z = _apply(_fit("standardize"), TRAIN)  # lecture 000: z = (x - mu) / sigma, np.std (ddof 0)
    np.testing.assert_allclose(z, (TRAIN - TRAIN.mean(0)) / TRAIN.std(0), rtol=1e-12)


@pytest.mark.parametrize("components", [2, 0.9, None])
def test_pca_matches_sklearn(components):
    step = _fit("pca", components=components)
    oracle = PCA(n_components=components, svd_solver="full").fit(TRAIN)
    np.testing.assert_allclose(np.abs(_apply(step, OTHER)), np.abs(oracle.transform(OTHER)),
                               rtol=1e-9, atol=1e-9)
    if components == 0.9:
        assert step.explained_variance_ratio_.sum() >= 0.9


def test_whiten_matches_sklearn_and_gives_identity_covariance():
    step = _fit("whiten", eps=0.0)
    oracle = PCA(whiten=True, svd_solver="full").fit(TRAIN)
    np.testing.assert_allclose(_apply(step, OTHER), oracle.transform(OTHER), rtol=1e-8, atol=1e-8)
    w = _apply(step, TRAIN)
    np.testing.assert_allclose(np.cov(w, rowvar=False), np.eye(4), atol=1e-10)


def test_pca_refuses_more_components_than_features():
    with pytest.raises(DataError, match="components=9.*min\\(50, 4\\)"):
        _fit("pca", components=9)


def test_impute_with_indicators_matches_sklearn():
    X = TRAIN.copy()
    X[[1, 5, 7], 0] = np.nan
    X[2, 3] = np.nan
    test = OTHER.copy()
    test[[0, 4], [0, 1]] = np.nan  # column b: missing at test time only -> no indicator
    for strategy in ("mean", "median", "most_frequent"):
        step = step_class("impute")(strategy=strategy, indicator=True).fit(Table(X, list("abcd")))
        out = step.transform(Table(test, list("abcd")))
        oracle = SimpleImputer(strategy=strategy, add_indicator=True).fit(X)
        np.testing.assert_allclose(out.num, oracle.transform(test), rtol=1e-12)
        assert out.num_names == list("abcd") + ["missing_a", "missing_d"]


def test_impute_without_indicator_and_strategies_differ():
    X = np.array([[1.0], [2.0], [2.0], [10.0], [np.nan]])
    new = Table(np.array([[np.nan], [5.0]]), ["a"])
    got = {}
    for strategy in ("mean", "median", "most_frequent"):
        step = step_class("impute")(strategy=strategy, indicator=False).fit(Table(X, ["a"]))
        out = step.transform(new)
        assert out.num_names == ["a"] and out.num[1, 0] == 5.0  # present values untouched
        got[strategy] = out.num[0, 0]
    assert got == {"mean": 3.75, "median": 2.0, "most_frequent": 2.0}
    mean_step = step_class("impute")(strategy="mean").fit(Table(X[:4], ["a"]))
    # no value missing in train: no indicator column, and a test-time gap still gets the mean
    out = mean_step.transform(new)
    assert out.num_names == ["a"] and out.num[0, 0] == 3.75


def test_onehot_and_categorical_impute_match_sklearn():
    cat = np.array([["r"], ["g"], [None], ["b"], ["g"]], dtype=object)
    new = np.array([["g"], ["zzz"], [None]], dtype=object)
    num = np.zeros((5, 0))
    imp = step_class("impute")().fit(Table(num, [], cat, ["c"]))
    filled = imp.transform(Table(np.zeros((3, 0)), [], new, ["c"]))
    assert filled.cat[:, 0].tolist() == ["g", "zzz", "g"]  # most frequent training category
    assert filled.num_names == ["missing_c"] and filled.num[:, 0].tolist() == [0, 0, 1]
    oh = step_class("onehot")().fit(Table(num, [], cat, ["c"]))
    out = oh.transform(Table(np.zeros((3, 0)), [], new, ["c"]))
    oracle = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
        np.where(cat == None, np.nan, cat))  # noqa: E711
    np.testing.assert_array_equal(out.num, oracle.transform(np.where(new == None, np.nan, new)))  # noqa: E711
    assert out.num_names == ["c=b", "c=g", "c=r", "c=<missing>"]


IMAGES = RNG.random((30, 3, 4, 5))


def test_image_steps_match_numpy():
    expect = {
        "mean_image": IMAGES - IMAGES.mean(0),
        "channel_mean": IMAGES - IMAGES.mean((0, 2, 3), keepdims=True)[0],
        "channel_mean_std": (IMAGES - IMAGES.mean((0, 2, 3), keepdims=True)[0])
        / IMAGES.std((0, 2, 3), keepdims=True)[0],
    }
    for name, want in expect.items():
        step = step_class(name)().fit([IMAGES[:10], IMAGES[10:]])  # streamed in two batches
        np.testing.assert_allclose(step.transform(IMAGES.astype(np.float32)), want,
                                   rtol=1e-5, atol=1e-5)
        assert step.shift_.shape == ((3, 4, 5) if name == "mean_image" else (3, 1, 1))


def test_image_step_refuses_other_shape():
    step = step_class("channel_mean")().fit([IMAGES])
    with pytest.raises(DataError, match="fitted on images of shape \\(3, 4, 5\\)"):
        step.transform(np.zeros((2, 3, 4, 4), dtype=np.float32))


def test_step_parsing_names_aliases_and_errors():
    assert parse_step("zscore", 0).name == "standardize"
    assert parse_step({"name": "pca", "components": 0.95}, 0).params == {"components": 0.95}
    with pytest.raises(ConfigError, match="did you mean 'standardize'"):
        parse_step("standardze", 1)
    with pytest.raises(ConfigError, match="no parameter 'component'; did you mean 'components'"):
        parse_step({"name": "pca", "component": 3}, 0)
    with pytest.raises(ConfigError, match="fraction in \\(0, 1\\); got 1.5"):
        parse_step({"name": "pca", "components": 1.5}, 0)
    parse_step({"name": "pca", "components": 1}, 0)  # boundary accepted
    with pytest.raises(ConfigError, match="int >= 1"):
        parse_step({"name": "pca", "components": 0}, 0)
    with pytest.raises(ConfigError, match="strategy"):
        parse_step({"name": "impute", "strategy": "mode"}, 0)
    with pytest.raises(ConfigError, match="must come before 'standardize'"):
        parse_steps(["standardize", "impute"])


# ---------------------------------------------------------------------------- conformance

# one example of each step's parameters, and of the data of its family: every registered step
# is fitted, saved and loaded here the day it is registered
STEP_PARAMS = {"minmax": {"range": [-1.0, 1.0]}, "pca": {"components": 2},
               "whiten": {"components": 2}, "impute": {"strategy": "median"}}
CAT = np.array([["r"], ["g"], [None], ["b"], ["g"]] * 10, dtype=object)


def _family_data(family):
    if family == "image":
        return IMAGES
    num = TRAIN.copy()
    if family == "column":
        num[[1, 7], 2] = np.nan
        return Table(num, list("abcd"), CAT.copy(), ["c"])
    return Table(num, list("abcd"))


def test_every_step_belongs_to_a_kind_of_data():
    families = {f for fams in KIND_FAMILIES.values() for f in fams}
    assert sorted(list_steps()) == sorted(n for f in families for n in list_steps(f))


@pytest.mark.parametrize("name", list_steps())
def test_step_conformance(name):
    spec = parse_step({"name": name, **STEP_PARAMS.get(name, {})}, 0)
    cls = step_class(name)
    assert spec.name == name == cls.name and spec.family == cls.family
    kind = next(k for k, fams in KIND_FAMILIES.items() if cls.family in fams)
    data = _family_data(cls.family)
    with pytest.raises(NotFittedError, match=name):
        cls(**spec.params).transform(data if kind == "table" else data.astype(np.float32))
    pipe = Pipeline(kind, {"columns": []}, [spec])
    if kind == "table":
        pipe.fit_table(data)
        before = pipe.transform_table(data)
    else:
        pipe.fit_images(lambda steps: iter([data]))
        before = pipe.transform_images(data)
    loaded = Pipeline.from_state(*pipe.state())  # what a run saves, read back
    if kind == "table":
        after = loaded.transform_table(data)
        np.testing.assert_array_equal(after.num, before.num)
        assert after.num_names == before.num_names
    else:
        np.testing.assert_array_equal(loaded.transform_images(data), before)


def test_a_saved_step_of_the_wrong_kind_is_refused():
    pipe = Pipeline("table", {"columns": []}, [parse_step("standardize", 0)])
    pipe.fit_table(_family_data("matrix"))
    doc, arrays = pipe.state()
    doc["kind"] = "image"
    with pytest.raises(RunError, match="step 0 is 'standardize', not a step for images"):
        Pipeline.from_state(doc, arrays)
    doc["kind"], doc["steps"][0]["name"] = "table", "sharpen"
    with pytest.raises(RunError, match="step 0 is 'sharpen', not a step for a table"):
        Pipeline.from_state(doc, arrays)


def test_docs_list_every_registered_step():
    import re
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "data.md").read_text(encoding="utf-8")
    section = docs.split("## Preprocessing")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == list_steps()
