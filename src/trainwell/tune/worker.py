"""One worker of a study: claim a trial, train it, record the result; repeat until the budget
is spent.

Workers share nothing but the storage, so the same loop runs as ``--workers K`` processes on one
machine or as one process on each of many machines pointed at one PostgreSQL URL.

* Grid points, or for the other methods empty "slots" up to the budget, are enqueued once as
  WAITING trials and *claimed* with a compare-and-set on the trial's state (Optuna's storage
  does it in one transaction), so two workers never evaluate the same grid point and K workers
  run exactly the budget between them; the sampler fills a slot's parameters when it is claimed.
* A trial whose worker died is failed by the next worker that looks (heartbeats) and re-queued;
  re-queued copies do not count against the budget.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from trainwell.errors import ConfigError, TrainwellError
from trainwell.tune.results import STAGE_ATTR

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

Direction = Literal["minimize", "maximize"]


@dataclass
class StageSpec:
    """Everything a worker process needs to run trials of one study stage (picklable)."""

    study_dir: str
    storage: str
    study_name: str
    config: dict[str, Any]
    space: dict[str, Any]
    method: str
    trials: int
    metric: str
    direction: Direction
    stage: str = "search"
    epochs: int | None = None
    objective: str | None = None
    seed: int = 0
    trial_prefix: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_study(spec: StageSpec, worker_index: int = 0) -> tuple[optuna.Study, Any]:
    import optuna

    from trainwell.config import config_from_dict
    from trainwell.search.pruners import make_pruner
    from trainwell.search.samplers import make_sampler
    from trainwell.tune.storage import open_storage

    cfg = config_from_dict(dict(spec.config), "study config")
    storage = open_storage(spec.storage, cfg.tune.heartbeat, cfg.tune.max_retry)
    probe = optuna.load_study(study_name=spec.study_name, storage=storage)
    # each worker, and each resumption, draws from its own random stream (a resumed random
    # search must not replay the configs it already tried)
    seed = spec.seed + 7919 * worker_index + 104729 * len(probe.get_trials(deepcopy=False))
    sampler = make_sampler(cfg.tune, seed % (2**31), spec.method)
    study = optuna.load_study(
        study_name=spec.study_name,
        storage=storage,
        sampler=sampler,
        pruner=make_pruner(cfg.tune.pruner),
    )
    return study, cfg


def enqueue_budget(study: optuna.Study, trials: int) -> int:
    """Queue empty trials (the sampler fills them when claimed) until the study holds
    ``trials`` of them; return how many were added.

    The budget is counted in the storage, so K workers claiming from the queue run exactly
    ``trials`` trials between them. Re-queued copies of trials whose worker died are extra.
    """
    slots = [t for t in study.get_trials(deepcopy=False) if "failed_trial" not in t.system_attrs]
    missing = max(0, trials - len(slots))
    for _ in range(missing):
        study.enqueue_trial({}, user_attrs={"trainwell:slot": True})
    return missing


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Any) -> None:
    """Run one trial under a heartbeat and record COMPLETE, PRUNED or FAIL."""
    import optuna
    from optuna.trial import TrialState

    from trainwell.search.optuna_internals import storage_of, trial_id
    from trainwell.tune.storage import Heartbeat

    with Heartbeat(storage_of(study), trial_id(trial)):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except ConfigError:
            study.tell(trial, state=TrialState.FAIL)
            raise  # the user's mistake, the same for every trial: stop now
        except (TrainwellError, ArithmeticError, RuntimeError, ValueError) as exc:
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            state = TrialState.FAIL
        except BaseException as exc:
            # a bug or an interrupt: record the trial as failed, then let it propagate
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
            log.info(
                "trial %s%d: %.5g  %s", spec_stage(trial), trial.number, value, _short(trial.params)
            )
            return
        study.tell(trial, state=state)
    log.info("trial %s%d: %s", spec_stage(trial), trial.number, state.name.lower())


def spec_stage(trial: optuna.Trial) -> str:
    stage = trial.user_attrs.get(STAGE_ATTR, "")
    return f"{stage}-" if stage and stage != "search" else ""


def _short(params: dict[str, Any]) -> str:
    from trainwell.search.space import decode

    parts = []
    for k, v in params.items():
        v = decode(v)
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def run_worker(spec: StageSpec, worker_index: int = 0, fn: Any = None) -> int:
    """Run trials of ``spec`` until its budget is spent (or its grid is exhausted); return how
    many."""
    import optuna

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from trainwell.search.optuna_internals import claim_waiting
    from trainwell.tune.objective import make_objective
    from trainwell.tune.storage import quiet_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, cfg = load_study(spec, worker_index)
    objective = make_objective(spec, cfg, fn)
    done = 0
    while True:
        with quiet_optuna():
            optuna.storages.fail_stale_trials(study)
            # grid points and budget slots are queued by the parent; claim one or stop
            trial = claim_waiting(study)
        if trial is None:
            break
        run_trial(study, trial, objective)
        done += 1
    return done


def _process_main(spec_dict: dict[str, Any], worker_index: int) -> None:
    import logging as _logging

    _logging.basicConfig(level=_logging.WARNING)
    run_worker(StageSpec(**spec_dict), worker_index)


def run_workers(spec: StageSpec, workers: int, fn: Any = None) -> None:
    """Run ``workers`` worker processes on this machine (one thread each) and wait."""
    if workers <= 1:
        run_worker(spec, 0, fn)
        return
    if fn is not None and not isinstance(fn, str):
        raise ConfigError(
            "tune: with workers > 1 the objective must be importable: pass 'module:function'"
        )
    import multiprocessing as mp

    # fork where there is one (Linux): a worker starts in milliseconds instead of re-importing
    # torch; it opens its own storage connection and leaves with os._exit, so the parent's
    # pooled connections are never touched. Elsewhere, spawn.
    ctx: mp.context.ForkContext | mp.context.SpawnContext = (
        mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    )
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # children read it before torch starts
    try:
        procs = [
            ctx.Process(target=_process_main, args=(spec.to_dict(), i), daemon=False)
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_before
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        log.warning(
            "%d of %d workers exited with errors (codes %s); finished trials are kept",
            len(bad),
            workers,
            bad,
        )


__all__ = [
    "Direction",
    "StageSpec",
    "enqueue_budget",
    "load_study",
    "run_trial",
    "run_worker",
    "run_workers",
]
