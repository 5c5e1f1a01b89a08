"""Read a run directory defensively: every file may be absent, empty, torn or damaged.

A report is most useful exactly when a run went wrong, so nothing here raises for a missing or
unreadable file: each source is loaded into :class:`RunData` and its problem, if any, is kept in
``RunData.problems`` for the report to show next to the section that needed it. A file that is
there but damaged (not JSON, nested too deeply, a torn or altered ``predictions.npz``, arrays of
the wrong kind) is also named in a warning, so that the command says what it left out.
"""

from __future__ import annotations

import json
import tomllib
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwell.errors import RunError
from trainwell.runs import read_json

# what results.json's wall_time measures (Trainer.elapsed), as the reports name and explain it
TIME_LABEL = "training wall time"
TIME_NOTE = ("Training wall time: the clock time of the epochs (training and validation passes, "
             "and the callbacks between them), as the trainer measured it; it leaves out "
             "imports, data loading and preprocessing, building the model, the doctor's checks, "
             "compile warm-up and the test evaluation. A resumed run adds up its parts.")

RUN_MARKERS = ("meta.json", "metrics.jsonl", "config.toml", "results.json")
STUDY_MARKERS = ("study.json", "study.db", "trials.csv")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run's files (a study directory also has a config.toml)."""
    if not path.is_dir() or not any((path / m).is_file() for m in RUN_MARKERS):
        return False
    own = ("meta.json", "metrics.jsonl")
    return not is_study_dir(path) or any((path / m).is_file() for m in own)


def is_study_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in STUDY_MARKERS)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (killed process) ends the read."""
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            break
        if isinstance(rec, dict):
            out.append(rec)
    return out


@dataclass
class RunData:
    """Everything a report reads from one run directory; absent parts are empty."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    doctor: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)  # worst_examples.npz
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def task(self) -> str | None:
        task = self.data.get("task")
        return str(task) if task else None

    def metric_names(self) -> list[str]:
        """Per-epoch metric columns other than bookkeeping, in first-seen order."""
        skip = {"epoch", "step", "lr", "epoch_time", "time"}
        names: list[str] = []
        for rec in self.metrics:
            for key, value in rec.items():
                if key not in skip and key not in names and _is_number(value):
                    names.append(key)
        return names

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of one metrics column, skipping epochs that lack it."""
        xs, ys = [], []
        for i, rec in enumerate(self.metrics):
            value, epoch = rec.get(key), rec.get("epoch")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                xs.append(float(epoch) if isinstance(epoch, (int, float)) else float(i + 1))
                ys.append(float(value))
        return xs, ys


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def damaged(problems: dict[str, str], path: Path, problem: str) -> None:
    """Record that the file at ``path`` is there but cannot be used (``problem``: what is wrong,
    e.g. "is not valid JSON ..."), and say so in a warning."""
    problems[path.name] = f"{path.name} {problem}"
    warnings.warn(f"{path} {problem}; the report leaves it out", stacklevel=2)


def _load_json(run: RunData, name: str) -> dict[str, Any]:
    path = run.path / name
    if not path.is_file():
        run.problems[name] = f"{name} is absent"
        return {}
    try:
        return read_json(path)
    except RunError as exc:
        damaged(run.problems, path, str(exc).removeprefix(str(path)).lstrip())
        return {}


def _load_jsonl(run: RunData, name: str) -> list[dict[str, Any]]:
    path = run.path / name
    if not path.is_file():
        run.problems[name] = f"{name} is absent"
        return []
    try:
        records = read_jsonl(path)
    except (OSError, UnicodeDecodeError) as exc:
        run.problems[name] = f"{name} cannot be read: {exc}"
        return []
    if not records:
        run.problems[name] = f"{name} holds no records"
    return records


# more classes than this in a classification run's predictions is a damaged file (the report's
# confusion matrix is classes x classes)
MAX_CLASSES = 10_000


def _read_npz(run: RunData, path: Path) -> dict[str, Any] | None:
    """The named arrays of an npz file (no pickle), or None with the damage noted in
    ``run.problems``."""
    import numpy as np

    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # one bare array, not named arrays
            raise ValueError("it holds a single array, not named arrays")
        with npz:
            return {k: npz[k] for k in sorted(npz.files)}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        what = str(exc) or type(exc).__name__
        damaged(run.problems, path, f"cannot be read (torn or altered): {what}")
        return None


def _load_predictions(run: RunData) -> dict[str, Any]:

    path = run.path / "predictions.npz"
    if not path.is_file():
        run.problems["predictions.npz"] = "predictions.npz is absent"
        return {}
    arrays = _read_npz(run, path)
    if arrays is None:
        return {}
    problem = predictions_problem(arrays, run.task, run.data.get("classes"))
    if problem:
        damaged(run.problems, path, f"is damaged: {problem}")
        return {}
    return arrays


def predictions_problem(arrays: dict[str, Any], task: str | None, classes: Any) -> str | None:
    """What keeps the arrays of a ``predictions.npz`` from being shown, or None.

    Every array holds numbers, one row per test sample (all of the same length, at most two
    dimensions); in a classification run, ``y_true`` and ``y_pred`` hold class indices below
    the number of classes.
    """
    import numpy as np

    lengths = set()
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            return f"{key} holds {a.dtype} values, not numbers"
        if a.ndim not in (1, 2):
            return f"{key} has shape {a.shape}; one row per test sample (1 or 2 dimensions)"
        lengths.add(len(a))
    if len(lengths) > 1:
        shown = ", ".join(f"{k} {len(a)}" for k, a in arrays.items())
        return f"its arrays have different numbers of rows ({shown})"
    if task not in ("binary", "multiclass"):
        return None
    bound = len(classes) if isinstance(classes, list) and classes else MAX_CLASSES
    for key in ("y_true", "y_pred"):
        a = arrays.get(key)
        if a is None or a.size == 0:
            continue
        values = a.astype(np.float64)
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            return f"{key} should hold class indices; it holds other numbers"
        if values.min() < 0 or values.max() >= bound:
            return (f"{key} should hold class indices 0 to {bound - 1}; it holds "
                    f"{values.min():.0f} to {values.max():.0f}")
    return None


def load_run(path: str | Path) -> RunData:
    """Read every file of a run directory that a report uses.

    Raises:
        RunError: if ``path`` is not a run directory at all.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist")
    if not is_run_dir(path) and is_study_dir(path):
        raise RunError(f"{path} is a study directory, not a run: report it with "
                       "write_study_report (trainwell report does this by itself)")
    if not is_run_dir(path):
        raise RunError(
            f"{path} is not a run directory: it holds none of {', '.join(RUN_MARKERS)}"
        )
    run = RunData(path=path)
    cfg_path = path / "config.toml"
    if cfg_path.is_file():
        try:
            run.config_text = cfg_path.read_text(encoding="utf-8")
            run.config = tomllib.loads(run.config_text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            damaged(run.problems, cfg_path, f"cannot be read: {exc}")
        except RecursionError:
            damaged(run.problems, cfg_path, "nests arrays or tables too deeply: it is damaged")
    else:
        run.problems["config.toml"] = "config.toml is absent"
    run.meta = _load_json(run, "meta.json")
    run.data = _load_json(run, "data.json")
    if not isinstance(run.data.get("classes"), (list, type(None))):
        damaged(run.problems, path / "data.json", "is damaged: its classes are not a list")
        run.data = {}
    run.results = _load_json(run, "results.json")
    run.doctor = _load_json(run, "doctor.json")
    run.metrics = _load_jsonl(run, "metrics.jsonl")
    run.stats = _load_jsonl(run, "stats.jsonl")
    run.predictions = _load_predictions(run)
    run.examples = _load_examples(run)
    return run


def _load_examples(run: RunData) -> dict[str, Any]:
    """``worst_examples.npz`` (the worst test samples), checked against the predictions."""

    from trainwell.report.examples import FILE, examples_problem

    path = run.path / FILE
    if not path.is_file():
        run.problems[FILE] = f"{FILE} is absent"
        return {}
    arrays = _read_npz(run, path)
    if arrays is None:
        return {}
    y_true = run.predictions.get("y_true")
    if y_true is None:
        run.problems[FILE] = f"{FILE} needs the test predictions (predictions.npz's y_true)"
        return {}
    problem = examples_problem(arrays, len(y_true))
    if problem:
        damaged(run.problems, path, f"is damaged: {problem}")
        return {}
    return arrays


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"optimizer": {"lr": 0.1}}}`` -> ``{"train.optimizer.lr": 0.1}``."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key in obj:
            out.update(flatten(obj[key], f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix] = obj
    return out
