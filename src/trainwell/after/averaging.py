"""Combining the predictions of several models (lecture 002: "at test time average their
results": the mean of the predicted probability distributions, then argmax).

Every method is registered once in :data:`AVERAGING`, under the names
:data:`~trainwell.after.config.AVERAGING_NAMES` lists for the ``[ensemble]`` section:

* ``mean``: the arithmetic mean of the members' probabilities (the lecture's recipe); for
  regression, the mean of the predicted values (the only method regression takes).
* ``geometric``: the normalized geometric mean, ``exp(mean(log p))`` divided by its sum over
  the classes (probabilities clamped at ``1e-12`` first, so a single zero does not veto a class).
* ``vote``: majority vote of the members' argmax labels; the result is the fraction of members
  voting for each class, and a tie goes to the lowest class index (as ``argmax`` returns it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainwell.after.config import AVERAGING_NAMES
from trainwell.errors import ConfigError
from trainwell.registry import Registry

#: ``(stacked (M, N, C) probabilities) -> (N, C)``
Combine = Callable[[Tensor], Tensor]

AVERAGING: Registry[Combine] = Registry("ensemble method", ConfigError)

#: probabilities are clamped at this before the logarithm of the geometric mean
GEOMETRIC_FLOOR = 1e-12


def _mean(p: Tensor) -> Tensor:
    return p.mean(0)


def _geometric(p: Tensor) -> Tensor:
    g = p.clamp_min(GEOMETRIC_FLOOR).log().mean(0).exp()
    return g / g.sum(-1, keepdim=True)


def _vote(p: Tensor) -> Tensor:
    n_classes = p.shape[-1]
    labels = p.argmax(-1)  # (M, N)
    votes = torch.nn.functional.one_hot(labels, n_classes).to(p.dtype)
    return votes.mean(0)


def _register(name: str, fn: Combine) -> None:
    AVERAGING.register(name, *AVERAGING_NAMES[name])(fn)


_register("mean", _mean)
_register("geometric", _geometric)
_register("vote", _vote)


def list_averaging() -> list[str]:
    """The names ``[ensemble] method`` accepts for combining predictions."""
    return AVERAGING.names()


def _stack(predictions: Any) -> tuple[Tensor, bool]:
    """``(M, N, ...)`` float64 tensor from a stacked array / tensor or a sequence of them;
    whether the input was NumPy."""
    if isinstance(predictions, (Tensor, np.ndarray)):
        items: Sequence[Any] = list(predictions)
    else:
        items = list(predictions)
    if not items:
        raise ConfigError("average_predictions needs the predictions of at least one member")
    as_numpy = all(isinstance(x, np.ndarray) for x in items)
    tensors = [torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach())
               for x in items]
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ConfigError(f"average_predictions: the members' predictions differ in shape: "
                          f"{sorted(shapes)}")
    return torch.stack([t.to(torch.float64) for t in tensors]), as_numpy


def average_predictions(predictions: Any, method: str = "mean", *, task: str = "multiclass"
                        ) -> Any:
    """Combine the members' predictions into the ensemble's.

    Args:
        predictions: the members' class probabilities, each ``(N, C)`` (rows sum to 1), or for
            ``task="regression"`` their predicted values ``(N,)`` / ``(N, k)``; a sequence of
            tensors or arrays, or one stacked ``(M, N, ...)`` tensor or array.
        method: ``mean``, ``geometric`` or ``vote`` (see the module's documentation).
        task: ``"regression"`` averages values (``mean`` only); any other task averages
            probabilities.

    Returns:
        ``(N, C)`` probabilities (vote: the fraction of members per class), or the mean values;
        a NumPy array when every input was one, else a float64 tensor.

    Example:
        >>> p1 = torch.tensor([[0.9, 0.1]]); p2 = torch.tensor([[0.3, 0.7]])
        >>> [round(v, 6) for v in average_predictions([p1, p2])[0].tolist()]
        [0.6, 0.4]
    """
    name = AVERAGING.canonical(method)
    stacked, as_numpy = _stack(predictions)
    if task == "regression":
        if name != "mean":
            raise ConfigError(f"ensemble method {method!r} needs class probabilities; a "
                              "regression ensemble averages its members' predictions "
                              "(method = \"mean\")")
        out = stacked.mean(0)
    else:
        if stacked.ndim != 3:
            raise ConfigError(f"average_predictions: class probabilities must be (N, C) per "
                              f"member; got {tuple(stacked.shape[1:])}")
        out = AVERAGING.get(name)(stacked)
    return out.numpy() if as_numpy else out


__all__ = ["AVERAGING", "average_predictions", "list_averaging"]
