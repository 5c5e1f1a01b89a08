"""Read a run directory defensively: every file may be absent, empty or torn.

A report is most useful exactly when a run went wrong, so nothing here raises for a missing or
unreadable file: each source is loaded into :class:`RunData` and its problem, if any, is kept in
``RunData.problems`` for the report to show next to the section that needed it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwell.errors import RunError

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
        except json.JSONDecodeError:
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


def _load_json(run: RunData, name: str) -> dict[str, Any]:
    path = run.path / name
    if not path.is_file():
        run.problems[name] = f"{name} is absent"
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        run.problems[name] = f"{name} cannot be read: {exc}"
        return {}
    if not isinstance(obj, dict):
        run.problems[name] = f"{name} does not hold a JSON object"
        return {}
    return obj


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


def _load_predictions(run: RunData) -> dict[str, Any]:
    import numpy as np

    path = run.path / "predictions.npz"
    if not path.is_file():
        run.problems["predictions.npz"] = "predictions.npz is absent"
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in sorted(npz.files)}
    except (OSError, ValueError) as exc:
        run.problems["predictions.npz"] = f"predictions.npz cannot be read: {exc}"
        return {}


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
            run.problems["config.toml"] = f"config.toml cannot be read: {exc}"
    else:
        run.problems["config.toml"] = "config.toml is absent"
    run.meta = _load_json(run, "meta.json")
    run.data = _load_json(run, "data.json")
    run.results = _load_json(run, "results.json")
    run.doctor = _load_json(run, "doctor.json")
    run.metrics = _load_jsonl(run, "metrics.jsonl")
    run.stats = _load_jsonl(run, "stats.jsonl")
    run.predictions = _load_predictions(run)
    return run


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"optimizer": {"lr": 0.1}}}`` -> ``{"train.optimizer.lr": 0.1}``."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key in obj:
            out.update(flatten(obj[key], f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix] = obj
    return out
