"""Batches for the loop: in-memory tensors by slicing a shuffled copy, or a streaming DataLoader."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from trainwell.errors import DataError
from trainwell.train.config import LOSS_NAMES, LOSS_TASKS, LossConfig


class TensorBatches:
    """Mini-batches of in-memory tensors, held on the device.

    Each epoch draws one permutation from ``generator``, gathers ``X`` and ``y`` in that order
    once, and yields contiguous slices: no per-sample Python and no per-batch fancy indexing.
    """

    def __init__(self, X: Tensor, y: Tensor | None, batch_size: int, shuffle: bool,
                 generator: torch.Generator | None, device: torch.device) -> None:
        if y is not None and len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        self.X = X.to(device, non_blocking=True)
        self.y = y.to(device, non_blocking=True) if y is not None else None
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def peek_targets(self) -> Tensor | None:
        return None if self.y is None else self.y[:1024]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        X, y = self.X, self.y
        if self.shuffle:
            perm = torch.randperm(len(X), generator=self.generator).to(X.device)
            X = X.index_select(0, perm)  # one gather per epoch
            y = y.index_select(0, perm) if y is not None else None
        bs = self.batch_size
        for i in range(0, len(X), bs):
            yield X[i:i + bs], (y[i:i + bs] if y is not None else None)


class LoaderBatches:
    """Batches streamed by a ``DataLoader`` and moved to the device."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def peek_targets(self) -> Tensor | None:
        for _, yb in self:
            return yb
        return None

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        for batch in self.loader:
            if isinstance(batch, (tuple, list)) and len(batch) == 2:
                xb, yb = batch
            else:
                xb, yb = (batch[0] if isinstance(batch, (tuple, list)) else batch), None
            xb = xb.to(self.device, non_blocking=True)
            yield xb, (yb.to(self.device, non_blocking=True) if yb is not None else None)


def loader_generators(batches: Any) -> list[torch.Generator]:
    """The distinct generators a ``DataLoader``'s order draws from: its own and its sampler's.

    A loader built with ``generator=g`` (or a ``RandomSampler(generator=g)``) shuffles from
    ``g`` instead of torch's global RNG, so exact resume must save and restore ``g`` too.
    """
    if not isinstance(batches, LoaderBatches):
        return []
    loader = batches.loader
    batch_sampler = getattr(loader, "batch_sampler", None)
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def _xy(data: Any) -> tuple[Any, Any]:
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    if hasattr(data, "X") and hasattr(data, "y"):
        return data.X, data.y
    if isinstance(data, Tensor):
        return data, None
    return data, None


def as_batches(data: Any, batch_size: int, shuffle: bool, generator: torch.Generator | None,
               device: torch.device, num_workers: int = 0) -> TensorBatches | LoaderBatches | None:
    """Wrap tensors ``(X, y)``, a Split, a Dataset or a DataLoader as batches on ``device``."""
    if data is None:
        return None
    if isinstance(data, (TensorBatches, LoaderBatches)):
        return data
    if isinstance(data, DataLoader):
        return LoaderBatches(data, device)
    X, y = _xy(data)
    if isinstance(X, Tensor):
        y = torch.as_tensor(y) if y is not None and not isinstance(y, Tensor) else y
        return TensorBatches(X, y, batch_size, shuffle, generator, device)
    if isinstance(X, Dataset):
        loader = DataLoader(
            X, batch_size=batch_size, shuffle=shuffle, generator=generator if shuffle else None,
            num_workers=num_workers, pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
        return LoaderBatches(loader, device)
    raise DataError(
        f"cannot train on {type(data).__name__}: give tensors (X, y), a Split, a Dataset or a DataLoader"
    )


def infer_task(y: Tensor | None, loss: Any, n_outputs: int | None) -> str:
    """The task implied by the loss name, else by the targets and the output count."""
    if isinstance(loss, (str, LossConfig)):
        name = LOSS_NAMES.canonical(loss if isinstance(loss, str) else loss.name)
        if len(LOSS_TASKS[name]) == 1:
            return LOSS_TASKS[name][0]
    if y is None or y.is_floating_point():
        return "regression"
    return "binary" if n_outputs == 1 else "multiclass"


__all__ = ["LoaderBatches", "TensorBatches", "as_batches", "infer_task", "loader_generators"]
