"""Train / val / test splits: seeded fractions (stratified for classification), a split column,
or index files.

All functions return ``{"train": idx, "val": idx, "test": idx}``: sorted int64 positions into the
rows kept after rows with a missing target were dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.errors import DataError

if TYPE_CHECKING:
    from trainwell.data.config import SplitConfig

SPLITS = ("train", "val", "test")
_COLUMN_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def split_by_fraction(n: int, y: np.ndarray | None, val: float, test: float, stratify: bool,
                      seed: int) -> dict[str, np.ndarray]:
    """Seeded random split; stratified by ``y`` (class indices) when given and ``stratify``.

    Raises:
        DataError: when there are fewer rows (or rows per class) than the splits need.
    """
    from sklearn.model_selection import train_test_split

    strat = y if (stratify and y is not None) else None
    n_test = int(np.ceil(test * n)) if test > 0 else 0  # scikit-learn rounds test sizes up
    n_rest = n - n_test
    n_val = int(np.ceil(val / (1.0 - test) * n_rest)) if val > 0 else 0
    need = 1 + (1 if test > 0 else 0) + (1 if val > 0 else 0)
    why = ""
    if n_rest - n_val < 1 or n < need:
        why = f"they leave {max(n_rest - n_val, 0)} rows for training"
    elif strat is not None:
        counts = np.bincount(strat)
        k = int((counts > 0).sum())
        sizes = ((n_test, test > 0), (n_val, val > 0), (n_rest - n_val, True))
        parts = [c for c, on in sizes if on]
        if counts[counts > 0].min() < len(parts):
            why = (f"stratifying needs every class in every split, but the smallest class has "
                   f"{int(counts[counts > 0].min())} rows for {len(parts)} splits")
        elif min(parts) < k:
            why = (f"stratifying needs at least {k} rows (one per class) in each split; "
                   f"sizes {parts}")
    if why:
        raise DataError(
            f"{n} rows are fewer than the splits need (data.split.val={val}, data.split.test="
            f"{test}): {why}; add rows, lower data.split.val / data.split.test"
            + (", or set data.split.stratify = false" if strat is not None else "")
        )
    idx = np.arange(n)
    out: dict[str, np.ndarray] = {"val": idx[:0], "test": idx[:0]}
    rest = idx
    if n_test:
        rest, out["test"] = train_test_split(idx, test_size=n_test, random_state=seed,
                                             stratify=strat)
    if n_val:
        out["train"], out["val"] = train_test_split(
            rest, test_size=n_val, random_state=seed + 1,
            stratify=None if strat is None else strat[rest])
    else:
        out["train"] = rest
    return {k: np.sort(np.asarray(out[k], dtype=np.int64)) for k in SPLITS}


def split_by_column(values: np.ndarray, column: str, origin: str) -> dict[str, np.ndarray]:
    """Rows whose ``column`` says train / val / test (also training, validation, valid, dev,
    testing)."""
    out: dict[str, list[int]] = {k: [] for k in SPLITS}
    for i, v in enumerate(values):
        key = _COLUMN_VALUES.get(str(v).strip().lower()) if isinstance(v, str) else None
        if key is None:
            raise DataError(
                f"split column {column!r} of {origin} holds {v!r} at row {i}; allowed: "
                f"{', '.join(sorted(_COLUMN_VALUES))}"
            )
        out[key].append(i)
    if not out["train"]:
        raise DataError(f"split column {column!r} of {origin} marks no row as train")
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _read_index_file(path: Path) -> list[Any]:
    if not path.is_file():
        raise DataError(f"split index file {path} does not exist")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False).ravel().tolist()
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"split index file {path} cannot be read: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"split index file {path} is not valid JSON: {exc}") from None
    return text.replace(",", " ").split()


def read_index_files(spec: str | dict[str, str]) -> dict[str, list[Any]]:
    """``{"train": [...], ...}`` from one JSON file or one file per split (text, .json, .npy)."""
    if isinstance(spec, str):
        data = _read_index_file(Path(spec))
        if not isinstance(data, dict) or "train" not in data or set(data) - set(SPLITS):
            raise DataError(f"split index file {spec} must be a JSON object with keys train "
                            "(required), val, test, each a list of row numbers")
        return data
    return {k: _read_index_file(Path(p)) for k, p in spec.items()}


def split_by_indices(raw: dict[str, list[Any]], n_rows: int, kept: np.ndarray,
                     where: str) -> dict[str, np.ndarray]:
    """Map user row numbers (0-based rows of the source) to kept positions; check range and
    overlap."""
    pos = np.full(n_rows, -1, dtype=np.int64)
    pos[kept] = np.arange(len(kept))
    out: dict[str, np.ndarray] = {}
    owner: dict[int, str] = {}
    for key in SPLITS:
        rows = []
        for v in raw.get(key, []):
            try:
                r = int(v)
                if str(v).strip() != str(r) and float(v) != r:
                    raise ValueError
            except (TypeError, ValueError):
                raise DataError(f"split indices ({where}, {key}) hold {v!r}; row numbers must be "
                                f"integers in [0, {n_rows - 1}]") from None
            if not 0 <= r < n_rows:
                raise DataError(f"split indices ({where}, {key}) hold row {r}, outside "
                                f"[0, {n_rows - 1}]")
            if r in owner:
                raise DataError(f"split indices ({where}): row {r} is in both {owner[r]} and {key}")
            owner[r] = key
            if pos[r] >= 0:  # rows dropped for a missing target are skipped
                rows.append(int(pos[r]))
        out[key] = np.sort(np.asarray(rows, dtype=np.int64))
    if not len(out["train"]):
        raise DataError(f"split indices ({where}) give no train rows")
    return out


def make_splits(cfg: SplitConfig, n: int, y: np.ndarray | None, seed: int,
                column_values: np.ndarray | None, n_rows: int, kept: np.ndarray,
                origin: str) -> tuple[dict[str, np.ndarray], str]:
    """The splits and a one-line description of how they were made."""
    if cfg.column is not None and column_values is not None:
        return split_by_column(column_values, cfg.column, origin), f"from column {cfg.column!r}"
    if cfg.indices is not None:
        where = cfg.indices if isinstance(cfg.indices, str) else ", ".join(cfg.indices.values())
        return (split_by_indices(read_index_files(cfg.indices), n_rows, kept, where),
                "from index files")
    strat = cfg.stratify and y is not None
    how = f"{'stratified' if strat else 'random'}, val={cfg.val}, test={cfg.test}, seed {seed}"
    return split_by_fraction(n, y, cfg.val, cfg.test, cfg.stratify, seed), how


def split_fixed_test(test_rows: np.ndarray, n_rows: int, kept: np.ndarray, y: np.ndarray | None,
                     val: float, stratify: bool, seed: int) -> dict[str, np.ndarray]:
    """A bundled set's fixed test rows (the same for every seed); the other rows divided into
    train and val as :func:`split_by_fraction` divides them (``val`` of them, by the seed)."""
    pos = np.full(n_rows, -1, dtype=np.int64)
    pos[kept] = np.arange(len(kept))
    test = pos[np.asarray(test_rows, dtype=np.int64)]
    test = np.sort(test[test >= 0])
    rest = np.setdiff1d(np.arange(len(kept), dtype=np.int64), test)
    sub = split_by_fraction(len(rest), None if y is None else y[rest], val, 0.0, stratify, seed)
    return {"train": rest[sub["train"]], "val": rest[sub["val"]], "test": test}


def take_per_class(train: np.ndarray, y: np.ndarray, k: int, seed: int,
                   what: str) -> np.ndarray:
    """``k`` training rows of each class, drawn by the seed (sorted); for one seed the rows
    kept for a smaller ``k`` are among those kept for a larger one.

    Raises:
        DataError: a class with fewer than ``k`` training rows (``what`` names the setting).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EB]))
    classes = np.unique(y[train])
    counts = {int(c): int((y[train] == c).sum()) for c in classes}
    fewest = min(counts, key=lambda c: counts[c])
    if counts[fewest] < k:
        raise DataError(f"{what} = {k}, but the training split has only {counts[fewest]} rows "
                        f"of class index {fewest} (the val split takes the others); at most "
                        f"{counts[fewest]}, or lower data.split.val")
    keep = [rng.permutation(train[y[train] == c])[:k] for c in classes]
    return np.sort(np.concatenate(keep))


__all__ = ["make_splits", "split_by_column", "split_by_fraction", "split_by_indices",
           "split_fixed_test", "take_per_class"]
