"""Prediction-time input: read new data and apply a run's saved preprocessing unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainwell.data.pipeline import Pipeline
from trainwell.errors import DataError, RunError


class InferenceData:
    """A run's label mapping and fitted preprocessing, for new input, and the standardization of
    its regression targets (:meth:`target_units`).

    ``load(path_or_source)`` reads a CSV, Parquet or NPZ file, an image folder (flat, or one
    subfolder per class) or a ``builtin:`` set; the target column may be absent. It returns
    ``(X, ids)``: X the float32 model input, ids the id column's values (``data.id_column``),
    the npz ``ids`` array, image paths relative to the folder, or else row numbers.

    Example:
        >>> inp = load_inference("runs/iris-mlp")          # doctest: +SKIP
        >>> X, ids = inp.load("new_flowers.csv")           # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path) -> None:
        from trainwell.runs import read_json

        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise RunError(f"run directory {self.run_dir} does not exist")
        self.summary: dict[str, Any] = read_json(self.run_dir / "data.json")
        self.pipeline = Pipeline.load(self.run_dir)
        self.task: str = self.summary["task"]
        self.classes: list[Any] | None = self.summary["classes"]
        self.feature_names: list[str] = list(self.summary.get("feature_names", []))
        self.input_shape = tuple(self.summary["input_shape"])
        self.n_outputs: int = self.summary["n_outputs"]
        #: regression targets standardized in training (``data.target_scale``); None if not
        self.target_scale = self.pipeline.target_scale

    def target_units(self, values: Any) -> Any:
        """Regression outputs of the model (a tensor or an array) in the target's own units:
        the training standardization undone, if there was one."""
        return values if self.target_scale is None else self.target_scale.inverse(values)

    def __call__(self, path_or_source: Any) -> Any:
        return self.load(path_or_source)[0]

    def load(self, path_or_source: Any) -> tuple[Any, list[Any]]:
        """Read new raw input and return ``(X float32 tensor, ids)``.

        Raises:
            DataError: the input cannot be read, or does not have the columns / shape the run
                was fitted on.
        """
        import pandas as pd
        import torch

        from trainwell.data.sources import (
            RawImageFolder,
            RawImages,
            RawTable,
            read_source,
            source_from_path,
        )
        from trainwell.data.tables import CsvDialect

        pipe = self.pipeline
        if isinstance(path_or_source, np.ndarray):  # images as arrays, from Python
            return self._image_array(path_or_source)
        if isinstance(path_or_source, pd.DataFrame):
            raw: Any = RawTable(path_or_source, "the given DataFrame", None)
        else:  # a CSV is read as the training CSV was (the run's data.delimiter, decimal ...)
            dialect = CsvDialect.from_dict(pipe.input.get("csv"))
            raw = read_source(source_from_path(path_or_source), {}, 0, for_prediction=True,
                              dialect=dialect)
        if pipe.kind == "table":
            if not isinstance(raw, RawTable):
                raise DataError(f"this run was fitted on a table; {raw.origin} gives images")
            X = self._table(raw)
            idcol = pipe.input.get("id_column")
            frame = raw.frame
            if idcol and idcol in frame.columns:
                ids = frame[idcol].tolist()
            elif "_id" in frame.columns:
                ids = frame["_id"].tolist()
            else:
                ids = list(range(len(frame)))
            return torch.from_numpy(X), ids
        if isinstance(raw, RawTable):
            raise DataError(f"this run was fitted on images; {raw.origin} gives a table")
        shape = list(pipe.input["shape"])
        if isinstance(raw, RawImages):
            x = raw.X
            if list(x.shape[1:]) != shape:
                raise DataError(f"{raw.origin}: images have shape {list(x.shape[1:])}; this run "
                                f"was fitted on {shape}")
            ids = list(raw.ids)
        else:
            assert isinstance(raw, RawImageFolder)
            from trainwell.data.images import read_many

            mode: Any = pipe.input.get("mode")
            size: Any = pipe.input.get("size")
            if pipe.input.get("source") != "folder":
                mode, size = self._builtin_image_reading(shape)
                if mode is None:
                    raise DataError(f"this run was fitted on in-memory image arrays of shape "
                                    f"{shape}; {raw.origin} is a folder (give an .npz with X of "
                                    f"shape (n, {', '.join(map(str, shape))}))")
            x = read_many(raw.paths, mode, size)
            ids = [p.relative_to(raw.root).as_posix() for p in raw.paths]
        return torch.from_numpy(pipe.transform_images(x)), ids

    def _image_array(self, x: np.ndarray) -> tuple[Any, list[Any]]:
        """``(n, C, H, W)`` images (``(n, H, W)`` for one channel) as the run's model input."""
        import torch

        pipe = self.pipeline
        if pipe.kind == "table":
            raise DataError("this run was fitted on a table; give its columns (a DataFrame or "
                            "a 2-D array), not images")
        shape = list(pipe.input["shape"])
        if x.ndim == 3 and shape[0] == 1:
            x = x[:, None]
        if x.ndim != 4 or list(x.shape[1:]) != shape or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"images given to predict must be an array of shape (n, "
                            f"{', '.join(map(str, shape))}), as the run was fitted on; got "
                            f"{tuple(x.shape)} of {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        return torch.from_numpy(pipe.transform_images(x)), list(range(len(x)))

    def _builtin_image_reading(self, shape: list[int]) -> tuple[Any, Any]:
        """``(mode, size)`` to read image files as a bundled image set's arrays are given to the
        model (pixels in [0, 1], one channel per band), or ``(None, None)``: a run fitted on
        arrays of the user's own has no known pixel scale to read files into."""
        from trainwell.data.images import CHANNELS

        modes = {c: m for m, c in CHANNELS.items()}
        if not str(self.summary.get("source", "")).startswith("builtin:") or len(shape) != 3 \
                or shape[0] not in modes:
            return None, None
        return modes[shape[0]], [shape[1], shape[2]]

    def _table(self, raw: Any) -> np.ndarray:
        from trainwell.data.tables import require_columns

        frame = raw.frame
        frame.columns = [str(c) for c in frame.columns]
        cols = self.pipeline.columns
        missing = [c for c in cols if c not in frame.columns]
        names = list(getattr(raw, "feature_names", None) or [])
        if raw.origin.startswith("npz file") and names and len(names) != len(cols):
            shown = ", ".join(list(cols)[:8]) + (" ..." if len(cols) > 8 else "")
            raise DataError(f"{raw.origin}: X has {len(names)} columns, but this run was fitted "
                            f"on {len(cols)} input columns ({shown}); give X of shape "
                            f"(n, {len(cols)})")
        if missing and raw.origin.startswith("npz file") and len(names) == len(cols):
            # an NPZ array has no column names: its columns are the run's inputs, by position
            frame = frame.rename(columns=dict(zip(names, cols, strict=True)))
            missing = []
        if missing:
            require_columns(frame, missing, "feature column the run was fitted on", raw.origin)
        return self.pipeline.frame_to_array(frame, raw.origin)


def load_inference(run_dir: str | Path) -> InferenceData:
    """The saved label mapping and preprocessing of a run, ready for new input."""
    return InferenceData(run_dir)


def load_prepared_transform(run_dir: str | Path) -> InferenceData:
    """A callable turning new raw input (a path, a source string or a DataFrame) into model
    input."""
    return InferenceData(run_dir)


__all__ = ["InferenceData", "load_inference", "load_prepared_transform"]
