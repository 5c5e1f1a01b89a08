"""Training an ensemble: ``trainwell ensemble`` and :func:`trainwell.ensemble`.

Three ways to get the members of an ensemble directory (:mod:`trainwell.after.ensemble`):

* ``members``: N runs of the config (or of ``[ensemble] configs``), each with its own seed
  (``seed + k`` unless ``[ensemble] seeds`` says otherwise) and the same data: ``data.seed`` is
  pinned to the ensemble's seed, so every member trains, validates and tests on the same rows.
  Members train in parallel processes when ``jobs`` allows, one thread each.
* ``snapshot``: one run with ``cosine_restarts`` (a cycle per member) whose snapshots at the
  end of each cycle become the members (:mod:`trainwell.after.snapshot`).
* ``study``: the K best completed trials of a study, copied (not retrained), so that the
  ensemble keeps working when the study is moved or deleted.

A killed ensemble resumes (``--resume``): finished members are kept, a member that was training
resumes from its checkpoint, and the others start; nothing is trained twice. The resolved
config of each member is written under ``configs/`` when the ensemble directory is made, so a
resumed ensemble trains exactly what the first start would have.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.after.config import SNAPSHOT
from trainwell.after.ensemble import (
    ENSEMBLE_FILE,
    FORMAT,
    MEMBERS_DIR,
    check_members,
    ensemble_results,
    is_ensemble_dir,
    read_ensemble,
)
from trainwell.errors import ConfigError, RunError, TrainwellError

if TYPE_CHECKING:

    from trainwell.config import Config

logger = logging.getLogger(__name__)

CONFIGS_DIR = "configs"
TRAIN_DIR = "train"  # a snapshot ensemble's one run
#: member statuses that are final: such a member is never trained again
FINISHED = ("completed", "diverged")
#: files of a study's trial copied into an ensemble (checkpoints only serve a resume)
SKIPPED_FILES = ("checkpoints", ".lock", "report.html")


@dataclass
class Ensemble:
    """A finished ensemble directory: its results and, on first use, its predictor."""

    run_dir: Path
    results: dict[str, Any] = field(default_factory=dict)
    _predictor: Any = None

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def predictor(self) -> Any:
        """The :class:`~trainwell.after.ensemble.EnsemblePredictor` (``trainwell.load``)."""
        if self._predictor is None:
            from trainwell.api import load

            self._predictor = load(self.run_dir)
        return self._predictor

    def predict(self, raw: Any) -> Any:
        return self.predictor.predict(raw)

    def predict_proba(self, raw: Any) -> Any:
        return self.predictor.predict_proba(raw)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- entry point


def ensemble(
    config: str | Path | dict[str, Any] | Config | None = None,
    *,
    members: int | None = None,
    method: str | None = None,
    snapshot: int | None = None,
    jobs: int | str | None = None,
    name: str | None = None,
    from_study: str | Path | None = None,
    top: int | None = None,
    resume: str | Path | None = None,
    overrides: list[str] | None = None,
    quiet: bool = True,
    trust_code: bool = False,
    data: Any = None,
) -> Ensemble:
    """Train (or assemble) an ensemble and write its directory under ``runs_dir``.

    Args:
        config: a TOML path, a dict or a ``Config`` (not with ``from_study`` or ``resume``).
        members: the number of members (``[ensemble] members``).
        method: ``mean``, ``geometric``, ``vote`` or ``snapshot`` (``[ensemble] method``).
        snapshot: a snapshot ensemble of this many cycles (``method="snapshot"``).
        jobs: members trained at once (``[ensemble] jobs``; ``"auto"``: the idle cores).
        name: the ensemble directory's name; default: config ``name``, else
            ``<data>-<arch>-ensemble`` made unique.
        from_study: a study directory whose ``top`` best completed trials become the members.
        top: how many trials of ``from_study``.
        resume: an ensemble directory to finish (kept members are not trained again).
        overrides: ``section.key=value`` strings, as ``--set``.
        quiet: plain one-line-per-epoch output instead of a progress bar.
        trust_code: let a ``python:module:factory`` architecture run (``--trust-code``).
        data: in-memory data instead of ``data.source``, as for :func:`trainwell.fit`:
            ``(X, y)`` (NumPy arrays or torch tensors) or a pandas DataFrame. Every member
            trains on it (members in parallel processes where processes fork, else one at a
            time); the ensemble keeps only its fingerprint, so ``resume`` needs the same data
            again. Not with ``from_study`` (its members are trained already).

    Returns:
        The :class:`Ensemble`: ``ens.results["ensemble"]["accuracy"]``, ``ens.predict(X)``.

    Raises:
        ConfigError: a bad config or argument, refused before any directory exists.
        RunError: a missing study or run, or a damaged member.

    Example:
        >>> ens = ensemble({"data": {"source": "builtin:iris"}}, members=3)  # doctest: +SKIP
    """
    from trainwell.nn.build import trusting_code

    with trusting_code(trust_code):
        if resume is not None:
            if config is not None or from_study is not None or overrides:
                raise ConfigError("--resume continues an ensemble with its own configs; give "
                                  "no CONFIG, --from-study or --set with it")
            return _resume(Path(resume), quiet, data)
        if from_study is not None:
            if config is not None or members is not None or snapshot is not None:
                raise ConfigError("--from-study takes its members from the study; give no "
                                  "CONFIG, --members or --snapshot with it")
            if data is not None:
                raise ConfigError("from_study copies the study's trained trials and trains "
                                  "nothing: give no data= with it")
            return _from_study(Path(from_study), top, name, method, overrides)
        if top is not None:
            raise ConfigError("--top goes with --from-study STUDY")
        extra = list(overrides or [])
        if snapshot is not None:
            if method not in (None, SNAPSHOT):
                raise ConfigError(f"--snapshot {snapshot} is a snapshot ensemble; --method "
                                  f"{method} does not apply with it")
            method, members = SNAPSHOT, snapshot
        if members is not None:
            extra.append(f"ensemble.members={members}")
        if method is not None:
            extra.append(f"ensemble.method={_toml_str(method)}")
        if jobs is not None:
            extra.append(f"ensemble.jobs={jobs if isinstance(jobs, int) else _toml_str(jobs)}")
        from trainwell.config import load_config

        cfg = load_config(config, extra)
        base = Path(config).resolve().parent if isinstance(config, (str, Path)) else Path.cwd()
        if not isinstance(config, (str, Path)):
            # a dict's relative file paths are read from the working folder (as fit does): the
            # members' configs, written under configs/, record them whole
            cfg.data.resolve_paths(base)
        memory: Any = None
        if data is not None:  # checked and fingerprinted before any directory exists
            from trainwell.api import memory_source

            cfg, memory = memory_source(cfg, data, None)
        else:
            from trainwell.data.memory import require_data_again

            require_data_again(cfg.data.source, "ensemble", "trainwell.ensemble(config, ")
        with memory.held() if memory is not None else contextlib.nullcontext():
            label = f"memory:{memory.what}" if memory is not None else None
            if cfg.ensemble.method == SNAPSHOT:
                return _new_snapshot(cfg, name, quiet, label)
            return _new_members(cfg, base, name, quiet, label)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------- members


def member_configs(cfg: Config, base: Path) -> list[Config]:
    """The resolved config of each member: its seed, the ensemble's data seed, one thread each
    when members train in parallel.

    Raises:
        ConfigError: a member config is bad, or the members' data sections differ.
    """
    from trainwell.config import load_config

    ens = cfg.ensemble
    n = ens.count
    seeds = ens.seeds or [cfg.seed + k for k in range(n)]
    check_ensemble_config(cfg)
    if ens.configs:
        sources: list[Config] = []
        for text in ens.configs:
            path = Path(text) if Path(text).is_absolute() else base / text
            if not path.is_file():
                raise ConfigError(f"ensemble.configs: {text!r} does not exist (paths are "
                                  f"relative to the ensemble's config, in {base})")
            sources.append(load_config(path))
    else:
        sources = [cfg] * n
    data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    parallel = _jobs(ens.jobs, n) > 1
    out = []
    for k, (src, seed) in enumerate(zip(sources, seeds, strict=True)):
        raw = src.to_dict()
        raw.update(seed=seed, name=str(k))
        raw["data"]["seed"] = data_seed if src.data.seed is None else src.data.seed
        raw.pop("ensemble", None)
        if parallel:
            raw["train"]["threads"] = 1
        out.append(load_config(raw))
    first = out[0].data.model_dump(mode="json")
    for k, member in enumerate(out[1:], start=1):
        if member.data.model_dump(mode="json") != first:
            raise ConfigError(
                f"ensemble.configs: member {k}'s [data] differs from member 0's; the members "
                "of an ensemble share their data (source, target, split, preprocessing) so "
                "that they are tested on the same rows"
            )
    return out


def check_ensemble_config(cfg: Config) -> None:
    """What an ensemble cannot be made of, refused before anything trains: several heads (an
    ensemble combines runs of one output), an empty test split (the ensemble is scored on it),
    and a geometric mean or a vote of a regression task.

    Raises:
        ConfigError: naming the field.
    """
    if cfg.heads:
        raise ConfigError("an ensemble combines runs of one output; [heads] (several heads) "
                          "is not supported: remove it or train the runs one by one")
    split = cfg.data.split
    if split.test == 0 and split.column is None and split.indices is None:
        raise ConfigError("data.split.test is 0: an ensemble is scored on the test split; give "
                          "it a test fraction (e.g. 0.15)")
    if cfg.ensemble.method in ("geometric", "vote"):  # class probabilities: the task decides
        task = cfg.data.task
        if task == "auto":
            from trainwell.data import prepare

            task = prepare(cfg.data, cfg.seed).task
        if task == "regression":
            raise ConfigError(f"ensemble.method {cfg.ensemble.method!r} needs class "
                              "probabilities; a regression ensemble averages its members' "
                              "predictions (method = \"mean\")")


def _jobs(spec: int | str, pending: int) -> int:
    if spec == "auto":
        from trainwell.train.threads import idle_cores

        spec = idle_cores()
    return max(1, min(int(spec), pending))


def _ensemble_name(cfg: Config, suffix: str, source: str | None = None) -> str:
    """``<data>-<arch><suffix>`` made unique (``source``: what names the data, when it is
    not ``data.source``: ``memory:arrays`` for in-memory arrays)."""
    from trainwell.runs import default_run_name, unique_name

    return cfg.name or unique_name(
        Path(cfg.runs_dir), default_run_name(source or cfg.data.source, cfg.model.arch) + suffix)


def _new_members(cfg: Config, base: Path, name: str | None, quiet: bool,
                 source: str | None = None) -> Ensemble:
    from trainwell.nn.build import require_trust
    from trainwell.runs import new_run_dir, write_json_atomic, write_text_atomic

    configs = member_configs(cfg, base)
    for member in configs:
        require_trust(member.model.arch)  # before any directory exists
        from trainwell.train.metric_registry import require_metric_trust

        require_metric_trust(member.train.metrics)
    root = Path(cfg.runs_dir)
    run_name = name or _ensemble_name(cfg, "-ensemble", source)
    info = {
        "format": FORMAT,
        "kind": "members",
        "method": cfg.ensemble.method,
        "status": "running",
        "ece_bins": cfg.ensemble.ece_bins,
        "jobs": cfg.ensemble.jobs,
        "members": [{"name": str(k), "dir": f"{MEMBERS_DIR}/{k}", "seed": m.seed,
                     "config": f"{CONFIGS_DIR}/{k}.toml"} for k, m in enumerate(configs)],
        "started": _now(),
        "finished": None,
    }
    with new_run_dir(root, run_name) as staging:
        write_text_atomic(staging / "config.toml", cfg.to_toml())
        (staging / CONFIGS_DIR).mkdir()
        (staging / MEMBERS_DIR).mkdir()
        for k, member in enumerate(configs):
            write_text_atomic(staging / CONFIGS_DIR / f"{k}.toml", member.to_toml())
        write_json_atomic(staging / ENSEMBLE_FILE, info)
    with _discarded_if_refused(root / run_name):
        return _train_and_finish(root / run_name, quiet)


def _resume(path: Path, quiet: bool, data: Any = None) -> Ensemble:
    if not path.is_dir():
        raise RunError(f"cannot resume {path}: no such directory")
    if not is_ensemble_dir(path):
        raise RunError(f"cannot resume {path}: it has no {ENSEMBLE_FILE} (is it an ensemble "
                       "directory? a run resumes with trainwell train --resume)")
    spec = read_ensemble(path)
    if spec.info.get("status") == "completed":
        raise RunError(f"ensemble {path} is already completed; nothing to resume")
    from trainwell.api import memory_source
    from trainwell.config import load_config

    cfg = load_config(path / "config.toml")
    if data is None:
        from trainwell.data.memory import require_data_again

        require_data_again(cfg.data.source, "ensemble",
                           f"trainwell.ensemble(resume={str(path)!r}, ")
        return _resume_kind(path, spec, quiet)
    _, memory = memory_source(cfg, data, path)  # the ensemble's own data, by fingerprint
    with memory.held():
        return _resume_kind(path, spec, quiet)


def _resume_kind(path: Path, spec: Any, quiet: bool) -> Ensemble:
    if spec.kind == "snapshot":
        return _train_snapshot(path, quiet)
    if spec.kind != "members":
        raise RunError(f"ensemble {path} was assembled from a study ({spec.kind}); it has "
                       "nothing to train: assemble it again")
    return _train_and_finish(path, quiet)


def _train_and_finish(path: Path, quiet: bool) -> Ensemble:
    spec = read_ensemble(path)
    pending = [k for k in range(len(spec.members)) if not _finished(spec.member_dirs[k])]
    jobs = _jobs(spec.info.get("jobs", "auto"), len(pending)) if pending else 1
    if jobs > 1 and not _processes_see_held_data(path):
        logger.info("in-memory data: the members train one at a time (a new process cannot "
                    "read it where processes do not fork)")
        jobs = 1
    try:
        if jobs <= 1:
            for k in pending:
                train_member(path, k, quiet)
        else:
            _train_parallel(path, pending, jobs)
    except BaseException as exc:
        _set_status(path, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return _finish(path)


def _processes_see_held_data(path: Path) -> bool:
    """Whether the members' processes can read the ensemble's data: a file source, or data
    held in this process that a forked process inherits."""
    import multiprocessing as mp

    from trainwell.config import load_config

    source = load_config(path / "config.toml").data.source
    return not source.startswith("memory:") or "fork" in mp.get_all_start_methods()


def _finished(member_dir: Path) -> bool:
    from trainwell.runs import read_json

    if not (member_dir / "meta.json").is_file():
        return False
    with contextlib.suppress(RunError):
        return read_json(member_dir / "meta.json").get("status") in FINISHED
    return False


def train_member(path: Path, k: int, quiet: bool = True) -> None:
    """Train member ``k`` of the ensemble ``path``: resume it when its directory exists (from
    its checkpoint, or from its config when it has none), else start it."""
    from trainwell.api import fit
    from trainwell.config import load_config

    spec = read_ensemble(path)
    member_dir = spec.member_dirs[k]
    if _finished(member_dir):
        return
    if (member_dir / "config.toml").is_file():
        logger.info("resuming member %d (%s)", k, member_dir)
        fit(resume=member_dir, quiet=quiet)
        return
    for stale in member_dir.parent.glob(f".{member_dir.name}.*"):  # a start that was killed
        shutil.rmtree(stale, ignore_errors=True)
    cfg = load_config(path / spec.members[k].get("config", f"{CONFIGS_DIR}/{k}.toml"))
    cfg.runs_dir = str(member_dir.parent)
    fit(cfg, name=member_dir.name, quiet=quiet)


def _die_with_parent(parent: int) -> None:
    """In a member's process: end when the ensemble's process ends, even by SIGKILL (Linux),
    so that a killed ensemble leaves no member training behind its back."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        raise SystemExit(1)


def _member_process(path: str, k: int, parent: int, conn: Any) -> None:
    """A member's process: its training, with one thread; an error goes back as its text."""
    _die_with_parent(parent)
    import torch

    torch.set_num_threads(1)
    message = None
    try:
        train_member(Path(path), k, quiet=True)
    except TrainwellError as exc:
        message = f"{type(exc).__name__}: {exc}"
    except BaseException as exc:  # the parent reports it; this process ends
        message = f"{type(exc).__name__}: {exc}"
    conn.send(message)
    conn.close()


def _train_parallel(path: Path, pending: list[int], jobs: int) -> None:
    """Train the ``pending`` members, ``jobs`` processes at a time (one per member)."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    # as the tuner's workers: fork where it exists (nothing to import again), else spawn
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context(
        "spawn")
    logger.info("training %d members, %d at a time", len(pending), jobs)
    queue = list(pending)
    running: dict[Any, tuple[int, Any, Any]] = {}
    failed: list[str] = []
    try:
        while queue or running:
            while queue and len(running) < jobs and not failed:
                k = queue.pop(0)
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_member_process, args=(str(path), k, os.getpid(), send))
                proc.start()
                send.close()
                running[proc.sentinel] = (k, proc, recv)
            if not running:
                break
            for sentinel in wait(list(running)):
                k, proc, recv = running.pop(sentinel)
                proc.join()
                message = recv.recv() if recv.poll() else f"its process ended with {proc.exitcode}"
                recv.close()
                if message:
                    failed.append(f"member {k}: {message}")
    except BaseException:
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.join()
        raise
    if failed:
        raise RunError(f"ensemble {path}: " + "; ".join(failed))


def _set_status(path: Path, status: str) -> None:
    from trainwell.runs import read_json, write_json_atomic

    with contextlib.suppress(OSError, RunError):
        info = read_json(path / ENSEMBLE_FILE)
        info.update(status=status, finished=_now() if status == "completed" else None)
        write_json_atomic(path / ENSEMBLE_FILE, info)


def _finish(path: Path, report: bool = True) -> Ensemble:
    """The ensemble's results.json, predictions.npz and report.html; status completed."""
    from trainwell.runs import write_json_atomic

    spec = read_ensemble(path)
    results, own = ensemble_results(spec)
    write_json_atomic(path / "results.json", results)
    _write_npz(path / "predictions.npz", own)
    info = check_members(spec)
    spec.info.update(task=info["task"], classes=info.get("classes"))
    write_json_atomic(path / ENSEMBLE_FILE, spec.info)
    _set_status(path, "completed")
    if report:
        from trainwell.after.report import write_ensemble_report

        write_ensemble_report(path)
    logger.info("ensemble %s: %s", path, results["ensemble"])
    return Ensemble(path, results)


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    import numpy as np

    from trainwell.runs import write_bytes_atomic

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------- snapshots


def _new_snapshot(cfg: Config, name: str | None, quiet: bool,
                  source: str | None = None) -> Ensemble:
    from trainwell.after.snapshot import cycle_ends
    from trainwell.config import load_config
    from trainwell.nn.build import require_trust
    from trainwell.runs import new_run_dir, write_json_atomic, write_text_atomic

    cycles = cfg.ensemble.members
    check_ensemble_config(cfg)
    ends = cycle_ends(cfg.train.epochs, cycles)  # refused before any directory exists
    sched = cfg.train.schedule.name
    if sched not in ("constant", "cosine", "cosine_restarts"):
        raise ConfigError(f"a snapshot ensemble sets train.schedule to cosine_restarts (a "
                          f"cosine cycle per member); train.schedule.name is {sched!r}: remove "
                          "it or set it to \"cosine_restarts\"")
    if cfg.train.schedule.warmup:
        raise ConfigError("a snapshot ensemble's cycles start at the initial LR; "
                          "train.schedule.warmup must be 0")
    if cfg.train.average.name != "none":
        raise ConfigError(f"a snapshot ensemble's members are the weights at the end of each "
                          f"cycle, not an average; train.average is "
                          f"{cfg.train.average.name!r}: remove it, or average the weights of "
                          "each member of a members ensemble (--members)")
    require_trust(cfg.model.arch)
    from trainwell.train.metric_registry import require_metric_trust

    require_metric_trust(cfg.train.metrics)
    raw = cfg.to_dict()
    raw.pop("ensemble", None)
    raw["name"] = TRAIN_DIR
    raw["train"]["schedule"] = {**raw["train"].get("schedule", {}), "name": "cosine_restarts",
                                "cycles": cycles}
    # never stops early: a patience of the run's epochs (None is not written to TOML, and the
    # run's config is read back from configs/train.toml)
    raw["train"]["early_stopping"] = {**raw["train"].get("early_stopping", {}),
                                      "patience": cfg.train.epochs}
    run_cfg = load_config(raw)
    root = Path(cfg.runs_dir)
    run_name = name or _ensemble_name(cfg, "-snapshots", source)
    info = {
        "format": FORMAT,
        "kind": "snapshot",
        "method": "mean",
        "status": "running",
        "ece_bins": cfg.ensemble.ece_bins,
        "cycles": cycles,
        "train": TRAIN_DIR,
        "members": [{"name": str(k), "dir": f"{MEMBERS_DIR}/{k}", "epoch": e}
                    for k, e in enumerate(ends)],
        "started": _now(),
        "finished": None,
    }
    with new_run_dir(root, run_name) as staging:
        write_text_atomic(staging / "config.toml", cfg.to_toml())
        (staging / CONFIGS_DIR).mkdir()
        (staging / MEMBERS_DIR).mkdir()
        write_text_atomic(staging / CONFIGS_DIR / f"{TRAIN_DIR}.toml", run_cfg.to_toml())
        write_json_atomic(staging / ENSEMBLE_FILE, info)
    with _discarded_if_refused(root / run_name):
        return _train_snapshot(root / run_name, quiet)


@contextlib.contextmanager
def _discarded_if_refused(path: Path) -> Iterator[None]:
    """Remove a new ensemble directory when its first run is refused before it has a run
    directory (a missing ``init_from``, data or device: what ``fit`` checks before writing
    anything), so that bad input leaves nothing behind, as with ``trainwell train``."""
    try:
        yield
    except TrainwellError:
        started = [p for p in (path / MEMBERS_DIR).iterdir() if not p.name.startswith(".")] \
            if (path / MEMBERS_DIR).is_dir() else []
        if not started and not (path / TRAIN_DIR).exists():
            shutil.rmtree(path, ignore_errors=True)
        raise


def _train_snapshot(path: Path, quiet: bool) -> Ensemble:
    from trainwell.after.snapshot import SnapshotSaver
    from trainwell.api import fit
    from trainwell.config import load_config

    spec = read_ensemble(path)
    run_dir = path / TRAIN_DIR
    cfg = load_config(path / CONFIGS_DIR / f"{TRAIN_DIR}.toml")
    saver = SnapshotSaver(run_dir, cfg.train.epochs, int(spec.info["cycles"]))
    try:
        if not _finished(run_dir):
            if (run_dir / "config.toml").is_file():
                fit(resume=run_dir, quiet=quiet, callbacks=[saver])
            else:
                for stale in path.glob(f".{TRAIN_DIR}.*"):
                    shutil.rmtree(stale, ignore_errors=True)
                cfg.runs_dir = str(path)
                fit(cfg, name=TRAIN_DIR, quiet=quiet, callbacks=[saver])
        _snapshot_members(path, spec, cfg)
    except BaseException as exc:
        _set_status(path, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return _finish(path)


def _snapshot_members(path: Path, spec: Any, cfg: Config) -> None:
    """``members/<k>/`` for each snapshot: the run's files, the snapshot's weights, its test
    predictions and scores."""
    import torch

    from trainwell.after.snapshot import snapshot_path
    from trainwell.api import load
    from trainwell.data import prepare
    from trainwell.runs import (
        MetricsLog,
        load_weights,
        new_run_dir,
        read_json,
        write_json_atomic,
    )
    from trainwell.train.metrics import output_predictions

    run_dir = path / TRAIN_DIR
    predictor = load(run_dir)
    prepared = prepare(cfg.data, cfg.seed)
    test = prepared.test
    if test is None or not len(test):
        raise ConfigError("a snapshot ensemble is scored on the test split; data.split.test "
                          "is 0")
    X = test.X if isinstance(test.X, torch.Tensor) else torch.stack(
        [item[0] if isinstance(item, (tuple, list)) else item for item in test.X])
    y = test.y
    history = MetricsLog(run_dir / "metrics.jsonl").read()
    for k, member in enumerate(spec.members):
        member_dir = spec.member_dirs[k]
        if (member_dir / "predictions.npz").is_file():
            continue
        weights = snapshot_path(run_dir, k)
        load_weights(predictor.model, weights)
        out = predictor.outputs(X, transformed=True)
        truth = y
        if prepared.target_scale is not None:
            out, truth = prepared.target_scale.inverse(out), prepared.target_scale.inverse(y)
        arrays = {**output_predictions(out, prepared.task), "y_true": truth.cpu().numpy()}
        with new_run_dir(member_dir.parent, member_dir.name) as staging:
            for f in ("config.toml", "data.json", "preprocess.json", "preprocess.safetensors"):
                if (run_dir / f).is_file():
                    shutil.copy2(run_dir / f, staging / f)
            shutil.copy2(weights, staging / "model.safetensors")
            epoch = int(member["epoch"])
            log = MetricsLog(staging / "metrics.jsonl")
            for record in history:
                if record.get("epoch", 0) <= epoch:
                    log.append(record)
            meta = read_json(run_dir / "meta.json")
            meta.update(status="completed")
            write_json_atomic(staging / "meta.json", meta)
            _write_npz(staging / "predictions.npz", arrays)
            write_json_atomic(staging / "results.json", {
                "best_epoch": epoch, "snapshot": {"cycle": k, "epoch": epoch},
                "final": next((r for r in history if r.get("epoch") == epoch), {}),
            })


# ---------------------------------------------------------------------------- from a study


def _study_trials(study: Path) -> tuple[list[dict[str, Any]], str]:
    """The study's completed trials with a run directory, best first, and its direction."""
    from trainwell.runs import read_json

    if not study.is_dir():
        raise RunError(f"--from-study {study}: no such directory")
    if not (study / "trials.csv").is_file() or not (study / "study.json").is_file():
        raise RunError(f"--from-study {study}: it has no trials.csv and study.json (is it a "
                       "study directory, made by trainwell tune?)")
    info = read_json(study / "study.json")
    direction = info.get("direction")
    if direction not in ("minimize", "maximize"):
        raise RunError(f"{study / 'study.json'} is damaged: direction should be minimize or "
                       f"maximize; got {direction!r:.40}")
    try:
        rows = list(csv.DictReader(io.StringIO((study / "trials.csv").read_text("utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunError(f"{study / 'trials.csv'} cannot be read: {exc}") from None
    done = []
    for row in rows:
        try:
            value = float(row.get("value") or "nan")
        except ValueError:
            continue
        if row.get("state") == "COMPLETE" and row.get("run_dir") and math.isfinite(value):
            done.append({**row, "value": value})
    done.sort(key=lambda r: r["value"], reverse=direction == "maximize")
    return done, str(info.get("metric", "value"))


def _complete_without_run(study: Path) -> int:
    """How many complete trials of the study have no run directory (scikit-learn candidates)."""
    text = (study / "trials.csv").read_text("utf-8")
    return sum(1 for row in csv.DictReader(io.StringIO(text))
               if row.get("state") == "COMPLETE" and not row.get("run_dir"))


def _from_study(study: Path, top: int | None, name: str | None, method: str | None,
                overrides: list[str] | None) -> Ensemble:
    from trainwell.after.averaging import AVERAGING
    from trainwell.runs import new_run_dir, unique_name, write_json_atomic

    if top is None:
        raise ConfigError("--from-study needs --top K: how many of the best trials to combine")
    if top < 1:
        raise ConfigError(f"--top must be at least 1; got {top}")
    if overrides:
        raise ConfigError("--set does not apply to --from-study: the members keep their configs")
    method = AVERAGING.canonical(method or "mean")
    trials, metric = _study_trials(study)
    if top > len(trials):
        # a scikit-learn candidate's trial is complete but leaves no network run to combine
        without_run = _complete_without_run(study)
        what = (f"{len(trials)} completed trials of study {study} that trained a network "
                f"({without_run} other completed trials are scikit-learn candidates, which "
                "leave no network to combine)" if without_run
                else f"{len(trials)} completed trials of study {study}")
        fix = f"give --top {len(trials)} or fewer" if trials else "nothing can be combined"
        raise ConfigError(f"--top {top} is larger than the {what}; {fix}")
    chosen = trials[:top]
    sources = []
    for row in chosen:
        src = study / row["run_dir"]
        for need in ("model.safetensors", "predictions.npz", "data.json", "config.toml"):
            if not (src / need).is_file():
                raise RunError(f"study {study}: trial {row.get('number')} ({src}) has no {need}")
        sources.append(src)
    root = study.parent
    run_name = name or unique_name(root, f"{study.name}-top{top}")
    info = {
        "format": FORMAT,
        "kind": "study",
        "method": method,
        "status": "running",
        "ece_bins": 15,
        "study": {"dir": str(study), "metric": metric},
        "members": [{"name": f"trial-{row.get('number')}", "dir": f"{MEMBERS_DIR}/{k}",
                     "trial": int(row["number"]) if str(row.get("number", "")).isdigit()
                     else row.get("number"), "value": row["value"]}
                    for k, row in enumerate(chosen)],
        "started": _now(),
        "finished": None,
    }
    with new_run_dir(root, run_name) as staging:
        for k, src in enumerate(sources):
            shutil.copytree(src, staging / MEMBERS_DIR / str(k),
                            ignore=shutil.ignore_patterns(*SKIPPED_FILES))
        write_json_atomic(staging / ENSEMBLE_FILE, info)
        check_members(read_ensemble(staging))  # one task, one class list: else nothing is left
        ensemble_results(read_ensemble(staging))
    return _finish(root / run_name)


__all__ = ["Ensemble", "check_ensemble_config", "ensemble", "member_configs", "train_member"]
