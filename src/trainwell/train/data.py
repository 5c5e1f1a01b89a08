"""Batches for the loop: in-memory tensors by slicing a shuffled copy, or a streaming DataLoader.

BatchNorm cannot normalize a batch of one in training ("Expected more than 1 value per
channel"), so for a model with BatchNorm (:func:`has_batch_norm`) the training batches leave
out a last partial batch of one row (a different row each epoch when shuffled), with a logged
note, and a ``batch_size`` of 1 is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from trainwell.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer (which needs two or more rows per batch while
    it trains)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_batch_norm_batches(model: nn.Module, batch_size: int, n_rows: int) -> None:
    """Refuse, before a run starts, batches that a model with BatchNorm cannot train on.

    Args:
        model: the model about to train.
        batch_size: ``train.batch_size``.
        n_rows: the rows of the train split.

    Raises:
        ConfigError: the model has BatchNorm and ``batch_size`` is 1.
        DataError: the model has BatchNorm and the train split has a single row.
    """
    if has_batch_norm(model):
        _refuse_single_rows(n_rows, batch_size)


def _refuse_single_rows(n_rows: int, batch_size: int) -> None:
    if batch_size < 2:
        raise ConfigError(
            "train.batch_size = 1 cannot train a model with BatchNorm, which needs at least 2 "
            "rows per batch while training; use batch_size >= 2, or model.norm = 'layer'"
        )
    if n_rows == 1:
        raise DataError(
            "the train split has 1 row, and a model with BatchNorm needs at least 2 rows per "
            "batch while training; give it more data, or use model.norm = 'layer'"
        )


def _rows_used(n_rows: int, batch_size: int, drop_single: bool) -> int:
    """The rows an epoch trains on: all, or all but a last partial batch of one row.

    Raises:
        ConfigError: ``drop_single`` with ``batch_size`` 1 (every batch would be of one row).
        DataError: ``drop_single`` with a single training row.
    """
    if not drop_single:
        return n_rows
    _refuse_single_rows(n_rows, batch_size)
    if n_rows % batch_size != 1:
        return n_rows
    log.warning(
        "%d training rows with batch_size %d leave a last batch of one row, which BatchNorm "
        "cannot normalize: each epoch trains on %d rows and leaves that one out (a different "
        "row each epoch when shuffled); a batch_size that leaves no single row over keeps it",
        n_rows, batch_size, n_rows - 1,
    )
    return n_rows - 1


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
        drop_single: bool = False,
    ) -> None:
        if y is not None and len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        self.X = X.to(device, non_blocking=True)
        self.y = y.to(device, non_blocking=True) if y is not None else None
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        # drop_single: a last partial batch of one row is left out (BatchNorm in training)
        self.n_rows = _rows_used(len(X), batch_size, drop_single)

    def __len__(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

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
        bs, n = self.batch_size, self.n_rows
        for i in range(0, n, bs):
            j = min(i + bs, n)
            yield X[i:j], (y[i:j] if y is not None else None)


class LoaderBatches:
    """Batches streamed by a ``DataLoader`` and moved to the device, in the loader's structure.

    A batch is whatever the loader yields (a pair ``(x, y)``, a tuple of several inputs, a dict):
    its tensors are moved to the device and the rest is left as it is; the objective reads it.
    """

    def __init__(self, loader: DataLoader, device: torch.device, drop_single: bool = False) -> None:
        self.loader, self.device = loader, device
        # a loader whose last batch holds one row leaves it out (BatchNorm in training)
        self.skip_last = drop_single and _single_tail(loader)

    def __len__(self) -> int:
        return len(self.loader) - self.skip_last

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
        last = len(self) if self.skip_last else -1
        for i, batch in enumerate(self.loader):
            if i == last:
                break  # the batch of one left out; the loader's order was drawn all the same
            yield to_device(batch, self.device)


def _single_tail(loader: DataLoader) -> bool:
    """Whether the last batch of ``loader`` holds one row (logged), refusing batches of one.

    Only a loader that batches a sized dataset by ``batch_size`` is known in advance; one with
    its own batch sampler is left as it is.
    """
    size = loader.batch_size
    dataset: Any = loader.dataset  # a Dataset need not be sized
    try:
        n_rows = len(dataset)
    except TypeError:  # an iterable dataset without a length
        return False
    if size is None or loader.drop_last:
        return False
    return _rows_used(n_rows, size, True) < n_rows


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
    drop_single: bool = False,
) -> TensorBatches | LoaderBatches | None:
    """Wrap tensors ``(X, y)``, a Split, a Dataset or a DataLoader as batches on ``device``.

    ``drop_single``: training batches of a model with BatchNorm (:func:`has_batch_norm`): a
    last partial batch of one row is left out, with a logged note, and a ``batch_size`` of 1
    is refused (a ConfigError naming ``train.batch_size``).
    """
    if data is None:
        return None
    if isinstance(data, (TensorBatches, LoaderBatches)):
        return data
    if isinstance(data, DataLoader):
        return LoaderBatches(data, device, drop_single)
    if isinstance(data, Dataset):
        data = (data, None)  # a Dataset is read item by item, whatever attributes it has
    X, y = _xy(data)
    if isinstance(X, Tensor):
        y = torch.as_tensor(y) if y is not None and not isinstance(y, Tensor) else y
        return TensorBatches(X, y, batch_size, shuffle, generator, device, drop_single)
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
        return LoaderBatches(loader, device, drop_single)
    raise DataError(
        f"cannot train on {type(data).__name__}: give tensors (X, y), a Split, a Dataset or a "
        "DataLoader"
    )


__all__ = [
    "LoaderBatches",
    "TensorBatches",
    "as_batches",
    "check_batch_norm_batches",
    "has_batch_norm",
    "loader_generators",
    "to_device",
]
