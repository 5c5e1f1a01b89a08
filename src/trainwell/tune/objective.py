"""The trial objective: what one trial of a study computes, in one place.

:func:`make_objective` turns a stage (:class:`trainwell.tune.worker.StageSpec`) into Optuna's
trial function: sample the space into the config, then train that config
(:func:`train_trial`) or call the user's objective on it (:func:`evaluate_config`). An
algorithm-selection stage evaluates its ``network`` candidate through :func:`evaluate_config`
too (:class:`trainwell.tune.select.SelectionObjective`).

The trainer does not import optuna: :class:`PruningCallback` reports each epoch's metric to the
trial and raises trainwell's :class:`~trainwell.errors.StopRun` (status ``pruned``) when the
pruner says so; the run ends ``pruned`` and :func:`train_trial` hands Optuna its own
``TrialPruned``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError, StopRun
from trainwell.runs import MetricsLog, read_json
from trainwell.tune.results import STAGE_ATTR

if TYPE_CHECKING:
    import optuna

    from trainwell.config import Config
    from trainwell.tune.worker import StageSpec

ObjectiveFn = Callable[["Config", "optuna.Trial"], float]


class PruningCallback:
    """Report ``metric`` of each epoch to an Optuna trial; stop hopeless trials.

    Args:
        trial: the Optuna trial.
        metric: key of the trainer's per-epoch history record (``val_loss``, ``val_accuracy``).
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self._reported: set[int] = set()

    def after_epoch(self, trainer: Any) -> None:
        record = trainer.history[-1] if trainer.history else {}
        value = record.get(self.metric)
        if value is None:
            raise ConfigError(
                f"tune.metric: {self.metric!r} is not among the per-epoch metrics "
                f"({', '.join(sorted(record))}); pick one of them"
            )
        step = int(record.get("epoch", getattr(trainer, "epoch", len(trainer.history))))
        # a run resumed from its checkpoint (a trial put back in the queue by Ctrl-C) reports
        # the epochs its checkpoint holds first, so the trial's curve has every epoch
        self.report_history(trainer.history[:-1])
        self.trial.report(float(value), step)
        self._reported.add(step)
        if self.trial.should_prune():
            raise StopRun(
                f"pruned at epoch {step}: {self.metric} = {float(value):.4g}", status="pruned"
            )


    def report_history(self, history: list[dict[str, Any]]) -> None:
        """Report each epoch of ``history`` (the trainer's records) not reported yet."""
        for i, record in enumerate(history, start=1):
            at = int(record.get("epoch", i))
            if at not in self._reported and record.get(self.metric) is not None:
                self.trial.report(float(record[self.metric]), at)
                self._reported.add(at)


def load_objective(spec: str | ObjectiveFn) -> ObjectiveFn:
    """A custom objective given as a callable or as ``"module:function"`` (importable in
    workers)."""
    if callable(spec):
        return spec
    module, sep, name = str(spec).partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"objective must be 'module:function'; got {spec!r}")
    try:
        fn: ObjectiveFn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"objective {spec!r} cannot be imported: {exc}") from None
    return fn


def train_trial(
    cfg: Config, trial: optuna.Trial, metric: str, trials_dir: Path, prefix: str = ""
) -> float:
    """Train ``cfg`` as trial ``trial.number`` in ``trials_dir/<prefix><number>/``; return its
    metric. A run the pruner stops raises :class:`~trainwell.errors.StopRun`."""
    from trainwell.api import fit

    cfg = cfg.model_copy(deep=True)
    cfg.runs_dir = str(trials_dir)
    cfg.log.report = False  # a page per trial costs ~1.5 s; the study report covers the trials
    name = f"{prefix}{trial.number}"
    trial.set_user_attr("run_dir", str(Path("trials") / name))
    pruning = PruningCallback(trial, metric)
    run_dir = trials_dir / name
    # the trainer's epoch lines would interleave across trials and workers: the study reports
    # one line per trial instead, and each run keeps its epochs in metrics.jsonl
    with contextlib.redirect_stdout(io.StringIO()):
        earlier = earlier_run(run_dir, cfg)
        if earlier == "completed":  # trained to its end before the interrupt
            results = read_json(run_dir / "results.json")
            pruning.report_history(MetricsLog(run_dir / "metrics.jsonl").read())
        elif earlier == "resume":
            results = fit(resume=run_dir, quiet=True, callbacks=[pruning]).results
        else:
            results = fit(cfg, name=name, quiet=True, callbacks=[pruning]).results
    best = results.get("best") or {}
    if metric not in best:
        raise ConfigError(
            f"tune.metric: {metric!r} is not in the run's results (best: {', '.join(sorted(best))})"
        )
    value = float(best[metric])
    if not math.isfinite(value):
        raise FloatingPointError(f"{metric} is {value}")
    return value


def earlier_run(run_dir: Path, cfg: Config) -> str | None:
    """What a trial run again (it was interrupted and put back in the queue) finds in its run
    directory: ``"completed"`` (trained to the end, results written), ``"resume"`` (the same
    config with a checkpoint to resume from), or None (nothing there: train from the start).

    A run directory interrupted before its first checkpoint holds nothing a new run would not
    write again, and is removed; one of another config is moved aside (``<name>-old``).
    """
    import shutil

    from trainwell.config import load_config
    from trainwell.errors import TrainwellError
    from trainwell.runs import unique_name

    if not run_dir.exists():
        return None
    try:
        same = same_run(load_config(run_dir / "config.toml").to_dict(), cfg.to_dict())
        status = read_json(run_dir / "meta.json").get("status")
    except (TrainwellError, OSError, AttributeError):
        same, status = False, None
    if same and status == "completed" and (run_dir / "results.json").is_file():
        return "completed"
    if same and (run_dir / "checkpoints" / "last.json").is_file():
        return "resume"
    if same:
        shutil.rmtree(run_dir)
    else:
        run_dir.rename(run_dir.with_name(unique_name(run_dir.parent, f"{run_dir.name}-old")))
    return None


def same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two config dicts train the same thing (their name and runs_dir aside)."""
    strip = ("name", "runs_dir")
    return {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def evaluate_config(
    trial: optuna.Trial,
    raw: dict[str, Any],
    spec: StageSpec,
    custom: ObjectiveFn | None,
    trials_dir: Path,
) -> float:
    """The value of trial ``trial`` whose config dict is ``raw``: the stage's epochs set, the
    config validated, then trained (or given to the user's objective ``custom``).

    A run stopped by the pruner (:class:`~trainwell.errors.StopRun` with status ``pruned``)
    becomes Optuna's ``TrialPruned``, so the trial is recorded PRUNED, not FAIL.
    """
    import optuna

    from trainwell.config import config_from_dict

    if spec.epochs is not None:
        raw.setdefault("train", {})["epochs"] = int(spec.epochs)
    trial_cfg = config_from_dict(raw, f"trial {trial.number}")
    try:
        if custom is not None:
            return float(custom(trial_cfg, trial))
        return train_trial(trial_cfg, trial, spec.metric, trials_dir, spec.trial_prefix)
    except StopRun as exc:
        if exc.status != "pruned":
            raise
        raise optuna.TrialPruned(str(exc)) from None


def make_objective(
    spec: StageSpec, cfg: Config, fn: ObjectiveFn | str | None = None
) -> Callable[[optuna.Trial], float]:
    """The trial function of a stage: sample the space into the config, then train it or call
    the user's objective (``fn``, else the stage's ``objective``)."""
    from trainwell.search.space import apply_params, parse_space, suggest

    base = {k: v for k, v in spec.config.items() if k != "tune"}
    source = fn if fn is not None else spec.objective
    custom = load_objective(source) if source is not None else None
    trials_dir = Path(spec.study_dir) / "trials"
    if spec.candidates:
        from trainwell.tune.select import SelectionObjective

        return SelectionObjective(spec, cfg, custom, trials_dir)
    params = parse_space(spec.space)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(STAGE_ATTR, spec.stage)
        values = suggest(trial, params, base)
        return evaluate_config(trial, apply_params(base, values), spec, custom, trials_dir)

    return objective


__all__ = [
    "PruningCallback",
    "earlier_run",
    "evaluate_config",
    "load_objective",
    "make_objective",
    "same_run",
    "train_trial",
]
