"""Augmentation of images read lazily: per sample, in the ``DataLoader`` workers.

:class:`EpochSampler` yields ``(epoch, index)`` keys in the (shuffled) order of an epoch, and
:class:`AugmentedImages` decodes image ``index`` and augments it with a generator derived from
``(seed, epoch, index)`` (:func:`~trainwell.data.augment.augmenter.augment_generator`). What a
sample sees therefore depends on neither the number of workers nor on which worker reads it,
nor on a resume in between: the sampler's epoch is set from the trainer's before each epoch
(``set_epoch``), and its shuffling generator is saved in the checkpoint with the loader's.

The operations that mix two samples (mixup, cutmix) need a batch: they run afterwards on the
device, in the training step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from trainwell.data.augment.augmenter import STREAM_SAMPLE, Augmenter, augment_generator


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for every sample, shuffled each epoch from ``generator`` (a
    ``RandomSampler``'s draw: one ``randperm``), or in order."""

    def __init__(self, n: int, shuffle: bool, generator: torch.Generator) -> None:
        self.n, self.shuffle, self.generator = n, shuffle, generator
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (torch.randperm(self.n, generator=self.generator).tolist() if self.shuffle
                 else range(self.n))
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in order])


class AugmentedImages(Dataset[tuple[Any, Any]]):
    """``dataset[(epoch, i)]``: item ``i`` of ``base`` (``(x, y)``), ``x`` augmented by the
    per-sample operations with draws from ``(seed, epoch, i)``. Plain attributes only, so it
    goes to ``DataLoader`` workers."""

    def __init__(self, base: Any, augmenter: Augmenter, seed: int) -> None:
        self.base, self.augmenter, self.seed = base, augmenter, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, Any]:
        epoch, i = key
        x, y = self.base[i]
        g = augment_generator(self.seed, epoch, i, STREAM_SAMPLE)
        out, _ = self.augmenter(x[None], None, g, mixing=False)
        return out[0], y


def lazy_loader(base: Any, augmenter: Augmenter, seed: int, *, batch_size: int, shuffle: bool,
                num_workers: int, pin_memory: bool) -> tuple[Any, EpochSampler]:
    """A ``DataLoader`` of ``base`` augmented per sample, and its :class:`EpochSampler` (whose
    ``set_epoch`` must be called before each epoch)."""
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(int(augment_generator(seed, 0, 0, 2).initial_seed()))
    sampler = EpochSampler(len(base), shuffle, g)
    # the workers' base seed is drawn from a generator of its own (not torch's global RNG, not
    # the order's): a loader draws it once per iterator, and persistent workers keep theirs,
    # so the order must not depend on how many were made
    workers = torch.Generator().manual_seed(int(augment_generator(seed, 0, 0, 3).initial_seed()))
    loader = DataLoader(
        AugmentedImages(base, augmenter, seed),
        batch_size=batch_size,
        sampler=sampler,
        generator=workers,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
    return loader, sampler


__all__ = ["AugmentedImages", "EpochSampler", "lazy_loader"]
