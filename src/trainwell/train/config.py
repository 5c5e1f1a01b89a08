"""The ``[train]`` section: loss, penalty, optimizer, schedule, loop, early stopping, checkpoints.

This module imports no torch: ``trainwell check`` validates a config without loading it. The
tables below (optimizer -> defaults, schedule names) and the loss registry of
:mod:`trainwell.train.losses` are the one place the names and the lectures' defaults are
written down; the factories in this package read them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    PositiveInt,
    field_serializer,
    field_validator,
    model_validator,
)

from trainwell.errors import ConfigError
from trainwell.registry import Registry
from trainwell.schema import Section
from trainwell.train.losses import LOSSES

# ---------------------------------------------------------------------------- name tables

#: optimizer name -> (torch class, defaults). Lecture 002: SGD, SGD+momentum, Nesterov, AdaGrad,
#: RMSProp ("leaky AdaGrad", decay_rate 0.99), Adam (beta1 0.9, beta2 0.999, lr 1e-3), and
#: AdamW, whose decoupled weight decay is not the L2 penalty of ``[train.penalty]``.
OPTIMIZER_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0}),
    "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}),
    "nesterov": ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}),
    "adagrad": ("Adagrad", {"lr": 0.01, "eps": 1e-10, "weight_decay": 0.0}),
    "rmsprop": (
        "RMSprop",
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
    ),
    "adam": ("Adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
    "adamw": ("AdamW", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
}
OPTIMIZER_NAMES: Registry[str] = Registry("optimizer", ConfigError)
for _name in OPTIMIZER_TABLE:
    _aliases = {
        "sgd": ("gd",),
        "momentum": ("sgd_momentum",),
        "nesterov": ("sgd_nesterov",),
        "rmsprop": ("rms_prop",),
    }.get(_name, ())
    OPTIMIZER_NAMES.register(_name, *_aliases)(_name)

#: schedule names (lectures 000 and 002); every one can take a linear warmup in front.
SCHEDULE_NAMES: Registry[str] = Registry("schedule", ConfigError)
_SCHEDULE_ALIASES: dict[str, tuple[str, ...]] = {
    "constant": ("none",),
    "time": ("time_based", "inverse_time"),
    "step": ("multistep", "step_decay"),
    "exponential": ("exp",),
    "cosine": (),
    "linear": (),
    "inverse_sqrt": ("rsqrt",),
    "plateau": ("reduce_on_plateau",),
    "onecycle": ("one_cycle",),
    "cosine_restarts": ("sgdr", "cosine_warm_restarts"),
}
for _name, _schedule_aliases in _SCHEDULE_ALIASES.items():
    SCHEDULE_NAMES.register(_name, *_schedule_aliases)(_name)


def _canonical(registry: Registry[Any], field: str, value: str) -> str:
    try:
        return registry.canonical(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None  # the error names the field path itself


# ---------------------------------------------------------------------------- sections


class LossConfig(Section):
    """``loss = "cross_entropy"`` or ``loss = {name = "l2", reduction = "sum"}``."""

    name: str = "auto"
    reduction: Literal["mean", "sum"] = Field(
        default="mean",
        description="L1/L2/Huber: 'mean' over output components, or their 'sum' (lecture 003); "
        "the batch is always averaged",
    )
    delta: float = Field(default=1.0, gt=0, description="Huber: where the loss turns linear")
    margin: float = Field(default=1.0, gt=0, description="hinge: the margin (lecture 003: 1)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.strip().lower() == "auto":
            return "auto"
        return _canonical(LOSSES, "train.loss", v)


class PenaltyConfig(Section):
    """``lambda * R(W)`` added to the data loss (lecture 002: L2, L1, elastic net)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: Literal["none", "l1", "l2", "elastic"] = "none"
    lam: float = Field(default=0.0, ge=0, alias="lambda", description="penalty strength lambda")
    beta: float = Field(default=1.0, ge=0, description="elastic net: R = sum(beta*W^2 + |W|)")
    apply_to: Literal["weights", "all"] = Field(
        default="weights",
        description="'weights': matrices and kernels only (no biases, no norm "
        "parameters); 'all': every parameter",
    )


class OptimizerConfig(Section):
    """A ``torch.optim`` optimizer under the lectures' names; unset fields take its defaults."""

    name: str = "adam"
    lr: float | None = Field(default=None, gt=0)
    weight_decay: float | None = Field(
        default=None, ge=0, description="torch's weight_decay (AdamW: decoupled)"
    )
    momentum: float | None = Field(default=None, ge=0, lt=1)
    betas: tuple[float, float] | None = None
    eps: float | None = Field(default=None, gt=0)
    alpha: float | None = Field(default=None, gt=0, lt=1, description="RMSProp's decay_rate")
    fused: bool | None = Field(
        default=None, description="fused kernel; default: on where torch has one"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _canonical(OPTIMIZER_NAMES, "train.optimizer.name", v)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0 <= b < 1 for b in v):
            raise ValueError("train.optimizer.betas must be two floats in [0, 1)")
        return v

    @model_validator(mode="after")
    def _fits(self) -> OptimizerConfig:
        allowed = OPTIMIZER_TABLE[self.name][1]
        for key in ("momentum", "betas", "eps", "alpha"):
            if getattr(self, key) is not None and key not in allowed:
                takes = ", ".join(sorted(k for k in allowed if k != "nesterov"))
                raise ValueError(
                    f"train.optimizer.{key} does not apply to {self.name!r}, which takes: {takes}"
                )
        return self

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments for the torch optimizer (defaults filled in)."""
        out = dict(OPTIMIZER_TABLE[self.name][1])
        for key in ("lr", "weight_decay", "momentum", "betas", "eps", "alpha"):
            value = getattr(self, key)
            if value is not None:
                out[key] = tuple(value) if key == "betas" else value
        return out


class ScheduleConfig(Section):
    """An LR schedule, stepped every iteration; times are in ``unit`` (epochs or steps)."""

    name: str = "constant"
    unit: Literal["epoch", "step"] = "epoch"
    warmup: float = Field(
        default=0.0, ge=0, description="linear warmup length from 0 (lecture 002)"
    )
    k: float = Field(
        default=0.1, ge=0, description="time-based lr0/(1+k*t); exponential lr0*exp(-k*t)"
    )
    milestones: list[float] = Field(default_factory=lambda: [30.0, 60.0, 90.0])
    gamma: float = Field(default=0.1, gt=0, le=1, description="step: factor at each milestone")
    total: float | None = Field(
        default=None, gt=0, description="T of cosine/linear; default: the whole run"
    )
    metric: str = Field(default="val_loss", description="plateau: the metric watched")
    factor: float = Field(default=0.1, gt=0, lt=1, description="plateau: LR factor on a plateau")
    patience: int = Field(default=5, ge=0, description="plateau: epochs without improvement")
    threshold: float = Field(default=1e-4, ge=0)
    min_lr: float = Field(default=0.0, ge=0, description="plateau: lower bound")
    max_lr: float | None = Field(
        default=None, gt=0, description="onecycle: peak LR; default: optimizer lr"
    )
    pct_start: float = Field(default=0.3, gt=0, lt=1, description="onecycle: rising fraction")
    cycles: PositiveInt = Field(
        default=1, description="cosine_restarts: cosine cycles over T, each from lr0 (snapshots)"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _canonical(SCHEDULE_NAMES, "train.schedule.name", v)

    @model_validator(mode="after")
    def _fits(self) -> ScheduleConfig:
        if self.name == "onecycle" and self.warmup > 0:
            raise ValueError(
                "train.schedule.warmup: onecycle has its own warmup (pct_start); set warmup = 0"
            )
        if sorted(self.milestones) != list(self.milestones):
            raise ValueError(f"train.schedule.milestones must be increasing; got {self.milestones}")
        return self


class EarlyStoppingConfig(Section):
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` epochs (lec. 002)."""

    metric: str = "val_loss"
    mode: Literal["auto", "min", "max"] = Field(
        default="auto", description="auto: max for accuracy/f1/r2"
    )
    patience: int | None = Field(
        default=10,
        ge=1,
        description='"never" (None in Python): never stop early (the best snapshot is still kept)',
    )
    min_delta: float = Field(default=0.0, ge=0)

    @field_validator("patience", mode="before")
    @classmethod
    def _never(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() == "never" else v

    @field_serializer("patience")
    def _write_never(self, v: int | None) -> int | str:
        # TOML has no null: a written config says "never", so that it reads back the same
        return "never" if v is None else v


#: weight-averaging names (``[train.average]``); the methods are registered in
#: :mod:`trainwell.train.averaging` under the same names.
AVERAGE_NAMES: Registry[str] = Registry("weight averaging", ConfigError)
for _name, _average_aliases in {"none": ("off",), "ema": (), "swa": ()}.items():
    AVERAGE_NAMES.register(_name, *_average_aliases)(_name)

#: SWA's default start: averaging over the last quarter of the epochs
SWA_DEFAULT_START = 0.75


def swa_start_epoch(start: float | None, epochs: int, every: int = 1) -> int:
    """The first epoch SWA averages: ``start`` itself (an epoch, >= 1), or for a fraction ``f``
    of the run ``floor(f * epochs) + 1`` (0.75 of 20 epochs: epochs 16-20 are averaged), moved
    earlier where needed so that a fraction averages at least two epochs' weights.

    Example:
        >>> swa_start_epoch(0.75, 20), swa_start_epoch(3, 20), swa_start_epoch(None, 4)
        (16, 3, 3)
    """
    start = SWA_DEFAULT_START if start is None else start
    if isinstance(start, int):
        return start
    return max(1, min(int(start * epochs) + 1, epochs - every))


class AverageConfig(Section):
    """Weight averaging: an exponential moving average of the weights (``ema``, every step) or
    stochastic weight averaging (``swa``, an equal average of epoch-end weights), with
    ``torch.optim.swa_utils``; evaluation and the saved model use the averaged weights."""

    name: str = Field(default="none", description="none, ema or swa")
    decay: float | None = Field(
        default=None,
        description="ema: the decay in (0, 1); default: 1 - 10 / (total steps), kept within "
        "[0.9, 0.9999] (an average over about the last tenth of the run)",
    )
    start: int | float | None = Field(
        default=None,
        description="swa: the first averaged epoch (an integer >= 1) or a fraction in (0, 1) of "
        f"the epochs (at least the last two are averaged); default {SWA_DEFAULT_START} (the "
        "last quarter)",
    )
    lr: float | None = Field(
        default=None, gt=0,
        description="swa: a constant learning rate from the start epoch on (torch's SWALR); "
        "default: the schedule goes on",
    )
    every: int | None = Field(
        default=None, ge=1, description="swa: average every this many epochs; default 1"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _canonical(AVERAGE_NAMES, "train.average.name", v)

    @field_validator("decay")
    @classmethod
    def _decay(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v < 1:
            raise ValueError(f"train.average.decay must be in (0, 1) exclusive; got {v}")
        return v

    @field_validator("start")
    @classmethod
    def _start(cls, v: int | float | None) -> int | float | None:
        if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        if isinstance(v, float) and 0 < v < 1:
            return v
        raise ValueError(
            "train.average.start must be an epoch (an integer >= 1) or a fraction of the epochs "
            f"in (0, 1); got {v!r}"
        )

    @model_validator(mode="after")
    def _fits(self) -> AverageConfig:
        takes = {"none": (), "ema": ("decay",), "swa": ("start", "lr", "every")}[self.name]
        for key in ("decay", "start", "lr", "every"):
            if getattr(self, key) is not None and key not in takes:
                allowed = ", ".join(takes) or "nothing"
                raise ValueError(
                    f"train.average.{key} does not apply to {self.name!r}, which takes: {allowed}"
                )
        return self

    def swa_epochs(self, epochs: int) -> tuple[int, int]:
        """SWA over a run of ``epochs``: (the first averaged epoch, how many epochs are
        averaged)."""
        every = self.every or 1
        first = swa_start_epoch(self.start, epochs, every)
        return first, (epochs - first) // every + 1 if first <= epochs else 0

    def check_epochs(self, epochs: int) -> None:
        """Refuse an SWA that cannot average: a start beyond the run, or fewer than two
        averaged epochs (an average of one is the last weights)."""
        if self.name != "swa":
            return
        first, count = self.swa_epochs(epochs)
        if first > epochs:
            raise ValueError(
                f"train.average.start {self.start!r} (epoch {first}) is beyond train.epochs "
                f"{epochs}; start at epoch {epochs - 1} or earlier"
            )
        if count < 2:
            raise ValueError(
                f"train.average: swa from epoch {first} every {self.every or 1} epoch(s) of "
                f"{epochs} averages {count} set of weights; it needs at least 2: start earlier, "
                "average more often or train longer"
            )


def table_from_name(value: Any) -> Any:
    """``"adam"`` -> ``{"name": "adam"}``: a section given by its name alone."""
    return {"name": value} if isinstance(value, str) else value


class TrainConfig(Section):
    """The ``[train]`` section."""

    loss: LossConfig = Field(default_factory=LossConfig)
    penalty: PenaltyConfig = Field(default_factory=PenaltyConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=64, ge=1)
    eval_batch_size: int = Field(default=4096, ge=1)
    shuffle: bool = True
    grad_clip: float | None = Field(default=None, gt=0, description="clip the global gradient norm")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="bf16/fp16: autocast on a GPU; bf16 also on a CPU with "
        "native bf16 (AVX512-BF16, AMX, arm64 BF16), elsewhere fp32 with a warning",
    )
    device: str = Field(default="auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    checkpoint_every: int = Field(
        default=5, ge=0, description="epochs between checkpoints; 0: at the end only"
    )
    top_k: int = Field(
        default=5, ge=2, description="val_top<k>_accuracy is logged when there are more classes"
    )
    num_workers: int = Field(
        default=0, ge=0, description="DataLoader workers for data that streams"
    )
    average: AverageConfig = Field(
        default_factory=AverageConfig,
        description="weight averaging: none, ema or swa (see [train.average])",
    )
    threads: Literal["auto"] | PositiveInt = Field(
        default="auto",
        description="intra-op threads while training: auto (1 for a small model step, else the "
        "idle cores) or a count",
    )
    channels_last: bool = Field(
        default=False, description="image models: weights and 4-D batches in channels-last "
        "memory order (same values; faster convolutions on many CPUs and GPUs)",
    )
    compile: bool = Field(
        default=False, description="torch.compile the model for training (compiled before "
        "the first epoch; compile time reported apart in results.json)",
    )
    accumulate: int = Field(
        default=1, ge=1, description="gradient accumulation: micro-batches of batch_size per "
        "optimizer step (one step on accumulate x batch_size samples)",
    )
    compile_backend: Literal["inductor", "aot_eager", "eager"] = Field(
        default="inductor", description="torch.compile backend: inductor generates code; "
        "aot_eager / eager compile in seconds and compute as eager mode (checks, tests)",
    )
    metrics: list[str] = Field(
        default_factory=list, description="metrics logged beside the task's own (val_<name>): "
        "registered names (balanced_accuracy, precision, recall, f1, roc_auc, pr_auc, "
        "log_loss, ece, r2, mae, rmse, mse, mape) or 'python:module:function' (--trust-code)",
    )
    class_weight: str | dict[str, float] | None = Field(
        default=None, description='"balanced" (n / (C * n_c) on the train split) or a table '
        "{label = weight} (labels as in the data; others weigh 1): the cross-entropy losses' "
        "per-class weights",
    )
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=1, description="cross-entropy losses: targets y (1 - x) + x / C "
        "(torch's label_smoothing; bce: C = 2)",
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        from trainwell.train.metric_registry import check_metric_name

        out: list[str] = []
        for name in v:
            try:
                canonical = check_metric_name(name)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("train.metrics: ")) from None
            if canonical in out:
                raise ValueError(f"names {canonical!r} twice")
            out.append(canonical)
        return out

    @field_validator("class_weight", mode="before")
    @classmethod
    def _label_keys(cls, v: Any) -> Any:
        # labels as Python writes them ({1: 3.0}) are matched as text, as a TOML table's keys are
        return {str(k): w for k, w in v.items()} if isinstance(v, dict) else v

    @field_validator("class_weight")
    @classmethod
    def _class_weight(cls, v: str | dict[str, float] | None) -> str | dict[str, float] | None:
        if isinstance(v, str):
            if v.strip().lower() != "balanced":
                raise ValueError(f'must be "balanced" or a table {{label = weight}}; got {v!r}')
            return "balanced"
        if isinstance(v, dict):
            if not v:
                raise ValueError("the table of weights is empty")
            for label, w in v.items():
                if not w > 0 or w == float("inf"):
                    raise ValueError(f"the weight of label {label!r} must be a positive number; "
                                     f"got {w}")
        return v

    @model_validator(mode="after")
    def _weights_fit_the_loss(self) -> TrainConfig:
        if (self.class_weight is not None or self.label_smoothing) and self.loss.name not in (
                "auto", "cross_entropy", "bce"):
            field = "class_weight" if self.class_weight is not None else "label_smoothing"
            raise ValueError(
                f"train.{field} applies to the cross-entropy losses (cross_entropy, bce); "
                f"train.loss is {self.loss.name!r}"
            )
        return self

    @field_validator("loss", "penalty", "optimizer", "schedule", mode="before")
    @classmethod
    def _str_to_table(cls, v: Any) -> Any:
        return table_from_name(v)

    @field_validator("average", mode="before")
    @classmethod
    def _average_name(cls, v: Any) -> Any:
        return table_from_name(v)

    @model_validator(mode="after")
    def _average_fits(self) -> TrainConfig:
        self.average.check_epochs(self.epochs)
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        v = v.strip().lower()
        base, _, index = v.partition(":")
        if base not in {"auto", "cpu", "cuda", "mps"} or (
            index and not (base == "cuda" and index.isdigit())
        ):
            raise ValueError("train.device must be one of auto, cpu, cuda, cuda:N, mps")
        return v


__all__ = [
    "AVERAGE_NAMES",
    "OPTIMIZER_TABLE",
    "AverageConfig",
    "EarlyStoppingConfig",
    "LossConfig",
    "OptimizerConfig",
    "PenaltyConfig",
    "ScheduleConfig",
    "TrainConfig",
]
