"""Calibration of predicted probabilities: expected calibration error and reliability bins
(the `ece` metric of `[train] metrics`, the ensemble report).

With ``B`` equal-width bins of the confidence (the largest class probability of a row), bin
``b`` holding the rows whose confidence lies in ``(b/B, (b+1)/B]`` (the first bin also takes a
confidence of exactly 0), the expected calibration error is

    ECE = sum over bins of  n_b / N * | accuracy_b - confidence_b |

where ``accuracy_b`` is the fraction of the bin's rows predicted right and ``confidence_b``
their mean confidence (Guo et al. 2017; 15 bins by default). A perfectly calibrated model has
ECE 0; the reliability diagram plots ``accuracy_b`` against ``confidence_b``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: bins of the expected calibration error unless told otherwise
DEFAULT_BINS = 15


def _arrays(proba: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(proba.detach().cpu() if hasattr(proba, "detach") else proba, dtype=np.float64)
    t = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y).reshape(-1).astype(np.int64)
    if p.ndim != 2 or len(p) != len(t):
        raise ValueError(f"probabilities must be (N, C) with one label per row; got {p.shape} "
                         f"and {t.shape[0]} labels")
    if len(t) and (t.min() < 0 or t.max() >= p.shape[1]):
        bad = int(t.min()) if t.min() < 0 else int(t.max())
        raise ValueError(f"labels must be class indices 0 .. {p.shape[1] - 1} (the columns of "
                         f"the probabilities); got {bad}")
    return p, t


def reliability_bins(proba: Any, y: Any, bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Per bin: ``count``, ``confidence`` (mean) and ``accuracy`` (NaN for an empty bin), and the
    bins' ``edges`` (``bins + 1`` values from 0 to 1)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1; got {bins}")
    p, t = _arrays(proba, y)
    conf = p.max(1)
    right = (p.argmax(1) == t).astype(np.float64)
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, conf, minlength=bins) / count
        acc = np.bincount(index, right, minlength=bins) / count
    return {"edges": np.linspace(0.0, 1.0, bins + 1).tolist(), "count": count.tolist(),
            "confidence": mean_conf.tolist(), "accuracy": acc.tolist()}


def expected_calibration_error(proba: Any, y: Any, bins: int = DEFAULT_BINS) -> float:
    """ECE of probabilities ``proba`` (N, C) against class indices ``y`` (see the module).

    Example:
        >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], bins=10)
        0.35
    """
    table = reliability_bins(proba, y, bins)
    n = sum(table["count"])
    if n == 0:
        return math.nan
    return float(sum(c / n * abs(a - m) for c, a, m in
                     zip(table["count"], table["accuracy"], table["confidence"], strict=True)
                     if c > 0))


def log_loss(proba: Any, y: Any, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class (probabilities clamped at ``eps``)."""
    p, t = _arrays(proba, y)
    return float(-np.log(np.clip(p[np.arange(len(t)), t], eps, None)).mean())


def accuracy(proba: Any, y: Any) -> float:
    """Fraction of rows whose largest probability is the true class (ties: the lowest index)."""
    p, t = _arrays(proba, y)
    return float((p.argmax(1) == t).mean())


__all__ = ["DEFAULT_BINS", "accuracy", "expected_calibration_error", "log_loss",
           "reliability_bins"]
