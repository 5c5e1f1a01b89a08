"""The whole flow of one run: ``fit(config) -> Run`` and ``load(run_dir) -> Predictor``.

``fit`` loads and checks the config, prepares the data (preprocessing fitted on train only),
builds the model, creates the run directory (whole or not at all), trains with the
:class:`~trainwell.train.Trainer` and writes ``model.safetensors``, ``results.json`` and
``predictions.npz``; ``docs/architecture.md`` lists every file.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import (
    ConfigError,
    DataError,
    DivergenceError,
    RunError,
    StopRun,
    TrainwellError,
)
from trainwell.heads_run import (
    LABEL_HEAD,
    build_run_model,
    check_head_metrics,
    domain_summary,
    head_predictions,
    head_truth,
    run_step,
    several_heads,
    source_only_baseline,
)

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from trainwell.config import Config
    from trainwell.data.domain_data import DomainData
    from trainwell.train.distributed import Distributed
    from trainwell.train.trainer import Trainer

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """A finished (or diverged) run: its directory, config, model, trainer and results."""

    run_dir: Path
    config: Config
    model: nn.Module
    trainer: Trainer
    prepared: Any
    status: str
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per epoch, as in ``metrics.jsonl``."""
        return self.trainer.history

    @property
    def metrics(self) -> dict[str, Any]:
        """Flat metrics: the best epoch's ``val_*``, ``test_*``, ``best_epoch`` and the like."""
        out: dict[str, Any] = {k: v for k, v in self.results.get("best", {}).items()}
        out.update(self.results.get("test", {}))
        for key in ("best_epoch", "stopped_early", "diverged", "wall_time", "n_params"):
            out[key] = self.results.get(key)
        return out

    def __repr__(self) -> str:
        # the dataclass's own repr would print every tensor of the prepared data
        test = {k: v for k, v in self.results.get("test", {}).items() if isinstance(v, float)}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in test.items())
        return (f"Run({str(self.run_dir)!r}, status={self.status!r}, "
                f"best_epoch={self.results.get('best_epoch')}{', ' + shown if shown else ''})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _meta(cfg: Config, device: str, status: str, started: str) -> dict[str, Any]:
    import torch

    from trainwell import __version__

    return {
        "trainwell": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "seed": cfg.seed,
        "status": status,
        "started": started,
        "finished": None,
    }


def _example_batch(split: Any) -> Any:
    import torch

    if hasattr(split, "head"):
        return split.head(8)
    X = split.X
    if isinstance(X, torch.Tensor):
        return X[:8]
    items = [X[i] for i in range(min(8, len(X)))]
    xs = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
    return torch.stack(xs)


def _add_to_path(folder: Path) -> None:
    import sys

    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def _split_len(split: Any) -> int:
    return 0 if split is None else len(split)


def fit(
    config: str | Path | dict[str, Any] | Config | None = None,
    *,
    name: str | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    callbacks: Iterable[Any] = (),
    overrides: list[str] | None = None,
    trust_code: bool = False,
    init_from: str | Path | Run | None = None,
    allow_world_size_change: bool = False,
    data: Any = None,
) -> Run:
    """Run the whole recipe of one config and return the run.

    Args:
        config: a TOML path, a dict or a ``Config`` (ignored with ``resume``).
        name: the run directory's name under ``runs_dir``; default: config ``name``, else
            ``<data>-<arch>`` made unique.
        resume: a run directory to continue from its last checkpoint.
        quiet: plain one-line-per-epoch output instead of a progress bar.
        callbacks: extra trainer callbacks (events of :mod:`trainwell.train.callbacks`).
        overrides: ``section.key=value`` strings, as ``--set`` on the command line.
        trust_code: let ``model.arch = "python:module:factory"`` import and run that module
            (``--trust-code`` on the command line); only for a config you trust.
        init_from: pretrained weights, as ``model.init_from``: a run (directory or
            :class:`Run`), a weights file or ``"pretrained:<name>"`` (docs/transfer.md).
        allow_world_size_change: with ``resume``, continue a run trained by another number of
            processes (not bit-identical; docs/distributed.md).
        data: in-memory data instead of ``data.source``: ``(X, y)`` (NumPy arrays or torch
            tensors; a table (n, d) or images (n, C, H, W)) or a pandas DataFrame (the target
            column named by ``data.target``, as for a CSV); resuming such a run needs the same
            data again (docs/data.md).

    Under ``torchrun`` (or inside a process group the caller initialized) every process calls
    ``fit`` and one model is trained data-parallel; rank 0 alone writes the run directory and
    every rank returns the same results (:mod:`trainwell.train.distributed`).

    Returns:
        The :class:`Run`; ``run.metrics["test_accuracy"]``, ``run.model``, ``run.run_dir``.

    Raises:
        ConfigError: the config or a loss / task mismatch is refused before anything runs.
        DivergenceError: the loss became NaN or inf; the run directory is finished with status
            ``diverged`` and the best snapshot, and the error's ``run`` attribute holds the Run.

    Example:
        >>> cfg = {"data": {"source": "builtin:iris"}, "train": {"epochs": 3}}
        >>> run = fit(cfg, quiet=True)  # doctest: +SKIP
    """
    from trainwell.config import load_config
    from trainwell.run_lock import RunLock
    from trainwell.runs import read_json
    from trainwell.train.distributed import is_main_process, process_group

    if init_from is not None:  # as `--set model.init_from=...`: checked with the config
        import json

        source = init_from.run_dir if isinstance(init_from, Run) else init_from
        overrides = [*(overrides or []), f"model.init_from={json.dumps(str(source))}"]
    if resume is not None:
        run_dir = Path(resume)
        if overrides:
            raise ConfigError(
                f"cannot resume {run_dir} with overrides ({', '.join(overrides)}): a resumed "
                "run keeps its config.toml; start a new run to change the config"
            )
        if not run_dir.is_dir():
            raise RunError(f"cannot resume {run_dir}: no such directory")
        if not (run_dir / "config.toml").is_file():
            raise RunError(
                f"cannot resume {run_dir}: it has no config.toml (is it a run directory?)"
            )
        # one process trains in a run at a time (of a data-parallel run: rank 0, which writes)
        lock = RunLock(run_dir).acquire() if is_main_process() else None
        try:
            if read_json(run_dir / "meta.json").get("status") == "completed":
                raise RunError(f"run {run_dir} is already completed; nothing to resume")
            cfg = load_config(run_dir / "config.toml", overrides)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
    else:
        cfg = load_config(config, overrides)
        if not isinstance(config, (str, Path)):
            # a dict's relative file paths are read from the working folder: the run's
            # config.toml records them whole, so that --resume reads the same files from anywhere
            cfg.data.resolve_paths(Path.cwd())
        lock = None
    memory: Any = None
    if data is not None:  # checked and fingerprinted before any file is written
        try:
            cfg, memory, name = _in_memory_source(
                cfg, data, name, Path(resume) if resume is not None else None)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
    from trainwell.nn.build import trusting_code

    try:
        with (
            trusting_code(trust_code),
            (memory.held() if memory else contextlib.nullcontext()),
            process_group(cfg.train.device) as group,
        ):
            return _fit(cfg, config, name, resume, quiet, callbacks, group,
                        allow_world_size_change)
    finally:
        if lock is not None:
            lock.release()


def memory_source(cfg: Config, data: Any, resume: Path | None) -> tuple[Config, Any]:
    """``data=`` of ``fit`` and ``tune``: the config with ``data.source = "memory:<sha256>"``
    and the data (to hold while the run reads it); to resume ``resume`` (a run or a study), the
    data must be its own (same fingerprint), and the config is kept."""
    import json

    from trainwell.config import load_config
    from trainwell.data.memory import check_resume_data, in_memory

    memory = in_memory(data, cfg.data.missing_target)
    if resume is not None:
        check_resume_data(cfg.data.source, memory, resume)
        return cfg, memory
    return load_config(cfg, [f"data.source={json.dumps(memory.source)}"]), memory


def _in_memory_source(cfg: Config, data: Any, name: str | None, resume: Path | None
                      ) -> tuple[Config, Any, str | None]:
    """``fit(data=...)``: :func:`memory_source`, and the run's name (``arrays-<arch>`` /
    ``dataframe-<arch>`` unless one is given)."""
    from trainwell.runs import default_run_name, unique_name

    cfg, memory = memory_source(cfg, data, resume)
    if resume is not None:
        return cfg, memory, name
    if name is None and cfg.name is None:
        name = unique_name(Path(cfg.runs_dir),
                           default_run_name(f"memory:{memory.what}", cfg.model.arch))
    return cfg, memory, name


def _fit(
    cfg: Config,
    config: Any,
    name: str | None,
    resume: str | Path | None,
    quiet: bool,
    callbacks: Iterable[Any],
    group: Distributed | None = None,
    allow_world_size_change: bool = False,
) -> Run:
    """``fit`` once the config is loaded (and, to resume, the run directory locked).

    A resumed run without a checkpoint (killed before its first one) starts again from its
    config in the same directory, as an uninterrupted run would have.
    """
    from trainwell.nn.build import require_trust
    from trainwell.run_lock import RunLock
    from trainwell.runs import read_json
    from trainwell.train.losses import check_loss_for_task

    run_dir = Path(resume) if resume is not None else None
    restart = run_dir is not None and not (run_dir / "checkpoints" / "last.json").is_file()
    require_trust(cfg.model.arch)  # code named by the config, refused before any data is read
    from trainwell.train.metric_registry import require_metric_trust

    require_metric_trust(cfg.train.metrics)  # python: metrics too
    check_loss_for_task(cfg.train.loss.name, cfg.data.task)  # refused before any data is read
    if cfg.log.tensorboard:  # a missing package is refused before any run directory exists
        from trainwell.report.tensorboard import require_tensorboard

        require_tensorboard()
    if cfg.model.arch.startswith("python:") and isinstance(config, (str, Path)) and resume is None:
        _add_to_path(Path(config).resolve().parent)  # a factory module may sit beside the config

    from trainwell.data import prepare
    from trainwell.nn import build_model

    _seed_everything(cfg.seed)
    prepared = prepare(cfg.data, cfg.seed, cfg.head_targets())
    domain = None
    if cfg.domain is not None:
        from trainwell.data.domain_data import prepare_domain

        domain = prepare_domain(cfg.domain.target, cfg.domain.params, prepared, cfg.seed)
    if several_heads(cfg):
        if prepared.heads:
            check_head_metrics(cfg, prepared.heads)  # the tasks are known now: before any file
        model = build_run_model(cfg, prepared.input_shape, prepared.n_outputs, prepared.task,
                                prepared.heads, _example_batch(prepared.train))
    else:
        check_loss_for_task(cfg.train.loss.name, prepared.task, prepared.n_outputs)
        _step_options(cfg, prepared)  # metrics and class weights checked before any file
        model = build_model(
            cfg.model,
            prepared.input_shape,
            prepared.n_outputs,
            prepared.task,
            example_batch=_example_batch(prepared.train),
        )
        _check_monitored(cfg, prepared, model)  # early stopping's / plateau's metric too
    from trainwell.train.data import check_batch_norm_batches

    # what BatchNorm cannot train on is refused before the run directory is made
    check_batch_norm_batches(model, cfg.train.batch_size, _split_len(prepared.train))
    if cfg.train.channels_last:  # images only: refused for a table before any file is written
        from trainwell.train.performance import check_channels_last

        check_channels_last(prepared.input_shape, cfg.data.source)
    augmenter = None
    if cfg.augment.enabled:  # checked against the data (and fitted) before any directory exists
        from trainwell.data.augment.augmenter import Augmenter

        augmenter = (Augmenter.load(cfg.augment, run_dir) if run_dir is not None and not restart
                     else Augmenter.fit(cfg.augment, prepared))
    if group is not None:  # what the processes cannot split is refused before any file
        from trainwell.train.distributed import check_data_parallel

        check_data_parallel(group, cfg.train.batch_size, model, prepared.train, augmenter)
    if cfg.tta.enabled or cfg.tta.mc_samples:  # views on a table, passes that sample nothing
        from trainwell.data.augment.tta_config import trained_geometry_of
        from trainwell.train.test_time import check_test_time_config

        check_test_time_config(cfg.tta, trained_geometry_of(cfg, prepared.input_shape),
                               prepared.input_shape, model)
    transfer = None
    if cfg.model.init_from is not None:  # loaded, checked and frozen before any file is written
        from trainwell.after.transfer import plan_transfer

        saved = run_dir / "transfer.json" if run_dir is not None and not restart else None
        transfer = plan_transfer(cfg.model, prepared, model, epochs=cfg.train.epochs,
                                 seed=cfg.seed, saved=read_json(saved) if saved else None,
                                 preprocess=cfg.data.preprocess)
        if saved is None:
            print(transfer.summary(), flush=True)
    from trainwell.runs import (
        default_run_name,
        new_run_dir,
        unique_name,
        write_json_atomic,
        write_text_atomic,
    )
    from trainwell.train.device import resolve_device

    device = group.device if group is not None else resolve_device(cfg.train.device)
    started = _now()
    if run_dir is None:
        root = Path(cfg.runs_dir)
        if group is not None and not group.is_main:  # rank 0 makes the run directory
            return _train(root / group.follow(), cfg, prepared, model, device, started, False,
                          quiet, callbacks, domain, augmenter, transfer, group)
        run_name = (
            name or cfg.name or unique_name(root, default_run_name(cfg.data.source, cfg.model.arch))
        )
        run_dir = root / run_name
        lock: RunLock | None = None
        announced = False  # the other ranks know the directory (data-parallel)
        try:
            with new_run_dir(root, run_name) as staging:
                lock = RunLock(staging).acquire()  # held through the rename: the same file
                write_text_atomic(staging / "config.toml", cfg.to_toml())
                write_json_atomic(
                    staging / "meta.json", _meta(cfg, str(device), "running", started)
                )
                prepared.save(staging)
                if augmenter is not None:
                    from trainwell.data.augment.grid import save_with_run

                    save_with_run(augmenter, prepared, staging, cfg.seed)
                if transfer is not None:
                    write_json_atomic(staging / "transfer.json", transfer.to_dict())
            if group is not None:
                group.announce(run_name)
                announced = True
            return _train(run_dir, cfg, prepared, model, device, started, False, quiet,
                          callbacks, domain, augmenter, transfer, group)
        except BaseException as exc:
            if group is not None and not announced:  # the others stop with rank 0's error
                group.announce(exc)
            if lock is not None:  # a signal between the rename and training: a final status
                _end_status(run_dir, exc, only_if_running=True)
            raise
        finally:
            if lock is not None:
                lock.release()
    if not restart:
        from trainwell.train.checkpoint import load_training_checkpoint

        # a damaged checkpoint is refused before the run directory is touched
        state = load_training_checkpoint(run_dir / "checkpoints", model)
        from trainwell.train.distributed import check_resume_world_size

        check_resume_world_size(state, group.world_size if group is not None else 1,
                                allow_world_size_change, run_dir)
    if group is not None and not group.is_main:  # rank 0 alone writes
        group.follow()
        return _train(run_dir, cfg, prepared, model, device, started, not restart, quiet,
                      callbacks, domain, augmenter, transfer, group)
    meta = read_json(run_dir / "meta.json")
    meta.update(status="running", finished=None)
    if restart:  # killed before its first checkpoint: start again from the config
        logger.info("%s has no checkpoint yet: training it again from its config", run_dir)
        meta.update(_meta(cfg, str(device), "running", started))
        prepared.save(run_dir)
        if augmenter is not None:
            from trainwell.data.augment.grid import save_with_run

            save_with_run(augmenter, prepared, run_dir, cfg.seed)
        if transfer is not None:
            write_json_atomic(run_dir / "transfer.json", transfer.to_dict())
        for stale in ("metrics.jsonl", "stats.jsonl", "doctor.json"):
            (run_dir / stale).unlink(missing_ok=True)
    write_json_atomic(run_dir / "meta.json", meta)
    started = meta.get("started", started)
    if group is not None:
        group.announce(run_dir.name)
    return _train(
        run_dir, cfg, prepared, model, device, started, not restart, quiet, callbacks, domain,
        augmenter,
        transfer,
        group,
    )


def _train(
    run_dir: Path,
    cfg: Config,
    prepared: Any,
    model: nn.Module,
    device: torch.device,
    started: str,
    resuming: bool,
    quiet: bool,
    callbacks: Iterable[Any],
    domain: DomainData | None = None,
    augmenter: Any = None,
    transfer: Any = None,
    group: Distributed | None = None,
) -> Run:
    from trainwell.runs import MetricsLog, read_json, write_json_atomic
    from trainwell.train.progress import default_progress
    from trainwell.train.trainer import Trainer

    status, diverged = "completed", None
    main = group is None or group.is_main  # data-parallel: rank 0 alone writes
    try:
        log = MetricsLog(run_dir / "metrics.jsonl")
        ckpt = run_dir / "checkpoints"
        if resuming and main:
            state = read_json(ckpt / "last.json")["state"]
            done = int(state["epoch"])
            log.rewrite(state["history"])  # the checkpoint's epochs, whatever the log kept
            if (run_dir / "stats.jsonl").exists():
                MetricsLog(run_dir / "stats.jsonl").truncate_to(done)
        elif cfg.doctor.enabled and main:
            _doctor_before_training(run_dir, cfg, prepared, model,
                                    transfer.scratch if transfer is not None else None)
        own = _run_callbacks(run_dir, cfg) if main else []
        step_kwargs: dict[str, Any] = {"task": prepared.task}
        if several_heads(cfg):
            step, step_callbacks, step_kwargs = run_step(cfg, prepared, domain)
            step_kwargs.update(step=step)
            own = [*step_callbacks, *own]
        elif prepared.target_scale is not None or _step_options(cfg, prepared):
            from trainwell.train.objective import Supervised

            # standardized targets: RMSE / MAE in their units; class weights by the labels
            step_kwargs["step"] = Supervised(
                cfg.train.loss, task=prepared.task, top_k=cfg.train.top_k,
                target_units=(prepared.target_scale.inverse
                              if prepared.target_scale is not None else None),
                **_step_options(cfg, prepared))
        if transfer is not None:  # per-group learning rates (lr_mult), freezing per epoch
            from trainwell.train.optim import make_optimizer

            lr = float(cfg.train.optimizer.kwargs()["lr"])
            step_kwargs["optimizer"] = make_optimizer(
                cfg.train.optimizer, transfer.param_groups(model.to(device), lr))
            own = [*transfer.callbacks(), *own]
        train_data = prepared.train
        if augmenter is not None:  # the step augments training batches (lazy images: the loader)
            from trainwell.train.augmented import augment_training

            train_data, step_kwargs, more = augment_training(
                augmenter, prepared.train, step_kwargs, seed=cfg.seed, loss=cfg.train.loss,
                top_k=cfg.train.top_k, batch_size=cfg.train.batch_size,
                shuffle=cfg.train.shuffle, num_workers=cfg.train.num_workers,
                pin_memory=device.type == "cuda")
            own = [*own, *more]
        trainer = Trainer.from_config(
            model,
            cfg.train,
            seed=cfg.seed,
            device=device,
            callbacks=[*([default_progress(quiet)] if main else []), *own, *callbacks],
            checkpoint_dir=ckpt if main else None,
            checkpoint_every=cfg.train.checkpoint_every,
            metrics_log=log if main else None,
            **step_kwargs,
        )
        if group is not None:  # data-parallel: DDP, batches split by rank, every rank's state
            from trainwell.train.distributed import distribute

            train_data = distribute(trainer, group, train_data, seed=cfg.seed)
        try:
            trainer.fit(
                train_data,
                prepared.val if _split_len(prepared.val) else None,
                resume=ckpt if resuming else None,
            )
        except DivergenceError as exc:  # the callbacks finished in the trainer's `end` event
            status, diverged = "diverged", exc
        finally:
            if group is not None:  # the DDP wrapper must not outlive the process group
                from trainwell.train.distributed import undistribute

                undistribute(trainer)
    except BaseException as exc:
        if main:
            _end_status(run_dir, exc)
        raise
    if not main:  # rank 0 writes the results; the other ranks return the same
        assert group is not None
        run = Run(run_dir=run_dir, config=cfg, model=trainer.model, trainer=trainer,
                  prepared=prepared, status=status, results=group.follow())
        if diverged is not None:
            diverged.run = run
            raise diverged
        return run
    results = _write_results(run_dir, trainer, prepared)
    if (cfg.tta.enabled or cfg.tta.mc_samples) and results.get("test"):
        results.update(_test_time_results(cfg, trainer, prepared))
        write_json_atomic(run_dir / "results.json", results)
    if transfer is not None:
        results["transfer"] = {k: v for k, v in transfer.to_dict().items() if k != "report"}
        write_json_atomic(run_dir / "results.json", results)
    if cfg.domain is not None and domain is not None and status == "completed":
        results["domain"] = _domain_results(cfg, prepared, domain, trainer, results, device)
        write_json_atomic(run_dir / "results.json", results)
    meta = read_json(run_dir / "meta.json")
    meta.update(status=status, finished=_now())
    write_json_atomic(run_dir / "meta.json", meta)
    run = Run(
        run_dir=run_dir,
        config=cfg,
        model=trainer.model,
        trainer=trainer,
        prepared=prepared,
        status=status,
        results=results,
    )
    _finish_run(run_dir, cfg, run)
    if group is not None:
        group.announce(results)
    for callback in trainer.callbacks:  # what a logger writes once the results are known
        if callable(getattr(callback, "after_run", None)):  # (TensorBoard's HParams, MLflow)
            callback.after_run(run)
    if diverged is not None:
        diverged.run = run
        raise diverged
    return run


def _end_status(run_dir: Path, exc: BaseException, only_if_running: bool = False) -> None:
    """Write the final status of a run that ``exc`` ended into its ``meta.json``.

    A run stopped on purpose (a trial the tuner pruned) is not a failure, nor is one stopped by
    Ctrl-C or SIGTERM (``interrupted``: resumable; the tuner puts such a trial back in its
    queue). A full disk or a damaged ``meta.json`` must not hide the error that ended the run.
    """
    from trainwell.runs import read_json, write_json_atomic

    with contextlib.suppress(OSError, RunError):
        meta = read_json(run_dir / "meta.json")
        if only_if_running and meta.get("status") != "running":
            return
        status = (
            exc.status
            if isinstance(exc, StopRun)
            else "interrupted"
            if isinstance(exc, KeyboardInterrupt)
            else "failed"
        )
        meta.update(status=status, finished=_now())
        write_json_atomic(run_dir / "meta.json", meta)
        if status == "interrupted" and getattr(exc, "run_dir", None) is None:
            exc.run_dir = run_dir  # type: ignore[attr-defined]  # what the command's hint names


def _write_results(run_dir: Path, trainer: Trainer, prepared: Any) -> dict[str, Any]:
    """model.safetensors (best snapshot), test metrics on it, predictions.npz, results.json."""
    import numpy as np

    from trainwell.runs import write_bytes_atomic, write_json_atomic, write_safetensors_atomic
    from trainwell.train.metrics import output_predictions

    if trainer.best_epoch:
        write_safetensors_atomic(run_dir / "model.safetensors", trainer.model.state_dict())
    test: dict[str, Any] = {}
    if trainer.best_epoch and _split_len(prepared.test):
        test = trainer.evaluate(prepared.test, prefix="test")
        out, y = trainer.predict_outputs(prepared.test)
        if y is None:
            raise DataError("the test split has no targets")
        arrays: dict[str, Any]
        if prepared.heads:
            arrays = {**head_predictions(out, prepared.heads), **head_truth(y, prepared.heads)}
        else:
            label = out[LABEL_HEAD] if isinstance(out, dict) else out  # [domain]: the label head
            if prepared.target_scale is not None:  # values in the target's own units
                label, y = prepared.target_scale.inverse(label), prepared.target_scale.inverse(y)
            arrays = {**output_predictions(label, prepared.task), "y_true": y.cpu().numpy()}
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes_atomic(run_dir / "predictions.npz", buf.getvalue())
        if not prepared.heads:  # the worst test samples, for the report
            from trainwell.report.examples import save_worst_examples

            save_worst_examples(run_dir, prepared.test, arrays, prepared.task)
    history = trainer.history
    kept = trainer.best_epoch if trainer.keep_best or not history else history[-1]["epoch"]
    best = next((r for r in history if r["epoch"] == kept), {})
    results = {
        "best_epoch": kept,
        "best": {k: v for k, v in best.items() if k not in ("epoch_time", "time")},
        "final": {
            k: v
            for k, v in (history[-1] if history else {}).items()
            if k not in ("epoch_time", "time")
        },
        "test": test,
        "stopped_early": trainer.stopped_early,
        "diverged": trainer.diverged,
        "wall_time": trainer.elapsed,
        "n_params": sum(p.numel() for p in trainer.model.parameters()),
    }
    if trainer.precision != "fp32":  # what ran: fp32 where the device has no such arithmetic
        results["precision"] = {"requested": trainer.precision, "used": trainer.precision_used}
    if trainer.compile_time is not None:  # train.compile: its warm-up, apart from wall_time
        results["compile_time"] = trainer.compile_time
    if trainer.averager is not None:  # the kept weights are averaged ones ([train.average])
        results["average"] = trainer.averager.summary()
    write_json_atomic(run_dir / "results.json", results)
    return results


def _domain_results(cfg: Config, prepared: Any, domain: DomainData, trainer: Trainer,
                    results: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``results.json["domain"]``: source, target and domain accuracy of the kept weights, the
    source-only baseline's (``[domain] baseline``) and the verdict."""
    assert cfg.domain is not None
    baseline = None
    if cfg.domain.baseline:
        logger.info("training the source-only baseline (domain.baseline = true)")
        baseline = source_only_baseline(cfg, prepared, domain, device,
                                        _example_batch(prepared.train))
    kept = results.get("best", {})
    return domain_summary([kept] if kept else trainer.history, results.get("test", {}), baseline)


def _test_time_results(cfg: Config, trainer: Trainer, prepared: Any) -> dict[str, Any]:
    """``[tta]``: the test metrics with test-time augmentation and Monte Carlo passes."""
    from trainwell.data.augment.tta_config import trained_geometry_of
    from trainwell.train.test_time import averaged_results

    return averaged_results(trainer.model, trainer.objective, prepared.test, prepared.task,
                            cfg.tta, trained_geometry_of(cfg, prepared.input_shape),
                            prepared.input_shape, cfg.seed)


def _run_callbacks(run_dir: Path, cfg: Config) -> list[Any]:
    """The callbacks a run gets from its config: the doctor's monitor, TensorBoard."""
    out: list[Any] = []
    monitor = None
    if cfg.doctor.monitor:
        from trainwell.diagnose.monitor import TrainingMonitor

        monitor = TrainingMonitor(run_dir, every=cfg.doctor.monitor_every)
        out.append(monitor)
    if cfg.log.tensorboard:
        from trainwell.report.tensorboard import TensorBoardLogger

        out.append(TensorBoardLogger(run_dir, monitor=monitor,
                                     step_every=cfg.log.tensorboard_step_every))
    if cfg.log.report and cfg.log.report_every:
        from trainwell.report.live import LiveReport

        out.append(LiveReport(run_dir, cfg.log.report_every, cfg.log.report_interval_s))
    if cfg.log.mlflow is not False:
        from trainwell.report.mlflow_log import MLflowLogger, tracking_uri

        uri = tracking_uri(cfg.log.mlflow, cfg.runs_dir)
        out.append(MLflowLogger(run_dir, uri, config=cfg.to_dict()))
    return out


def _doctor_before_training(run_dir: Path, cfg: Config, prepared: Any, model: nn.Module,
                            scratch: nn.Module | None = None) -> None:
    """``[doctor] enabled``: the sanity checks on copies of the model, saved as doctor.json.

    Failing checks are logged and training goes on; ``trainwell doctor`` is the gate.
    """
    from trainwell.diagnose.from_config import doctor_from_config

    report = doctor_from_config(cfg, prepared=prepared, model=model, out_dir=run_dir,
                                scratch=scratch)
    report.save(run_dir)
    for finding in report.findings:
        if finding.status == "fail":
            logger.warning("doctor: %s: %s", finding.check, finding.title)


def _finish_run(run_dir: Path, cfg: Config, run: Run) -> None:
    """Called once at the end of every run that trained (``run.status``: completed or diverged)."""
    if cfg.log.report:
        from trainwell.report import write_run_report

        write_run_report(run_dir)


# ---------------------------------------------------------------------------- prediction


class Predictor:
    """A trained run, ready to predict on raw input with its fitted preprocessing.

    Example:
        >>> p = load("runs/digits-mlp")  # doctest: +SKIP
        >>> p.predict(X_raw)[:3]  # doctest: +SKIP
    """

    def __init__(
        self, run_dir: Path, model: nn.Module, transform: Any, data_info: dict[str, Any]
    ) -> None:
        self.run_dir = run_dir
        self.model = model.eval()
        self.transform = transform
        self.task: str = data_info["task"]
        self.classes: list[Any] | None = data_info.get("classes")
        #: with ``[heads]``: per head its task, classes and outputs (``data.json``'s ``heads``)
        self.heads: dict[str, dict[str, Any]] | None = data_info.get("heads")
        self.data_info = data_info

    def _as_input(self, raw: Any) -> Any:
        """A path or DataFrame as is; a 2-D array of a table run's raw columns as a DataFrame;
        an array of images for an image run as is."""
        import numpy as np

        if isinstance(raw, (str, Path)) or hasattr(raw, "columns"):
            return raw
        pipeline = getattr(self.transform, "pipeline", None)
        columns = list(getattr(pipeline, "columns", None) or [])
        if hasattr(raw, "detach"):
            raw = raw.detach().cpu().numpy()
        if isinstance(raw, np.ndarray) and getattr(pipeline, "kind", None) not in (None, "table"):
            return raw  # images: (n, C, H, W), checked against the run's shape when read
        if isinstance(raw, np.ndarray) and getattr(pipeline, "kind", None) == "table" and columns:
            if raw.ndim == 2 and raw.shape[1] == len(columns):
                import pandas as pd

                return pd.DataFrame(raw, columns=columns)
            raise DataError(
                f"an array given to predict must have shape (n, {len(columns)}), one column "
                f"per raw feature ({', '.join(columns[:5])}{', ...' if len(columns) > 5 else ''}); "
                f"got {tuple(raw.shape)}"
            )
        raise DataError(
            f"predict takes a path (CSV, Parquet, NPZ, image folder) or a DataFrame"
            f"{' or a 2-D array' if columns else ''}; got {type(raw).__name__}"
        )

    def outputs(self, raw: Any, batch_size: int = 4096, transformed: bool = False, *,
                tta: bool = False, mc_samples: int = 0, seed: int = 0) -> Any:
        """The model's raw outputs on ``raw``, preprocessed as in training (unless transformed):
        a tensor, or ``{head: tensor}`` for a run with ``[heads]``; a domain-adversarial run
        gives its label head's. With ``tta`` / ``mc_samples``: the raw outputs of the averaged
        prediction (:meth:`averaged_outputs`)."""
        import torch

        from trainwell.train.objective import concat_outputs

        X = raw if transformed else self.transform(self._as_input(raw))
        X = torch.as_tensor(X, dtype=torch.float32) if not isinstance(X, torch.Tensor) else X
        if tta or mc_samples:
            return self.averaged_outputs(X, tta=tta, mc_samples=mc_samples, seed=seed,
                                         batch_size=batch_size)[0]
        with torch.inference_mode():
            out = concat_outputs([self.model(X[i : i + batch_size])
                                  for i in range(0, len(X), batch_size)])
        if isinstance(out, dict) and not self.heads:
            out = out[LABEL_HEAD]
        if self.heads and not isinstance(out, dict):  # no rows
            out = {name: out for name in self.heads}
        return out

    def averaged_outputs(self, X: Any, *, tta: bool = False, mc_samples: int = 0,
                         seed: int = 0, batch_size: int = 4096) -> tuple[Any, Any]:
        """``(raw outputs, spread)`` of the test-time average on model input ``X``: the views of
        test-time augmentation (``tta``, from the run's ``[augment]`` and ``[tta]``) and
        ``mc_samples`` Monte Carlo passes seeded by ``seed``; the spread (None without passes)
        is the uncertainty of docs/tta.md."""
        from trainwell.config import load_config
        from trainwell.data.augment.tta_config import trained_geometry_of
        from trainwell.train.test_time import average_outputs, averaging_model

        cfg = load_config(self.run_dir / "config.toml")
        if self.heads or cfg.domain is not None:
            raise ConfigError("--tta / --mc-samples do not apply to a run with [heads] or "
                              "[domain] yet: predict without them")
        shape = self.data_info["input_shape"]
        averaged = averaging_model(self.model, self.task, cfg.tta, trained_geometry_of(cfg, shape),
                                   shape, tta=tta,
                                   mc_samples=mc_samples, names=("--tta", "--mc-samples"))
        return average_outputs(averaged, X, seed=seed, batch_size=batch_size)

    def _columns(self, out: Any, task: str, classes: list[Any] | None, prefix: str
                 ) -> dict[str, Any]:
        import numpy as np

        from trainwell.train.metrics import output_predictions

        arrays = output_predictions(self._target_units(out), task)
        pred = arrays["y_pred"]
        table: dict[str, Any] = {}
        if task == "regression":
            if pred.ndim == 2 and pred.shape[1] > 1:
                table.update({f"{prefix}prediction_{i}": pred[:, i] for i in range(pred.shape[1])})
            else:
                table[f"{prefix}prediction"] = pred.reshape(-1)
            return table
        table[f"{prefix}prediction"] = np.asarray(classes)[pred] if classes is not None else pred
        for i, p in enumerate(arrays["proba"].T):
            label = classes[i] if classes is not None else i
            table[f"{prefix}proba_{label}"] = p
        return table

    def _target_units(self, out: Any) -> Any:
        """A regression run's outputs in the target's own units (the training standardization
        of ``data.target_scale`` undone); other outputs unchanged."""
        if self.task != "regression" or not hasattr(self.transform, "target_units"):
            return out
        return self.transform.target_units(out)

    def predict_table(self, raw: Any, *, tta: bool = False, mc_samples: int = 0,
                      seed: int = 0) -> dict[str, Any]:
        """Columns for a prediction file: ``id``, ``prediction`` and ``proba_<class>`` (or, for
        regression, ``prediction`` / ``prediction_<i>`` per target); with ``[heads]`` the same
        per head, prefixed ``<head>_``. With ``mc_samples``, ``uncertainty`` (``_<i>`` per
        regression target) too; see docs/tta.md."""
        import numpy as np

        raw = self._as_input(raw)
        if hasattr(self.transform, "load"):
            X, ids = self.transform.load(raw)
        else:
            X = self.transform(raw)
            ids = list(range(len(X)))
        spread = None
        if tta or mc_samples:
            out, spread = self.averaged_outputs(X, tta=tta, mc_samples=mc_samples, seed=seed)
        else:
            out = self.outputs(X, transformed=True)
        ids_arr = np.asarray(ids)
        table: dict[str, Any] = {"id": ids_arr if ids_arr.dtype != object else ids_arr.astype(str)}
        if self.heads:
            for name, h in self.heads.items():
                table.update(self._columns(out[name], h["task"], h.get("classes"), f"{name}_"))
        else:
            table.update(self._columns(out, self.task, self.classes, ""))
        if spread is not None:
            from trainwell.train.test_time import uncertainty_columns

            table.update(uncertainty_columns(spread, self.task, self._target_units))
        return table

    def predict_proba(self, raw: Any, *, tta: bool = False, mc_samples: int = 0,
                      seed: int = 0) -> Any:
        """Class probabilities, one column per class in the order of ``classes``; with
        ``[heads]``, ``{head: probabilities}`` for each classification head. ``tta`` /
        ``mc_samples``: averaged over test-time views / Monte Carlo passes (docs/tta.md)."""
        from trainwell.train.metrics import output_predictions

        out = self.outputs(raw, tta=tta, mc_samples=mc_samples, seed=seed)
        if self.heads:
            proba = {name: output_predictions(out[name], h["task"])["proba"]
                     for name, h in self.heads.items() if h["task"] != "regression"}
            if not proba:
                raise TrainwellError("predict_proba needs a classification head; every head of "
                                     "this run is regression")
            return proba
        if self.task == "regression":
            raise TrainwellError("predict_proba needs a classification run; this run is regression")
        return output_predictions(out, self.task)["proba"]

    def predict(self, raw: Any, *, tta: bool = False, mc_samples: int = 0,
                seed: int = 0) -> Any:
        """Labels in the training data's own values (classification) or predicted values; with
        ``[heads]``, ``{head: predictions}``. ``tta`` / ``mc_samples``: of the prediction
        averaged over test-time views / Monte Carlo passes (docs/tta.md)."""
        import numpy as np

        from trainwell.train.metrics import output_predictions

        out = self.outputs(raw, tta=tta, mc_samples=mc_samples, seed=seed)

        def labels(o: Any, task: str, classes: list[Any] | None) -> np.ndarray:
            pred = output_predictions(self._target_units(o), task)["y_pred"]
            return pred if task == "regression" or classes is None else np.asarray(classes)[pred]

        if self.heads:
            return {name: labels(out[name], h["task"], h.get("classes"))
                    for name, h in self.heads.items()}
        return labels(out, self.task, self.classes)


def load(run_dir: str | Path, *, trust_code: bool = False) -> Predictor:
    """The predictor of a finished run: its model (best weights) and fitted preprocessing; for
    an ensemble directory (``trainwell ensemble``), its members combined
    (:class:`~trainwell.after.ensemble.EnsemblePredictor`).

    Args:
        run_dir: the run directory.
        trust_code: let a run whose ``model.arch`` is ``"python:module:factory"`` import and
            run that module (``--trust-code`` on the command line); only for a run you trust.

    Raises:
        RunError: a file of the run is missing or damaged (the file is named).
        ConfigError: the run's model is Python code and ``trust_code`` is not given.
    """
    import torch

    from trainwell.config import load_config
    from trainwell.data import load_prepared_transform
    from trainwell.nn import build_model
    from trainwell.nn.build import require_trust, trusting_code
    from trainwell.runs import load_weights, read_data_info

    run_dir = Path(run_dir)
    if (run_dir / "ensemble.json").is_file():  # an ensemble directory: its members, combined
        return _load_ensemble(run_dir, trust_code)
    if not (run_dir / "model.safetensors").is_file():
        raise RunError(f"{run_dir} has no model.safetensors: is it a finished run directory?")
    cfg = load_config(run_dir / "config.toml")
    require_trust(cfg.model.arch, trust_code)  # before anything is imported or read
    info = read_data_info(run_dir)
    shape = tuple(info["input_shape"])
    # building draws initial weights: the caller's RNG is kept
    with torch.random.fork_rng(devices=[]), trusting_code(trust_code):
        torch.manual_seed(cfg.seed)
        example = torch.zeros((2, *shape))
        if several_heads(cfg):
            model = build_run_model(
                cfg, shape, info["n_outputs"], info["task"], info.get("heads"), example
            )
        else:
            model = build_model(cfg.model, shape, info["n_outputs"], info["task"], example)
    load_weights(model, run_dir / "model.safetensors")
    return Predictor(run_dir, model, load_prepared_transform(run_dir), info)


def _load_ensemble(run_dir: Path, trust_code: bool) -> Any:
    """An ensemble directory's :class:`~trainwell.after.ensemble.EnsemblePredictor`: each
    member loaded as a run, checked first (a missing or damaged member is named)."""
    from trainwell.after.ensemble import EnsemblePredictor, check_members, read_ensemble

    spec = read_ensemble(run_dir)
    info = check_members(spec)
    members = [load(d, trust_code=trust_code) for d in spec.member_dirs]
    return EnsemblePredictor(run_dir, members, spec, info)


def _step_options(cfg: Config, prepared: Any) -> dict[str, Any]:
    """``[train] metrics``, ``class_weight`` (one weight per class index, the labels mapped
    through the data's label mapping) and ``label_smoothing`` as ``Supervised``'s arguments;
    empty when none is set. A metric that does not fit the task, or a label that is not a
    class of the data, is a ConfigError."""
    train = cfg.train
    if not (train.metrics or train.class_weight is not None or train.label_smoothing):
        return {}
    from trainwell.train.losses import class_weights
    from trainwell.train.metric_registry import resolve_metrics

    weights = None
    if train.class_weight is not None:
        if prepared.task == "regression":
            raise ConfigError("train.class_weight applies to classification; this task is "
                              "regression")
        n_classes = 2 if prepared.task == "binary" else int(prepared.n_outputs)
        y = prepared.train.y if train.class_weight == "balanced" else None
        weights = class_weights(train.class_weight, y, n_classes, prepared.classes)
    return {"metrics": resolve_metrics(train.metrics, prepared.task), "class_weight": weights,
            "label_smoothing": train.label_smoothing}


def _check_monitored(cfg: Config, prepared: Any, model: Any) -> None:
    """Refuse an early-stopping or plateau metric that the run's validation never logs (a
    misspelled ``val_roc_aucc``), before the run directory exists; the trainer checks the same
    names again. Only for the plain supervised step, whose names are known from the task and
    ``[train] metrics``: a domain step or a model's own ``training_step`` is left to the trainer."""
    if cfg.domain is not None or callable(getattr(model, "training_step", None)):
        return
    if not _split_len(prepared.val):
        return  # no validation data: the trainer watches train_loss instead
    from trainwell.train.metric_registry import resolve_metrics
    from trainwell.train.metrics import metric_names

    train = cfg.train
    names = metric_names(prepared.task, int(prepared.n_outputs), train.top_k, "val",
                         resolve_metrics(train.metrics, prepared.task))
    logged = ["train_loss", "lr", *names]
    wanted = [("train.early_stopping.metric", train.early_stopping.metric)]
    if train.schedule.name == "plateau":
        wanted.append(("train.schedule.metric", train.schedule.metric))
    for where, metric in wanted:
        if metric.startswith("val_") and metric not in logged:
            raise ConfigError(
                f"{where} {metric!r} is not logged for this task; logged: {', '.join(logged)}"
            )


__all__ = ["Predictor", "Run", "fit", "load"]

