"""Which layers sample at test time, in one place: Monte Carlo dropout and its relatives.

Lecture 001: "Training: add randomness; Testing: marginalize over the randomness"; lecture
004: "many forward passes with different masks and average". A model's *stochastic* layers
are those whose training behaviour draws at random: dropout (standard, alpha, channel),
DropConnect, stochastic depth, fractional max pooling (fresh pooling regions per pass) and the
dropout between the layers of a recurrent net. :func:`sampling` puts exactly those layers in
training mode and leaves every other one, BatchNorm above all, in eval mode (running
statistics), so that repeated passes differ only by the masks and regions they draw.

The draws come from torch's global generator (dropout takes no generator of its own); callers
that want reproducible passes seed it inside ``torch.random.fork_rng`` (see
:func:`trainwell.train.test_time.seeded`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from trainwell.nn.layers import DropConnectLinear, StochasticDepth

#: the module kinds that draw at random in training mode, and what the lectures call them
STOCHASTIC_KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Dropout, "dropout"),
    (nn.Dropout1d, "dropout"),
    (nn.Dropout2d, "dropout"),
    (nn.Dropout3d, "dropout"),
    (nn.AlphaDropout, "dropout"),
    (nn.FeatureAlphaDropout, "dropout"),
    (DropConnectLinear, "DropConnect"),
    (StochasticDepth, "stochastic depth"),
    (nn.FractionalMaxPool2d, "fractional max pooling"),  # trainwell's subclass included
    (nn.FractionalMaxPool3d, "fractional max pooling"),
    (nn.RNNBase, "recurrent dropout"),
)


def stochastic_kind(module: nn.Module) -> str | None:
    """What ``module`` draws at random in training mode (``"dropout"`` ...), or None when it
    draws nothing: a dropout or stochastic depth with ``p = 0`` and a one-layer recurrent net
    (torch applies its dropout between layers only) are deterministic."""
    for kind, name in STOCHASTIC_KINDS:
        if isinstance(module, kind):
            if isinstance(module, nn.RNNBase):
                return name if module.dropout > 0 and module.num_layers > 1 else None
            p = getattr(module, "p", None)
            if p is not None and float(p) == 0.0:
                return None
            return name
    return None


def stochastic_modules(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(name, module, kind)`` for every layer of ``model`` that samples in training mode.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
        >>> [(n, k) for n, _, k in stochastic_modules(net)]
        [('1', 'dropout')]
    """
    out = []
    for name, module in model.named_modules():
        kind = stochastic_kind(module)
        if kind is not None:
            out.append((name, module, kind))
    return out


def describe_stochastic(model: nn.Module) -> str:
    """``"dropout x2, stochastic depth x3"``: the stochastic layers of ``model``, by kind;
    ``""`` for a model without any."""
    counts: dict[str, int] = {}
    for _, _, kind in stochastic_modules(model):
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items())


@contextlib.contextmanager
def sampling(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Within the block, ``model`` is in eval mode except its stochastic layers, which sample as
    in training; each module's own mode is restored afterwards.

    Yields the layers switched to sampling (an empty list: the model has none, and every pass
    would give the same output).

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
        >>> with sampling(net) as layers:
        ...     [type(m).__name__ for m in layers], net[1].training
        (['Dropout'], False)
    """
    modes = {m: m.training for m in model.modules()}
    layers = [m for _, m, _ in stochastic_modules(model)]
    try:
        model.eval()
        for m in layers:
            m.train()
        yield layers
    finally:
        for m, mode in modes.items():
            m.training = mode


__all__ = ["STOCHASTIC_KINDS", "describe_stochastic", "sampling", "stochastic_kind",
           "stochastic_modules"]
