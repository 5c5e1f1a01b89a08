"""Batches for the loop: in-memory tensors by slicing a shuffled copy, or a streaming DataLoader."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from trainwell.errors import DataError


class TensorBatches:
    """Mini-batches of in-memory tensors, held on the device.

    Each epoch draws one permutation from ``generator``, gathers ``X`` and ``y`` in that order
    once, and yields contiguous slices: no per-sample Python and no per-batch fancy indexing.
    """

    def __init__(
        self,
        X: Tensor,
        y: Tensor | None,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> None:
        if y is not None and len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        self.X = X.to(device, non_blocking=True)
        self.y = y.to(device, non_blocking=True) if y is not None else None
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def peek(self) -> tuple[Tensor, Tensor | None]:
        """The first rows as a batch, drawing nothing from any generator."""
        n = min(self.batch_size, len(self.X))
        return self.X[:n], (self.y[:n] if self.y is not None else None)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        X, y = self.X, self.y
        if self.shuffle:
            perm = torch.randperm(len(X), generator=self.generator).to(X.device)
            X = X.index_select(0, perm)  # one gather per epoch
            y = y.index_select(0, perm) if y is not None else None
        bs = self.batch_size
        for i in range(0, len(X), bs):
            yield X[i : i + bs], (y[i : i + bs] if y is not None else None)


class LoaderBatches:
    """Batches streamed by a ``DataLoader`` and moved to the device, in the loader's structure.

    A batch is whatever the loader yields (a pair ``(x, y)``, a tuple of several inputs, a dict):
    its tensors are moved to the device and the rest is left as it is; the objective reads it.
    """

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def peek(self) -> Any:
        """The first batch, leaving torch's RNG and the loader's generators as they were."""
        generators = loader_generators(self)
        states = [g.get_state() for g in generators]
        try:
            with torch.random.fork_rng(devices=[]):
                return next(iter(self))
        finally:
            for g, state in zip(generators, states, strict=True):
                g.set_state(state)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield to_device(batch, self.device)


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested in tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return (
            type(batch)(to_device(v, device) for v in batch)
            if not hasattr(batch, "_fields")
            else type(batch)(*(to_device(v, device) for v in batch))
        )
    return batch


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
    for owner in (
        loader,
        getattr(loader, "sampler", None),
        getattr(batch_sampler, "sampler", None),
    ):
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


def as_batches(
    data: Any,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    device: torch.device,
    num_workers: int = 0,
) -> TensorBatches | LoaderBatches | None:
    """Wrap tensors ``(X, y)``, a Split, a Dataset or a DataLoader as batches on ``device``."""
    if data is None:
        return None
    if isinstance(data, (TensorBatches, LoaderBatches)):
        return data
    if isinstance(data, DataLoader):
        return LoaderBatches(data, device)
    if isinstance(data, Dataset):
        data = (data, None)  # a Dataset is read item by item, whatever attributes it has
    X, y = _xy(data)
    if isinstance(X, Tensor):
        y = torch.as_tensor(y) if y is not None and not isinstance(y, Tensor) else y
        return TensorBatches(X, y, batch_size, shuffle, generator, device)
    if isinstance(X, Dataset):
        loader = DataLoader(
            X,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
        return LoaderBatches(loader, device)
    raise DataError(
        f"cannot train on {type(data).__name__}: give tensors (X, y), a Split, a Dataset or a "
        "DataLoader"
    )


__all__ = ["LoaderBatches", "TensorBatches", "as_batches", "loader_generators", "to_device"]
