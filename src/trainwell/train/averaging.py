"""Weight averaging with ``torch.optim.swa_utils``: an EMA of the weights, or SWA.

:class:`WeightAverager` is owned by the :class:`~trainwell.train.Trainer` (``average=``): it
keeps an :class:`~torch.optim.swa_utils.AveragedModel` beside the model being trained, updates
it (EMA after every optimizer step; SWA at the end of every ``every``-th epoch from ``start``
on), and hands the trainer the averaged network to evaluate and to snapshot once averaging has
started. The averaged weights and their count live in the training checkpoint, so a resumed
run averages exactly as an uninterrupted one.

- ``ema``: ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)``:
  the first update copies the weights, each later one is ``avg = decay * avg + (1 - decay) *
  w``. Buffers (BatchNorm's running statistics) are averaged the same way, so the averaged
  network is usable as it is after every step.
- ``swa``: ``AveragedModel(model)`` (the equal average ``avg_n = avg + (w - avg) / (n + 1)``
  of the averaged epochs' weights, buffers not averaged). BatchNorm statistics of averaged
  weights are not the average of the statistics: they are recomputed with ``update_bn`` on the
  training data, in order, before the averaged network is evaluated or kept. With ``lr``,
  torch's ``SWALR`` holds the learning rate at that constant (per parameter group, scaled like
  the schedule's initial rates) from the first step of the start epoch on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

from trainwell.errors import ConfigError, DataError, RunError
from trainwell.registry import Registry
from trainwell.schema import section_from_spec
from trainwell.train.config import AVERAGE_NAMES, AverageConfig
from trainwell.train.data import TensorBatches, has_batch_norm, loader_generators
from trainwell.train.objective import split_batch

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

#: the EMA decay ``auto`` picks is kept within these bounds
EMA_DECAY_RANGE = (0.9, 0.9999)


def ema_decay(total_steps: int) -> float:
    """The default EMA decay of a run of ``total_steps`` updates: ``1 - 10 / total_steps``, an
    average over about the last tenth of the run (its window ``1 / (1 - decay)`` steps), kept
    within :data:`EMA_DECAY_RANGE`. A fixed 0.999 would, over the few hundred steps of a small
    run, keep most of the initial weights.

    Example:
        >>> ema_decay(400), ema_decay(50), ema_decay(10**6)
        (0.975, 0.9, 0.9999)
    """
    low, high = EMA_DECAY_RANGE
    return min(high, max(low, 1.0 - 10.0 / max(total_steps, 1)))


@dataclass(frozen=True)
class AverageMethod:
    """A registered averaging method: how its ``AveragedModel`` is built and when it updates."""

    name: str
    per_step: bool  # True: after every optimizer step; False: at chosen epoch ends
    build: Callable[[nn.Module, AverageConfig, int], AveragedModel]


def _build_ema(model: nn.Module, cfg: AverageConfig, total_steps: int) -> AveragedModel:
    decay = cfg.decay if cfg.decay is not None else ema_decay(total_steps)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _build_swa(model: nn.Module, cfg: AverageConfig, total_steps: int) -> AveragedModel:
    return AveragedModel(model)  # the default average: equal weights, buffers not averaged


AVERAGES: Registry[AverageMethod] = Registry("weight averaging", ConfigError)
AVERAGES.register("ema")(AverageMethod("ema", True, _build_ema))
AVERAGES.register("swa")(AverageMethod("swa", False, _build_swa))


def list_averages() -> list[str]:
    """The averaging methods ``train.average`` names, besides ``none``."""
    return [n for n in AVERAGE_NAMES.names() if n != "none"]


def average_config(spec: str | dict[str, Any] | AverageConfig | None) -> AverageConfig:
    """A name (``"ema"``), dict or ``AverageConfig`` as a checked ``AverageConfig``."""
    return section_from_spec(AverageConfig, spec or "none", "train.average")


class WeightAverager:
    """The averaged copy of a trainer's model (see the module docstring).

    Args:
        cfg: the ``[train.average]`` section (its name is not ``none``).

    Attributes:
        averaged: the ``AveragedModel`` (``averaged.module`` is the averaged network) once the
            trainer has set it up.
        decay: the EMA decay in use (None for SWA).
    """

    def __init__(self, cfg: AverageConfig) -> None:
        if cfg.name == "none":
            raise ConfigError("WeightAverager needs train.average.name 'ema' or 'swa'")
        self.cfg = cfg
        self.method = AVERAGES.get(cfg.name)
        self.averaged: AveragedModel | None = None
        self.decay: float | None = None
        self.first_epoch = 1
        self._every = cfg.every or 1
        self._bn_batches: Any = None
        self._bn_at = -1  # the count at which BatchNorm statistics were last recomputed
        self._swalr: SWALR | None = None
        self._live: nn.Module | None = None

    # ------------------------------------------------------------------ set-up

    def setup(self, trainer: Trainer, batches: Any) -> None:
        """Build the averaged copy of ``trainer.model`` (called by the trainer before
        training, after its schedule exists); ``batches`` are the training batches that
        recompute BatchNorm statistics for SWA."""
        total_steps = trainer.steps_per_epoch * trainer.epochs
        if self.method.name == "swa":
            try:
                self.cfg.check_epochs(trainer.epochs)
            except ValueError as exc:
                raise ConfigError(f"{exc} (train.epochs is {trainer.epochs})") from None
            self.first_epoch = self.cfg.swa_epochs(trainer.epochs)[0]
        self.averaged = self.method.build(trainer.model, self.cfg, total_steps)
        if self.method.name == "ema":
            self.decay = self.cfg.decay if self.cfg.decay is not None else ema_decay(total_steps)
        self._bn_batches = None
        self._live = trainer.model  # whose frozen BatchNorm layers keep their statistics
        if has_batch_norm(trainer.model) and not self.method.per_step:
            _bn_input(batches.peek())  # batches update_bn cannot read are refused before training
            self._bn_batches = _in_order(batches)
        self._swalr = None
        self._bn_at = -1

    @property
    def module(self) -> nn.Module:
        """The averaged network (its weights as they are; see :meth:`model`)."""
        assert self.averaged is not None, "setup() first"
        return self.averaged.module

    @property
    def count(self) -> int:
        """How many weight sets (EMA: steps) have been averaged."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    def started(self, epoch: int) -> bool:
        """Whether the weights of ``epoch``'s end are the averaged ones (EMA: from the first
        step; SWA: from the start epoch)."""
        return self.count > 0 and epoch >= (1 if self.method.per_step else self.first_epoch)

    # ------------------------------------------------------------------ the loop's calls

    def before_epoch(self, trainer: Trainer) -> None:
        """SWA with ``lr``: from the start epoch on, the constant SWA learning rate."""
        if self.cfg.lr is None or trainer.epoch < self.first_epoch:
            return
        if self._swalr is None:
            bases = trainer.schedule.base_lrs if trainer.schedule is not None else [self.cfg.lr]
            # each group keeps its ratio to the first group's initial rate (lr_mult-like)
            lrs = [self.cfg.lr * b / bases[0] if bases[0] > 0 else self.cfg.lr for b in bases]
            # anneal_epochs=0: the constant rate at once; SWALR sets it as it is built
            self._swalr = SWALR(trainer.optimizer, swa_lr=lrs, anneal_epochs=0)  # type: ignore[arg-type]
        else:
            self._swalr.step()

    def after_step(self, trainer: Trainer) -> None:
        """EMA: average the weights of this step; SWA with ``lr``: hold the SWA rate over the
        schedule's (which set the next step's rate just before)."""
        if self.method.per_step:
            assert self.averaged is not None
            self.averaged.update_parameters(trainer.model)
        elif self._swalr is not None:
            self._swalr.step()

    def after_epoch(self, trainer: Trainer) -> None:
        """SWA: average this epoch's end weights when it is an averaged epoch."""
        if self.method.per_step or trainer.epoch < self.first_epoch:
            return
        if (trainer.epoch - self.first_epoch) % self._every == 0:
            assert self.averaged is not None
            self.averaged.update_parameters(trainer.model)

    def model(self) -> nn.Module:
        """The averaged network, ready to evaluate: for SWA with BatchNorm, its statistics
        recomputed on the training data whenever the average changed since the last time."""
        module = self.module
        if self._bn_batches is not None and not self.method.per_step and self._bn_at != self.count:
            self._recompute_bn(module)
            self._bn_at = self.count
        return module

    def _recompute_bn(self, module: nn.Module) -> None:
        """``update_bn`` over the training batches, leaving every RNG as it found it: the
        batch order's generators (a pass draws a permutation) and torch's (dropout)."""
        batches = self._bn_batches
        generators = list({id(g): g for g in [*loader_generators(batches),
                                              *_own_generator(batches)]}.values())
        states = [g.get_state() for g in generators]
        device = next(iter(module.parameters()), torch.empty(0)).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            update_bn(_inputs(batches), module)
        _keep_frozen_statistics(module, self._live)
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)
        module.eval()

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged network's weights and buffers into ``model``."""
        model.load_state_dict(self.model().state_dict())

    def summary(self) -> dict[str, Any]:
        """What ``results.json`` says of the averaging: the method, the number of averaged
        updates, and the EMA decay or the SWA start epoch and learning rate."""
        out: dict[str, Any] = {"name": self.method.name, "count": self.count}
        if self.method.per_step:
            out["decay"] = self.decay
        else:
            out.update(start=self.first_epoch, every=self._every, lr=self.cfg.lr)
        return out

    # ------------------------------------------------------------------ checkpoint

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.method.name,
            "count": self.count,
            "bn_at": self._bn_at,
            "weights": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if not isinstance(state, dict):
            raise RunError(
                f"the checkpoint holds no averaged weights but this run averages "
                f"({self.method.name}): it was written by a run without train.average"
            )
        if state.get("name") != self.method.name:
            raise RunError(
                f"the checkpoint's averaged weights are {state.get('name')!r} but this run "
                f"averages with {self.method.name!r}"
            )
        assert self.averaged is not None
        self.module.load_state_dict(state["weights"])
        self.averaged.n_averaged.fill_(int(state["count"]))
        self._bn_at = int(state["bn_at"])


def make_averager(spec: str | dict[str, Any] | AverageConfig | None) -> WeightAverager | None:
    """The averager ``spec`` asks for, or None for ``none``."""
    cfg = average_config(spec)
    return None if cfg.name == "none" else WeightAverager(cfg)


def _in_order(batches: Any) -> Any:
    """In-memory batches without shuffling (the training data in its order); a DataLoader as
    it is (its generators are restored after each pass)."""
    if isinstance(batches, TensorBatches) and batches.shuffle:
        batches = copy.copy(batches)
        batches.shuffle = False
    return batches


def _own_generator(batches: Any) -> list[torch.Generator]:
    """In-memory batches' shuffling generator (a DataLoader's are :func:`loader_generators`)."""
    g = getattr(batches, "generator", None)
    return [g] if isinstance(g, torch.Generator) else []


def _inputs(batches: Any) -> Iterator[tuple[Any]]:
    """Each batch's inputs, wrapped so that ``update_bn`` calls ``model(x)`` with them whole."""
    for batch in batches:
        yield (_bn_input(batch),)


def _bn_input(batch: Any) -> Any:
    """The model's input in a training batch, for ``update_bn``."""
    try:
        return split_batch(batch)[0]
    except DataError:
        raise ConfigError(
            "train.average: swa recomputes BatchNorm statistics by calling the model on the "
            "inputs of the training batches, which must be (x, y) pairs or x alone; got "
            f"{type(batch).__name__} batches: use average = 'ema' (which averages the "
            "statistics) or batches of (x, y)"
        ) from None


__all__ = [
    "AVERAGES",
    "EMA_DECAY_RANGE",
    "AverageMethod",
    "WeightAverager",
    "average_config",
    "ema_decay",
    "list_averages",
    "make_averager",
]


def _keep_frozen_statistics(averaged: nn.Module, live: nn.Module | None) -> None:
    """Give the averaged network's BatchNorm layers that are frozen in ``live`` (parameters
    without gradient, as ``trainwell.after.freeze_`` leaves them) the live layer's running
    statistics back: ``update_bn`` resets and re-estimates every BatchNorm layer, but a frozen
    layer normalizes with the statistics it was loaded with, and its averaged weights are
    those same loaded weights."""
    if live is None:
        return
    for name, layer in live.named_modules():
        params = list(layer.parameters(recurse=False))
        if (not isinstance(layer, nn.modules.batchnorm._BatchNorm) or not params
                or any(p.requires_grad for p in params)):
            continue
        try:
            target = averaged.get_submodule(name)
        except AttributeError:
            continue
        with torch.no_grad():
            for key, buf in layer.named_buffers(recurse=False):
                getattr(target, key).copy_(buf)
