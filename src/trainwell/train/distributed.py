"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` launched by ``torchrun``.

One model is trained by N processes (ranks). Each rank holds a full copy of the model wrapped in
``DistributedDataParallel``, computes the gradient on its share of each batch, and DDP averages
the gradients across ranks during the backward pass, so every rank takes the same optimizer step
and the copies stay identical.

* **The batch.** ``train.batch_size`` is the *global* batch: the rows of one optimizer step over
  all ranks together. Every rank draws the same permutation of the training rows per epoch from
  the seed-derived generator (the one a single process draws), cuts it into the same global
  batches as a single process would, and takes its share of each: ``batch_size // N`` rows, the
  first ``batch_size % N`` ranks one more. A gradient hook weights each rank's gradient by its
  share of the batch, so a step is the step of one process on the whole batch, up to the order
  of floating-point sums. A last global batch too small to give every rank its rows (one, two
  with BatchNorm) is left out, with a note. Lazily loaded data goes through a
  ``DistributedSampler`` (``set_epoch`` each epoch), ``batch_size // N`` samples per rank.
* **Metrics.** The training loss is reduced across ranks (the sums of loss x rows and of rows);
  every rank evaluates the whole validation split with the same weights, so the numbers, and
  what early stopping decides from them, are the same on every rank.
* **Files.** Rank 0 alone creates the run directory and writes checkpoints, metrics and the
  report; the other ranks follow it (an error of rank 0 at the start reaches them, so no rank
  waits forever). Checkpoints hold the plain module's weights (no ``module.`` prefix) and every
  rank's generator states, for exact resume at the same world size.
* **BatchNorm.** On CUDA the model's BatchNorm layers become ``SyncBatchNorm`` (statistics over
  the global batch); on the CPU, where ``SyncBatchNorm`` does not run, each rank normalizes with
  its own share's statistics (logged once) and the running statistics of rank 0 are kept.

The process group is the one already initialized in the process (a user's), else one this
module creates from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the
rendezvous address): gloo on the CPU, NCCL on CUDA; a group created here is destroyed at the
end of the fit, a user's is left alone. docs/distributed.md is the user's guide.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from trainwell.errors import ConfigError, RunError
from trainwell.train.checkpoint import rng_state, set_rng_state
from trainwell.train.data import LoaderBatches, TensorBatches, has_batch_norm
from trainwell.train.objective import (
    Objective,
    StepResult,
    as_step_result,
    batch_len,
)

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

logger = logging.getLogger(__name__)


def env_world_size() -> int:
    """The world size torchrun gives this process (``WORLD_SIZE``), or the initialized group's;
    1 outside both."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def env_rank() -> int:
    """This process's rank (the initialized group's, else torchrun's ``RANK``); 0 outside both."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """Whether this process writes the run's files: rank 0, or a process that is not a rank."""
    return env_rank() == 0


def rows_per_rank(model: nn.Module) -> int:
    """The fewest rows a rank may train on in a step: 2 with BatchNorm (per-rank statistics),
    else 1."""
    return 2 if has_batch_norm(model) else 1


def check_world_batch(batch_size: int, world_size: int, min_rows: int = 1) -> None:
    """Refuse a global ``batch_size`` that cannot give each of ``world_size`` ranks
    ``min_rows`` rows.

    Raises:
        ConfigError: naming ``train.batch_size``, the process count and what is allowed.
    """
    if world_size > 1 and batch_size < world_size * min_rows:
        need = world_size * min_rows
        bn = " (a model with BatchNorm needs 2 rows per process)" if min_rows > 1 else ""
        raise ConfigError(
            f"train.batch_size = {batch_size} is the global batch, split across {world_size} "
            f"processes: it needs at least {need} rows{bn}; use train.batch_size >= {need} or "
            f"at most {batch_size // min_rows} processes (--nproc)"
        )


def check_data_parallel(ctx: Distributed, batch_size: int, model: nn.Module, train: Any,
                        augmenter: Any = None) -> None:
    """Refuse, before a run directory exists, what ``ctx``'s processes cannot train on: a global
    batch too small for them (:func:`check_world_batch`), or augmented lazily loaded images
    (their loader's order cannot be split by rank yet).

    Raises:
        ConfigError: naming the field and what to do.
    """
    check_world_batch(batch_size, ctx.world_size, rows_per_rank(model))
    if augmenter is not None and not isinstance(getattr(train, "X", None), Tensor):
        raise ConfigError(
            f"[augment] on lazily loaded images cannot be split across {ctx.world_size} "
            "processes yet: train in one process, or load the images into memory"
        )


@dataclass
class Distributed:
    """The process group this fit runs in: this rank, the world size and the device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    created: bool  # this module initialized the group (and destroys it at the end)
    group: Any = None  # None: the default group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object); every rank calls it."""
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value, group=self.group)
        return out

    def announce(self, outcome: Any) -> None:
        """Rank 0: hand its outcome (a picklable value, or the exception it failed with) to the
        other ranks, which wait for it in :meth:`follow`."""
        self.share(("error", f"{type(outcome).__name__}: {outcome}")
                   if isinstance(outcome, BaseException) else ("ok", outcome))

    def follow(self) -> Any:
        """The other ranks: rank 0's :meth:`announce`; a failure of rank 0 is raised here too,
        so no rank waits for it forever."""
        kind, value = self.share(None)
        if kind == "error":
            raise RunError(f"process 0 failed, so process {self.rank} stops: {value}")
        return value


def _die_with_parent() -> None:
    """In a process torchrun started: end when torchrun ends, even by SIGKILL (Linux), so a
    killed launcher leaves no rank training on (and a resumed run is the only writer)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def process_group(device_spec: str | torch.device = "auto") -> Iterator[Distributed | None]:
    """The process group of a fit: the initialized one, else one made from torchrun's
    environment when ``WORLD_SIZE`` > 1, else None (one process).

    A group created here uses gloo on the CPU and NCCL on CUDA and is destroyed when the block
    ends; a group the caller initialized is used as it is and left alone.
    """
    from trainwell.train.device import resolve_device

    created = False
    if not (dist.is_available() and dist.is_initialized()):
        if env_world_size() <= 1:
            yield None
            return
        if not dist.is_available():  # pragma: no cover - torch built without distributed
            raise ConfigError("WORLD_SIZE > 1 but this torch has no torch.distributed")
        if "TORCHELASTIC_RUN_ID" in os.environ:
            _die_with_parent()
        device = resolve_device(device_spec)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        created = True
    try:
        device = resolve_device(device_spec)
        local_rank = int(os.environ.get("LOCAL_RANK", str(dist.get_rank())))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        yield Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                          local_rank=local_rank, device=device, created=created)
    finally:
        if created and dist.is_initialized():
            # what still refers to the group in reference cycles (a DDP wrapper, its reducer)
            # is freed now, while the interpreter is whole, not in its teardown
            gc.collect()
            dist.destroy_process_group()


# ---------------------------------------------------------------------------- the batches


def rank_share(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` rank ``rank`` takes of a global batch of ``n`` rows: ``n //
    world_size`` each, the first ``n % world_size`` ranks one more.

    Example:
        >>> [rank_share(10, r, 3) for r in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class _HookState:
    """What the gradient hook reads: this rank's share of the current global batch."""

    def __init__(self, group: Any, world_size: int) -> None:
        self.group = group
        self.weight = 1.0 / world_size


def _weighted_allreduce(state: _HookState, bucket: Any) -> torch.futures.Future[Tensor]:
    """DDP's gradient reduction, weighting each rank by its share of the batch (rows / global
    rows) instead of 1 / world size: unequal shares (a batch size that the world size does not
    divide, a last partial batch) then average to the gradient of the whole batch."""
    buffer = bucket.buffer()
    buffer.mul_(state.weight)
    work = dist.all_reduce(buffer, group=state.group, async_op=True)
    assert work is not None
    return work.get_future().then(lambda fut: fut.value()[0])


# DDP checks a hook's annotations as objects; this module's are strings (postponed evaluation)
_weighted_allreduce.__annotations__ = {
    "state": _HookState, "bucket": dist.GradBucket, "return": torch.futures.Future[Tensor]}


class ShardedTensorBatches(TensorBatches):
    """In-memory batches split by rank from one global permutation per epoch.

    Every rank draws the permutation a single process draws (the same generator, seeded alike),
    cuts the same global batches of ``batch_size`` rows and takes its share of each
    (:func:`rank_share`); before yielding a batch it sets the gradient hook's weight to that
    share. With gradient accumulation (``accumulate`` batches per optimizer step) the weight is
    the rank's share of the whole group's rows: the trainer leaves each rank the mean gradient
    over its own rows of the group, so shares weighted that way sum to the group's mean
    gradient even where the shares differ between micro-batches. A last global batch with fewer
    than ``world_size * min_rows`` rows is left out.
    """

    def __init__(self, X: Tensor, y: Tensor | None, batch_size: int, shuffle: bool,
                 generator: torch.Generator | None, device: torch.device, rank: int,
                 world_size: int, hook: _HookState, min_rows: int = 1,
                 accumulate: int = 1) -> None:
        super().__init__(X, y, batch_size, shuffle, generator, device)
        self.rank, self.world_size, self.hook = rank, world_size, hook
        self.accumulate = accumulate
        n, bs = len(X), batch_size
        tail = n % bs
        self.n_rows = n - tail if 0 < tail < world_size * min_rows else n
        if self.n_rows < n and rank == 0:
            logger.warning(
                "%d training rows in global batches of %d leave a last batch of %d rows, too "
                "few for %d processes (%d each): each epoch trains on %d rows and leaves those "
                "out (different ones each epoch when shuffled)",
                n, bs, tail, world_size, min_rows, self.n_rows,
            )
        if self.n_rows == 0:
            check_world_batch(batch_size, world_size, min_rows)
            raise ConfigError(
                f"the train split has {n} rows, fewer than {world_size * min_rows} for "
                f"{world_size} processes: give it more data or use fewer processes"
            )

    def peek(self) -> tuple[Tensor, Tensor | None]:
        a, b = rank_share(min(self.batch_size, len(self.X)), self.rank, self.world_size)
        return self.X[a:b], (self.y[a:b] if self.y is not None else None)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        k, bs = self.accumulate, self.batch_size
        sizes = [min(bs, self.n_rows - i) for i in range(0, self.n_rows, bs)]
        for index, (xb, yb) in enumerate(super().__iter__()):
            a, b = rank_share(len(xb), self.rank, self.world_size)
            if index % k == 0:  # a new group: this rank's rows over the group's rows
                group = sizes[index : index + k]
                self.hook.weight = sum(self.share_of(n) for n in group) / sum(group)
            yield xb[a:b], (yb[a:b] if yb is not None else None)

    def share_of(self, n: int) -> int:
        """This rank's rows of a global batch of ``n`` rows (what gradient accumulation weighs
        its micro-batches by: the rank's mean over its rows of a group, weighted in the
        all-reduce by the rank's share of the group)."""
        a, b = rank_share(n, self.rank, self.world_size)
        return b - a


class _EpochSampler:
    """Calls ``DistributedSampler.set_epoch`` before each epoch (a different shuffle per epoch,
    the same on every rank)."""

    def __init__(self, sampler: DistributedSampler[Any]) -> None:
        self.sampler = sampler

    def before_epoch(self, trainer: Trainer) -> None:
        self.sampler.set_epoch(trainer.epoch)


# ---------------------------------------------------------------------------- the step


class DistributedStep(Objective):
    """The run's objective, trained through the DDP wrapper and reduced across ranks.

    ``loss`` calls the wrapped objective with the ``DistributedDataParallel`` model (whose
    backward averages the gradients); evaluation uses the plain model on every rank.
    ``epoch_end`` replaces the rank's ``train_loss`` by the loss over all ranks (sums of loss
    x rows and of rows, one all-reduce).
    """

    def __init__(self, inner: Objective, ddp: nn.Module, ctx: Distributed) -> None:
        self.inner, self.ddp, self.ctx = inner, ddp, ctx
        self._sum = torch.zeros((), dtype=torch.float64)
        self._rows = 0

    @property
    def task(self) -> str | None:
        return self.inner.task

    @task.setter
    def task(self, value: str | None) -> None:
        self.inner.task = value

    @property
    def top_k(self) -> int:
        return self.inner.top_k

    @top_k.setter
    def top_k(self, value: int) -> None:
        self.inner.top_k = value

    def bind(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.inner.bind(trainer)

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        self.inner.setup(model, first_batch)

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        res = as_step_result(self.inner.loss(self.ddp, batch))
        n = len(res.targets) if isinstance(res.targets, Tensor) else batch_len(batch)
        self._sum = self._sum.to(res.loss.device) + res.loss.detach().double() * n
        self._rows += n
        return res

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        return self.inner.eval_loss(model, batch)

    def evaluate(self, model: nn.Module, batches: Any, prefix: str = "val") -> dict[str, float]:
        return self.inner.evaluate(model, batches, prefix)

    def metric_names(self, prefix: str = "val") -> list[str]:
        return self.inner.metric_names(prefix)

    def train_metric_names(self) -> list[str]:
        return self.inner.train_metric_names()

    def epoch_end(self) -> dict[str, float]:
        out = dict(self.inner.epoch_end())
        totals = torch.stack([self._sum.cpu(), torch.tensor(float(self._rows),
                                                            dtype=torch.float64)])
        if self.ctx.device.type == "cuda":
            totals = totals.to(self.ctx.device)
        dist.all_reduce(totals, group=self.ctx.group)
        self._sum, self._rows = torch.zeros((), dtype=torch.float64), 0
        out["train_loss"] = float(totals[0] / totals[1])
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


class RankStates:
    """Every rank's generator states in the checkpoint, for exact resume under DDP.

    At each epoch's end (before the checkpoint is taken) the ranks' states are gathered to
    every rank (``all_gather_object``); rank 0 saves them under the callback key
    ``distributed`` with the world size and the global batch; on resume each rank restores
    its own. Keep it last among the callbacks: the states are those after every other
    callback's ``after_epoch``.
    """

    state_key = "distributed"

    def __init__(self, trainer: Trainer, ctx: Distributed) -> None:
        self.trainer, self.ctx = trainer, ctx
        self._states: list[Any] = []

    def after_epoch(self, trainer: Trainer) -> None:
        self._states = self.ctx.gather(rng_state(trainer.generator))

    def state_dict(self) -> dict[str, Any]:
        return {"world_size": self.ctx.world_size, "batch_size": self.trainer.batch_size,
                "ranks": self._states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state.get("ranks") or []
        if int(state.get("world_size", 0)) == self.ctx.world_size and len(ranks) > self.ctx.rank:
            set_rng_state(ranks[self.ctx.rank], self.trainer.generator)
            self._states = list(ranks)


def check_resume_world_size(state: dict[str, Any], world_size: int, allow_change: bool,
                            run_dir: Any) -> None:
    """Refuse to resume a checkpoint written at another world size (not exact), unless
    ``allow_change``, which warns instead.

    Raises:
        RunError: naming both world sizes and the two ways on.
    """
    saved = (state.get("callbacks") or {}).get("distributed") or {}
    before = int(saved.get("world_size", 1))
    if before == world_size:
        return
    how = f"--nproc {before}" if before > 1 else "one process (no --nproc)"
    if not allow_change:
        raise RunError(
            f"{run_dir} was trained by {before} process(es) and this resume has {world_size}: "
            f"resume it with {how} to continue exactly, or add --allow-world-size-change "
            "(allow_world_size_change=True) to continue with another world size, not "
            "bit-identical to an uninterrupted run"
        )
    if is_main_process():
        logger.warning(
            "resuming %s, trained by %d process(es), with %d: training goes on with the same "
            "global batch, but not bit-identical to an uninterrupted run (other shares, other "
            "sums, other generator states)", run_dir, before, world_size,
        )


# ---------------------------------------------------------------------------- wiring a trainer


class DataParallel:
    """The DDP wrapper of a trainer's model, as the trainer's loop uses it."""

    def __init__(self, ddp: DistributedDataParallel) -> None:
        self.ddp = ddp

    def grad_sync(self, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """The context of one backward: gradients all-reduced (``sync``), or kept on this rank
        (``DistributedDataParallel.no_sync``) for the inner micro-batches of accumulation."""
        return contextlib.nullcontext() if sync else self.ddp.no_sync()


def distribute(trainer: Trainer, ctx: Distributed, train: Any, *, seed: int) -> Any:
    """Make ``trainer`` train data-parallel in ``ctx``'s group; returns the training data to fit on.

    Wraps the model in ``DistributedDataParallel`` with the share-weighted gradient hook
    (``SyncBatchNorm`` first on CUDA), wraps the objective (:class:`DistributedStep`), adds
    :class:`RankStates` as the last callback and splits ``train``: tensors or a Split by rank
    (:class:`ShardedTensorBatches`), a ``Dataset`` through a ``DistributedSampler``.

    Raises:
        ConfigError: the global batch is too small for the world size, or ``train`` is a
            ``DataLoader`` (its sampler cannot be split here: give the Dataset).
    """
    model = trainer.model
    min_rows = rows_per_rank(model)
    check_world_batch(trainer.batch_size, ctx.world_size, min_rows)
    if has_batch_norm(model):
        if ctx.device.type == "cuda":
            trainer.model = model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif ctx.is_main:
            logger.warning(
                "BatchNorm on the CPU with %d processes: SyncBatchNorm needs CUDA, so each "
                "process normalizes with its own share's statistics (%d rows of the global "
                "batch of %d) and the running statistics kept are process 0's",
                ctx.world_size, trainer.batch_size // ctx.world_size, trainer.batch_size,
            )
    if isinstance(train, DataLoader):
        raise ConfigError(
            "distributed training splits the training data itself: give tensors, a Split or a "
            "Dataset, not a DataLoader (with [augment] on lazily loaded images, train in one "
            "process)"
        )
    hook = _HookState(ctx.group, ctx.world_size)
    ddp = DistributedDataParallel(
        trainer.forward_model,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        process_group=ctx.group,
    )
    ddp.register_comm_hook(hook, _weighted_allreduce)
    trainer.distributed = DataParallel(ddp)
    trainer.objective = DistributedStep(trainer.objective, ddp, ctx)
    trainer.callbacks.append(RankStates(trainer, ctx))
    X, y = (train.X, train.y) if hasattr(train, "X") and hasattr(train, "y") else (
        train if isinstance(train, (tuple, list)) and len(train) == 2 else (train, None))
    if isinstance(X, Tensor):
        y = torch.as_tensor(y) if y is not None and not isinstance(y, Tensor) else y
        return ShardedTensorBatches(X, y, trainer.batch_size, trainer.shuffle, trainer.generator,
                                    trainer.device, ctx.rank, ctx.world_size, hook, min_rows,
                                    trainer.accumulate)
    if isinstance(X, Dataset):
        per_rank = trainer.batch_size // ctx.world_size
        sampler: DistributedSampler[Any] = DistributedSampler(
            X, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=trainer.shuffle, seed=seed)
        loader = DataLoader(X, batch_size=per_rank, sampler=sampler,
                            num_workers=trainer.num_workers,
                            pin_memory=trainer.device.type == "cuda",
                            persistent_workers=trainer.num_workers > 0)
        trainer.callbacks.insert(0, _EpochSampler(sampler))
        return LoaderBatches(loader, trainer.device, drop_single=min_rows > 1)
    return train


def undistribute(trainer: Trainer) -> None:
    """Undo :func:`distribute` once training has ended: the trainer's own objective, no DDP
    wrapper, no :class:`RankStates`.

    The ``DistributedDataParallel`` wrapper holds the process group and its reducer; a trainer
    still holding it (in the returned ``Run``, or in an exception's frames) keeps them alive
    past ``destroy_process_group`` until the interpreter's teardown, where freeing gloo's
    threads and buffers can abort the process ("terminate called without an active
    exception", signal 6) after a run that succeeded. Evaluation, prediction and the
    checkpoints never need the wrapper.
    """
    if isinstance(trainer.objective, DistributedStep):
        trainer.objective = trainer.objective.inner
    trainer.distributed = None
    trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, RankStates)]


def launch(nproc: int, worker_args: list[str], *, module: bool = True) -> int:
    """Run ``python -m <worker_args>`` (or the script ``worker_args[0]`` when not ``module``)
    in ``nproc`` processes on this machine under ``torchrun --standalone``, this process being
    torchrun's agent; returns the exit code.

    Each process gets ``OMP_NUM_THREADS`` = this machine's cores // ``nproc`` (at least 1)
    unless the environment sets it. A failed process that has reported its error (exit code 2,
    one ``error:`` line from rank 0) gives that code silently; any other failure is one
    ``error:`` line naming the process and its exit code or signal.
    """
    import sys

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1:
        raise ConfigError(f"--nproc must be a whole number >= 1; got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", str(intra_op_threads(nproc)))
    for name in list(logging.root.manager.loggerDict):  # a failure is reported once, below
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = parse_args(["--nproc-per-node", str(nproc), "--standalone",
                       *(["-m"] if module else []), *worker_args])
    try:
        run(args)
    except ChildFailedError as exc:
        codes = {int(rank): failure.exitcode for rank, failure in exc.failures.items()}
        rank = 0 if 0 in codes else min(codes)
        code = codes[rank]
        if code == 2:  # the process printed its error line
            return 2
        how = f"was killed by signal {-code}" if code < 0 else f"ended with exit code {code}"
        print(f"error: training process {rank} of {nproc} {how}", file=sys.stderr)
        return 128 - code if code < 0 else code
    except SignalException as exc:  # Ctrl-C or SIGTERM: torchrun has stopped the processes
        print(f"interrupted by signal {int(exc.sigval)}; a run continues with trainwell train "
              f"--resume RUN --nproc {nproc}", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


def intra_op_threads(nproc: int) -> int:
    """Intra-op threads per process when ``nproc`` share this machine: its cores // nproc, at
    least 1."""
    from trainwell.train.threads import available_cores

    return max(1, available_cores() // max(nproc, 1))


__all__ = [
    "DataParallel",
    "Distributed",
    "DistributedStep",
    "RankStates",
    "ShardedTensorBatches",
    "check_data_parallel",
    "check_resume_world_size",
    "check_world_batch",
    "distribute",
    "env_rank",
    "env_world_size",
    "intra_op_threads",
    "is_main_process",
    "launch",
    "process_group",
    "rank_share",
    "rows_per_rank",
    "undistribute",
]
