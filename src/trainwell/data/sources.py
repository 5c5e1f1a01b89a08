"""Data sources: ``builtin:``, ``csv:``, ``parquet:``, ``npz:``, ``images:``, and ``memory:``
(arrays or a DataFrame given to ``fit(data=...)`` from Python, :mod:`trainwell.data.memory`).

``read_source`` turns a source string into raw data of one of three shapes: a ``RawTable`` (a
DataFrame with feature and target columns), ``RawImages`` (an in-memory (N, C, H, W) array) or
``RawImageFolder`` (image paths and class names). Nothing is transformed here. Each kind is
registered once in :data:`SOURCES`, with its reader and the file suffixes that name it. A CSV is
read with a :class:`~trainwell.data.tables.CsvDialect` (``data.delimiter``, ``data.decimal``,
``data.encoding``; what it leaves unset is detected), the same one for a run's predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.errors import ConfigError, DataError
from trainwell.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from trainwell.data.tables import CsvDialect

log = logging.getLogger(__name__)


@dataclass
class RawTable:
    frame: pd.DataFrame
    origin: str                       # what error messages call it: "csv file x.csv"
    target: list[str] | None          # None: the config must name it
    task_hint: str | None = None      # builtin sets know their task
    feature_names: list[str] | None = None  # fixed feature columns (builtin, npz)


@dataclass
class RawImages:
    X: np.ndarray                     # float32 (N, C, H, W)
    y: np.ndarray | None
    origin: str
    task_hint: str | None = None
    ids: list[Any] = field(default_factory=list)
    test_rows: np.ndarray | None = None    # a bundled set's fixed test split (rows of X)
    train_per_class: int | None = None     # keep this many training rows per class


@dataclass
class RawImageFolder:
    root: Path
    paths: list[Path]
    labels: list[str] | None
    origin: str
    skipped: list[str] = field(default_factory=list)  # entries that are not images, by path


Raw = RawTable | RawImages | RawImageFolder


Reader = Callable[[str, dict[str, Any], int, bool, "CsvDialect | None"], Raw]


@dataclass(frozen=True)
class SourceKind:
    """One kind of source.

    Attributes:
        read: ``read(what, params, seed, for_prediction, dialect)`` -> raw data; ``what`` is
            the part of the source after ``KIND:``; ``dialect`` is how CSV text is read (None:
            detected).
        path: ``what`` is a file or folder (made relative to the config's folder), not a name.
        suffixes: a bare path ending so is of this kind (a folder is ``images``).
        check: validates ``what`` without reading anything (a builtin's name), if set.
    """

    read: Reader
    path: bool = True
    suffixes: tuple[str, ...] = ()
    check: Callable[[str], object] | None = None


SOURCES: Registry[SourceKind] = Registry("source kind", ConfigError)


def register_source(kind: str, **entry: Any) -> Callable[[Reader], Reader]:
    """Register a reader under ``kind``; ``entry`` holds the other fields of
    :class:`SourceKind`."""

    def deco(read: Reader) -> Reader:
        SOURCES.register(kind)(SourceKind(read, **entry))
        return read

    return deco


def split_source(source: str) -> tuple[str, str]:
    """``"csv:data/train.csv"`` -> ("csv", "data/train.csv")."""
    kind, sep, rest = source.partition(":")
    if not sep:
        raise ConfigError(
            f"data.source must look like KIND:WHAT with KIND one of {', '.join(SOURCES.names())} "
            f"(e.g. \"csv:train.csv\", \"builtin:iris\"); got {source!r}"
        )
    try:
        kind = SOURCES.canonical(kind)
    except ConfigError as exc:
        raise ConfigError(f"data.source: {exc}") from None
    if not rest.strip():
        what = "path" if SOURCES.get(kind).path else "dataset"
        raise ConfigError(f"data.source {source!r} names no {what}")
    return kind, rest.strip()


def is_path_source(source: str) -> bool:
    """Whether ``source`` (``KIND:WHAT``) names a file or folder rather than a bundled set."""
    kind, sep, _ = source.partition(":")
    key = kind.strip().lower()
    return bool(sep) and key in SOURCES and SOURCES.get(key).path


def check_source(source: str) -> None:
    """Validate a source string's syntax (and a builtin's name) without reading anything."""
    kind, rest = split_source(source)
    check = SOURCES.get(kind).check
    if check is not None:
        check(rest)


def _npz(path: Path, need_y: bool) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None]:
    from trainwell.data.tables import check_file

    check_file(path, "npz")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataError(f"npz file {path} is not an npz archive (a zip of .npy arrays, as "
                        "numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "X" not in names or (need_y and "y" not in names):
                raise DataError(
                    f"npz file {path} must hold arrays 'X' and 'y'"
                    f"{'' if need_y else ' (y optional)'}; "
                    f"it holds {names}"
                )
            X = z["X"]
            y = z["y"] if "y" in names else None
            ids = z["ids"].tolist() if "ids" in names else None
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"npz file {path} holds object arrays, which would need pickle "
                        f"(not allowed); store numbers or fixed-width strings: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zipfile / numpy raise many types
        raise DataError(f"npz file {path} cannot be read: {exc}") from None
    if X.ndim not in (2, 3, 4) or X.shape[0] == 0:
        raise DataError(f"npz file {path}: X must be (n, features), (n, H, W) or (n, C, H, W) with "
                        f"n >= 1; got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise DataError(f"npz file {path}: X must be numeric; got dtype {X.dtype}")
    if y is not None and y.shape[0] != X.shape[0]:
        raise DataError(f"npz file {path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    return X, y, ids


def _check_pixels(X: np.ndarray, origin: str) -> None:
    """Refuse image arrays with values that float32 cannot hold or that are not numbers."""
    if not np.issubdtype(X.dtype, np.floating):
        return
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(X) | (np.abs(X) > np.finfo(np.float32).max)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{origin}: X holds {float(X[at]):g} at index {list(at)}; image arrays "
                        "must hold finite numbers within the float32 range (|x| <= "
                        f"{np.finfo(np.float32).max:.3g})")


def _npz_raw(path: Path, need_y: bool) -> Raw:
    X, y, ids = _npz(path, need_y)
    return raw_from_arrays(X, y, ids, f"npz file {path}")


def raw_from_arrays(X: np.ndarray, y: np.ndarray | None, ids: list[Any] | None,
                    origin: str) -> Raw:
    """Arrays as an npz file holds them (X (n, d), (n, H, W) or (n, C, H, W); y (n,) or (n, k))
    as raw data: images, or a table with columns ``x0 ..`` and targets ``y`` / ``y0 ..``."""
    import pandas as pd

    if X.ndim > 2:
        X = X[:, None] if X.ndim == 3 else X
        _check_pixels(X, origin)
        return RawImages(X.astype(np.float32), y, origin, ids=ids or list(range(X.shape[0])))
    names = [f"x{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X.astype(np.float64), columns=names)
    target: list[str] = []
    if y is not None:
        if y.ndim == 1:
            target = ["y"]
            frame["y"] = y
        else:
            target = [f"y{j}" for j in range(y.shape[1])]
            for j, t in enumerate(target):
                frame[t] = y[:, j]
    if ids is not None:
        frame["_id"] = ids
    return RawTable(frame, origin, target, feature_names=names)


def read_source(
    source: str, params: dict[str, Any], seed: int, for_prediction: bool = False,
    dialect: CsvDialect | None = None,
) -> Raw:
    """Read a source string into raw data.

    Args:
        source: ``KIND:WHAT``.
        params: ``data.params`` (a builtin's generator parameters).
        seed: fixes generated builtin sets.
        for_prediction: the input is new data for a trained run (no target needed).
        dialect: how a CSV is read (``data.delimiter``, ``data.decimal``, ``data.encoding``);
            None detects the delimiter and a byte-order mark.

    Raises:
        DataError: a missing or unreadable file, or contents that cannot be used.
    """
    kind, rest = split_source(source)
    return SOURCES.get(kind).read(rest, params, seed, for_prediction, dialect)


def _check_builtin(name: str) -> str:
    from trainwell.data.builtin import BUILTINS

    return BUILTINS.canonical(name)


@register_source("builtin", path=False, check=_check_builtin)
def _read_builtin(name: str, params: dict[str, Any], seed: int, for_prediction: bool,
                  dialect: CsvDialect | None) -> Raw:
    import pandas as pd

    from trainwell.data.builtin import load_builtin

    b = load_builtin(name, params, seed)
    origin = f"builtin:{name}"
    if b.X.ndim == 4:
        return RawImages(b.X.astype(np.float32), b.y, origin, b.task, list(range(len(b.y))),
                         b.test_rows, b.train_per_class)
    frame = pd.DataFrame(b.X, columns=b.feature_names)
    targets = list(b.target_names or ["target"])
    y = b.y.reshape(len(b.y), -1)
    for j, target in enumerate(targets):  # one column per target (a multitask table has several)
        frame[target] = y[:, j]
    return RawTable(frame, origin, targets, b.task, list(b.feature_names))


@register_source("csv", suffixes=(".csv", ".txt"))
def _read_csv(path: str, params: dict[str, Any], seed: int, for_prediction: bool,
              dialect: CsvDialect | None) -> Raw:
    from trainwell.data.tables import read_csv

    frame = read_csv(Path(path), dialect, for_prediction)
    return RawTable(frame, f"csv file {Path(path)}", None)


@register_source("parquet", suffixes=(".parquet", ".pq"))
def _read_parquet(path: str, params: dict[str, Any], seed: int, for_prediction: bool,
                  dialect: CsvDialect | None) -> Raw:
    from trainwell.data.tables import read_parquet

    return RawTable(read_parquet(Path(path)), f"parquet file {Path(path)}", None)


@register_source("npz", suffixes=(".npz",))
def _read_npz(path: str, params: dict[str, Any], seed: int, for_prediction: bool,
              dialect: CsvDialect | None) -> Raw:
    return _npz_raw(Path(path), need_y=not for_prediction)


@register_source("images")
def _read_images(path: str, params: dict[str, Any], seed: int, for_prediction: bool,
                 dialect: CsvDialect | None) -> Raw:
    from trainwell.data.images import IMAGE_EXTS, list_class_folders, list_images_for_prediction

    root = Path(path)
    listing = list_images_for_prediction if for_prediction else list_class_folders
    paths, labels, skipped = listing(root)
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("image folder %s: skipped %d entries that are not images (%s): %s%s", root,
                    len(skipped), " ".join(IMAGE_EXTS), ", ".join(skipped[:5]), more)
    return RawImageFolder(root, paths, labels, f"image folder {root}", skipped)


def _check_memory(what: str) -> str:
    from trainwell.data.memory import check_fingerprint

    return check_fingerprint(what)


@register_source("memory", path=False, check=_check_memory)
def _read_memory(what: str, params: dict[str, Any], seed: int, for_prediction: bool,
                 dialect: CsvDialect | None) -> Raw:
    from trainwell.data.memory import read_memory

    return read_memory(what)


def source_from_path(path_or_source: str | Path) -> str:
    """A source string from a bare path: by extension, or ``images:`` for a folder."""
    text = str(path_or_source)
    kind = text.partition(":")[0].lower()
    if kind in SOURCES and ":" in text:
        return text
    p = Path(text)
    suffix = p.suffix.lower()
    if p.is_dir():
        return f"images:{p}"
    for name in SOURCES.names():
        if suffix in SOURCES.get(name).suffixes:
            return f"{name}:{p}"
    if not p.exists():
        raise DataError(f"input {p} does not exist")
    raise DataError(f"cannot tell the type of {p}: use a .csv, .parquet, .npz file or an image "
                    "folder, or write KIND:path (csv:, parquet:, npz:, images:)")


__all__ = [
    "SOURCES",
    "Raw",
    "RawImageFolder",
    "RawImages",
    "RawTable",
    "SourceKind",
    "check_source",
    "is_path_source",
    "raw_from_arrays",
    "read_source",
    "register_source",
    "source_from_path",
    "split_source",
]
