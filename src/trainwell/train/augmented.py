"""Augmentation in the training step: an objective that augments each training batch.

:class:`Augmented` wraps the run's objective (``Supervised`` by default): its :meth:`loss`
augments the batch on the batch's device with draws from ``(seed, epoch, step)`` and hands it
to the wrapped objective; evaluation is the wrapped objective's own, never augmented. The
operations that mix two samples turn the targets into class-probability rows, which
``Supervised``'s cross-entropy (or BCE) takes as they are. The Trainer's loop is unchanged.

:func:`augment_training` is what a run adds: the objective, and for images read lazily a
``DataLoader`` that augments each sample in its workers (:mod:`trainwell.data.augment.lazy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import nn

from trainwell.data.augment.augmenter import STREAM_BATCH, Augmenter, augment_generator
from trainwell.errors import DataError
from trainwell.train.objective import Objective, StepResult, Supervised

if TYPE_CHECKING:
    from trainwell.data.augment.lazy import EpochSampler
    from trainwell.train.trainer import Trainer


class Augmented(Objective):
    """``inner``'s step on augmented training batches; evaluation as ``inner``'s.

    Args:
        inner: the objective computing the loss (``(x, y)`` batches).
        augmenter: the operations.
        seed: the run's seed; a batch's draws come from ``(seed, trainer.epoch, trainer.step)``.
        per_sample: run the per-sample operations here (False when the loader already did:
            images read lazily); the mixing ones always run here.

    Example:
        >>> import torch
        >>> from trainwell.data.augment.config import AugmentConfig
        >>> from trainwell.train.trainer import Trainer
        >>> aug = Augmenter(AugmentConfig(mixup={}), task="multiclass", n_classes=3)
        >>> step = Augmented(Supervised("cross_entropy"), aug, seed=0)
        >>> X, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
        >>> Trainer(nn.Linear(4, 3), step=step, epochs=1, seed=0).fit((X, y)).epoch
        1
    """

    def __init__(self, inner: Objective, augmenter: Augmenter, seed: int,
                 per_sample: bool = True) -> None:
        self.inner, self.augmenter, self.seed = inner, augmenter, int(seed)
        self.per_sample = per_sample
        self.top_k = inner.top_k

    @property
    def task(self) -> str | None:
        return self.inner.task

    @task.setter
    def task(self, value: str | None) -> None:
        self.inner.task = value

    def __getattr__(self, name: str) -> Any:  # n_outputs, loss_fn ... of the wrapped objective
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def bind(self, trainer: Trainer) -> None:
        super().bind(trainer)
        self.inner.bind(trainer)

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        self.inner.setup(model, first_batch)

    def augment(self, batch: Any, epoch: int, step: int) -> tuple[Any, Any]:
        """The batch ``(x, y)`` as step ``step`` of epoch ``epoch`` augments it."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError("augmentation takes (x, y) training batches")
        x, y = batch
        g = augment_generator(self.seed, epoch, step, STREAM_BATCH)
        return self.augmenter(x, y, g, per_sample=self.per_sample)

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        trainer = self.trainer
        x, y = self.augment(batch, trainer.epoch, trainer.step)
        return self.inner.loss(model, (x, y))

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        return self.inner.eval_loss(model, batch)

    def evaluate(self, model: nn.Module, batches: Iterable[Any], prefix: str = "val"
                 ) -> dict[str, float]:
        return self.inner.evaluate(model, batches, prefix)

    def metric_names(self, prefix: str = "val") -> list[str]:
        return self.inner.metric_names(prefix)

    def epoch_end(self) -> dict[str, float]:
        return self.inner.epoch_end()

    def train_metric_names(self) -> list[str]:
        return self.inner.train_metric_names()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()  # the augmentation's draws are derived, nothing to save

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


class SamplerEpochs:
    """A callback telling an :class:`~trainwell.data.augment.lazy.EpochSampler` the epoch that
    starts, so that lazily read images are augmented by ``(seed, epoch, index)``."""

    def __init__(self, sampler: EpochSampler) -> None:
        self.sampler = sampler

    def before_epoch(self, trainer: Trainer) -> None:
        self.sampler.set_epoch(trainer.epoch)


def augment_training(augmenter: Augmenter, train: Any, step_kwargs: dict[str, Any], *,
                     seed: int, loss: Any, top_k: int, batch_size: int, shuffle: bool,
                     num_workers: int, pin_memory: bool
                     ) -> tuple[Any, dict[str, Any], list[Any]]:
    """What a run with ``[augment]`` trains with: the training data (``train``, or a loader
    augmenting each lazily read image), the trainer's step arguments with the step wrapped in
    :class:`Augmented`, and the callbacks to add.

    ``step_kwargs`` holds the run's ``task`` and, where the run has its own, its ``step``;
    without one the step is ``Supervised(loss, task, top_k)``.
    """
    inner = step_kwargs.get("step")
    if not isinstance(inner, Objective):
        inner = Supervised(loss, task=step_kwargs.get("task"), top_k=top_k)
    callbacks: list[Any] = []
    lazy = getattr(train, "lazy", False)
    data = train
    if lazy:
        from trainwell.data.augment.lazy import lazy_loader

        data, sampler = lazy_loader(train.X, augmenter, seed, batch_size=batch_size,
                                    shuffle=shuffle, num_workers=num_workers,
                                    pin_memory=pin_memory)
        callbacks.append(SamplerEpochs(sampler))
    step = Augmented(inner, augmenter, seed, per_sample=not lazy)
    return data, {**step_kwargs, "step": step}, callbacks


__all__ = ["Augmented", "SamplerEpochs", "augment_training"]
