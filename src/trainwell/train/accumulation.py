"""``[train] accumulate = k``: k micro-batches per optimizer step (gradient accumulation).

Each micro-batch's loss is a mean over its own samples. Weighting it by ``n_i / N`` (its
samples over the samples of its group) before the backward pass makes the summed gradients
those of the mean loss over all ``N`` samples of the group: the step of one batch of ``k``
times the size, within floating-point tolerance. The last group of an epoch may be short (fewer
micro-batches, or a smaller last one); it steps with what it accumulated, weighted by its own
sample count. Groups never cross an epoch's end, so a checkpoint (written at epoch ends) holds
no accumulated gradient.

The group's sample count must be known at its first micro-batch, when that loss is weighted.
For in-memory tensors every batch size is known in advance; for a ``DataLoader`` the first
micro-batch's size times the group's length is assumed, and where the group turns out to hold
another count (a smaller last batch), its summed gradients are rescaled by ``assumed / actual``
before the step.

BatchNorm normalizes each micro-batch by its own statistics, so a model with BatchNorm trained
with ``accumulate = k`` is not the same as one trained on the big batch; every other layer is.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from trainwell.train.data import TensorBatches


class Accumulation:
    """Which micro-batch ends a group, and the weight of each micro-batch's loss.

    Args:
        k: micro-batches per optimizer step (``train.accumulate``).
        batches: the epoch's batches (their count; for in-memory tensors, their sizes).

    Example:
        >>> acc = Accumulation(2, [None] * 3)  # 3 micro-batches: groups (0, 1) and (2,)
        >>> acc.steps_per_epoch, [acc.ends_group(i) for i in range(3)]
        (2, [False, True, True])
    """

    def __init__(self, k: int, batches: Any) -> None:
        self.k = k
        self.batches_per_epoch = len(batches)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / k)
        self.sizes: list[int] | None = None
        if isinstance(batches, TensorBatches):  # every micro-batch's size is known
            bs, n = batches.batch_size, batches.n_rows
            self.sizes = [min(bs, n - i) for i in range(0, n, bs)]
            share_of = getattr(batches, "share_of", None)  # data-parallel: this process's rows
            if share_of is not None:
                self.sizes = [share_of(size) for size in self.sizes]
        self.expected = 0
        self.seen = 0

    def ends_group(self, index: int) -> bool:
        """Whether micro-batch ``index`` (within the epoch) is the last of its group."""
        return (index + 1) % self.k == 0 or index + 1 == self.batches_per_epoch

    def weight(self, index: int, n: int) -> float:
        """The factor of micro-batch ``index``'s mean loss, for a micro-batch of ``n`` samples;
        called once per micro-batch, in order."""
        if index % self.k == 0:  # a new group
            count = min(self.k, self.batches_per_epoch - index)
            if self.sizes is not None:
                self.expected = sum(self.sizes[index : index + count])
            else:
                self.expected = n * count
            self.seen = 0
        self.seen += n
        return n / self.expected

    def correct(self, params: list[Tensor]) -> None:
        """Rescale the group's gradients where its sample count differed from the one its
        weights assumed (a ``DataLoader``'s smaller last batch); called before the step."""
        if self.seen == self.expected:
            return
        factor = self.expected / self.seen
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(factor)


__all__ = ["Accumulation"]
