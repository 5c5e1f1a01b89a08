"""Lecture 002's coarse-to-fine recipe (steps 4-5 of "Choosing Hyperparameters").

1. coarse: random search over the whole space, short trials (``recipe.coarse_epochs``, 1-5
   epochs as the lecture says), many configs; hopeless trials pruned from their epoch reports;
2. refine: each range narrowed around the ``top_k`` best coarse trials, searched with Bayesian
   optimization on the full budget (``recipe.refine_epochs``, default ``train.epochs``);
3. final: the best refined config trained in full (``final/``) and written as ``best_config.toml``.

Both stages live in the same storage as two Optuna studies, ``<name>/coarse`` and
``<name>/refine``; their trials' run directories are ``trials/coarse-<n>/`` and
``trials/refine-<n>/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import TrainwellError
from trainwell.search.samplers import method_of
from trainwell.search.space import narrow, parse_space, to_spec
from trainwell.tune.worker import Direction, StageSpec

if TYPE_CHECKING:
    from trainwell.config import Config
    from trainwell.tune.study import Study

log = logging.getLogger(__name__)

COARSE_METHOD = "random"  # the lecture's coarse stage: random search
REFINE_METHOD = "bayes"  # the refine stage when tune.method does not learn from its trials


def _top(study: Any, k: int, direction: str) -> list[dict[str, Any]]:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    done.sort(key=lambda t: t.value, reverse=direction == "maximize")
    return [t.params for t in done[:k]]


def run_recipe(
    cfg: Config,
    study_dir: Path,
    url: str,
    study_name: str,
    metric: str,
    direction: Direction,
    seed: int,
    obj_str: str | None,
    fn: Callable[..., float] | None,
    info: dict[str, Any],
) -> Study:
    """Run coarse, refine and final; see the module docstring."""
    from trainwell.tune.study import finish, run_stage

    r = cfg.tune.recipe
    coarse = StageSpec(
        study_dir=str(study_dir),
        storage=url,
        study_name=f"{study_name}/coarse",
        config=cfg.to_dict(),
        space=cfg.tune.space,
        method=COARSE_METHOD,
        trials=r.coarse_trials,
        metric=metric,
        direction=direction,
        stage="coarse",
        epochs=r.coarse_epochs,
        objective=obj_str,
        seed=seed,
        trial_prefix="coarse-",
    )
    coarse_study = run_stage(coarse, cfg, cfg.tune.workers, fn)
    best = _top(coarse_study, r.top_k, direction)
    if not best:
        from trainwell.errors import RunError

        raise RunError(
            f"recipe: no coarse trial of {study_dir} finished; see trials.csv and the trials' logs"
        )
    params = parse_space(cfg.tune.space)
    refined = narrow(params, best, r.margin)
    refined_space = {p.path: to_spec(p) for p in refined}
    refine_epochs = r.refine_epochs or cfg.train.epochs
    # the refine stage learns from its trials: the configured method if it does, else bayes
    method = cfg.tune.method if method_of(cfg.tune.method).guided else REFINE_METHOD
    refine = replace(
        coarse,
        study_name=f"{study_name}/refine",
        space=refined_space,
        method=method,
        trials=r.refine_trials,
        stage="refine",
        epochs=refine_epochs,
        trial_prefix="refine-",
    )
    refine_study = run_stage(refine, cfg, cfg.tune.workers, fn)
    info.update(
        {
            "stages": [
                {
                    "name": "coarse",
                    "method": COARSE_METHOD,
                    "trials": r.coarse_trials,
                    "epochs": r.coarse_epochs,
                    "space": cfg.tune.space,
                },
                {
                    "name": "refine",
                    "method": method,
                    "trials": r.refine_trials,
                    "epochs": refine_epochs,
                    "space": refined_space,
                    "narrowed_around": best,
                },
            ],
            "best_epochs": refine_epochs,
        }
    )
    result = finish(
        study_dir, cfg, [coarse_study, refine_study], metric, direction, info, refine_study
    )
    if r.final and result.best_config is not None and fn is None and obj_str is None:
        result.final_run = train_final(result.best_config, study_dir)
    return result


def train_final(best: Config, study_dir: Path) -> Path:
    """Train the best config in full in ``study_dir/final``; return that run directory.

    With ``--resume`` a ``final/`` may exist already: a completed one trained from the same config
    is kept (training is seeded, it would give the same run), an interrupted one is resumed from
    its checkpoint, and one from another config (the refine stage found a better trial since) is
    moved aside to ``final-old``, ``final-old-2`` ... before the new best is trained.
    """
    from trainwell.api import fit
    from trainwell.config import load_config
    from trainwell.runs import read_json, unique_name
    from trainwell.tune.objective import same_run

    final_cfg = best.model_copy(deep=True)
    final_cfg.runs_dir = str(study_dir)
    final = study_dir / "final"
    if final.exists():
        try:
            same = same_run(load_config(final / "config.toml").to_dict(), final_cfg.to_dict())
            status = read_json(final / "meta.json").get("status")
        except TrainwellError:
            same, status = False, None
        if same and status == "completed" and (final / "results.json").is_file():
            log.info("final: %s already holds the best config, trained in full", final)
            return final
        if same and (final / "checkpoints" / "last.json").is_file():
            log.info("final: resuming the interrupted training of the best config in %s", final)
            fit(resume=final, quiet=True)
            return final
        old = study_dir / unique_name(study_dir, "final-old")
        final.rename(old)
        log.info("final: the best config changed; the previous final run is now %s", old)
    log.info(
        "final: training the best config in full (%d epochs) in %s", final_cfg.train.epochs, final
    )
    fit(final_cfg, name="final", quiet=True)
    return final


__all__ = ["run_recipe", "train_final"]
