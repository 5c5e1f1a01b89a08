"""trainwell's table preprocessing steps as scikit-learn transformers.

:class:`StepTransformer` wraps one step of :mod:`trainwell.data.table_steps` (``impute``,
``onehot``, ``center``, ``standardize``, ``minmax``, ``pca``, ``whiten``) with scikit-learn's
transformer interface: ``fit`` / ``transform`` / ``fit_transform``, ``get_feature_names_out``
and ``set_output``, so that it sits in a ``Pipeline`` or a ``ColumnTransformer``. The step itself
runs unchanged: columns are typed as ``trainwell train`` types them (numbers and booleans are
numeric, text is categorical), fitted on the rows given to ``fit``, and the fitted state is
saved as JSON plus safetensors (:meth:`StepTransformer.save`), never pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from trainwell.errors import DataError, NotFittedError, RunError

if TYPE_CHECKING:
    import pandas as pd

    from trainwell.data.table_steps import Table, TableStep

#: the format of a saved :class:`StepTransformer` (``<name>.json``)
FORMAT_VERSION = 1


class TransformerNotFittedError(NotFittedError, SklearnNotFittedError):
    """``transform`` before ``fit``: both trainwell's and scikit-learn's ``NotFittedError``."""


class StepTransformer(TransformerMixin, BaseEstimator):
    """One trainwell table step as a scikit-learn transformer.

    Args:
        step: the step's name (or alias) as in ``data.preprocess``: ``impute``, ``onehot``,
            ``center``, ``standardize``, ``minmax``, ``pca``, ``whiten``.
        params: the step's parameters as in ``data.preprocess`` (``{"components": 0.95}`` for
            ``pca``, ``{"strategy": "median"}`` for ``impute``); checked at ``fit``.

    ``X`` is a DataFrame or a 2-D array. Each column is typed as ``trainwell train`` types a
    table column: numeric, boolean (as 0/1) or categorical (text); NaN / None are missing. The
    output has the step's columns in its order: numeric columns first, then the categorical
    ones a step leaves as text (``impute`` fills them but does not encode them), as an object
    array in that case, else float64. ``get_feature_names_out`` gives the step's names
    (``missing_<col>``, ``<col>=<category>``, ``pc1``...).

    Example:
        >>> import numpy as np
        >>> X = np.array([[1.0, 10.0], [3.0, 30.0]])
        >>> StepTransformer("standardize").fit_transform(X)
        array([[-1., -1.],
               [ 1.,  1.]])
    """

    def __init__(self, step: str = "standardize", params: dict[str, Any] | None = None) -> None:
        self.step = step
        self.params = params

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        from trainwell.errors import ConfigError

        try:  # the column steps take missing values; the matrix steps need them imputed
            from trainwell.data.steps import step_class

            tags.input_tags.allow_nan = step_class(self.step).family == "column"
        except ConfigError:
            tags.input_tags.allow_nan = False
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ fitting

    def _new_step(self) -> TableStep:
        from trainwell.data.pipeline import table_step
        from trainwell.data.steps import StepSpec, step_class, step_registry
        from trainwell.schema import validate_section

        name = step_registry().canonical(self.step)
        params = validate_section(
            step_class(name).params_model, dict(self.params or {}),
            f"StepTransformer({self.step!r}) params",
        ).model_dump()
        return table_step(StepSpec(name, params))

    def fit(self, X: Any, y: Any = None) -> StepTransformer:
        """Type the columns of ``X`` and fit the step on them; ``y`` is ignored."""
        from trainwell.data.tables import infer_type

        step = self._new_step()  # a bad name or parameter is refused before X is read
        X = self._checked(X, reset=True)
        frame = self._frame(X)
        self.column_types_ = [[str(c), _column_type(infer_type(frame[c]))] for c in frame.columns]
        self.step_ = step.fit(self._table(frame))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``X`` with the fitted step applied."""
        self._check_fitted()
        X = self._checked(X, reset=False)
        out = self.step_.transform(self._table(self._frame(X)))
        return _array(out)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the output columns: the step's names for the input columns
        ``input_features`` (default: the names seen at ``fit``, else ``x0``, ``x1``...)."""
        from trainwell.data.table_steps import Table

        self._check_fitted()
        names = [c for c, _ in self.column_types_]
        if input_features is not None:
            given = [str(c) for c in input_features]
            seen = getattr(self, "feature_names_in_", None)
            if len(given) != len(names) or (seen is not None and given != list(seen)):
                raise ValueError(
                    f"input_features should be the {len(names)} input columns"
                    + (f" {list(seen)}" if seen is not None else "")
                    + f"; got {given}"
                )
            names = given
        # the step names its columns from the names of its input: it is run on no rows
        kinds = [t for _, t in self.column_types_]
        num = [n for n, k in zip(names, kinds, strict=True) if k != "categorical"]
        cat = [n for n, k in zip(names, kinds, strict=True) if k == "categorical"]
        empty = Table(np.empty((0, len(num))), num, np.empty((0, len(cat)), dtype=object), cat)
        out = self.step_.transform(empty)
        return np.asarray(out.num_names + out.cat_names, dtype=object)

    # ------------------------------------------------------------------ state

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted state: a JSON-able dict and float64 arrays (no pickle)."""
        self._check_fitted()
        names_in = getattr(self, "feature_names_in_", None)
        doc = {
            "format": FORMAT_VERSION,
            "step": self.step_.name,
            "params": dict(self.step_.params),
            "columns": self.column_types_,
            "feature_names_in": None if names_in is None else [str(n) for n in names_in],
            "state": self.step_.meta(),
        }
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in self.step_.arrays().items()}
        return doc, arrays

    @classmethod
    def from_state(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> StepTransformer:
        """The fitted transformer that :meth:`state` described.

        Raises:
            RunError: an unknown format, or a step that is not a table step.
        """
        if doc.get("format") != FORMAT_VERSION:
            raise RunError(
                f"saved StepTransformer has format {doc.get('format')!r}; expected "
                f"{FORMAT_VERSION}"
            )
        new = cls(str(doc["step"]), dict(doc["params"]) or None)
        try:
            step = new._new_step()
        except DataError as exc:
            raise RunError(f"saved StepTransformer: {exc}") from None
        new.step_ = step.load(doc["state"], dict(arrays))
        new.column_types_ = [[str(c), str(t)] for c, t in doc["columns"]]
        new.n_features_in_ = len(new.column_types_)
        if doc.get("feature_names_in") is not None:
            new.feature_names_in_ = np.asarray(doc["feature_names_in"], dtype=object)
        return new

    def save(self, path: str | Path) -> None:
        """Write ``<path>.json`` and ``<path>.safetensors``."""
        import torch

        from trainwell.runs import write_json_atomic, write_safetensors_atomic

        doc, arrays = self.state()
        path = Path(path)
        write_safetensors_atomic(
            path.with_name(path.name + ".safetensors"),
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
        )
        write_json_atomic(path.with_name(path.name + ".json"), doc)

    @classmethod
    def load(cls, path: str | Path) -> StepTransformer:
        """Read what :meth:`save` wrote to ``path``."""
        from trainwell.runs import read_json, read_safetensors

        path = Path(path)
        doc = read_json(path.with_name(path.name + ".json"))
        tensors = read_safetensors(path.with_name(path.name + ".safetensors"))
        return cls.from_state(doc, {k: v.numpy() for k, v in tensors.items()})

    # ------------------------------------------------------------------ helpers

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "step_")
        except SklearnNotFittedError:
            raise TransformerNotFittedError(
                f"this StepTransformer({self.step!r}) is not fitted yet; call 'fit' first"
            ) from None

    def _checked(self, X: Any, reset: bool) -> Any:
        if hasattr(X, "toarray"):
            raise DataError(
                f"StepTransformer({self.step!r}) takes a dense array or a DataFrame; got a "
                "sparse matrix (use X.toarray(), or scikit-learn's transformers for sparse data)"
            )
        # scikit-learn's checks (2-D, not empty, not complex; names and count of the features);
        # the columns are then typed and read by trainwell from X as given
        finite = "allow-nan" if self.__sklearn_tags__().input_tags.allow_nan else True
        checked = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=finite)
        return X if hasattr(X, "columns") else checked

    def _frame(self, X: Any) -> pd.DataFrame:
        import pandas as pd

        if hasattr(X, "columns"):
            frame = X.copy()
            frame.columns = [str(c) for c in X.columns]
            return frame.reset_index(drop=True)
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])

    def _table(self, frame: pd.DataFrame) -> Table:
        from trainwell.data.tables import encode

        types = self.column_types_
        if [c for c, _ in types] != list(frame.columns):
            names = [c for c, _ in types]
            raise DataError(
                f"StepTransformer({self.step!r}) was fitted on columns {names}; got "
                f"{list(frame.columns)}"
            )
        return encode(frame, dict(types), f"the input of StepTransformer({self.step!r})")


def _column_type(kind: str) -> str:
    return kind if kind in {"numeric", "boolean", "categorical"} else "categorical"


def _array(t: Table) -> np.ndarray:
    """A step's output table as one array: numeric columns, then the categorical ones."""
    if not t.cat.shape[1]:
        return np.asarray(t.num, dtype=np.float64)
    return np.concatenate([t.num.astype(object), t.cat], axis=1)


__all__ = ["FORMAT_VERSION", "StepTransformer", "TransformerNotFittedError"]
