"""The target domain of domain-adversarial training (``[domain] target = "<source>"``).

The target data goes through the preprocessing fitted on the *source* training split, unchanged
(lecture 002: statistics from the training data only); its labels, when it has the source's
target column, are kept for evaluation only and never reach the training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.data.sources import RawImages, RawTable, read_source
from trainwell.data.targets import missing_mask
from trainwell.errors import DataError

if TYPE_CHECKING:
    import torch

    from trainwell.data.prepared_data import PreparedData


@dataclass
class DomainData:
    """The preprocessed target-domain rows and, when known, their labels (for evaluation)."""

    X: torch.Tensor
    y: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)


def _labels(values: np.ndarray, prepared: PreparedData, origin: str) -> np.ndarray | None:
    """The target's labels as the source's class indices (or values); None if all missing."""
    miss = missing_mask(values)
    if miss.all():
        return None
    if miss.any():
        raise DataError(
            f"domain.target: {origin} has labels in some rows only ({int(miss.sum())} missing); "
            "target labels are for evaluation: give all of them or none"
        )
    if prepared.classes is None:  # regression: on the scale the source's targets train on
        y = values.astype(np.float64).astype(np.float32).reshape(len(values), -1)
        scale = getattr(prepared, "target_scale", None)
        return scale.transform(y).astype(np.float32) if scale is not None else y
    index = {str(c): i for i, c in enumerate(prepared.classes)}
    flat = values.reshape(-1)
    unknown = sorted({str(v) for v in flat if _key(v) not in index})
    if unknown:
        raise DataError(
            f"domain.target: {origin} has labels {unknown[:5]} that are not classes of the "
            f"source ({prepared.classes[:10]}); the target domain shares the source's classes"
        )
    return np.asarray([index[_key(v)] for v in flat], dtype=np.int64)


def _key(v: Any) -> str:
    """A label as the source's classes spell it (1.0 and 1 are one class)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v.item() if isinstance(v, np.generic) else v)


def prepare_domain(source: str, params: dict[str, Any], prepared: PreparedData, seed: int
                   ) -> DomainData:
    """Read the target domain's ``source`` (``[domain] target`` and ``params``) and
    preprocess it with the source's fitted pipeline.

    Raises:
        DataError: the target's features do not match the source's (the columns or the image
            shape are named), or its labels are not the source's classes.
    """
    import torch

    raw = read_source(source, params, seed)
    pipe = prepared.pipeline
    if pipe.kind == "table":
        if not isinstance(raw, RawTable):
            raise DataError(f"domain.target: {raw.origin} gives images but the source "
                            f"({prepared.source}) is a table: the domains must share features")
        frame = raw.frame
        frame.columns = [str(c) for c in frame.columns]
        features = list(pipe.columns)
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise DataError(
                f"domain.target: {raw.origin} lacks the source's feature column(s) {missing} "
                f"(its columns: {list(frame.columns)}); the target domain must have the "
                f"source's features {features}"
            )
        try:
            X = pipe.frame_to_array(frame[features], raw.origin)
        except DataError as exc:  # say which data: the source's steps refuse the target's rows
            raise DataError(f"domain.target: {raw.origin}: {exc}") from None
        names = [c for c in prepared.info.get("target", []) if c in frame.columns]
        y = _labels(frame[names].to_numpy(), prepared, raw.origin) if names else None
    else:
        if not isinstance(raw, RawImages):
            raise DataError(f"domain.target: {raw.origin} must be images held in memory (a "
                            f"builtin or NPZ image set) like the source {prepared.source}")
        if tuple(raw.X.shape[1:]) != tuple(prepared.input_shape):
            raise DataError(
                f"domain.target: {raw.origin} has images of shape {tuple(raw.X.shape[1:])} but "
                f"the source's are {tuple(prepared.input_shape)}: the domains must share features"
            )
        X = pipe.transform_images(raw.X)
        y = None if raw.y is None else _labels(np.asarray(raw.y).reshape(-1, 1), prepared,
                                               raw.origin)
    if not len(X):
        raise DataError(f"domain.target: {raw.origin} has no rows")
    info = {
        "origin": raw.origin,
        "n_rows": int(len(X)),
        "labelled": y is not None,
        "features_after": {
            "mean": np.asarray(X.reshape(len(X), -1).mean(0), dtype=float).tolist()[:50],
            "std": np.asarray(X.reshape(len(X), -1).std(0), dtype=float).tolist()[:50],
        },
        "preprocess": "fitted on the source training split",
    }
    prepared.info["domain"] = info
    return DomainData(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
                      None if y is None else torch.from_numpy(y), info)


__all__ = ["DomainData", "prepare_domain"]
