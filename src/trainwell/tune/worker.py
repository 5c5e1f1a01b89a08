"""One worker of a study: claim a trial, draw its configuration, train it, record the result;
repeat until the budget is spent. And the workers of one ``tune`` on one machine.

Workers share nothing but the storage, so the same loop runs as ``--workers K`` processes on one
machine or as one process on each of many machines pointed at one PostgreSQL URL.

* Grid points, or for the other methods empty "slots" up to the budget, are enqueued once as
  WAITING trials and *claimed* with a compare-and-set on the trial's state (one transaction that
  also records the claimant and the claim's sequence number), so two workers never evaluate the
  same grid point and K workers run exactly the budget between them.
* A claimed slot's configuration is drawn at once, in the order of the claims: a worker first
  waits until every trial claimed before its own has its configuration stored, so the sampler
  sees those trials as pending (no two workers sampling at the same instant get the same
  point), and :class:`~trainwell.search.distinct.DistinctSampler` refuses a configuration that
  any trial of the study already has.
* Ctrl-C or SIGTERM (:mod:`trainwell.tune.interrupts`): a worker stops its trial between two
  storage calls and puts it back in the queue with its configuration (WAITING, not FAIL), then
  exits; ``tune --resume`` runs it again, resuming its run directory from its last checkpoint.
* A worker that dies (killed, crashed): when the other workers are done, ``tune`` fails its
  trial, closes its run directory and queues a copy of it (``tune.max_retry``), then runs the
  copies, so a study never ends with a RUNNING trial of its own. Trials of a worker on another
  machine are failed and re-queued by heartbeats, as before (``tune.heartbeat``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trainwell.errors import ConfigError, TrainwellError
from trainwell.tune.interrupts import StopSignals
from trainwell.tune.results import STAGE_ATTR

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from trainwell.search.space import Param

log = logging.getLogger(__name__)

Direction = Literal["minimize", "maximize"]

#: seconds a worker waits for a trial claimed before its own to have its configuration drawn
#: (a worker that died between its claim and its draw is waited for no longer than this)
DRAW_WAIT_S = 60.0
#: seconds the workers get to put their trials back in the queue after Ctrl-C
STOP_GRACE_S = 10.0
#: rounds of workers at most: the first, then one per wave of copies of dead workers' trials
MAX_ROUNDS = 10
EXIT_INTERRUPTED = 130  # a worker process stopped by a signal, its trial back in the queue


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
    session: str = ""  # one ``tune`` run on this machine: the trials its workers claim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_params(spec: StageSpec, cfg: Any) -> tuple[list[Param], dict[str, Any]]:
    """The stage's space, parsed, and the config dict its ``when`` conditions read."""
    from trainwell.search.space import parse_space

    if spec.candidates:  # algorithm selection: the joint space of the candidates
        from trainwell.tune.select import selection_space

        params = parse_space(selection_space(cfg))
    else:
        params = parse_space(spec.space)
    return params, {k: v for k, v in spec.config.items() if k != "tune"}


def load_study(spec: StageSpec) -> tuple[optuna.Study, Any]:
    """The stage's Optuna study, drawing through a
    :class:`~trainwell.search.distinct.DistinctSampler` of the stage's method, and its config."""
    import optuna

    from trainwell.config import config_from_dict
    from trainwell.search.distinct import DistinctSampler
    from trainwell.search.pruners import make_pruner
    from trainwell.search.samplers import make_sampler
    from trainwell.tune.storage import open_storage

    cfg = config_from_dict(dict(spec.config), "study config")
    storage = open_storage(spec.storage, cfg.tune.heartbeat, cfg.tune.max_retry)
    params, base = stage_params(spec, cfg)
    # each trial draws from its own stream, seeded from the study seed and its number: no two
    # trials, workers or resumptions replay one stream
    sampler = DistinctSampler(
        lambda seed: make_sampler(cfg.tune, seed, spec.method), params, base, spec.seed
    )
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


# ---------------------------------------------------------------------------- who claimed a trial


def claimant(session: str) -> dict[str, Any]:
    """What a claim records about the worker: its ``tune`` session, machine and process."""
    return {"session": session, "host": socket.gethostname(), "pid": os.getpid()}


def claim_of(trial: FrozenTrial) -> dict[str, Any]:
    from trainwell.search.optuna_internals import CLAIM_ATTR

    claim = trial.system_attrs.get(CLAIM_ATTR)
    return claim if isinstance(claim, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is alive (a zombie, dead but not yet reaped by
    its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def dead_here(claim: dict[str, Any]) -> bool:
    """Whether a claim was made by a process of this machine that is no longer alive."""
    pid = claim.get("pid")
    return (
        claim.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not pid_alive(pid)
    )


# ---------------------------------------------------------------------------- drawing in order


def wait_for_earlier_claims(
    study: optuna.Study, trial: optuna.Trial, stop: StopSignals, timeout: float = DRAW_WAIT_S
) -> None:
    """Wait until every trial claimed before ``trial`` has its configuration drawn (or is no
    longer running, or its worker is dead, or ``timeout`` seconds passed since it was first
    seen undrawn); return early when a stop is requested."""
    from optuna.trial import TrialState

    from trainwell.search.optuna_internals import DRAWN_ATTR, storage_of, trial_id

    mine = claim_of(storage_of(study).get_trial(trial_id(trial))).get("seq")
    if mine is None:
        return
    first_seen: dict[int, float] = {}
    while not stop.requested:
        now = time.monotonic()
        earlier = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number != trial.number
            and isinstance(seq := claim_of(t).get("seq"), int)
            and seq < mine
            and not t.system_attrs.get(DRAWN_ATTR)
            and not dead_here(claim_of(t))
            and now - first_seen.setdefault(t.number, now) < timeout
        ]
        if not earlier:
            return
        time.sleep(0.02)


def draw(
    study: optuna.Study,
    trial: optuna.Trial,
    params: list[Param],
    base: dict[str, Any],
    stop: StopSignals,
) -> None:
    """Draw and store ``trial``'s whole configuration, after those of the trials claimed before
    it; then mark it drawn."""
    from trainwell.search.optuna_internals import DRAWN_ATTR, storage_of, trial_id
    from trainwell.search.space import suggest

    wait_for_earlier_claims(study, trial, stop)
    suggest(trial, params, base)
    storage_of(study).set_trial_system_attr(trial_id(trial), DRAWN_ATTR, True)


# ---------------------------------------------------------------------------- one trial


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Any,
    stop: StopSignals | None = None,
    prepare: Any = None,
) -> None:
    """Run one trial under a heartbeat and record COMPLETE, PRUNED or FAIL; an interrupted trial
    goes back to the queue (WAITING) and the interrupt propagates.

    Args:
        stop: the worker's stop signals; the objective runs interruptible under it.
        prepare: called first, under the heartbeat (the worker's :func:`draw`).
    """
    import optuna
    from optuna.trial import TrialState

    from trainwell.search.optuna_internals import storage_of, trial_id
    from trainwell.tune.storage import Heartbeat

    stop = stop or StopSignals()  # not entered: no handlers, a flag only
    with Heartbeat(storage_of(study), trial_id(trial)):
        try:
            if prepare is not None:
                prepare()
            with stop.interruptible():
                value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            put_back(study, trial.number)
            raise
        except ConfigError:
            study.tell(trial, state=TrialState.FAIL)
            raise  # the user's mistake, the same for every trial: stop now
        except (TrainwellError, ArithmeticError, RuntimeError, ValueError) as exc:
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            state = TrialState.FAIL
        except BaseException as exc:
            # a bug: record the trial as failed, then let it propagate
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


def put_back(study: optuna.Study, number: int) -> bool:
    """Put an interrupted RUNNING trial back in the queue with its configuration; on a storage
    that cannot (not an RDB one), fail it. Whether it is back in the queue."""
    from optuna.trial import TrialState

    from trainwell.search.optuna_internals import requeue, storage_of, trial_id

    if requeue(study, number):
        return True
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None and trial.state == TrialState.RUNNING:
        storage = storage_of(study)
        storage.set_trial_user_attr(trial_id(trial), "error", "interrupted")
        storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    return False


def spec_stage(trial: optuna.Trial | FrozenTrial) -> str:
    stage = trial.user_attrs.get(STAGE_ATTR, "")
    return f"{stage}-" if stage and stage != "search" else ""


def _short(params: dict[str, Any]) -> str:
    from trainwell.search.space import decode

    parts = []
    for k, v in params.items():
        v = decode(v)
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- one worker


def run_worker(spec: StageSpec, worker_index: int = 0, fn: Any = None) -> int:
    """Run trials of ``spec`` until its budget is spent (or its grid is exhausted); return how
    many. A stop signal ends the worker with ``KeyboardInterrupt``, its trial back in the
    queue."""
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
    study, cfg = load_study(spec)
    objective = make_objective(spec, cfg, fn)
    params, base = stage_params(spec, cfg)
    me = claimant(spec.session)
    done = 0
    with StopSignals() as stop:
        while not stop.requested:
            with quiet_optuna():
                optuna.storages.fail_stale_trials(study)
                # grid points and budget slots are queued by the parent; claim one or stop
                trial = claim_waiting(study, me)
            if trial is None:
                break

            def prepare(trial: optuna.Trial = trial) -> None:
                draw(study, trial, params, base, stop)

            run_trial(study, trial, objective, stop, prepare)
            done += 1
        if stop.requested:
            raise KeyboardInterrupt
    return done


def _process_main(spec_dict: dict[str, Any], worker_index: int) -> None:
    import logging as _logging

    _logging.basicConfig(level=_logging.WARNING)
    try:
        run_worker(StageSpec(**spec_dict), worker_index)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)  # its trial is back in the queue; the parent reports it


# ---------------------------------------------------------------------------- the workers of a tune


def run_workers(
    spec: StageSpec, workers: int, fn: Any = None, study: optuna.Study | None = None
) -> None:
    """Run ``workers`` workers on this machine (one thread each; in this process when there is
    one) until the queue is empty.

    Trials left RUNNING by workers of this machine that died (in this run, or in an earlier one
    that was killed) are failed, their run directories closed, and copies of them queued and
    run (``tune.max_retry``). On Ctrl-C or SIGTERM the workers put their trials back in the
    queue and stop; ``KeyboardInterrupt`` propagates once every trial of this run is back.
    ``study`` is the stage's study when the caller has it open already.
    """
    if workers > 1 and fn is not None and not isinstance(fn, str):
        raise ConfigError(
            "tune: with workers > 1 the objective must be importable: pass 'module:function'"
        )
    spec = replace(spec, session=spec.session or uuid.uuid4().hex)
    study = study or _open(spec)

    def earlier(claim: dict[str, Any]) -> bool:  # a tune before this one, killed
        return claim.get("session") != spec.session and dead_here(claim)

    def ours(claim: dict[str, Any]) -> bool:  # this tune's, once its workers are done
        return claim.get("session") == spec.session and (
            claim.get("pid") == os.getpid() or dead_here(claim)
        )

    with StopSignals() as stop:
        try:
            _recover(study, spec, _running(study, earlier))
            for _ in range(MAX_ROUNDS):
                codes = _run_round(spec, workers, fn, stop)
                if stop.requested:
                    raise KeyboardInterrupt
                left = _running(study, ours)
                if not left:
                    break
                _recover(study, spec, left, codes)
                waiting = _waiting(study)
                if not waiting:
                    break
                workers = min(workers, waiting)  # the copies of the dead workers' trials
        except KeyboardInterrupt:
            # trials whose worker was killed before it could put them back
            for t in _running(study, ours):
                put_back(study, t.number)
                _close_run_dir(spec, t, "interrupted")
            raise


def _open(spec: StageSpec) -> optuna.Study:
    """The stage's study, for the bookkeeping of the parent process (it draws nothing)."""
    import optuna

    from trainwell.config import config_from_dict
    from trainwell.tune.storage import open_storage

    cfg = config_from_dict(dict(spec.config), "study config")
    storage = open_storage(spec.storage, cfg.tune.heartbeat, cfg.tune.max_retry)
    return optuna.load_study(study_name=spec.study_name, storage=storage)


def _run_round(
    spec: StageSpec, workers: int, fn: Any, stop: StopSignals
) -> dict[int, int | None]:
    """One round of workers until the queue is empty; the worker processes' exit codes by pid
    (empty when the worker ran in this process)."""
    if workers <= 1:
        run_worker(spec, 0, fn)
        return {}
    import multiprocessing as mp

    # fork where there is one (Linux): a worker starts in milliseconds instead of re-importing
    # torch; it opens its own storage connection and leaves with os._exit, so the parent's
    # pooled connections are never touched. Elsewhere, spawn.
    ctx: mp.context.ForkContext | mp.context.SpawnContext = (
        mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    )
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # children read it before torch starts
    procs = [
        ctx.Process(target=_process_main, args=(spec.to_dict(), i), daemon=False)
        for i in range(workers)
    ]
    try:
        for p in procs:
            p.start()
        with stop.interruptible():
            for p in procs:
                p.join()
    except KeyboardInterrupt:
        _end_workers(procs)
        raise
    finally:
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_before
    codes = {p.pid: p.exitcode for p in procs if p.pid is not None}
    stopped = [c for c in codes.values() if c == EXIT_INTERRUPTED]
    bad = [c for c in codes.values() if c not in (0, None, EXIT_INTERRUPTED)]
    if stopped:
        log.warning(
            "%d of %d workers were stopped by a signal; their trials are back in the queue "
            "(continue with --resume)",
            len(stopped),
            workers,
        )
    if bad:
        log.warning(
            "%d of %d workers exited with errors (codes %s); finished trials are kept",
            len(bad),
            workers,
            bad,
        )
    return codes


def _end_workers(procs: list[Any]) -> None:
    """After Ctrl-C: pass the stop on to the workers (a signal sent to the parent alone reaches
    them too), give them :data:`STOP_GRACE_S` to put their trials back, then kill the rest."""
    import signal

    started = [p for p in procs if p.pid is not None]
    for p in started:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_GRACE_S
    for p in started:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in started:
        if p.is_alive():
            p.kill()
            p.join(5)


def _running(study: optuna.Study, accept: Any) -> list[FrozenTrial]:
    """The RUNNING trials whose claim ``accept(claim)`` accepts."""
    from optuna.trial import TrialState

    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if (claim := claim_of(t)) and accept(claim)
    ]


def _waiting(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _recover(
    study: optuna.Study,
    spec: StageSpec,
    trials: list[FrozenTrial],
    codes: dict[int, int | None] | None = None,
) -> None:
    """Fail each trial of a dead worker, close its run directory, and queue a copy of it (at
    most ``tune.max_retry`` copies of one trial, as Optuna's heartbeat retry does)."""
    import optuna
    from optuna.trial import TrialState

    from trainwell.search.optuna_internals import storage_of, trial_id

    max_retry = int(spec.config.get("tune", {}).get("max_retry", 1))
    storage = storage_of(study)
    for t in trials:
        code = (codes or {}).get(claim_of(t).get("pid", -1))
        how = f" (exit code {code})" if code is not None else ""
        why = f"its worker process (pid {claim_of(t).get('pid')}) died{how}"
        try:
            storage.set_trial_user_attr(trial_id(t), "error", why)
            if not storage.set_trial_state_values(trial_id(t), TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # failed meanwhile by another worker's heartbeat check
        _close_run_dir(spec, t, "failed")
        history = [*t.system_attrs.get("retry_history", []), t.number]
        copied = len(history) <= max_retry
        if copied:
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=t.params,
                    distributions=t.distributions,
                    user_attrs={
                        k: v for k, v in t.user_attrs.items() if k not in ("error", "run_dir")
                    },
                    system_attrs={
                        "failed_trial": t.system_attrs.get("failed_trial", t.number),
                        "retry_history": history,
                    },
                )
            )
        log.warning(
            "trial %s%d failed: %s%s",
            spec_stage(t),
            t.number,
            why,
            "; a copy of it is queued" if copied else "",
        )


def _close_run_dir(spec: StageSpec, trial: FrozenTrial, status: str) -> None:
    """Give a trial's run directory a final status when it was left "running"."""
    from trainwell.runs import read_json, write_json_atomic

    rel = trial.user_attrs.get("run_dir")
    if not rel:
        return
    path = Path(spec.study_dir) / str(rel) / "meta.json"
    try:
        meta = read_json(path) if path.is_file() else None
        if isinstance(meta, dict) and meta.get("status") == "running":
            meta.update(status=status, finished=datetime.now(UTC).isoformat(timespec="seconds"))
            write_json_atomic(path, meta)
    except (TrainwellError, OSError) as exc:
        log.warning("could not close the run directory of trial %d: %s", trial.number, exc)


__all__ = [
    "DRAW_WAIT_S",
    "MAX_ROUNDS",
    "STOP_GRACE_S",
    "Direction",
    "StageSpec",
    "claimant",
    "draw",
    "enqueue_budget",
    "load_study",
    "put_back",
    "run_trial",
    "run_worker",
    "run_workers",
    "stage_params",
    "wait_for_earlier_claims",
]
