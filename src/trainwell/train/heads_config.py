"""The ``[heads]`` and ``[domain]`` sections: several heads on one trunk (docs/heads.md).

``[heads.<name>]`` gives a head its target column(s), task, loss, weight and metrics: Keras's
``loss`` / ``loss_weights`` / ``metrics`` dicts, one table per output. ``[domain]`` names
unlabelled target-domain data for domain-adversarial training (Ganin & Lempitsky 2015). Like
the other sections, this module imports no torch: ``trainwell check`` validates them cheaply.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator

from trainwell.errors import ConfigError
from trainwell.schema import Section
from trainwell.tasks import Task
from trainwell.train.config import LossConfig, table_from_name

HEAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: names a head may not take: they would collide with the logged names of a run
RESERVED_HEAD_NAMES = frozenset({"loss", "target", "domain", "grl", "lr", "epoch", "time"})
#: the metrics a head of each task can log (those of :func:`trainwell.train.metrics.metric_names`;
#: a multiclass head also logs ``top<k>_accuracy`` when it has more than k classes)
HEAD_METRICS: dict[str, list[str]] = {
    "binary": ["accuracy", "f1_macro"],
    "multiclass": ["accuracy", "f1_macro"],
    "regression": ["rmse", "mae", "r2"],
}


class HeadConfig(Section):
    """One head: ``[heads.<name>]``."""

    target: str | list[str] | None = Field(
        default=None,
        description="the target column(s) of the data; default: the column named like the head",
    )
    task: Literal["auto", Task] = Field(
        default="auto", description="binary, multiclass or regression; auto: from the column"
    )
    loss: LossConfig = Field(default_factory=LossConfig)
    weight: float = Field(
        default=1.0, ge=0, description="the head's weight in the total loss (Keras: loss_weights)"
    )
    metrics: list[str] | None = Field(
        default=None, description="the task's metrics to log for this head; default: all"
    )

    @field_validator("loss", mode="before")
    @classmethod
    def _str_to_table(cls, v: Any) -> Any:
        return table_from_name(v)

    @field_validator("weight")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number >= 0; got {v}")
        return v

    @field_validator("target")
    @classmethod
    def _columns(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("must name at least one column")
            dup = sorted({c for c in v if v.count(c) > 1})
            if dup:
                raise ValueError(f"names column(s) {dup} twice")
        return v

    def columns(self, name: str) -> list[str]:
        """The target columns of the head called ``name``."""
        if self.target is None:
            return [name]
        return [self.target] if isinstance(self.target, str) else list(self.target)


def head_target_specs(heads: dict[str, HeadConfig]) -> dict[str, tuple[list[str], str]]:
    """``{head: (columns, task)}``: what data preparation needs of ``[heads]``."""
    return {name: (h.columns(name), h.task) for name, h in heads.items()}


class DomainConfig(Section):
    """Domain-adversarial training: ``[domain] target = "<source>"``."""

    target: str = Field(
        description="the target domain's data: any data source with the source's feature "
        "columns; its labels, if present, are used only to evaluate"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of the target source (like data.params)"
    )
    grl_lambda: float | Literal["ganin"] = Field(
        default="ganin",
        description="the gradient reversal strength: ganin (2 / (1 + exp(-gamma p)) - 1 over "
        "the training progress p) or a fixed number >= 0",
    )
    gamma: float = Field(default=10.0, gt=0, description="the ganin schedule's gamma")
    lr_schedule: Literal["none", "dann"] = Field(
        default="none",
        description="dann: the paper's lr_p = lr / (1 + alpha p)^beta instead of train.schedule",
    )
    alpha: float = Field(default=10.0, gt=0, description="the dann learning-rate schedule's alpha")
    beta: float = Field(default=0.75, gt=0, description="the dann learning-rate schedule's beta")
    hidden: list[PositiveInt] = Field(
        default_factory=lambda: [32],
        description="hidden widths of the domain classifier (ReLU), before its one logit",
    )
    baseline: bool = Field(
        default=False,
        description="also train a source-only baseline (the same run with lambda 0) and compare "
        "target accuracy in results.json and the report",
    )
    early_stopping: bool = Field(
        default=False,
        description="stop early by train.early_stopping; default: train every epoch (the "
        "source validation loss levels off long before the domains are aligned)",
    )
    restore_best: bool = Field(
        default=False,
        description="keep the weights of the best source val_loss; default: the last epoch's "
        "(the source validation loss does not tell which weights adapted best)",
    )

    @field_validator("grl_lambda")
    @classmethod
    def _lambda(cls, v: float | str) -> float | str:
        if isinstance(v, float) and (not math.isfinite(v) or v < 0):
            raise ValueError(f"must be 'ganin' or a finite number >= 0; got {v}")
        return v

    @field_validator("target")
    @classmethod
    def _source(cls, v: str) -> str:
        from trainwell.data.sources import check_source

        try:
            check_source(v)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("data.source: ")) from None
        return v


def check_heads(heads: dict[str, HeadConfig]) -> None:
    """Checks across heads: names, weights, losses against tasks, one task per column.

    Raises:
        ConfigError: naming ``heads.<name>.<field>``, the value and what is allowed.
    """
    from trainwell.train.losses import check_loss_for_task

    for name in heads:
        if not HEAD_NAME.match(name) or name in RESERVED_HEAD_NAMES:
            raise ConfigError(
                f"heads.{name}: a head's name must start with a letter and hold only letters, "
                f"digits and _, and not be one of {', '.join(sorted(RESERVED_HEAD_NAMES))}"
            )
    if heads and all(h.weight == 0 for h in heads.values()):
        raise ConfigError(
            "heads: every weight is 0 ("
            + ", ".join(f"{n}={h.weight:g}" for n, h in heads.items())
            + "), so nothing would be trained; give at least one head a weight > 0"
        )
    seen: dict[str, tuple[str, str]] = {}
    for name, h in heads.items():
        try:
            check_loss_for_task(h.loss.name, h.task)
        except ConfigError as exc:
            raise ConfigError(f"heads.{name}.loss: {exc}") from None
        if h.metrics is not None and h.task != "auto":
            allowed = HEAD_METRICS[h.task]
            bad = [m for m in h.metrics if m not in allowed and not (
                h.task == "multiclass" and re.fullmatch(r"top\d+_accuracy", m))]
            if bad:
                raise ConfigError(
                    f"heads.{name}.metrics: {bad} are not metrics of a {h.task} head; allowed: "
                    f"{', '.join(allowed)}"
                )
        for col in h.columns(name):
            if col in seen and h.task != "auto" and seen[col][1] != "auto" and (
                seen[col][1] != h.task
            ):
                other, task = seen[col]
                raise ConfigError(
                    f"heads.{name}.task: column {col!r} is also the target of heads.{other}, "
                    f"with task {task}; one column has one task (got {h.task})"
                )
            if col not in seen or seen[col][1] == "auto":
                seen[col] = (name, h.task)


__all__ = ["DomainConfig", "HeadConfig", "check_heads", "head_target_specs"]
