"""In-memory data from Python: ``fit(config, data=(X, y))`` or ``fit(config, data=frame)``.

The data becomes the source ``memory:<sha256>``, the SHA-256 of its bytes (dtypes, shapes,
values; a DataFrame's column names, dtypes and values). The arrays are held in this process
while the run trains, under that fingerprint, and read through the same code as a file source:
arrays as an npz file's ``X`` / ``y`` (images (n, C, H, W) or (n, H, W), or a table with
columns ``x0 ..``), a DataFrame as a CSV's table (``data.target`` names the target column).
The run directory keeps only the fingerprint and a description (``data.json``'s ``memory``):
predicting needs nothing more, resuming needs the same data again (checked by fingerprint).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainwell.errors import ConfigError, DataError

KIND = "memory"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: the data of the fits now running in this process, by fingerprint
_HELD: dict[str, InMemory] = {}


def check_fingerprint(what: str) -> str:
    """``what`` of a ``memory:`` source must be a SHA-256 in hex."""
    if not _HEX64.match(what):
        raise ConfigError(f"data.source \"memory:{what}\": after memory: comes the SHA-256 (64 hex "
                          "digits) of data given to fit(data=...) from Python; a file source is "
                          "written csv:, parquet:, npz: or images:")
    return what


@dataclass
class InMemory:
    """Data given to ``fit``: arrays ``X`` / ``y`` or a DataFrame ``frame``."""

    fingerprint: str
    what: str  # "arrays" | "dataframe"
    X: np.ndarray | None = None
    y: np.ndarray | None = None
    frame: Any = None

    @property
    def source(self) -> str:
        return f"{KIND}:{self.fingerprint}"

    def describe(self) -> dict[str, Any]:
        """What ``data.json`` keeps of the data: its kind, size and fingerprint."""
        if self.what == "dataframe":
            return {"kind": "dataframe", "rows": int(len(self.frame)),
                    "columns": [str(c) for c in self.frame.columns], "sha256": self.fingerprint}
        assert self.X is not None and self.y is not None
        return {"kind": "arrays", "rows": int(self.X.shape[0]), "X_shape": list(self.X.shape),
                "X_dtype": str(self.X.dtype), "y_shape": list(self.y.shape),
                "y_dtype": str(self.y.dtype), "sha256": self.fingerprint}

    def origin(self) -> str:
        short = self.fingerprint[:12]
        if self.what == "dataframe":
            return f"data=DataFrame ({len(self.frame)} rows, sha256 {short})"
        assert self.X is not None
        return f"data=(X, y) ({self.X.shape[0]} rows, X {tuple(self.X.shape)}, sha256 {short})"

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Make the data readable as its ``memory:`` source while the block runs."""
        _HELD[self.fingerprint] = self
        try:
            yield
        finally:
            _HELD.pop(self.fingerprint, None)


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):  # a pandas Series / DataFrame
        value = value.to_numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data=(X, y): {name} cannot be made an array: {exc}") from None


def _hash_array(h: Any, a: np.ndarray) -> None:
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.dtype == object:  # object arrays: their values' text (their bytes are pointers)
        h.update("\x00".join(repr(v) for v in a.reshape(-1)).encode())
    else:
        h.update(np.ascontiguousarray(a).tobytes())


def from_arrays(X: Any, y: Any, missing_target: str = "error") -> InMemory:
    """Check ``(X, y)`` and fingerprint them.

    Raises:
        DataError: X not (n, d), (n, H, W) or (n, C, H, W) numbers (channels last, (n, H, W, 3),
            is refused); y not (n,) or (n, k);
            lengths that differ; a missing y with ``data.missing_target = "error"``.
    """
    X, y = _as_array(X, "X"), _as_array(y, "y")
    if X.ndim not in (2, 3, 4) or X.shape[0] == 0 or 0 in X.shape:
        raise DataError(f"data=(X, y): X must have shape (n, features) for a table, (n, H, W) or "
                        f"(n, C, H, W) for images, with n >= 1; got shape {X.shape}")
    if X.ndim == 4 and X.shape[3] in (1, 3, 4) and X.shape[1] not in (1, 3, 4):
        raise DataError(f"data=(X, y): X has shape {X.shape}, images with their channels last "
                        "(n, H, W, C); give them channels first, (n, C, H, W): "
                        "np.moveaxis(X, -1, 1) (a tensor: X.permute(0, 3, 1, 2))")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"data=(X, y): X must hold numbers; got dtype {X.dtype} (a table with "
                        "text columns goes as a DataFrame: data=frame)")
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise DataError(f"data=(X, y): y must have shape (n,) (labels or values) or (n, k) "
                        f"(k regression targets); got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"data=(X, y): X has {X.shape[0]} rows but y has {y.shape[0]}; give one "
                        "label per row of X")
    if np.issubdtype(X.dtype, np.complexfloating) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError("data=(X, y): complex numbers are not features or labels")
    if missing_target == "error":
        from trainwell.data.targets import missing_mask

        miss = np.flatnonzero(missing_mask(y))
        if len(miss):
            raise DataError(f"data=(X, y): y has {len(miss)} missing (NaN or None) values, first "
                            f"at rows {miss[:5].tolist()}; fix them, or set "
                            "data.missing_target = \"drop\" to drop those rows")
    h = hashlib.sha256(b"trainwell arrays\x00")
    _hash_array(h, X)
    _hash_array(h, y)
    return InMemory(h.hexdigest(), "arrays", X=X, y=y)


def from_frame(frame: Any) -> InMemory:
    """Check a DataFrame and fingerprint it (column names, dtypes and values, index ignored)."""
    import pandas as pd

    if frame.shape[0] == 0 or frame.shape[1] < 2:
        raise DataError(f"data=DataFrame must have rows and at least two columns (features and "
                        f"the target); got shape {frame.shape}")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise DataError(f"data=DataFrame has duplicate column names {dup}")
    frame = frame.reset_index(drop=True)
    h = hashlib.sha256(b"trainwell dataframe\x00")
    for name, col in frame.items():
        h.update(f"{name}\x00{col.dtype}\x00".encode())
        h.update(np.ascontiguousarray(pd.util.hash_pandas_object(col, index=False)
                                      .to_numpy()).tobytes())
    return InMemory(h.hexdigest(), "dataframe", frame=frame.copy())


def in_memory(data: Any, missing_target: str = "error") -> InMemory:
    """``fit``'s ``data=``: ``(X, y)`` (NumPy arrays or torch tensors) or a pandas DataFrame."""
    if hasattr(data, "columns") and hasattr(data, "iloc"):
        return from_frame(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return from_arrays(data[0], data[1], missing_target)
    raise DataError(f"data= takes (X, y) (NumPy arrays or torch tensors) or a pandas DataFrame; "
                    f"got {type(data).__name__}"
                    f"{f' of length {len(data)}' if isinstance(data, (tuple, list)) else ''}")


def read_memory(fingerprint: str) -> Any:
    """The raw data of ``memory:<fingerprint>``, held by a ``fit`` running in this process.

    Raises:
        DataError: no such data is held (a run trained from Python, resumed or re-read from the
            command line).
    """
    from trainwell.data.sources import RawTable, raw_from_arrays

    held = _HELD.get(fingerprint)
    if held is None:
        raise DataError(
            f"data.source \"memory:{fingerprint[:12]}...\" is data that was given to fit(data=...) "
            "from Python, and it is not stored with the run; continue it from Python with the "
            "same data: trainwell.fit(data=(X, y), resume=\"RUN_DIR\") (or data=frame)"
        )
    if held.what == "dataframe":
        return RawTable(held.frame.copy(), held.origin(), None)
    assert held.X is not None
    return raw_from_arrays(held.X, held.y, None, held.origin())


def require_data_again(source: str, kept_by: str, call: str) -> None:
    """A study or an ensemble whose ``data.source`` is ``memory:`` needs its data given again
    (``data=``): only the fingerprint is stored. ``kept_by``: what stores the config (``study``,
    ``ensemble``); ``call``: the call to repeat, up to its ``data=`` (``trainwell.tune(config,
    ``).

    Raises:
        DataError: ``source`` is a ``memory:`` source.
    """
    if source.startswith(f"{KIND}:"):
        raise DataError(
            f"data.source {source[:19]!r}... is data that was given from Python and is not "
            f"stored with the {kept_by}; give the same data again: {call}data=(X, y)) (or "
            "data=frame)"
        )


def describe_source(source: str) -> dict[str, Any] | None:
    """``data.json``'s ``memory`` entry for a ``memory:`` source held now, else None."""
    kind, _, what = source.partition(":")
    held = _HELD.get(what) if kind == KIND else None
    return held.describe() if held is not None else None


def check_resume_data(source: str, data: InMemory, run_dir: Any) -> None:
    """The data given to resume a run must be the data it was trained on (same fingerprint)."""
    kind, _, what = source.partition(":")
    if kind != KIND:
        raise DataError(f"cannot resume {run_dir} with data=: it was trained on data.source "
                        f"{source!r}, not on data from Python; resume it without data=")
    if what != data.fingerprint:
        raise DataError(f"cannot resume {run_dir} with this data=: its sha256 is "
                        f"{data.fingerprint[:12]}..., but the run was trained on data with sha256 "
                        f"{what[:12]}...; give the same arrays (or DataFrame) it was trained on")


__all__ = ["InMemory", "check_fingerprint", "check_resume_data", "describe_source",
           "from_arrays", "from_frame", "in_memory", "read_memory", "require_data_again"]
