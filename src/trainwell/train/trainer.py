"""The training loop: one ``fit`` a reader follows top to bottom.

Data that fits in memory is held as tensors on the device and batched by slicing a shuffled
copy (no per-sample Python, no DataLoader); a ``Dataset`` or ``DataLoader`` streams. Losses
stay on the device: the loop syncs once per evaluation and every few steps for the divergence
check, never per step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError, DivergenceError, RunError, StopRun
from trainwell.schema import section_from_spec
from trainwell.train.accumulation import Accumulation
from trainwell.train.averaging import WeightAverager, make_averager
from trainwell.train.callbacks import Events
from trainwell.train.checkpoint import (
    CheckpointWriter,
    apply_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from trainwell.train.config import (
    AverageConfig,
    EarlyStoppingConfig,
    LossConfig,
    OptimizerConfig,
    PenaltyConfig,
    ScheduleConfig,
    TrainConfig,
)
from trainwell.train.data import TensorBatches, as_batches, has_batch_norm, loader_generators
from trainwell.train.device import autocast_context, resolve_device
from trainwell.train.early_stopping import EarlyStopping
from trainwell.train.objective import (
    Objective,
    StepResult,
    Supervised,
    as_step_result,
    batch_len,
    concat_outputs,
    make_objective,
    split_batch,
)
from trainwell.train.optim import make_optimizer
from trainwell.train.penalties import make_penalty
from trainwell.train.performance import (
    check_channels_last,
    compile_model,
    match_state_layout,
    use_channels_last,
    warm_up,
)
from trainwell.train.schedules import LRSchedule
from trainwell.train.threads import resolve_threads, use_threads
from trainwell.train.user_schedule import UserSchedule, user_schedule_spec

logger = logging.getLogger(__name__)

_CHECK_EVERY = 16  # steps between divergence checks (one device sync each)


class Trainer:
    """Trains any ``nn.Module`` on tensors, a ``Dataset`` or a ``DataLoader``.

    Args:
        model: the network; its outputs are scores / logits.
        loss: a loss name (``auto`` picks one for the task), a ``LossConfig``, or a callable
            ``(output, target) -> scalar``.
        task: ``binary``, ``multiclass`` or ``regression``; default: inferred from the loss, the
            targets and the model's output width (:func:`trainwell.tasks.infer_task`).
        step: what a step computes from a batch: an :class:`~trainwell.train.objective.Objective`
            or a callable ``(model, batch) -> loss | (loss, outputs, targets) | dict``; default:
            the model's own ``training_step(batch[, batch_idx])`` if it has one, else
            :class:`~trainwell.train.objective.Supervised` with ``loss`` and ``task``.
        optimizer: a name, an ``OptimizerConfig`` / dict, or a torch optimizer.
        schedule: a name, a ``ScheduleConfig`` or its dict (stepped every iteration), or a torch
            LR scheduler: an instance built on ``optimizer``, a factory ``optimizer ->
            scheduler``, or ``{"scheduler": ..., "interval": "epoch" | "step", "monitor":
            metric}`` (:mod:`trainwell.train.user_schedule`); its state is checkpointed.
        penalty: a ``PenaltyConfig``: lambda * R(W) added to the data loss.
        epochs, batch_size, eval_batch_size, shuffle: the loop.
        early_stopping: an ``EarlyStoppingConfig`` or its dict (``{"metric": "val_accuracy",
            "patience": 5}``); the best snapshot is kept and restored always.
        grad_clip: clip the global gradient norm to this.
        precision: ``fp32``, ``bf16`` or ``fp16``: autocast on a GPU; bf16 also on a CPU that
            computes it natively (else fp32 with a warning); ``precision_used`` says which ran.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        callbacks: objects with event methods (see :mod:`trainwell.train.callbacks`).
        seed: seeds the batch order (default: drawn from torch's global RNG).
        checkpoint_dir, checkpoint_every: where and every how many epochs to checkpoint
            (0: at the end only; no directory: never).
        metrics_log: an object with ``append(record)`` (a ``MetricsLog``), or None.
        num_workers: DataLoader workers for data that streams.
        restore_best: at the end, load the best snapshot (by the early-stopping metric) into
            the model; False keeps the last epoch's weights (domain-adversarial training, whose
            source validation loss does not say which weights adapted best).
        threads: intra-op threads during ``fit``: ``"auto"`` (one for a small step, else the
            idle cores; :mod:`trainwell.train.threads`), a count, or None (torch's setting).
        channels_last: weights and 4-D input batches in ``torch.channels_last`` order (images
            only; :mod:`trainwell.train.performance`).
        compile: train and evaluate through ``torch.compile(model)`` with ``compile_backend``
            (``inductor``, ``aot_eager`` or ``eager``), compiled before the first epoch;
            ``compile_time`` holds the seconds that took; ``model`` stays the plain module.
        average: weight averaging: ``"ema"``, ``"swa"``, a dict or an ``AverageConfig``
            (:mod:`trainwell.train.averaging`); once averaging has started, validation, the
            best snapshot and the weights kept at the end are the averaged ones.
        metrics: metrics logged beside the task's own: names, ``"python:module:function"``
            or callables ``fn(y_true, y_pred[, proba=])`` (:mod:`trainwell.train.metric_registry`).
        class_weight: the cross-entropy losses' per-class weights: ``"balanced"``, one weight per
            class index, or ``{class index: weight}``.
        label_smoothing: the cross-entropy losses' label smoothing, in [0, 1).
        accumulate: micro-batches of ``batch_size`` per optimizer step (gradient accumulation,
            :mod:`trainwell.train.accumulation`); schedules, ``step``, weight averaging and
            checkpoints count optimizer steps.

    Attributes:
        history: one dict of metrics per finished epoch.
        epoch, step, lr: the current epoch (1-based), update count and learning rate.
        objective: what each step computes; ``task`` is its task once ``fit`` has started.
        batch, output, target, loss: the current batch, the step's outputs and targets, and the
            full loss (data loss + penalty), for callbacks.
        best_epoch, stopped_early, diverged: how the fit ended.
        outcome: ``running``, then ``completed``, ``stopped_early``, ``stopped`` (a callback set
            ``stop_training``), ``diverged``, ``failed``, ``interrupted`` or a :class:`StopRun`'s
            status (``pruned``); ``error`` holds the exception that ended the fit, if any.
        averager: the :class:`~trainwell.train.averaging.WeightAverager` of ``average``, or None.

    Example:
        >>> X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        >>> t = Trainer(nn.Linear(4, 3), epochs=2, seed=0).fit((X, y))
        >>> [r["epoch"] for r in t.history]
        [1, 2]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: str | LossConfig | Callable[[Tensor, Tensor], Tensor] = "auto",
        task: str | None = None,
        step: Objective | Callable[[nn.Module, Any], Any] | None = None,
        optimizer: str | OptimizerConfig | dict[str, Any] | torch.optim.Optimizer = "adam",
        schedule: str | dict[str, Any] | ScheduleConfig | Any | None = None,
        penalty: PenaltyConfig | None = None,
        epochs: int = 10,
        batch_size: int = 64,
        eval_batch_size: int = 4096,
        shuffle: bool = True,
        early_stopping: EarlyStoppingConfig | dict[str, Any] | None = None,
        grad_clip: float | None = None,
        precision: str = "fp32",
        device: str | torch.device = "auto",
        callbacks: Iterable[Any] = (),
        top_k: int = 5,
        seed: int | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        metrics_log: Any = None,
        num_workers: int = 0,
        restore_best: bool = True,
        threads: int | str | None = "auto",
        channels_last: bool = False,
        compile: bool = False,
        compile_backend: str = "inductor",
        average: str | dict[str, Any] | AverageConfig | None = None,
        metrics: Any = None,
        class_weight: Any = None,
        label_smoothing: float = 0.0,
        accumulate: int = 1,
    ) -> None:
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ConfigError(
                f"train.accumulate must be an integer >= 1 (micro-batches per optimizer step); "
                f"got {accumulate!r}"
            )
        self.accumulate = accumulate
        self.batches_per_epoch = 0  # micro-batches; steps_per_epoch counts optimizer steps
        self.device = resolve_device(device)
        self.keep_best = restore_best
        self.threads = threads
        self.model = model.to(self.device)
        self.channels_last, self.compile = channels_last, compile
        self.compile_time: float | None = None  # seconds of train.compile's warm-up
        if channels_last:
            use_channels_last(self.model)
        # train.compile: the loop calls the compiled wrapper; self.model stays the plain module
        self._compiled = compile_model(self.model, compile_backend) if compile else None
        self.objective = make_objective(
            step,
            self.model,
            loss=loss,
            task=task,
            top_k=top_k,
            batch_index=lambda: self.batch_index,
            metrics=metrics,
            class_weight=class_weight,
            label_smoothing=label_smoothing,
        )
        self.task: str | None = self.objective.task
        self.user_schedule = user_schedule_spec(schedule)  # a torch scheduler, else None
        self.schedule_spec = schedule_config(None if self.user_schedule else schedule)
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.shuffle, self.grad_clip, self.top_k, self.num_workers = (
            shuffle,
            grad_clip,
            top_k,
            num_workers,
        )
        self.precision = precision
        self.precision_used = precision  # what ran: fp32 where the device cannot (set by fit)
        self._scaler: Any = None  # fp16's GradScaler during fit (its state is checkpointed)
        es = section_from_spec(EarlyStoppingConfig, early_stopping or {"patience": None},
                               "train.early_stopping")
        self.early_stopping = EarlyStopping(es.metric, es.mode, es.patience, es.min_delta)
        self.callbacks = list(callbacks)
        _check_state_keys(self.callbacks)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.generator = torch.Generator().manual_seed(seed)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.metrics_log = metrics_log
        # state a callback may read
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.step = 0
        self.lr = float("nan")
        self.best_epoch = 0
        self.stopped_early = False
        self.diverged = False
        self.stop_training = False  # a callback may set this to end the fit after the epoch
        self.batch: Any = None
        self.batch_index = 0
        self.steps_per_epoch = 0
        self.output: Any = None
        self.target: Any = None
        self.loss: Tensor | None = None
        self.outcome = "running"
        self.error: BaseException | None = None
        self.elapsed = 0.0
        # built here, before fit: the first optimizer of a process imports torch._dynamo (~1 s)
        self.penalty = make_penalty(penalty, self.model)
        self.optimizer: torch.optim.Optimizer = (
            optimizer
            if isinstance(optimizer, torch.optim.Optimizer)
            else make_optimizer(optimizer, self.model)
        )
        self.schedule: LRSchedule | UserSchedule | None = None
        self._best_state: dict[str, Tensor] | None = None
        self._data_generators: list[torch.Generator] = []
        self.averager: WeightAverager | None = make_averager(average)
        # data-parallel training: a DataParallel set by train.distributed.distribute
        self.distributed: Any = None

    @classmethod
    def from_config(
        cls, model: nn.Module, cfg: TrainConfig, *, task: str, seed: int, **kwargs: Any
    ) -> Trainer:
        """A trainer for the ``[train]`` section ``cfg``; ``kwargs`` add to it or override it."""
        settings: dict[str, Any] = {
            "loss": cfg.loss,
            "optimizer": cfg.optimizer,
            "schedule": cfg.schedule,
            "penalty": cfg.penalty,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "eval_batch_size": cfg.eval_batch_size,
            "shuffle": cfg.shuffle,
            "early_stopping": cfg.early_stopping,
            "grad_clip": cfg.grad_clip,
            "precision": cfg.precision,
            "top_k": cfg.top_k,
            "num_workers": cfg.num_workers,
            "threads": cfg.threads,
            "device": cfg.device,
            "channels_last": cfg.channels_last,
            "compile": cfg.compile,
            "compile_backend": cfg.compile_backend,
            "average": cfg.average,
            "metrics": cfg.metrics,
            "class_weight": cfg.class_weight,
            "label_smoothing": cfg.label_smoothing,
            "accumulate": cfg.accumulate,
        }
        settings.update(kwargs)
        return cls(model, task=task, seed=seed, **settings)

    @property
    def forward_model(self) -> nn.Module:
        """What the loop and evaluation call: the compiled wrapper with ``compile``, else the
        model."""
        return self._compiled if self._compiled is not None else self.model

    # ------------------------------------------------------------------ the loop

    def fit(self, train: Any, val: Any = None, *, resume: str | Path | None = None) -> Trainer:
        """Train on ``train`` (tensors ``(X, y)``, a Split, a Dataset or a DataLoader).

        Args:
            train: the training data.
            val: validation data of the same kinds, or None.
            resume: a checkpoint directory to continue from.

        Raises:
            DivergenceError: the loss became NaN or inf (the best snapshot is restored first).
        """
        with use_threads(resolve_threads(self.threads, self.model, self.batch_size)):
            return self._fit(train, val, resume)

    def _fit(self, train: Any, val: Any, resume: str | Path | None) -> Trainer:
        events = Events(self.callbacks)
        writer = CheckpointWriter()  # a periodic checkpoint is written during the next epoch
        self.outcome, self.error = "running", None
        try:  # from here on, every ending fires the `end` event
            batches = as_batches(
                train,
                self.batch_size,
                self.shuffle,
                self.generator,
                self.device,
                self.num_workers,
                drop_single=has_batch_norm(self.model),  # BatchNorm cannot train on one row
            )
            val_data = as_batches(
                val, self.eval_batch_size, False, None, self.device, self.num_workers
            )
            self._setup(batches, val_data is not None and len(val_data) > 0)
            # a user's DataLoader may shuffle from its own generator; the trainer's is saved too
            self._data_generators = [
                g for g in loader_generators(batches) if g is not self.generator
            ]
            # before the checkpoint: fp16's loss scale is part of the state a resume restores
            autocast, scaler, self.precision_used = autocast_context(self.device, self.precision)
            self._scaler = scaler
            if resume is not None:
                self.load_checkpoint(resume)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            start = time.perf_counter() - self.elapsed
            events("before_fit", self)
            try:
                self._loop(batches, val_data, events, autocast, scaler, params, start, writer)
            except BaseException:
                with contextlib.suppress(Exception):  # the loop's error is the one to report
                    writer.wait()
                raise
            writer.wait()
            if self.averager is not None and self._best_state is None and self.history:
                self._snapshot()  # stopped before SWA's start: the last raw weights are kept
            self.save_checkpoint()
            if self.keep_best:
                self.restore_best()
            elif self.averager is not None and self.averager.started(self.epoch):
                self.averager.copy_to(self.model)  # the last epoch's averaged weights
            self.outcome = (
                "stopped_early"
                if self.stopped_early
                else "stopped"
                if self.stop_training
                else "completed"
            )
            events("after_fit", self)
        except BaseException as exc:
            self.error = exc
            self.outcome = _outcome_of(exc)
            raise
        finally:
            events.end(self)  # always: after a normal end, an early stop, a divergence, an error
        return self

    def _loop(
        self,
        batches: Any,
        val_data: Any,
        events: Events,
        autocast: Any,
        scaler: Any,
        params: list[Tensor],
        start: float,
        writer: CheckpointWriter,
    ) -> None:
        model, opt, sched = self.forward_model, self.optimizer, self.schedule
        objective = self.objective
        step: Callable[[nn.Module, Any], StepResult] = (
            objective.loss  # the default returns a StepResult; others may return a bare loss
            if isinstance(objective, Supervised)
            else lambda m, b: as_step_result(objective.loss(m, b))
        )
        assert sched is not None
        accumulation = Accumulation(self.accumulate, batches)
        k = self.accumulate
        while self.epoch < self.epochs and not (self.stopped_early or self.stop_training):
            self.epoch += 1
            model.train()
            if self.averager is not None:
                self.averager.before_epoch(self)  # SWA: its constant LR from the start epoch
            events("before_epoch", self)
            t0 = time.perf_counter()
            losses: list[Tensor] = []  # per-batch data losses, kept on the device
            sizes: list[int] = []
            first_step = self.step
            for self.batch_index, batch in enumerate(batches):
                self.batch = batch
                events("before_batch", self)
                self.lr = opt.param_groups[0]["lr"]
                last = k == 1 or accumulation.ends_group(self.batch_index)
                # DDP: no_sync must cover the forward pass too, or the backward still syncs
                with self._grad_sync(last):
                    with autocast:
                        # what the step computes (one head by default; see train/objective.py)
                        data_loss, self.output, self.target = step(model, batch)
                        # full loss = data loss averaged over the batch + lambda R(W) (lecture 003)
                        self.loss = (data_loss if self.penalty is None
                                     else data_loss + self.penalty())
                    events("after_loss", self)
                    target = self.target
                    n = len(target) if isinstance(target, Tensor) else batch_len(batch)
                    if k == 1:
                        scaler.scale(self.loss).backward()  # gradients of the full loss
                    else:  # a micro-batch: its share of the group's mean loss
                        weight = accumulation.weight(self.batch_index, n)
                        scaler.scale(self.loss * weight).backward()
                events("after_backward", self)
                losses.append(data_loss.detach())
                sizes.append(n)
                if not last:
                    if len(losses) % _CHECK_EVERY == 0:
                        self._check_finite(losses[-_CHECK_EVERY:], len(losses) - _CHECK_EVERY,
                                           first_step)
                    events("after_batch", self)
                    continue
                if k > 1:
                    accumulation.correct(params)
                if self.grad_clip is not None:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)  # clip
                scaler.step(opt)  # update the weights
                scaler.update()
                for p in (
                    params
                ):  # drop the gradients (zero_grad(set_to_none=True), minus its profiler hooks)
                    p.grad = None
                sched.step()  # LR of the next update
                self.step += 1
                if self.averager is not None:
                    self.averager.after_step(self)  # EMA: average this step's weights
                events("after_step", self)
                if len(losses) % _CHECK_EVERY == 0:
                    self._check_finite(losses[-_CHECK_EVERY:], len(losses) - _CHECK_EVERY,
                                       first_step)
                events("after_batch", self)
            rest = len(losses) % _CHECK_EVERY or _CHECK_EVERY
            self._check_finite(losses[-rest:], len(losses) - rest, first_step)
            # the epoch's record: mean train loss, val loss and metrics, LR, times
            record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "lr": self.lr}
            weights = torch.tensor(sizes, dtype=torch.float64, device=losses[0].device)
            record["train_loss"] = float(
                (torch.stack(losses).double() * weights).sum() / weights.sum()
            )
            record.update(self.objective.epoch_end())  # the step's own terms (train_<name>)
            if self.averager is not None:
                self.averager.after_epoch(self)  # SWA: average this epoch's weights
            if val_data is not None:
                record.update(self.evaluate(val_data, prefix="val", model=self._kept_model()))
            self.elapsed = time.perf_counter() - start
            record["epoch_time"] = time.perf_counter() - t0
            record["time"] = self.elapsed
            self.history.append(record)
            if self.metrics_log is not None:
                self.metrics_log.append(record)
            # early stopping: keep the best snapshot; stop after `patience` bad epochs
            # (with weight averaging: only epochs whose kept weights are the averaged ones)
            if self._averaged_or_plain() and self.early_stopping.update(
                float(record[self.early_stopping.metric]), self.epoch
            ):
                self._snapshot()
            self.stopped_early = self.early_stopping.should_stop
            sched.epoch_end(record)
            writer.wait()  # the previous checkpoint, written during this epoch, is on disk now
            events("after_epoch", self)
            last = self.epoch >= self.epochs or self.stopped_early or self.stop_training
            if (
                self.checkpoint_dir is not None
                and self.checkpoint_every
                and self.epoch % self.checkpoint_every == 0
                and not last
            ):
                writer.submit(
                    self.checkpoint_dir, self.state_dict()
                )  # the last one: after the loop

    # ------------------------------------------------------------------ pieces of the loop

    def _setup(self, batches: Any, has_val: bool) -> None:
        self.batches_per_epoch = len(batches)
        self.steps_per_epoch = steps_per_epoch = -(-len(batches) // self.accumulate)
        if steps_per_epoch == 0:
            raise ConfigError("the training data is empty")
        if self.accumulate > self.batches_per_epoch:
            logger.warning(
                "train.accumulate is %d but an epoch has %d batch(es) of at most %d: each "
                "optimizer step sums the whole epoch, fewer samples than %d x %d; lower "
                "train.accumulate or train.batch_size to get the step size you asked for",
                self.accumulate, self.batches_per_epoch, self.batch_size, self.accumulate,
                self.batch_size,
            )
        self.objective.bind(self)
        self.train_batches = batches  # what the objective may count (class_weight "balanced")
        self.objective.setup(self.model, batches.peek())  # the task, the loss, the output width
        self.task = self.objective.task
        if self.channels_last:
            x = split_batch(batches.peek())[0]
            check_channels_last(tuple(x.shape[1:]), "the training data")
        if self.compile and self.compile_time is None:  # before the epochs' clock starts
            self.compile_time = warm_up(self.forward_model, split_batch(batches.peek())[0],
                                        self.device)
        self._check_metric_names(has_val)
        self.schedule = (
            LRSchedule(self.optimizer, self.schedule_spec, steps_per_epoch, self.epochs)
            if self.user_schedule is None
            else UserSchedule(self.optimizer, self.user_schedule)
        )
        self.lr = self.schedule.lr
        if self.averager is not None:
            self.averager.setup(self, batches)

    def _check_metric_names(self, has_val: bool) -> None:
        """Refuse, before training, an early-stopping or plateau metric that is never logged."""
        logged = ["train_loss", "lr", *self.objective.train_metric_names()]
        logged += self.objective.metric_names("val") if has_val else []
        wanted = [("train.early_stopping.metric", self.early_stopping.metric)]
        if self.schedule_spec.name == "plateau":
            wanted.append(("train.schedule.metric", self.schedule_spec.metric))
        for field, name in wanted:
            if not has_val and name.startswith("val_"):
                level = logging.DEBUG if self.early_stopping.patience is None else logging.WARNING
                logger.log(
                    level, "%s is %r but there is no validation data; using train_loss", field, name
                )
                if field.startswith("train.early_stopping"):
                    es = self.early_stopping
                    self.early_stopping = EarlyStopping(
                        "train_loss", "min", es.patience, es.min_delta
                    )
                else:
                    self.schedule_spec = self.schedule_spec.model_copy(
                        update={"metric": "train_loss"}
                    )
                continue
            if name in logged:
                continue
            raise ConfigError(
                f"{field} {name!r} is not logged for this task; logged: {', '.join(logged)}"
            )

    def _grad_sync(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """The context of one micro-batch's backward pass; ``last``: it ends the group, and
        the optimizer steps after it. Here nothing; a data-parallel trainer syncs gradients
        across processes only on the last micro-batch (``no_sync`` on the others)."""
        if self.distributed is None:
            return contextlib.nullcontext()
        return self.distributed.grad_sync(last)

    def _check_finite(self, losses: list[Tensor], first_index: int, epoch_start: int) -> None:
        """Stop at once on a NaN / inf loss, naming the step and LR (one sync); ``losses`` are
        the epoch's micro-batches from ``first_index`` on, ``epoch_start`` the step count
        before the epoch."""
        if not losses:
            return
        stacked = torch.stack(losses)
        if bool(torch.isfinite(stacked).all()):
            return
        bad = int((~torch.isfinite(stacked)).nonzero()[0, 0])
        step = epoch_start + (first_index + bad) // self.accumulate + 1
        lr = self.schedule.lr_at(step - 1) if self.schedule is not None else self.lr
        self.diverged = True
        self.restore_best()
        raise DivergenceError(
            f"the loss became {float(stacked[bad])} at step {step} "
            f"(epoch {self.epoch}, lr {lr:.3g}); "
            "likely causes: the learning rate is too high (lower train.optimizer.lr or add "
            "train.schedule.warmup), a bad initialization (model.init), or unscaled inputs "
            "(add 'standardize' to data.preprocess). "
            + (
                f"The best snapshot (epoch {self.best_epoch}) was restored."
                if self.best_epoch
                else "No epoch finished, so there is no snapshot to keep."
            )
        )

    def _kept_model(self) -> nn.Module:
        """The network an epoch keeps and is judged by: the averaged one once averaging has
        started, else the model being trained."""
        if self.averager is not None and self.averager.started(self.epoch):
            return self.averager.model()
        return self.model

    def _averaged_or_plain(self) -> bool:
        """Whether this epoch may become the best snapshot: always without weight averaging;
        with it, once averaging has started (SWA: not before its start epoch)."""
        return self.averager is None or self.averager.started(self.epoch)

    def _snapshot(self) -> None:
        state = self._kept_model().state_dict()
        if self._best_state is None:
            self._best_state = {k: v.detach().clone() for k, v in state.items()}
        else:
            with torch.no_grad():
                for k, v in state.items():
                    self._best_state[k].copy_(v)
        self.best_epoch = self.epoch

    def restore_best(self) -> None:
        """Load the best snapshot into the model (no-op before the first epoch)."""
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)

    # ------------------------------------------------------------------ evaluation

    def _eval_batches(self, data: Any) -> Any:
        if isinstance(data, TensorBatches) or hasattr(data, "peek"):
            return data
        return as_batches(data, self.eval_batch_size, False, None, self.device, self.num_workers)

    def predict_outputs(self, data: Any) -> tuple[Any, Tensor | None]:
        """Raw model outputs (and targets, if any) over ``(x, y)`` data, in eval mode, batched;
        a model with several heads gives ``{head: outputs}``."""
        self.model.eval()
        outs, ys = [], []
        with torch.inference_mode():
            for batch in self._eval_batches(data):
                xb, yb = split_batch(batch)
                outs.append(self.forward_model(xb))
                if yb is not None:
                    ys.append(yb)
        return concat_outputs(outs), (torch.cat(ys) if ys else None)

    def evaluate(
        self, data: Any, prefix: str = "val", model: nn.Module | None = None
    ) -> dict[str, float]:
        """``<prefix>_loss`` and the task's metrics on ``data``, as the objective computes them
        (on ``model``, default the trainer's)."""
        if data is None or len(data) == 0:
            return {}
        model = model if model is not None else self.forward_model
        return self.objective.evaluate(model, self._eval_batches(data), prefix)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs."""
        assert self.optimizer is not None and self.schedule is not None
        return {
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "model": self.model.state_dict(),
            "best": self._best_state,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "early_stopping": self.early_stopping.state_dict(),
            "history": self.history,
            "rng": rng_state(self.generator),
            "data_rng": [g.get_state() for g in self._data_generators],
            "objective": self.objective.state_dict(),
            "environment": self.environment(),
            **({"average": self.averager.state_dict()} if self.averager is not None else {}),
            **({"callbacks": states} if (states := self._callback_states()) else {}),
            **({"scaler": scaler} if (scaler := self._scaler_state()) else {}),
        }

    def _scaler_state(self) -> dict[str, Any] | None:
        """fp16's gradient scaler (its loss scale and growth counter), or None without one."""
        scaler = self._scaler  # a GradScaler, or anything that wraps one, has a state_dict
        if callable(getattr(scaler, "state_dict", None)) and scaler.is_enabled():
            return {k: v for k, v in scaler.state_dict().items() if isinstance(v, (int, float))}
        return None

    def _callback_states(self) -> dict[str, Any]:
        """The state of each callback that has a ``state_key`` and ``state_dict()``, by key."""
        return {cb.state_key: cb.state_dict() for cb in self.callbacks
                if getattr(cb, "state_key", None) and hasattr(cb, "state_dict")}

    def _load_callback_states(self, saved: dict[str, Any]) -> None:
        for cb in self.callbacks:
            key = getattr(cb, "state_key", None)
            if not key or not hasattr(cb, "load_state_dict"):
                continue
            if key in saved:
                cb.load_state_dict(saved[key])
            else:
                logger.warning(
                    "the checkpoint holds no state for callback %s (state_key %r): it starts "
                    "afresh, and the resumed run may differ from an uninterrupted one",
                    type(cb).__name__, key,
                )

    def environment(self) -> dict[str, Any]:
        """What bit-exact resume depends on beyond the state: the intra-op thread count (sums
        are split and ordered by it), the torch version and the device."""
        return {
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(self.device),
        }

    def _check_environment(self, saved: dict[str, Any] | None) -> None:
        """Warn, naming each difference, when this process cannot resume bit for bit."""
        if not saved:
            return
        threads = saved.get("threads")
        if self.threads == "auto" and isinstance(threads, int) and threads >= 1:
            torch.set_num_threads(threads)  # "auto" resumes with the count it chose at the start
        now = self.environment()
        diffs = [f"{k} {saved[k]} -> {now[k]}" for k in now if k in saved and saved[k] != now[k]]
        if diffs:
            logger.warning(
                "resuming with a different %s than the checkpoint was written with: training "
                "goes on, but not bit-identical to an uninterrupted run (floating-point sums "
                "are split and ordered differently); resume with the same settings (threads: "
                "OMP_NUM_THREADS or torch.set_num_threads) to be exact",
                ", ".join(diffs),
            )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.optimizer is not None and self.schedule is not None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        match_state_layout(self.optimizer)  # channels_last parameters: their moments NHWC too
        self.schedule.load_state_dict(state["schedule"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        if state["best"] is not None:
            self._best_state = {k: v.to(self.device) for k, v in state["best"].items()}
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.elapsed, self.best_epoch = float(state["elapsed"]), int(state["best_epoch"])
        self.stopped_early = bool(state["stopped_early"])
        self.history = list(state["history"])
        self.lr = self.schedule.lr
        set_rng_state(state["rng"], self.generator)
        saved = state.get("data_rng", [])
        if len(saved) != len(self._data_generators):
            raise ConfigError(
                f"the checkpoint holds the state of {len(saved)} DataLoader generator(s) but the "
                f"training data has {len(self._data_generators)}: resume with the same kind of "
                "loader"
            )
        for g, g_state in zip(self._data_generators, saved, strict=True):
            g.set_state(g_state)
        self.objective.load_state_dict(state.get("objective") or {})
        if self.averager is not None:
            self.averager.load_state_dict(state.get("average"))
        elif state.get("average") is not None:
            raise RunError(
                "the checkpoint holds averaged weights but this trainer averages none: resume "
                "with the same train.average"
            )
        self._load_callback_states(state.get("callbacks") or {})
        scaler = self._scaler
        if state.get("scaler") and callable(getattr(scaler, "load_state_dict", None)):
            # the loss scale an fp16 run had reached: a fresh 2**16 would overflow again
            scaler.load_state_dict(dict(state["scaler"]))
        self._check_environment(state.get("environment"))

    def save_checkpoint(self, directory: str | Path | None = None) -> Path | None:
        directory = Path(directory) if directory is not None else self.checkpoint_dir
        if directory is None:
            return None
        return save_checkpoint(directory, self.state_dict())

    def load_checkpoint(self, directory: str | Path) -> None:
        """Continue from the checkpoint in ``directory``; a damaged one, or one of another
        model, is a RunError naming the file."""
        apply_checkpoint(directory, self.load_state_dict, self.model)


def schedule_config(spec: str | dict[str, Any] | ScheduleConfig | None) -> ScheduleConfig:
    """A schedule name, dict or ``ScheduleConfig`` as a checked ``ScheduleConfig``."""
    return section_from_spec(ScheduleConfig, spec or "constant", "train.schedule")


def _check_state_keys(callbacks: list[Any]) -> None:
    """Refuse two callbacks whose states would be saved under the same ``state_key``."""
    keys = [k for cb in callbacks if (k := getattr(cb, "state_key", None))]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(
            f"two callbacks have the state_key {twice[0]!r}; each callback whose state is "
            "checkpointed needs its own"
        )


def _outcome_of(exc: BaseException) -> str:
    """How an exception ended a fit, in the words of ``Trainer.outcome``."""
    if isinstance(exc, DivergenceError):
        return "diverged"
    if isinstance(exc, StopRun):
        return exc.status
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"


__all__ = ["Trainer"]
