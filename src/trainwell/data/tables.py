"""Tables: reading CSV / Parquet, inferring column types, encoding columns into a ``Table``.

Column types: ``numeric`` (numbers), ``boolean`` (true/false, yes/no, t/f, y/n, 0/1) and
``categorical`` (anything else); ``ignore`` drops a column. Types are inferred from the values and
can be overridden per column with ``data.columns``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.data.table_steps import Table
from trainwell.errors import DataError
from trainwell.registry import closest

if TYPE_CHECKING:
    import pandas as pd

TRUE_TOKENS = {"true", "t", "yes", "y", "1"}
FALSE_TOKENS = {"false", "f", "no", "n", "0"}
BOOL_TOKENS = TRUE_TOKENS | FALSE_TOKENS


def check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise DataError(f"{what} path {path} is not a file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise DataError(f"{what} file {path} cannot be read: {exc.strerror or exc}") from None


def read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    check_file(path, "csv")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"csv file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"csv file {path} cannot be parsed: {exc}") from None
    if frame.shape[0] == 0:
        raise DataError(f"csv file {path} has a header but no rows")
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    check_file(path, "parquet")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise DataError(f"parquet file {path} cannot be read: {exc}") from None
    if frame.shape[0] == 0:
        raise DataError(f"parquet file {path} has no rows")
    return frame


def require_columns(frame: pd.DataFrame, names: list[str], role: str, origin: str) -> None:
    """Raise a DataError naming a missing column, the closest one, and all columns."""
    cols = [str(c) for c in frame.columns]
    for name in names:
        if name not in cols:
            hint = closest(name, cols)
            did = f"; did you mean {hint!r}?" if hint else ""
            raise DataError(f"{role} {name!r} is not a column of {origin}{did} columns: {cols}")


def _is_bool_value(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return True
    if isinstance(v, str):
        return v.strip().lower() in BOOL_TOKENS
    return False


#: a text column whose values are numbers except for at most this fraction is taken as numeric,
#: so that a stray token ("?", "12a") is reported with its row instead of silently turning a
#: numeric column into hundreds of categories
NUMERIC_TEXT_FRACTION = 0.9


def _parses_as_number(v: Any) -> bool:
    if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)):
        return True
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return False
        return True
    return False


def infer_type(col: pd.Series) -> str:
    """``numeric``, ``boolean`` or ``categorical`` from a column's dtype and values.

    Text that is mostly numbers (at least ``NUMERIC_TEXT_FRACTION`` of the non-missing values)
    is ``numeric``: the odd values are then refused by name when the column is encoded.
    """
    import pandas as pd

    if pd.api.types.is_bool_dtype(col.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(col.dtype):
        return "numeric"
    values = col.dropna()
    if len(values) and all(_is_bool_value(v) for v in values) and not values.map(
        lambda v: isinstance(v, str) and v.strip() in {"0", "1"}
    ).all():
        return "boolean"
    if len(values) and values.map(_parses_as_number).mean() >= NUMERIC_TEXT_FRACTION:
        return "numeric"
    return "categorical"


def infer_types(frame: pd.DataFrame, features: list[str], overrides: dict[str, str],
                origin: str) -> dict[str, str]:
    """Column name -> type for every feature column (``ignore`` ones left out)."""
    require_columns(frame, list(overrides), "data.columns entry", origin)
    types = {}
    for name in features:
        kind = overrides.get(name) or infer_type(frame[name])
        if kind != "ignore":
            types[name] = kind
    return types


def _to_numeric(col: pd.Series, name: str, origin: str) -> np.ndarray:
    import pandas as pd

    miss = col.isna().to_numpy()
    num = pd.to_numeric(col.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v)
                        if col.dtype == object else col, errors="coerce")
    arr = np.asarray(num, dtype=np.float64)
    bad = np.isnan(arr) & ~miss
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = col.iloc[first]
        raise DataError(
            f"column {name!r} of {origin} is numeric but holds {value!r} (row {col.index[first]}); "
            f"set data.columns.{name} = \"categorical\", or fix the value (leave the cell empty "
            "for a missing value)"
        )
    if np.isinf(arr).any():
        row = col.index[int(np.flatnonzero(np.isinf(arr))[0])]
        raise DataError(f"column {name!r} of {origin} holds an infinite value (row {row}); "
                        "only finite numbers or missing values are allowed")
    return arr


def _to_boolean(col: pd.Series, name: str, origin: str) -> np.ndarray:
    out = np.full(len(col), np.nan)
    for i, (row, v) in enumerate(zip(col.index, col.tolist(), strict=True)):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_)):
            key = str(bool(v)).lower()
        elif isinstance(v, (int, float, np.number)):
            key = "1" if v == 1 else "0" if v == 0 else str(v)  # 1.0 reads as "1"
        else:
            key = str(v).strip().lower()
        if key in TRUE_TOKENS:
            out[i] = 1.0
        elif key in FALSE_TOKENS:
            out[i] = 0.0
        else:
            raise DataError(
                f"column {name!r} of {origin} is boolean but holds {v!r} (row {row}); allowed: "
                f"{sorted(BOOL_TOKENS)} in any case, or set data.columns.{name} = \"categorical\""
            )
    return out


def category_text(v: Any) -> str:
    """One text form for a category, whichever file type it came from (1, 1.0 and "1" agree)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    return str(v)


def _to_categorical(col: pd.Series) -> np.ndarray:
    import pandas as pd

    out = np.empty(len(col), dtype=object)
    for i, v in enumerate(col.tolist()):
        out[i] = None if v is None or (not isinstance(v, str) and pd.isna(v)) else category_text(v)
    return out


def encode(frame: pd.DataFrame, types: dict[str, str], origin: str) -> Table:
    """Encode typed columns: numeric and boolean into float64 (NaN = missing), categorical as
    text."""
    require_columns(frame, list(types), "feature column", origin)
    n = frame.shape[0]
    num_names = [c for c, t in types.items() if t in {"numeric", "boolean"}]
    cat_names = [c for c, t in types.items() if t == "categorical"]
    num = np.empty((n, len(num_names)))
    for j, name in enumerate(num_names):
        col = frame[name]
        num[:, j] = (_to_boolean if types[name] == "boolean" else _to_numeric)(col, name, origin)
    cat = np.empty((n, len(cat_names)), dtype=object)
    for j, name in enumerate(cat_names):
        cat[:, j] = _to_categorical(frame[name])
    return Table(num, num_names, cat, cat_names)


__all__ = [
    "category_text",
    "check_file",
    "encode",
    "infer_type",
    "infer_types",
    "read_csv",
    "read_parquet",
    "require_columns",
]
