"""Tables: reading CSV / Parquet, inferring column types, encoding columns into a ``Table``.

A CSV's dialect is found from the file unless ``data.delimiter`` / ``data.decimal`` /
``data.encoding`` say it: a byte-order mark sets the encoding (UTF-8 otherwise), and the delimiter
is the one of ``,`` ``;`` tab ``|`` that splits the header and the first rows into the same number
of fields (:func:`detect_delimiter`).

Column types: ``numeric`` (numbers), ``boolean`` (true/false, yes/no, t/f, y/n, 0/1) and
``categorical`` (anything else); ``ignore`` drops a column. Types are inferred from the values and
can be overridden per column with ``data.columns``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import asdict, dataclass
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
#: the largest magnitude a feature may have: model inputs are float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


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


#: the delimiters a CSV is tried with, in order of preference when several fit equally well
DELIMITERS = (",", ";", "\t", "|")
#: how much of a CSV the dialect is detected from
SAMPLE_BYTES = 1 << 16
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV is read; None means found from the file.

    Attributes:
        delimiter: the one character between fields.
        decimal: the decimal mark of numbers, ``"."`` or ``","``.
        encoding: a Python codec name; by default UTF-8, or what a byte-order mark says.
    """

    delimiter: str | None = None
    decimal: str = "."
    encoding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> CsvDialect:
        """The dialect saved with :meth:`to_dict` (defaults for a run saved without one)."""
        doc = doc or {}
        return cls(doc.get("delimiter"), doc.get("decimal") or ".", doc.get("encoding"))


def _encoding(head: bytes, given: str | None) -> str:
    """The codec to read a file starting with ``head``: ``given``, else from a byte-order mark,
    else UTF-8. UTF-8 is read as ``utf-8-sig``, which drops a byte-order mark if there is one."""
    if given is not None:
        return "utf-8-sig" if codecs.lookup(given).name == "utf-8" else given
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8-sig")


def _sample(path: Path, given: str | None) -> tuple[str, str]:
    """The codec to read ``path`` with, and its first complete lines decoded: about
    :data:`SAMPLE_BYTES`, more if the header is longer."""
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        while b"\n" not in head and len(head) < 256 * SAMPLE_BYTES:
            chunk = fh.read(SAMPLE_BYTES)
            if not chunk:
                break
            head += chunk
        more = fh.read(1) != b""
    encoding = _encoding(head[:4], given)
    text = head.decode(encoding, errors="ignore")
    if more and "\n" in text:
        text = text[:text.rindex("\n") + 1]  # drop a line cut by the sample's end
    return encoding, text


def _records(sample: str, delimiter: str, limit: int = 200) -> list[list[str]]:
    try:
        reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
        return [row for _, row in zip(range(limit), reader, strict=False) if row]
    except csv.Error:
        return []


def detect_delimiter(sample: str, exclude: str | None = None) -> str | None:
    """The delimiter of :data:`DELIMITERS` that splits the header of ``sample`` into the most
    fields (at least 2), with at least 90% of the following rows split into as many.

    Returns:
        None when no delimiter fits (a one-column file, or rows of uneven width).

    Example:
        >>> detect_delimiter("a;b;y\\n1,5;2;0\\n3;4;1\\n")
        ';'
    """
    best: tuple[int, str] | None = None
    for delim in DELIMITERS:
        if delim == exclude:
            continue
        rows = _records(sample, delim)
        if not rows or len(rows[0]) < 2:
            continue
        width, body = len(rows[0]), rows[1:] or rows
        if sum(len(r) == width for r in body) >= 0.9 * len(body):
            if best is None or width > best[0]:
                best = (width, delim)
    return best[1] if best else None


def _shown(delimiter: str) -> str:
    return "\"\\t\"" if delimiter == "\t" else f"\"{delimiter}\""


def _check_header(path: Path, names: list[str]) -> None:
    """Refuse a header that names a column twice (pandas would rename the second ``x.1``)."""
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        if name.strip():
            seen.setdefault(name, []).append(i)
    dups = {name: cols for name, cols in seen.items() if len(cols) > 1}
    if dups:
        shown = "; ".join(f"{name!r} (columns {', '.join(map(str, cols))})"
                          for name, cols in dups.items())
        raise DataError(f"csv file {path} names a column twice: {shown}; give every column a "
                        "unique name")


def read_csv(path: Path, dialect: CsvDialect | None = None,
             for_prediction: bool = False) -> pd.DataFrame:
    """Read a CSV with ``dialect``, detecting what it leaves unset.

    ``for_prediction``: the file is new input for a trained run, whose saved dialect is
    ``dialect``; messages then say so instead of advising a config field.

    Raises:
        DataError: the file is missing, empty, not text in its encoding, names a column twice,
            cannot be parsed, or reads as one column whose header holds another delimiter.
    """
    import pandas as pd

    dialect = dialect or CsvDialect()
    check_file(path, "csv")
    encoding, sample = _sample(path, dialect.encoding)
    exclude = "," if dialect.decimal == "," else None  # a decimal comma is no delimiter
    delimiter = (dialect.delimiter or detect_delimiter(sample, exclude)
                 or (";" if exclude else ","))
    header = next(iter(_records(sample, delimiter, limit=1)), [])
    _check_header(path, header)
    try:
        frame = pd.read_csv(path, sep=delimiter, decimal=dialect.decimal, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise DataError(f"csv file {path} is empty") from None
    except UnicodeDecodeError as exc:
        codec = encoding.removesuffix("-sig")
        fix = (f"this run reads CSVs as {codec}: save the file in {codec}" if for_prediction else
               "set data.encoding to the file's encoding, e.g. \"latin-1\" or \"cp1252\"")
        raise DataError(f"csv file {path} is not {codec} text ({exc.reason} at byte "
                        f"{exc.start}); {fix}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"csv file {path} cannot be parsed: {exc}") from None
    if frame.shape[1] == 1:
        _check_one_column(path, str(frame.columns[0]), delimiter, for_prediction)
    if frame.shape[0] == 0:
        raise DataError(f"csv file {path} has a header but no rows")
    return frame


def _check_one_column(path: Path, header: str, delimiter: str, for_prediction: bool) -> None:
    """Refuse a one-column read whose header holds another delimiter."""
    other = next((d for d in DELIMITERS if d != delimiter and d in header), None)
    if other is None:
        return
    fix = (f"this run reads CSVs with the delimiter {_shown(delimiter)}: write the file with it"
           if for_prediction else f"set data.delimiter = {_shown(other)}")
    raise DataError(f"csv file {path} reads as one column {header[:60]!r} with the delimiter "
                    f"{_shown(delimiter)}, but its header holds {_shown(other)}; {fix}")


def _parquet_names(path: Path) -> list[str] | None:
    try:
        import pyarrow.parquet as pq

        return [str(n) for n in pq.read_schema(path).names]
    except Exception:  # noqa: BLE001 - not readable here: pandas reports it below
        return None


def read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    check_file(path, "parquet")
    names = _parquet_names(path) or []
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"parquet file {path} names a column more than once: {dups}; give every "
                        "column a unique name")
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


_COMMA_NUMBER = re.compile(r"[+-]?\d+(,\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3},\d{3}")


def _decimal_comma_example(col: pd.Series) -> str | None:
    """A value of a text column of numbers written with a decimal comma ("1,5"), if it is one.

    Columns whose every comma could group thousands ("1,000") are left alone: ambiguous."""
    values = [v.strip() for v in col.dropna() if isinstance(v, str)]
    numbers = [v for v in values if _COMMA_NUMBER.fullmatch(v)]
    commas = [v for v in numbers if "," in v]
    if len(numbers) < NUMERIC_TEXT_FRACTION * len(col.dropna()):
        return None
    return next((v for v in commas if not _THOUSANDS.fullmatch(v)), None)


def infer_types(frame: pd.DataFrame, features: list[str], overrides: dict[str, str],
                origin: str) -> dict[str, str]:
    """Column name -> type for every feature column (``ignore`` ones left out).

    Raises:
        DataError: an override names no column, or a column inferred as text holds numbers
            written with a decimal comma (read with ``data.decimal = ","`` instead).
    """
    require_columns(frame, list(overrides), "data.columns entry", origin)
    types = {}
    is_csv = origin.startswith("csv file")  # where data.decimal applies
    for name in features:
        kind = overrides.get(name) or infer_type(frame[name])
        if is_csv and name not in overrides and kind == "categorical":
            example = _decimal_comma_example(frame[name])
            if example is not None:
                raise DataError(
                    f"column {name!r} of {origin} holds numbers written with a decimal comma "
                    f"(e.g. {example!r}), which would be read as categories; set "
                    f"data.decimal = \",\" to read them as numbers, or data.columns.{name} = "
                    "\"categorical\" to keep them as text"
                )
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
    huge = np.abs(np.nan_to_num(arr)) > FLOAT32_MAX
    if huge.any():
        first = int(np.flatnonzero(huge)[0])
        value = float(arr[first])
        squared = (", and its square (standardizing takes one) overflows"
                   if abs(value) > np.sqrt(np.finfo(np.float64).max) else "")
        raise DataError(
            f"column {name!r} of {origin} holds {value:g} (row {col.index[first]}), beyond what "
            f"float32 model inputs can hold (|x| <= {FLOAT32_MAX:.3g}){squared}; rescale the "
            f"column or set data.columns.{name} = \"ignore\""
        )
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
    "DELIMITERS",
    "FLOAT32_MAX",
    "CsvDialect",
    "category_text",
    "check_file",
    "detect_delimiter",
    "encode",
    "infer_type",
    "infer_types",
    "read_csv",
    "read_parquet",
    "require_columns",
]
