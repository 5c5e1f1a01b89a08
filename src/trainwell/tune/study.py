"""``tune(config)``: run a search (or the coarse-to-fine recipe) in a study directory.

A study directory (``runs/<name>/``) holds ``config.toml`` (the study's config, for
``--resume``), ``study.db`` (Optuna, SQLite, unless ``tune.storage`` names another database),
``study.json``, ``trials.csv``, ``curves.json``, ``best_config.toml`` and ``trials/<n>/``, one run
directory per trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError, RunError
from trainwell.runs import read_json, unique_name, validate_run_name, write_text_atomic
from trainwell.search.samplers import method_of
from trainwell.search.space import Param, apply_params, decode, grid, parse_space, validate_space
from trainwell.tasks import metric_direction
from trainwell.tune.results import STAGE_ATTR
from trainwell.tune.worker import Direction, StageSpec, enqueue_budget, run_workers

if TYPE_CHECKING:
    import optuna

    from trainwell.config import Config

log = logging.getLogger(__name__)

@dataclass
class Study:
    """The outcome of :func:`tune`: where it lives, the best trial, and every stage's Optuna
    study."""

    dir: Path
    metric: str
    direction: str
    studies: list[optuna.Study]
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Config | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    final_run: Path | None = None

    @property
    def optuna_study(self) -> optuna.Study:
        """The Optuna study of the last stage."""
        return self.studies[-1]

    def leaderboard(self, top: int = 10) -> str:
        from trainwell.tune.results import format_leaderboard

        return format_leaderboard(self.rows, self.metric, self.direction, top)


def _tune_fields(overrides: dict[str, Any]) -> list[str]:
    from trainwell.registry import unknown_name_message
    from trainwell.search.config import TuneConfig

    valid = list(TuneConfig.model_fields)
    for key in overrides:
        if key not in TuneConfig.model_fields:
            raise ConfigError(f"tune(): {unknown_name_message('keyword', key, valid)}")
    return [f"tune.{k}={_toml_value(v)}" for k, v in overrides.items()]


def _toml_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).strip()[4:]


def _study_dir(cfg: Config, name: str | None) -> Path:
    root = Path(cfg.runs_dir)
    base = name or f"tune-{cfg.name}" if (name or cfg.name) else "tune"
    validate_run_name(base)
    if name:
        path = root / name
        if path.exists():
            raise RunError(
                f"study directory {path} already exists; pick another --name or continue it "
                f"with --resume {path}"
            )
    else:
        path = root / unique_name(root, base)
    (path / "trials").mkdir(parents=True)
    return path


def _create_study(
    storage_url: str, study_name: str, direction: Direction, cfg: Config
) -> optuna.Study:
    import optuna

    from trainwell.tune.storage import open_storage

    storage = open_storage(storage_url, cfg.tune.heartbeat, cfg.tune.max_retry)
    return optuna.create_study(
        study_name=study_name, storage=storage, direction=direction, load_if_exists=True
    )


def _enqueue_grid(study: optuna.Study, params: list[Param], cfg: Config) -> int:
    points = grid(
        params,
        cfg.tune.grid_points,
        cfg.tune.grid_points_important,
        cfg.tune.important,
        cfg.to_dict(),
    )
    if not any("trainwell:grid" in t.user_attrs for t in study.get_trials(deepcopy=False)):
        for i, point in enumerate(points):
            study.enqueue_trial(point, user_attrs={"trainwell:grid": i}, skip_if_exists=True)
    return len(points)


def _budget(spec: StageSpec, cfg: Config) -> int:
    """The stage's number of trials: ``spec.trials``, or fewer when the space holds fewer
    configurations (every trial of a study has its own)."""
    from trainwell.search.space import finite_points
    from trainwell.tune.worker import stage_params

    params, base = stage_params(spec, cfg)
    points = finite_points(params, base)
    if points is not None and len(points) < spec.trials:
        log.info(
            "the search space holds %d configurations: %d trials, not %d (tune.trials)",
            len(points),
            len(points),
            spec.trials,
        )
        return len(points)
    return spec.trials


def run_stage(spec: StageSpec, cfg: Config, workers: int, fn: Any) -> optuna.Study:
    """Create (or reopen) one stage's Optuna study and run its workers to the end."""
    study = _create_study(spec.storage, spec.study_name, spec.direction, cfg)
    from trainwell.tune.labels import label_study

    label_study(study, spec.metric, spec.stage)  # as optuna-dashboard shows it
    if method_of(spec.method).grid:
        if spec.candidates:  # a grid over algorithms and each one's own parameters
            from trainwell.tune.select import selection_space

            params = parse_space(selection_space(cfg))
        else:
            params = parse_space(spec.space)
        n = _enqueue_grid(study, params, cfg)
        log.info("grid of %d points (tune.trials is not used by the grid)", n)
    else:
        enqueue_budget(study, _budget(spec, cfg))
    run_workers(spec, workers, fn, study)
    study = _create_study(spec.storage, spec.study_name, spec.direction, cfg)
    trials = study.get_trials(deepcopy=False)
    if trials and all(t.state.name == "FAIL" for t in trials):
        first = next(
            (t.user_attrs["error"] for t in trials if "error" in t.user_attrs), "no message"
        )
        raise RunError(f"every trial of {spec.study_name} failed; the first error: {first}")
    return study


def best_of(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def finish(
    study_dir: Path,
    cfg: Config,
    studies: list[optuna.Study],
    metric: str,
    direction: str,
    info: dict[str, Any],
    best_study: optuna.Study | None = None,
) -> Study:
    """Write the study's files and build the :class:`Study` result."""
    from trainwell.config import config_from_dict
    from trainwell.tune.results import importances, write_study_files

    best_study = best_study or studies[-1]
    best = best_of(best_study)
    best_cfg = None
    toml = None
    params: dict[str, Any] = {}
    if best is not None:
        params = {k: decode(v) for k, v in best.params.items()}
        stage_epochs = info.get("best_epochs")
        if "candidate" not in params or params.get("candidate") == "network":
            raw = apply_params(
                {k: v for k, v in cfg.to_dict().items() if k != "tune"},
                {
                    k: v
                    for k, v in best.params.items()
                    if k != "candidate" and not k.startswith(_SK_PREFIX)
                },
            )
            if stage_epochs:
                raw.setdefault("train", {})["epochs"] = int(stage_epochs)
            best_cfg = config_from_dict(raw, "best config")
            toml = best_cfg.to_toml()
        else:
            import tomli_w

            prefix = f"{_SK_PREFIX}{params['candidate']}."
            toml = tomli_w.dumps(
                {
                    "candidate": params["candidate"],
                    "params": {
                        k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)
                    },
                }
            )
    info.update(
        {
            "metric": metric,
            "direction": direction,
            "best_trial": None
            if best is None
            else {
                "number": best.number,
                "value": best.value,
                "params": params,
                "run_dir": best.user_attrs.get("run_dir"),
                "stage": best.user_attrs.get(STAGE_ATTR),
            },
            "importances": importances(best_study),
            "n_trials": {s.study_name.rpartition("/")[2]: len(s.trials) for s in studies},
        }
    )
    rows = write_study_files(study_dir, info, studies, toml)
    return Study(
        dir=study_dir,
        metric=metric,
        direction=direction,
        studies=studies,
        best_value=None if best is None else best.value,
        best_params=params,
        best_config=best_cfg,
        rows=rows,
    )


_SK_PREFIX = "sk."


def tune(
    config: str | os.PathLike[str] | dict[str, Any] | Config,
    *,
    recipe: bool = False,
    workers: int | None = None,
    storage: str | None = None,
    resume: str | os.PathLike[str] | None = None,
    name: str | None = None,
    objective: str | Callable[..., float] | None = None,
    sets: list[str] | None = None,
    data: Any = None,
    **overrides: Any,
) -> Study:
    """Search hyperparameters as ``[tune]`` says; return the :class:`Study`.

    Args:
        config: a TOML path, a dict or a Config.
        recipe: run lecture 002's coarse-to-fine recipe instead of one search.
        workers: worker processes on this machine (default ``tune.workers``).
        storage: SQLAlchemy URL of a shared study (default ``tune.storage``, else ``study.db``).
        resume: an existing study directory to continue.
        name: the study directory's name under ``runs_dir``.
        objective: instead of training, a function ``f(cfg, trial) -> float`` (or its
            ``"module:function"`` path, needed with ``workers > 1``).
        sets: ``--set`` overrides, ``"section.key=value"``.
        data: in-memory data instead of ``data.source``, as for :func:`trainwell.fit`:
            ``(X, y)`` or a pandas DataFrame. The trials run in this process (one worker); to
            resume the study, give the same data again.
        **overrides: ``[tune]`` fields, e.g. ``trials=30``, ``method="random"``.

    Example:
        >>> import trainwell as tw
        >>> study = tw.tune("experiment.toml", trials=20)  # doctest: +SKIP
    """
    import optuna

    from trainwell.config import load_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    all_sets = list(sets or []) + _tune_fields(overrides)
    if resume is not None:
        study_dir = Path(resume)
        if not (study_dir / "config.toml").is_file():
            raise RunError(f"--resume {study_dir}: not a study directory (no config.toml)")
        cfg = load_config(study_dir / "config.toml", all_sets)
        meta = read_json(study_dir / "study.json") if (study_dir / "study.json").exists() else {}
        storage = storage or meta.get("storage")
        recipe = recipe or meta.get("recipe", False)
    else:
        cfg = load_config(config, all_sets)
    memory = None
    if data is not None:  # checked and fingerprinted before a study directory exists
        memory, cfg = _in_memory(cfg, data, workers, study_dir if resume is not None else None)
    else:
        from trainwell.data.memory import require_data_again

        where = f"resume={str(study_dir)!r}, " if resume is not None else "config, "
        require_data_again(cfg.data.source, "study", f"trainwell.tune({where}")
    with memory.held() if memory is not None else contextlib.nullcontext():
        return _tune(cfg, recipe, workers, storage, resume, name, objective)


def _in_memory(
    cfg: Config, data: Any, workers: int | None, study_dir: Path | None
) -> tuple[Any, Config]:
    """``tune(data=...)``: the data held for the trials, and the config whose ``data.source``
    is its ``memory:<sha256>``; a resumed study needs its own data back."""
    from trainwell.api import memory_source

    if (workers if workers is not None else cfg.tune.workers) > 1:
        raise ConfigError(
            "tune(data=...) runs its trials in this process, and worker processes cannot read "
            f"in-memory data: workers must be 1 (got {workers or cfg.tune.workers}); to tune "
            "with several workers, save the data to a file (CSV, Parquet, NPZ) and name it in "
            "data.source"
        )
    cfg, memory = memory_source(cfg, data, study_dir)
    return memory, cfg


def _tune(
    cfg: Config,
    recipe: bool,
    workers: int | None,
    storage: str | None,
    resume: str | os.PathLike[str] | None,
    name: str | None,
    objective: str | Callable[..., float] | None,
) -> Study:
    """``tune`` once the config is loaded (and in-memory data held)."""
    if resume is not None:
        study_dir = Path(resume)
    from trainwell.nn.build import require_trust

    # a model from Python code runs only with consent (--trust-code), checked before a study
    # directory is made; the trials inherit the consent of the caller
    require_trust(cfg.model.arch)
    from trainwell.train.metric_registry import require_metric_trust

    require_metric_trust(cfg.train.metrics)
    if storage is not None:
        cfg.tune.storage = storage
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1; got {workers}")
        cfg.tune.workers = workers
    if cfg.tune.candidates:
        from trainwell.tune.select import validate_candidates

        validate_candidates(cfg)
    else:
        validate_space(cfg)
        if objective is None:
            _check_tune_metric(cfg)
        if not cfg.tune.space and objective is None:
            raise ConfigError(
                "tune.space is empty: name at least one field to search, e.g. "
                '"train.optimizer.lr" = "loguniform(1e-4, 1e-1)"'
            )
    if cfg.heads and any(h.task == "auto" for h in cfg.heads.values()):
        # a head's task comes from its data: check the metric names against it before a study
        # directory exists (a table is read once more; the trials read it again)
        from trainwell.data import prepare
        from trainwell.heads_run import check_head_metrics

        heads = prepare(cfg.data, cfg.seed, cfg.head_targets()).heads
        if heads:
            check_head_metrics(cfg, heads)
    if cfg.tune.storage and resume is None:
        from trainwell.tune.storage import open_storage

        # a wrong URL or an unreachable server is refused before a study directory is made
        open_storage(cfg.tune.storage, cfg.tune.heartbeat, cfg.tune.max_retry)
    if resume is None:
        study_dir = _study_dir(cfg, name)
        write_text_atomic(study_dir / "config.toml", cfg.to_toml())
    from trainwell.tune.storage import default_url

    url = cfg.tune.storage or default_url(study_dir)
    metric = cfg.tune.metric
    direction = metric_direction(metric, cfg.tune.direction)
    study_name = cfg.tune.study_name or study_dir.name
    seed = cfg.tune.seed if cfg.tune.seed is not None else cfg.seed
    obj_str = objective if isinstance(objective, str) else None
    fn = objective if callable(objective) else None
    info: dict[str, Any] = {
        "method": cfg.tune.method,
        "storage": cfg.tune.storage,
        "study_name": study_name,
        "recipe": recipe,
        "space": cfg.tune.space,
    }
    try:
        if recipe:
            from trainwell.tune.recipe import run_recipe

            result = run_recipe(
                cfg, study_dir, url, study_name, metric, direction, seed, obj_str, fn, info
            )
        else:
            stages = _search(cfg, study_dir, url, study_name, metric, direction, seed, obj_str, fn)
            result = finish(study_dir, cfg, stages, metric, direction, info)
    except KeyboardInterrupt:
        log.warning(
            "interrupted: the trials that were running are back in the queue; continue with: "
            "trainwell tune --resume %s",
            study_dir,
        )
        raise
    _write_report(study_dir, cfg)
    return result


def _search(
    cfg: Config,
    study_dir: Path,
    url: str,
    study_name: str,
    metric: str,
    direction: Direction,
    seed: int,
    obj_str: str | None,
    fn: Callable[..., float] | None,
) -> list[optuna.Study]:
    """The one stage of a plain search (not the recipe)."""
    spec = StageSpec(
        study_dir=str(study_dir),
        storage=url,
        study_name=study_name,
        config=cfg.to_dict(),
        space=cfg.tune.space,
        method=cfg.tune.method,
        trials=cfg.tune.trials,
        metric=metric,
        direction=direction,
        stage="search",
        objective=obj_str,
        seed=seed,
        candidates=[c.model_dump(mode="json") for c in cfg.tune.candidates],
    )
    return [run_stage(spec, cfg, cfg.tune.workers, fn)]


def _write_report(study_dir: Path, cfg: Config) -> None:
    """The study's report.html (``[log] report``)."""
    if cfg.log.report:
        from trainwell.report import write_study_report

        write_study_report(study_dir)


def _check_tune_metric(cfg: Config) -> None:
    """Refuse a ``tune.metric`` that no trial can log (``val_pr_aucc``), before the study
    directory exists (each trial checks it again once it has trained an epoch).

    A validation metric of a plain run is ``val_loss``, one of the task's own metrics (any
    task's: the task may come from the data) or a name of ``[train] metrics``. Runs whose names
    depend on more than the config (``[heads]``, ``[domain]``, a model of one's own with its
    own ``training_step``, or ``train.metrics`` searched over) are left to the trials.
    """
    import re

    metric = cfg.tune.metric
    if (not metric.startswith("val_") or cfg.heads or cfg.domain is not None
            or cfg.model.arch.startswith("python:")
            or any(str(k).startswith("train.metrics") for k in cfg.tune.space)):
        return
    from trainwell.registry import unknown_name_message
    from trainwell.train.metric_registry import METRICS

    names = ["loss", "accuracy", "f1_macro", f"top{cfg.train.top_k}_accuracy", "rmse", "mae",
             "r2"]
    per_class: list[str] = []
    for spec in cfg.train.metrics:
        if spec.startswith("python:"):
            names.append(spec.split(":")[2])
        elif METRICS.get(spec).per_class:
            per_class.append(spec)
            names.append(f"{spec}_macro")
        else:
            names.append(spec)
    rest = metric.removeprefix("val_")
    if rest in names or re.fullmatch(r"top\d+_accuracy", rest) or any(
            re.fullmatch(rf"{re.escape(p)}_\d+", rest) for p in per_class):
        return
    valid = [f"val_{n}" for n in names] + [f"val_{p}_<class index>" for p in per_class]
    raise ConfigError(
        f"tune.metric: {unknown_name_message('metric', metric, valid)} (a name of "
        "[train] metrics is logged as val_<name>)"
    )


__all__ = ["Study", "finish", "run_stage", "tune"]
