"""The ensemble directory: its ``ensemble.json``, the checks a loaded one gets, the predictor
that combines its members and the ensemble's ``results.json``.

An ensemble directory is a folder ``runs/<name>/`` holding ``ensemble.json`` (the method and
the members) and ``members/<k>/``, each an ordinary run directory. Training the members is
:mod:`trainwell.ensemble_run`'s work; this module only reads what the members left, so that
:func:`trainwell.api.load` can hand an ensemble back like a run.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainwell.after.averaging import AVERAGING, average_predictions
from trainwell.after.calibration import (
    DEFAULT_BINS,
    accuracy,
    expected_calibration_error,
    log_loss,
    reliability_bins,
)
from trainwell.errors import RunError, TrainwellError
from trainwell.runs import read_data_info, read_json

ENSEMBLE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
FORMAT = 1


def is_ensemble_dir(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble directory (it holds ``ensemble.json``)."""
    return (Path(path) / ENSEMBLE_FILE).is_file()


@dataclass
class EnsembleSpec:
    """What ``ensemble.json`` says, checked: the method, the kind and the members' folders."""

    path: Path
    method: str
    kind: str
    members: list[dict[str, Any]]
    info: dict[str, Any]

    @property
    def member_dirs(self) -> list[Path]:
        return [self.path / m["dir"] for m in self.members]

    @property
    def bins(self) -> int:
        return int(self.info.get("ece_bins", DEFAULT_BINS))


def read_ensemble(path: str | Path) -> EnsembleSpec:
    """``ensemble.json`` of ``path``, its fields checked (the file and field are named).

    Raises:
        RunError: the file is missing or damaged.
    """
    path = Path(path)
    file = path / ENSEMBLE_FILE
    info = read_json(file)
    members = info.get("members")
    if not isinstance(members, list) or not members or not all(
        isinstance(m, dict) and isinstance(m.get("dir"), str) for m in members
    ):
        raise RunError(f"{file} is damaged: members should be a list of {{\"dir\": ...}} "
                       f"objects; got {members!r:.80}")
    for m in members:
        where = Path(m["dir"])
        if where.is_absolute() or ".." in where.parts:
            raise RunError(f"{file} is damaged: member folder {m['dir']!r} is not inside the "
                           "ensemble directory")
    method = info.get("method")
    if not isinstance(method, str) or method not in AVERAGING:
        raise RunError(f"{file} is damaged: method should be one of "
                       f"{', '.join(AVERAGING.names())}; got {method!r:.60}")
    return EnsembleSpec(path, AVERAGING.canonical(method), str(info.get("kind", "members")),
                        members, info)


def check_members(spec: EnsembleSpec, need: Sequence[str] = ("model.safetensors",)
                  ) -> dict[str, Any]:
    """Every member folder exists, holds ``need`` and a sound ``data.json``, and all members
    share one task and one class list; returns the first member's ``data.json``.

    Raises:
        RunError: a member is missing or damaged, or members disagree (both are named).
    """
    first: dict[str, Any] | None = None
    first_dir: Path | None = None
    for k, d in enumerate(spec.member_dirs):
        if not d.is_dir():
            raise RunError(f"ensemble {spec.path}: member {k} ({d}) is missing")
        for name in need:
            if not (d / name).is_file():
                raise RunError(f"ensemble {spec.path}: member {k} ({d}) has no {name}: it is "
                               "damaged or was never finished")
        info = read_data_info(d)
        if info.get("heads"):
            raise RunError(f"ensemble {spec.path}: member {k} ({d}) is a run with [heads]; "
                           "ensembles combine runs of one output")
        if first is None:
            first, first_dir = info, d
            continue
        for key in ("task", "classes", "n_outputs"):
            if info.get(key) != first.get(key):
                raise RunError(
                    f"ensemble {spec.path}: members disagree on {key}: {first_dir} has "
                    f"{first.get(key)!r:.60}, {d} has {info.get(key)!r:.60}; an ensemble "
                    "combines runs of one task and one set of classes"
                )
    assert first is not None
    return first


# ---------------------------------------------------------------------------- prediction


class EnsemblePredictor:
    """The members of an ensemble directory, predicting together: each member applies its own
    preprocessing and model, and the ensemble's method combines their probabilities (or, for
    regression, averages their predictions). What :func:`trainwell.load` returns for an
    ensemble directory; it answers ``predict``, ``predict_proba`` and ``predict_table`` as a
    run's predictor does.
    """

    def __init__(self, run_dir: Path, members: Sequence[Any], spec: EnsembleSpec,
                 data_info: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.members = list(members)
        self.spec = spec
        self.method = spec.method
        self.task: str = data_info["task"]
        self.classes: list[Any] | None = data_info.get("classes")
        self.heads = None
        self.data_info = data_info

    def __len__(self) -> int:
        return len(self.members)

    def predict_proba(self, raw: Any) -> np.ndarray:
        """The combined class probabilities, one column per class in the order of ``classes``."""
        if self.task == "regression":
            raise TrainwellError("predict_proba needs a classification run; this ensemble is "
                                 "regression")
        return np.asarray(average_predictions([m.predict_proba(raw) for m in self.members],
                                              self.method, task=self.task))

    def predict(self, raw: Any) -> np.ndarray:
        """Labels in the training data's own values, or for regression the members' mean."""
        if self.task == "regression":
            values = [np.asarray(m.predict(raw), dtype=np.float64) for m in self.members]
            return np.asarray(average_predictions(values, "mean", task="regression"))
        pred = self.predict_proba(raw).argmax(1)
        return np.asarray(self.classes)[pred] if self.classes is not None else pred

    def predict_table(self, raw: Any, *, tta: bool = False, mc_samples: int = 0,
                      seed: int = 0) -> dict[str, Any]:
        """Columns for a prediction file, as a run's: ``id``, ``prediction`` and
        ``proba_<class>`` (regression: ``prediction`` / ``prediction_<i>``), the members'
        columns combined; ``tta`` / ``mc_samples`` are each member's (docs/tta.md)."""
        tables = [m.predict_table(raw, tta=tta, mc_samples=mc_samples, seed=seed)
                  for m in self.members]
        first = tables[0]
        out: dict[str, Any] = {"id": first["id"]}
        if self.task == "regression":
            for key in first:
                if key.startswith("prediction"):
                    out[key] = np.asarray(average_predictions(
                        [np.asarray(t[key], dtype=np.float64) for t in tables], "mean",
                        task="regression"))
            return out
        keys = [k for k in first if k.startswith("proba_")]
        proba = np.asarray(average_predictions(
            [np.stack([np.asarray(t[k], dtype=np.float64) for k in keys], 1) for t in tables],
            self.method, task=self.task))
        pred = proba.argmax(1)
        out["prediction"] = np.asarray(self.classes)[pred] if self.classes is not None else pred
        out.update({k: proba[:, i] for i, k in enumerate(keys)})
        return out


# ---------------------------------------------------------------------------- results


def _member_arrays(d: Path) -> dict[str, np.ndarray]:
    path = d / "predictions.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunError(f"{path} does not exist: the member has no test predictions (an "
                       "empty test split?)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise RunError(f"{path} cannot be read: it is damaged ({exc})") from None


def _scores(task: str, y: np.ndarray, arrays: dict[str, np.ndarray], bins: int
            ) -> dict[str, float]:
    if task == "regression":
        err = np.asarray(arrays["y_pred"], dtype=np.float64).reshape(len(y), -1) - \
            np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean())}
    p = arrays["proba"]
    return {"accuracy": accuracy(p, y), "log_loss": log_loss(p, y),
            "ece": expected_calibration_error(p, y, bins)}


def ensemble_results(spec: EnsembleSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The test scores of each member, of the members' mean and of the ensemble, from the
    members' ``predictions.npz`` (all must be on the same test rows), and the ensemble's own
    test predictions (``y_true``, ``y_pred``, ``proba``).

    Raises:
        RunError: a member's predictions are missing or damaged, or members were tested on
            different rows.
    """
    info = check_members(spec, ("model.safetensors", "predictions.npz"))
    task = info["task"]
    arrays = [_member_arrays(d) for d in spec.member_dirs]
    y = arrays[0].get("y_true")
    key = "y_pred" if task == "regression" else "proba"
    for k, (d, a) in enumerate(zip(spec.member_dirs, arrays, strict=True)):
        if key not in a or "y_true" not in a:
            raise RunError(f"{d / 'predictions.npz'} is damaged: it has no {key} or y_true")
        if y is None or a["y_true"].shape != y.shape or not np.array_equal(a["y_true"], y):
            raise RunError(f"ensemble {spec.path}: member {k} ({d}) was tested on other rows "
                           "than member 0; members must share their data (same data section "
                           "and data.seed)")
    assert y is not None
    bins = spec.bins
    members = [{"name": m.get("name", str(k)), "dir": m["dir"], **_scores(task, y, a, bins)}
               for k, (m, a) in enumerate(zip(spec.members, arrays, strict=True))]
    metric_names = [n for n in members[0] if n not in ("name", "dir")]
    mean = {n: float(np.mean([m[n] for m in members])) for n in metric_names}
    if task == "regression":
        combined = np.asarray(average_predictions(
            [np.asarray(a["y_pred"], dtype=np.float64) for a in arrays], "mean",
            task="regression"))
        own = {"y_true": y, "y_pred": combined}
    else:
        proba = np.asarray(average_predictions([a["proba"] for a in arrays], spec.method,
                                               task=task))
        own = {"y_true": y, "y_pred": proba.argmax(1), "proba": proba}
    results: dict[str, Any] = {
        "task": task,
        "method": spec.method,
        "kind": spec.kind,
        "n_members": len(members),
        "n_test": int(len(y)),
        "members": members,
        "members_mean": mean,
        "ensemble": _scores(task, y, own, bins),
    }
    if task != "regression":
        results["ece_bins"] = bins
        results["reliability"] = {
            "ensemble": reliability_bins(own["proba"], y, bins),
            "members": [reliability_bins(a["proba"], y, bins) for a in arrays],
        }
    return results, own


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


__all__ = [
    "ENSEMBLE_FILE",
    "MEMBERS_DIR",
    "EnsemblePredictor",
    "EnsembleSpec",
    "check_members",
    "ensemble_results",
    "is_ensemble_dir",
    "read_ensemble",
]
