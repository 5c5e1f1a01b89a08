"""One worker of a study: claim a trial, train it, record the result; repeat until the budget is spent.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError, TrainwellError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

STAGE_ATTR = "trainwell:stage"


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
    direction: str
    stage: str = "search"
    epochs: int | None = None
    objective: str | None = None
    seed: int = 0
    trial_prefix: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_pruner(cfg: Any) -> optuna.pruners.BasePruner:
    """The pruner of ``[tune].pruner``: median, successive halving, or none."""
    import optuna

    p = cfg.tune.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs
        )
    if p.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, p.warmup_epochs))
    return optuna.pruners.NopPruner()


def load_study(spec: StageSpec, worker_index: int = 0) -> tuple[optuna.Study, Any]:
    import optuna

    from trainwell.config import config_from_dict
    from trainwell.tune.samplers import make_sampler
    from trainwell.tune.storage import open_storage

    cfg = config_from_dict(dict(spec.config), "study config")
    storage = open_storage(spec.storage, cfg.tune.heartbeat, cfg.tune.max_retry)
    probe = optuna.load_study(study_name=spec.study_name, storage=storage)
    # each worker, and each resumption, draws from its own random stream (a resumed random
    # search must not replay the configs it already tried)
    seed = spec.seed + 7919 * worker_index + 104729 * len(probe.get_trials(deepcopy=False))
    sampler = make_sampler(cfg.tune, seed % (2**31), spec.method)
    study = optuna.load_study(
        study_name=spec.study_name, storage=storage, sampler=sampler, pruner=make_pruner(cfg)
    )
    return study, cfg


def build_objective(spec: StageSpec, cfg: Any, fn: Any = None):  # noqa: ANN201
    """The trial function of a stage: sample the space into the config, then train or call ``fn``."""
    from trainwell.config import config_from_dict
    from trainwell.tune.objective import load_objective, train_trial
    from trainwell.tune.space import apply_params, parse_space, suggest

    base = dict(spec.config)
    base.pop("tune", None)
    custom = load_objective(fn or spec.objective) if (fn or spec.objective) else None
    trials_dir = Path(spec.study_dir) / "trials"

    if spec.candidates:
        from trainwell.tune.select import SelectionObjective

        return SelectionObjective(spec, cfg, custom, trials_dir)
    params = parse_space(spec.space)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(STAGE_ATTR, spec.stage)
        values = suggest(trial, params, base)
        raw = apply_params(base, values)
        if spec.epochs is not None:
            raw.setdefault("train", {})["epochs"] = int(spec.epochs)
        trial_cfg = config_from_dict(raw, f"trial {trial.number}")
        if custom is not None:
            return float(custom(trial_cfg, trial))
        return train_trial(trial_cfg, trial, spec.metric, trials_dir, spec.trial_prefix)

    return objective


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


def _claim_waiting(study: optuna.Study) -> int | None:
    """Atomically move one WAITING trial to RUNNING; its id, or None when the queue is empty
    (what ``Study.ask`` does first, without its fallback of creating a new trial).

    The claim is one conditional ``UPDATE ... WHERE state = WAITING`` whose row count says who
    won. Optuna's own ``set_trial_state_values`` reads the state first with ``SELECT ... FOR
    UPDATE``, which SQLite ignores: two workers on one SQLite study could both claim a trial.
    """
    import optuna
    from optuna.trial import TrialState

    backend = getattr(study._storage, "_backend", study._storage)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if isinstance(backend, optuna.storages.RDBStorage):
            if _claim_rdb(backend, t._trial_id):
                return t._trial_id
            continue
        try:
            if study._storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                return t._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:  # finished meanwhile
            continue
    return None


def _claim_rdb(storage: optuna.storages.RDBStorage, trial_id: int) -> bool:
    """WAITING -> RUNNING for one trial in a single atomic statement (with its first heartbeat);
    whether this call won."""
    from datetime import datetime, timezone

    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    model = models.TrialModel
    stmt = (
        sqlalchemy.update(model)
        .where(model.trial_id == trial_id, model.state == TrialState.WAITING)
        .values(
            state=TrialState.RUNNING,
            _datetime_start_utc=datetime.now(timezone.utc).replace(tzinfo=None),
        )
        .execution_options(synchronize_session=False)
    )
    with storage.engine.begin() as conn:
        if conn.execute(stmt).rowcount != 1:
            return False
        if storage.get_heartbeat_interval():
            # the first heartbeat in the same transaction: a worker killed right after its claim
            # leaves a trial that goes stale (and is failed and re-queued), never one RUNNING forever
            conn.execute(sqlalchemy.insert(models.TrialHeartbeatModel).values(trial_id=trial_id))
        return True


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Any) -> None:
    """Run one trial under a heartbeat and record COMPLETE, PRUNED or FAIL."""
    import optuna
    from optuna.trial import TrialState

    from trainwell.tune.storage import Heartbeat

    with Heartbeat(study._storage, trial._trial_id):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except ConfigError:
            study.tell(trial, state=TrialState.FAIL)
            raise  # the user's mistake, the same for every trial: stop now
        except (TrainwellError, ArithmeticError, RuntimeError, ValueError) as exc:
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=TrialState.FAIL)
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
    finished = study._storage.get_trial(trial._trial_id)
    log.info("trial %s%d: %s", spec_stage(trial), trial.number, finished.state.name.lower())


def spec_stage(trial: optuna.Trial) -> str:
    stage = trial.user_attrs.get(STAGE_ATTR, "")
    return f"{stage}-" if stage and stage != "search" else ""


def _short(params: dict[str, Any]) -> str:
    from trainwell.tune.space import decode

    parts = []
    for k, v in params.items():
        v = decode(v)
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def run_worker(spec: StageSpec, worker_index: int = 0, fn: Any = None) -> int:
    """Run trials of ``spec`` until its budget is spent (or its grid is exhausted); return how many."""
    import optuna

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from trainwell.tune.storage import quiet_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, cfg = load_study(spec, worker_index)
    objective = build_objective(spec, cfg, fn)
    done = 0
    while True:
        with quiet_optuna():
            optuna.storages.fail_stale_trials(study)
            # grid points and budget slots are queued by the parent; claim one or stop
            trial_id = _claim_waiting(study)
            if trial_id is None:
                break
            trial = optuna.Trial(study, trial_id)
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
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
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
    "STAGE_ATTR",
    "StageSpec",
    "enqueue_budget",
    "build_objective",
    "make_pruner",
    "run_trial",
    "run_worker",
    "run_workers",
]
