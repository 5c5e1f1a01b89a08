"""Trial objectives: one training run per trial, with per-epoch reports for the pruner.

The trainer does not import optuna; :class:`PruningCallback` adapts it: after each epoch it
reports the metric to the trial and raises ``optuna.TrialPruned`` when the pruner says so.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from trainwell.config import Config

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

    def after_epoch(self, trainer: Any) -> None:
        import optuna

        record = trainer.history[-1] if trainer.history else {}
        value = record.get(self.metric)
        if value is None:
            raise ConfigError(
                f"tune.metric: {self.metric!r} is not among the per-epoch metrics "
                f"({', '.join(sorted(record))}); pick one of them"
            )
        step = int(record.get("epoch", getattr(trainer, "epoch", len(trainer.history))))
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {step}: {self.metric} = {float(value):.4g}")


def load_objective(spec: str | ObjectiveFn) -> ObjectiveFn:
    """A custom objective given as a callable or as ``"module:function"`` (importable in workers)."""
    if callable(spec):
        return spec
    module, sep, name = str(spec).partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"objective must be 'module:function'; got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"objective {spec!r} cannot be imported: {exc}") from None
    return fn


def read_metric(run_dir: Path, metric: str) -> float:
    """The best-epoch value of ``metric`` from a finished run's ``results.json``."""
    from trainwell.runs import read_json

    results = read_json(run_dir / "results.json")
    best = results.get("best") or {}
    if metric not in best:
        raise ConfigError(
            f"tune.metric: {metric!r} is not in the run's results (best: {', '.join(sorted(best))})"
        )
    return float(best[metric])


def train_trial(
    cfg: Config, trial: optuna.Trial, metric: str, trials_dir: Path, prefix: str = ""
) -> float:
    """Train ``cfg`` as trial ``trial.number`` in ``trials_dir/<prefix><number>/``; return its metric."""
    from trainwell.api import fit

    cfg = cfg.model_copy(deep=True)
    cfg.runs_dir = str(trials_dir)
    cfg.log.report = False  # a page per trial costs ~1.5 s; the study report covers the trials
    name = f"{prefix}{trial.number}"
    trial.set_user_attr("run_dir", str(Path("trials") / name))
    # the trainer's epoch lines would interleave across trials and workers: the study reports
    # one line per trial instead, and each run keeps its epochs in metrics.jsonl
    with contextlib.redirect_stdout(io.StringIO()):
        run = fit(cfg, name=name, quiet=True, callbacks=[PruningCallback(trial, metric)])
    best = run.results.get("best") or {}
    if metric not in best:
        raise ConfigError(
            f"tune.metric: {metric!r} is not in the run's results (best: {', '.join(sorted(best))})"
        )
    value = float(best[metric])
    if not math.isfinite(value):
        raise FloatingPointError(f"{metric} is {value}")
    return value


__all__ = ["PruningCallback", "load_objective", "read_metric", "train_trial"]
