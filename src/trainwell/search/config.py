"""The ``[tune]`` section: method, budget, search space, metric, pruner, storage, recipe,
candidates.

Names are checked against their registries (``tune.method`` against the samplers,
``tune.pruner.name`` against the pruners) and the space's entries are parsed, all without
importing Optuna; the space's paths are checked against the whole config by
:func:`trainwell.search.space.validate_space`.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import Field, field_validator

from trainwell.schema import Section

Acquisition = Literal["auto", "ucb", "ei"]
ACQUISITIONS: tuple[str, ...] = typing.get_args(Acquisition)


class BayesConfig(Section):
    """Options of trainwell's GP sampler (lecture 002's UCB and EI)."""

    acquisition: Acquisition = Field(
        default="auto",
        description="auto: EI / floored-UCB portfolio; ucb: mu + beta0*decay^t*sigma; ei",
    )
    beta0: float | None = Field(
        default=None, ge=0.0, description="UCB beta before decay (ucb: 1, auto: 2)"
    )
    decay: float = Field(
        default=0.8, gt=0.0, le=1.0, description="UCB beta decay per step (lecture: 0.8)"
    )
    beta_min: float | None = Field(
        default=None, ge=0.0, description="floor on beta (ucb: 0, auto: 0.5)"
    )
    delta: float = Field(default=0.0, ge=0.0, description="EI margin delta, in the metric's units")
    n_startup_trials: int | None = Field(default=None, ge=1, description="random trials first")
    deterministic: bool | None = Field(
        default=None,
        description="fit the GP with a jitter only (repeatable values); false: fit a noise "
        "level too (auto: false; ucb, ei: true)",
    )
    warp: bool | None = Field(
        default=None,
        description="fit the GP to Yeo-Johnson-transformed values, for a heavy tail of bad "
        "values (auto: for 30 trials, then at each fit whichever of the warped and plain "
        "values the GP finds likelier; ucb, ei: false, as in the lecture)",
    )
    trust_region: bool | None = Field(
        default=None,
        description="search each step in TuRBO's trust region around the best trial, which "
        "grows after successes and shrinks after failures (auto: true; ucb, ei: false)",
    )
    slices: int | None = Field(
        default=None,
        ge=0,
        description="moves of one coordinate of the best trial over its whole range, per "
        "coordinate, scored beside the trust region's optimum, with 3 or more boxed "
        "coordinates and no trial pending (default: 16 with the trust region, else 0)",
    )


class PrunerConfig(Section):
    """Stopping hopeless trials from their per-epoch reports."""

    name: str = Field(default="median", description="a pruner of trainwell.search.list_pruners()")
    warmup_epochs: int = Field(
        default=1, ge=0, description="epochs reported before a trial can be pruned"
    )
    startup_trials: int = Field(
        default=4, ge=0, description="trials completed before pruning starts"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        from trainwell.search.pruners import PRUNERS

        return PRUNERS.canonical(value)


class RecipeConfig(Section):
    """Lecture 002's coarse-to-fine recipe (steps 4-5): short coarse random search, then refine."""

    coarse_trials: int = Field(default=20, ge=1)
    coarse_epochs: int = Field(default=3, ge=1, le=5, description="lecture: train ~1-5 epochs")
    refine_trials: int = Field(default=10, ge=1)
    refine_epochs: int | None = Field(default=None, ge=1, description="default: train.epochs")
    top_k: int = Field(default=3, ge=1, description="best coarse trials the refined ranges cover")
    margin: float = Field(
        default=0.25,
        ge=0.0,
        le=2.0,
        description="widening of the refined range, as a fraction of its width "
        "(log width for log params)",
    )
    final: bool = Field(default=True, description="train the best config in full at the end")


class CandidateConfig(Section):
    """One algorithm of an algorithm-selection study and its own search space."""

    name: str = Field(
        description="network, logistic_regression, knn, decision_tree, random_forest, svm"
    )
    space: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict, description="fixed estimator parameters")


class TuneConfig(Section):
    """The ``[tune]`` section (see docs/tuning.md)."""

    method: str = Field(default="bayes", description="a method of trainwell.search.list_samplers()")
    trials: int = Field(default=30, ge=1)
    space: dict[str, Any] = Field(default_factory=dict)
    metric: str = Field(default="val_loss", description="metric of results.json 'best' to optimize")
    direction: Literal["auto", "minimize", "maximize"] = "auto"
    important: list[str] = Field(
        default_factory=list, description="grid: parameters given finer grids"
    )
    grid_points: int = Field(default=3, ge=1, description="grid points per continuous parameter")
    grid_points_important: int = Field(default=5, ge=1, description="grid points per important one")
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    storage: str | None = Field(
        default=None, description="SQLAlchemy URL; default: study.db in the study dir"
    )
    study_name: str | None = None
    workers: int = Field(default=1, ge=1, description="worker processes on this machine")
    heartbeat: int = Field(
        default=30, ge=1, description="whole seconds between liveness records (Optuna's heartbeat)"
    )
    max_retry: int = Field(default=1, ge=0, description="re-queues of a trial whose worker died")
    seed: int | None = Field(
        default=None, ge=0, description="sampler seed; default: the config seed"
    )
    bayes: BayesConfig = Field(default_factory=BayesConfig)
    recipe: RecipeConfig = Field(default_factory=RecipeConfig)
    candidates: list[CandidateConfig] = Field(default_factory=list)

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        from trainwell.search.samplers import SAMPLERS

        return SAMPLERS.canonical(value)

    @field_validator("space")
    @classmethod
    def _check_space(cls, value: dict[str, Any]) -> dict[str, Any]:
        # parse every entry now so a malformed spec is refused at load; the paths are checked
        # against the whole Config by trainwell.search.space.validate_space (once the whole
        # config is loaded, and again where tuning starts)
        from trainwell.search.space import parse_space

        parse_space(value, prefix="tune.space")
        return value
