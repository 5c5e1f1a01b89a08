"""Fitted preprocessing steps for tables (lectures 000-002: fit on train, apply unchanged).

Each step is fitted with scikit-learn's transformer (``SimpleImputer``, ``OneHotEncoder``,
``StandardScaler``, ``MinMaxScaler``, ``PCA``) on the training split only. Its fitted state is
kept as plain arrays (saved as safetensors) plus JSON, and ``transform`` applies that state with
NumPy, so training, evaluation and later predictions run the same code on the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from trainwell.data.steps import Step, register_step
from trainwell.errors import DataError, NotFittedError
from trainwell.schema import Section


@dataclass
class Table:
    """Features between steps: a numeric float64 block and a categorical object block.

    Missing numbers are NaN; missing categories are None.
    """

    num: np.ndarray
    num_names: list[str]
    cat: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=object))
    cat_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cat.shape[0] != self.num.shape[0] and self.cat.size == 0:
            self.cat = np.empty((self.num.shape[0], 0), dtype=object)

    @property
    def n(self) -> int:
        return int(self.num.shape[0])


def _cat_for_sklearn(cat: np.ndarray) -> np.ndarray:
    out = cat.astype(object).copy()
    out[pd_isna(out)] = np.nan
    return out


def pd_isna(a: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(a), dtype=bool)


class TableStep(Step, ABC):
    """Base: ``fit`` on a training Table, ``transform`` any Table, ``state`` / ``from_state``."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.fitted_ = False

    @abstractmethod
    def fit(self, t: Table) -> TableStep:
        """Learn the step's state from the training table ``t``; return self."""

    @abstractmethod
    def transform(self, t: Table) -> Table:
        """``t`` with the fitted step applied (a new table)."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays (float64), saved as safetensors."""
        return {}

    def meta(self) -> dict[str, Any]:
        """Fitted non-array state (names, categories), saved as JSON."""
        return {}

    @abstractmethod
    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TableStep:
        """Restore the fitted state that :meth:`meta` and :meth:`arrays` saved; return self."""

    def missing_action(self, column: str, kind: str, missing_in_train: bool) -> str | None:
        """What this step does with the missing values of ``column`` (``kind`` is numeric or
        categorical), in words; None when it leaves them (the default)."""
        return None

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(f"preprocessing step {self.name!r} is used before it was fitted")

    def _check_width(self, t: Table, expected: int) -> None:
        if t.num.shape[1] != expected:
            raise DataError(
                f"preprocessing step {self.name!r} was fitted on {expected} features; got "
                f"{t.num.shape[1]}"
            )


def _no_missing(t: Table, step: str) -> None:
    bad = np.isnan(t.num).any(axis=0)
    if bad.any():
        cols = [t.num_names[i] for i in np.flatnonzero(bad)]
        raise DataError(
            f"columns {cols} have missing values, which {step!r} cannot take; add \"impute\" "
            "to data.preprocess before it"
        )


class ImputeParams(Section):
    strategy: Literal["mean", "median", "most_frequent"] = "mean"
    indicator: bool = True


@register_step("impute", family="column", params=ImputeParams)
class Impute(TableStep):
    """``SimpleImputer`` with missing-indicator columns (lecture 002: imputation + indicator).

    Numeric and boolean columns use ``strategy``; categorical columns use the most frequent
    category. With ``indicator``, one 0/1 column ``missing_<col>`` is added for every column that
    had missing values in the training split (scikit-learn's ``features="missing-only"``).
    """

    def missing_action(self, column: str, kind: str, missing_in_train: bool) -> str:
        stat = self.params.get("strategy", "mean") if kind == "numeric" else "most_frequent"
        action = f"imputed with the training {stat.replace('_', ' ')}"
        if self.params.get("indicator", True) and missing_in_train:
            action += f", indicator column 'missing_{column}'"
        return action

    def fit(self, t: Table) -> Impute:
        from sklearn.impute import SimpleImputer

        ind = self.params.get("indicator", True)
        self.num_stats_ = np.zeros(t.num.shape[1])
        self.num_ind_: list[int] = []
        if t.num.shape[1]:
            imp = SimpleImputer(strategy=self.params.get("strategy", "mean"), add_indicator=ind,
                                keep_empty_features=True)
            imp.fit(t.num)
            self.num_stats_ = imp.statistics_.astype(np.float64)
            self.num_ind_ = [int(i) for i in imp.indicator_.features_] if ind else []
        self.cat_stats_: list[str] = []
        self.cat_ind_: list[int] = []
        if t.cat.shape[1]:
            imp = SimpleImputer(strategy="most_frequent", add_indicator=ind, missing_values=np.nan,
                                keep_empty_features=True)
            imp.fit(_cat_for_sklearn(t.cat))
            self.cat_stats_ = [str(s) for s in imp.statistics_]
            self.cat_ind_ = [int(i) for i in imp.indicator_.features_] if ind else []
        self.num_width_, self.cat_width_ = t.num.shape[1], t.cat.shape[1]
        self.fitted_ = True
        return self

    def transform(self, t: Table) -> Table:
        self._check_fitted()
        self._check_width(t, self.num_width_)
        miss = np.isnan(t.num)
        num = np.where(miss, self.num_stats_[None, :], t.num)
        cat_miss = pd_isna(t.cat) if t.cat.size else np.zeros(t.cat.shape, dtype=bool)
        cat = t.cat.copy()
        for j, stat in enumerate(self.cat_stats_):
            cat[cat_miss[:, j], j] = stat
        blocks = [num, miss[:, self.num_ind_].astype(np.float64),
                  cat_miss[:, self.cat_ind_].astype(np.float64)]
        names = (list(t.num_names) + [f"missing_{t.num_names[i]}" for i in self.num_ind_]
                 + [f"missing_{t.cat_names[i]}" for i in self.cat_ind_])
        return Table(np.concatenate(blocks, axis=1), names, cat, list(t.cat_names))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"statistics": self.num_stats_}

    def meta(self) -> dict[str, Any]:
        return {"num_indicator": self.num_ind_, "cat_statistics": self.cat_stats_,
                "cat_indicator": self.cat_ind_, "num_width": self.num_width_,
                "cat_width": self.cat_width_}

    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Impute:
        self.num_stats_ = arrays["statistics"]
        self.num_ind_, self.cat_ind_ = list(meta["num_indicator"]), list(meta["cat_indicator"])
        self.cat_stats_ = list(meta["cat_statistics"])
        self.num_width_, self.cat_width_ = meta["num_width"], meta["cat_width"]
        self.fitted_ = True
        return self


@register_step("onehot", "one_hot", family="column")
class OneHot(TableStep):
    """``OneHotEncoder(handle_unknown="ignore")``: one 0/1 column per training category.

    A category unseen in training encodes as all zeros; a missing category (no ``impute``
    before) is a category of its own, ``<col>=<missing>``.
    """

    def missing_action(self, column: str, kind: str, missing_in_train: bool) -> str | None:
        if kind != "categorical":
            return None
        return f"kept as its own category '{column}=<missing>' by {self.name}"

    def fit(self, t: Table) -> OneHot:
        from sklearn.preprocessing import OneHotEncoder

        self.categories_: list[list[str | None]] = []
        if t.cat.shape[1]:
            enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            enc.fit(_cat_for_sklearn(t.cat))
            for cats in enc.categories_:
                self.categories_.append(
                    [None if pd_isna(np.array([c]))[0] else str(c) for c in cats]
                )
        self.num_width_ = t.num.shape[1]
        self.fitted_ = True
        return self

    def transform(self, t: Table) -> Table:
        self._check_fitted()
        self._check_width(t, self.num_width_)
        blocks, names = [t.num], list(t.num_names)
        miss = pd_isna(t.cat) if t.cat.size else np.zeros(t.cat.shape, dtype=bool)
        for j, cats in enumerate(self.categories_):
            col = t.cat[:, j]
            for c in cats:
                hit = miss[:, j] if c is None else (~miss[:, j]) & (col == c)
                blocks.append(hit.astype(np.float64)[:, None])
                names.append(f"{t.cat_names[j]}={'<missing>' if c is None else c}")
        n = t.n
        return Table(np.concatenate(blocks, axis=1), names, np.empty((n, 0), dtype=object), [])

    def meta(self) -> dict[str, Any]:
        return {"categories": self.categories_, "num_width": self.num_width_}

    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> OneHot:
        self.categories_ = [list(c) for c in meta["categories"]]
        self.num_width_ = meta["num_width"]
        self.fitted_ = True
        return self


class _Affine(TableStep):
    """x -> (x - shift) / div, per feature."""

    def transform(self, t: Table) -> Table:
        self._check_fitted()
        self._check_width(t, self.shift_.shape[0])
        _no_missing(t, self.name)
        return Table((t.num - self.shift_) / self.div_, list(t.num_names))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift_, "div": self.div_}

    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> _Affine:
        self.shift_, self.div_ = arrays["shift"], arrays["div"]
        self.fitted_ = True
        return self


@register_step("center", "zero_center", "centre", family="matrix")
class Center(_Affine):
    """Zero-centering (lecture 001: ``X -= np.mean(X, axis=0)``), with
    ``StandardScaler(with_std=False)``."""

    def fit(self, t: Table) -> Center:
        from sklearn.preprocessing import StandardScaler

        _no_missing(t, self.name)
        sc = StandardScaler(with_std=False).fit(t.num)
        self.shift_, self.div_ = sc.mean_.astype(np.float64), np.ones(t.num.shape[1])
        self.fitted_ = True
        return self


@register_step("standardize", "zscore", "z_score", "standardise", family="matrix")
class Standardize(_Affine):
    """z-score, z = (x - mu) / sigma (lecture 000), ``StandardScaler``; a constant feature keeps
    scale 1."""

    def fit(self, t: Table) -> Standardize:
        from sklearn.preprocessing import StandardScaler

        _no_missing(t, self.name)
        sc = StandardScaler().fit(t.num)
        self.shift_, self.div_ = sc.mean_.astype(np.float64), sc.scale_.astype(np.float64)
        self.fitted_ = True
        return self


class MinMaxParams(Section):
    range: list[float] = Field(default_factory=lambda: [0.0, 1.0])

    @field_validator("range")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not v[0] < v[1]:
            raise ValueError("range must be [low, high] with low < high")
        return v


@register_step("minmax", "min_max", family="matrix", params=MinMaxParams)
class MinMax(_Affine):
    """Min-max scaling to ``range`` with ``MinMaxScaler``:
    x' = (x - min) / (max - min) * (hi - lo) + lo."""

    def fit(self, t: Table) -> MinMax:
        from sklearn.preprocessing import MinMaxScaler

        _no_missing(t, self.name)
        lo, hi = self.params.get("range", [0.0, 1.0])
        sc = MinMaxScaler(feature_range=(lo, hi)).fit(t.num)
        # x * scale_ + min_  ==  (x - (-min_ / scale_)) / (1 / scale_)
        self.shift_ = (-sc.min_ / sc.scale_).astype(np.float64)
        self.div_ = (1.0 / sc.scale_).astype(np.float64)
        self.fitted_ = True
        return self


def _check_components(v: int | float | None) -> int | float | None:
    if v is None:
        return v
    bad = (isinstance(v, bool) or (isinstance(v, int) and v < 1)
           or (isinstance(v, float) and not 0.0 < v < 1.0))
    if bad:
        raise ValueError("components must be an int >= 1 or a fraction in (0, 1)")
    return v


class PCAParams(Section):
    components: int | float | None = None

    @field_validator("components", mode="before")
    @classmethod
    def _components(cls, v: int | float | None) -> int | float | None:
        return _check_components(v)


class WhitenParams(PCAParams):
    eps: float = Field(default=1e-5, ge=0.0)


@register_step("pca", family="matrix", params=PCAParams)
class PCAStep(TableStep):
    """PCA (lecture 000/002) with scikit-learn's ``PCA``: k components or a variance fraction.

    ``whiten`` also divides each component by sqrt(eigenvalue + eps) (lecture 002: "inverse
    square root of the eigenvalue matrix"; eps as in cs231n), so that the training covariance
    becomes the identity.
    """

    whiten = False

    def fit(self, t: Table) -> PCAStep:
        from sklearn.decomposition import PCA

        _no_missing(t, self.name)
        n, d = t.num.shape
        k = self.params.get("components")
        if isinstance(k, int) and k > min(n, d):
            raise DataError(
                f"{self.name} components={k} is more than the data allows: min(train rows, "
                f"features) = min({n}, {d}) = {min(n, d)}"
            )
        pca = PCA(n_components=k, svd_solver="full").fit(t.num)
        self.mean_ = pca.mean_.astype(np.float64)
        self.components_ = pca.components_.astype(np.float64)
        self.explained_variance_ = pca.explained_variance_.astype(np.float64)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.astype(np.float64)
        self.fitted_ = True
        return self

    def transform(self, t: Table) -> Table:
        self._check_fitted()
        self._check_width(t, self.mean_.shape[0])
        _no_missing(t, self.name)
        z = (t.num - self.mean_) @ self.components_.T
        if self.whiten:
            z = z / np.sqrt(self.explained_variance_ + self.params.get("eps", 1e-5))
        return Table(z, [f"pc{i + 1}" for i in range(z.shape[1])])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "components": self.components_,
                "explained_variance": self.explained_variance_,
                "explained_variance_ratio": self.explained_variance_ratio_}

    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PCAStep:
        self.mean_, self.components_ = arrays["mean"], arrays["components"]
        self.explained_variance_ = arrays["explained_variance"]
        self.explained_variance_ratio_ = arrays["explained_variance_ratio"]
        self.fitted_ = True
        return self


@register_step("whiten", "pca_whiten", "pca_whitening", family="matrix", params=WhitenParams)
class Whiten(PCAStep):
    """PCA whitening: project, then divide by sqrt(eigenvalue + eps)."""

    whiten = True


__all__ = [
    "Center",
    "Impute",
    "MinMax",
    "OneHot",
    "PCAStep",
    "Standardize",
    "Table",
    "TableStep",
    "Whiten",
]
