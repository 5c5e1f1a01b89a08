"""Data sources: ``builtin:``, ``csv:``, ``parquet:``, ``npz:``, ``images:``.

``read_source`` turns a source string into raw data of one of three shapes: a ``RawTable`` (a
DataFrame with feature and target columns), ``RawImages`` (an in-memory (N, C, H, W) array) or
``RawImageFolder`` (image paths and class names). Nothing is transformed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.errors import ConfigError, DataError
from trainwell.registry import unknown_name_message

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("builtin", "csv", "parquet", "npz", "images")


def split_source(source: str) -> tuple[str, str]:
    """``"csv:data/train.csv"`` -> ("csv", "data/train.csv")."""
    kind, sep, rest = source.partition(":")
    if not sep:
        raise ConfigError(
            f"data.source must look like KIND:WHAT with KIND one of {', '.join(KINDS)} "
            f"(e.g. \"csv:train.csv\", \"builtin:iris\"); got {source!r}"
        )
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ConfigError(f"data.source: {unknown_name_message('source kind', kind, list(KINDS))}")
    if not rest.strip():
        raise ConfigError(f"data.source {source!r} names no {'dataset' if kind == 'builtin' else 'path'}")
    return kind, rest.strip()


def check_source(source: str) -> None:
    """Validate a source string's syntax (and a builtin's name) without reading anything."""
    kind, rest = split_source(source)
    if kind == "builtin":
        from trainwell.data.builtin import BUILTINS

        BUILTINS.canonical(rest)


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


@dataclass
class RawImageFolder:
    root: Path
    paths: list[Path]
    labels: list[str] | None
    origin: str


Raw = RawTable | RawImages | RawImageFolder


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
                    f"npz file {path} must hold arrays 'X' and 'y'{'' if need_y else ' (y optional)'}; "
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


def _npz_raw(path: Path, need_y: bool) -> Raw:
    import pandas as pd

    X, y, ids = _npz(path, need_y)
    origin = f"npz file {path}"
    if X.ndim > 2:
        X = X[:, None] if X.ndim == 3 else X
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


def read_source(source: str, params: dict[str, Any], seed: int, for_prediction: bool = False) -> Raw:
    """Read a source string into raw data.

    Raises:
        DataError: a missing or unreadable file, or contents that cannot be used.
    """
    import pandas as pd

    kind, rest = split_source(source)
    if kind == "builtin":
        from trainwell.data.builtin import load_builtin

        b = load_builtin(rest, params, seed)
        origin = f"builtin:{rest}"
        if b.X.ndim == 4:
            return RawImages(b.X.astype(np.float32), b.y, origin, b.task, list(range(len(b.y))))
        frame = pd.DataFrame(b.X, columns=b.feature_names)
        frame["target"] = b.y
        return RawTable(frame, origin, ["target"], b.task, list(b.feature_names))
    path = Path(rest)
    if kind == "csv":
        from trainwell.data.tables import read_csv

        return RawTable(read_csv(path), f"csv file {path}", None)
    if kind == "parquet":
        from trainwell.data.tables import read_parquet

        return RawTable(read_parquet(path), f"parquet file {path}", None)
    if kind == "npz":
        return _npz_raw(path, need_y=not for_prediction)
    from trainwell.data.images import list_class_folders, list_images_for_prediction

    if for_prediction:
        paths, labels = list_images_for_prediction(path)
    else:
        paths, labels = list_class_folders(path)
    return RawImageFolder(path, paths, labels, f"image folder {path}")


def source_from_path(path_or_source: str | Path) -> str:
    """A source string from a bare path: by extension, or ``images:`` for a folder."""
    text = str(path_or_source)
    kind = text.partition(":")[0].lower()
    if kind in KINDS and ":" in text:
        return text
    p = Path(text)
    suffix = p.suffix.lower()
    if p.is_dir():
        return f"images:{p}"
    for kinds, exts in (("csv", (".csv", ".txt")), ("parquet", (".parquet", ".pq")),
                        ("npz", (".npz",))):
        if suffix in exts:
            return f"{kinds}:{p}"
    if not p.exists():
        raise DataError(f"input {p} does not exist")
    raise DataError(f"cannot tell the type of {p}: use a .csv, .parquet, .npz file or an image "
                    "folder, or write KIND:path (csv:, parquet:, npz:, images:)")


__all__ = ["KINDS", "Raw", "RawImageFolder", "RawImages", "RawTable", "read_source", "split_source"]
