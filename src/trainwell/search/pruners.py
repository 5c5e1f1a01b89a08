"""Pruners by name: stopping hopeless trials from their per-epoch reports (``[tune.pruner]``).

``tune.pruner.name`` is checked against :data:`PRUNERS` when the config loads, without
importing Optuna (a pruner imports it when it is made).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trainwell.errors import ConfigError
from trainwell.registry import Registry

if TYPE_CHECKING:
    import optuna

    from trainwell.search.config import PrunerConfig

PrunerFactory = Callable[["PrunerConfig"], "optuna.pruners.BasePruner"]

PRUNERS: Registry[PrunerFactory] = Registry("pruner", error=ConfigError)


@PRUNERS.register("median")
def _median(p: PrunerConfig) -> optuna.pruners.BasePruner:
    """Stop a trial whose epoch is worse than the median of the other trials at that epoch."""
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs
    )


@PRUNERS.register("halving")
def _halving(p: PrunerConfig) -> optuna.pruners.BasePruner:
    """Successive halving: at each rung, keep the best fraction of the trials that reached it."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, p.warmup_epochs))


@PRUNERS.register("none")
def _none(p: PrunerConfig) -> optuna.pruners.BasePruner:
    """Every trial runs to its end."""
    import optuna

    return optuna.pruners.NopPruner()


def make_pruner(p: PrunerConfig) -> optuna.pruners.BasePruner:
    """The pruner ``[tune.pruner]`` names, configured from it.

    Example:
        >>> from trainwell.search.config import PrunerConfig
        >>> type(make_pruner(PrunerConfig(name="halving"))).__name__
        'SuccessiveHalvingPruner'
    """
    return PRUNERS.get(p.name)(p)


def list_pruners() -> list[str]:
    return PRUNERS.names()


__all__ = ["PRUNERS", "list_pruners", "make_pruner"]
