"""Read a study directory: ``study.json``, the trials (``study.db`` or ``trials.csv``), trial runs.

The Optuna database is the authority when it is there (it knows each parameter's distribution,
so log-scaled parameters are drawn on log axes); ``trials.csv`` is the fallback.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwell.errors import RunError
from trainwell.report.rundata import RunData, damaged, is_run_dir, is_study_dir, load_run
from trainwell.runs import read_json

logger = logging.getLogger(__name__)


STAGE_ATTR = "trainwell:stage"


@dataclass
class TrialData:
    """One trial; ``index`` orders trials across the stages of a coarse-to-fine study."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    stage: str = ""
    run_dir: str = ""
    index: int = 0
    run: RunData | None = None

    def label(self, staged: bool) -> str:
        return f"{self.stage} {self.number}" if staged and self.stage else str(self.number)


def objective_values(trials: list[TrialData]) -> list[float]:
    """The objective values of ``trials`` that have one (every completed trial does)."""
    return [float(t.value) for t in trials if t.value is not None]


@dataclass
class StudyData:
    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    trials: list[TrialData] = field(default_factory=list)
    log_params: set[str] = field(default_factory=set)
    importances: dict[str, float] = field(default_factory=dict)
    source: str = ""
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        d = str(self.info.get("direction", "minimize")).lower()
        return "maximize" if d.startswith("max") else "minimize"

    @property
    def metric(self) -> str:
        return str(self.info.get("metric") or "value")

    def completed(self) -> list[TrialData]:
        return [t for t in self.trials if t.value is not None and math.isfinite(t.value)
                and t.state.upper() == "COMPLETE"]

    def ranked(self) -> list[TrialData]:
        """Completed trials, best first (ties broken by trial order)."""
        sign = -1.0 if self.direction == "maximize" else 1.0
        return sorted(self.completed(), key=lambda t: (sign * float(t.value or 0.0), t.index))

    def best(self) -> TrialData | None:
        """The best trial as ``study.json`` names it, else the top of :meth:`ranked`."""
        named = self.info.get("best_trial")
        if isinstance(named, dict) and "number" in named:
            for t in self.trials:
                if t.number == named["number"] and (not named.get("stage") or not self.staged
                                                     or t.stage == named["stage"]):
                    return t
        ranked = self.ranked()
        return ranked[0] if ranked else None

    @property
    def staged(self) -> bool:
        """Whether the trials come from several stages (numbers then restart per stage)."""
        return len({t.stage for t in self.trials}) > 1

    def param_names(self) -> list[str]:
        names: list[str] = []
        for t in self.trials:
            names += [p for p in t.params if p not in names]
        return sorted(names)


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _from_db(study: StudyData, db: Path) -> bool:
    try:
        import optuna
        from optuna.distributions import FloatDistribution, IntDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{db.resolve()}"
        names = optuna.study.get_all_study_names(storage=storage)
        wanted = study.info.get("study_name")
        # one study, or the stages "<name>/<stage>" of a coarse-to-fine search
        chosen = [n for n in names if wanted and (n == wanted or n.startswith(f"{wanted}/"))]
        chosen = chosen or names[:1]
        if not chosen:
            study.problems["study.db"] = "study.db holds no study"
            return False
        last = None
        for name in chosen:
            last = optuna.load_study(study_name=name, storage=storage)
            for ft in last.get_trials(deepcopy=False):
                if ft.state.name == "WAITING":
                    continue
                value = ft.values[0] if ft.values else None
                default_stage = name.rpartition("/")[2] if "/" in name else ""
                stage = str(ft.user_attrs.get(STAGE_ATTR, default_stage))
                study.trials.append(TrialData(ft.number, ft.state.name, _num(value),
                                              dict(ft.params), stage,
                                              str(ft.user_attrs.get("run_dir", ""))))
                for pname, dist in ft.distributions.items():
                    if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
                        study.log_params.add(pname)
        if not study.importances and last is not None and len(study.completed()) >= 3 \
                and study.param_names():
            from optuna.importance import FanovaImportanceEvaluator, get_param_importances

            try:
                imp = get_param_importances(last, evaluator=FanovaImportanceEvaluator(seed=0))
                study.importances = {k: float(v) for k, v in imp.items()}
            except (RuntimeError, ValueError) as exc:  # e.g. one distinct value per parameter
                study.problems["importances"] = f"parameter importances cannot be computed: {exc}"
        study.source = "study.db"
        return True
    except Exception as exc:  # a locked, corrupt or newer-schema database: fall back to the CSV
        study.problems["study.db"] = f"study.db cannot be read ({type(exc).__name__}: {exc})"
        study.trials.clear()
        return False


def _from_csv(study: StudyData, path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        study.problems["trials.csv"] = f"trials.csv cannot be read: {exc}"
        return False
    for i, row in enumerate(rows):
        params = {}
        for key, raw in row.items():
            # trainwell writes "params.<name>"; Optuna's trials_dataframe "params_<name>"
            for prefix in ("params.", "params_"):
                if key and key.startswith(prefix) and raw not in (None, ""):
                    num = _num(raw)
                    params[key[len(prefix):]] = num if num is not None else raw
        number = _num(row.get("number"))
        state = str(row.get("state") or "COMPLETE").upper()
        value = _num(row.get("value")) if state == "COMPLETE" else None
        study.trials.append(TrialData(int(number) if number is not None else i, state, value,
                                      params, str(row.get("stage") or ""),
                                      str(row.get("run_dir") or "")))
    study.source = "trials.csv"
    return True


def load_study_dir(path: str | Path) -> StudyData:
    """Read everything a study report shows.

    Raises:
        RunError: if ``path`` is not a study directory.
    """
    path = Path(path)
    if not is_study_dir(path):
        raise RunError(f"{path} is not a study directory: it holds none of study.json, "
                       "study.db, trials.csv")
    study = StudyData(path=path)
    info_path = path / "study.json"
    if info_path.is_file():
        try:
            study.info = read_json(info_path)
        except RunError as exc:
            damaged(study.problems, info_path, str(exc).removeprefix(str(info_path)).lstrip())
    else:
        study.problems["study.json"] = "study.json is absent"
    imp = study.info.get("importances")
    if isinstance(imp, dict):
        study.importances = {str(k): float(v) for k, v in imp.items() if _num(v) is not None}
    loaded = (path / "study.db").is_file() and _from_db(study, path / "study.db")
    if not loaded and (path / "trials.csv").is_file():
        _from_csv(study, path / "trials.csv")
    for i, t in enumerate(study.trials):
        t.index = i
        trial_dir = path / (t.run_dir or f"trials/{t.number}")
        if not trial_dir.resolve().is_relative_to(path.resolve()):
            # a trial's run lives inside its study; a damaged or edited row that points
            # elsewhere is not followed
            logger.warning("trial %d: run_dir %r is outside the study; not read",
                           t.number, t.run_dir)
            continue
        if is_run_dir(trial_dir):
            try:
                t.run = load_run(trial_dir)
            except RunError as exc:
                logger.warning("trial %d: %s", t.number, exc)
    return study
