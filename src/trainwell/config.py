"""The experiment config: one TOML file, validated with pydantic before anything runs.

Each section's model lives beside the code that uses it (``data/config.py``, ``nn/config.py``,
``train/config.py`` ...); this module composes them, loads TOML, applies ``--set`` overrides and
turns pydantic's errors into messages that name the dotted path, the value and what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

import trainwell.schema as schema
from trainwell.after.config import EnsembleConfig
from trainwell.data.augment.config import AugmentConfig
from trainwell.data.augment.tta_config import TTAConfig
from trainwell.data.config import DataConfig
from trainwell.diagnose.config import DoctorConfig
from trainwell.errors import ConfigError
from trainwell.nn.config import ModelConfig
from trainwell.report.config import LogConfig
from trainwell.schema import Section
from trainwell.search.config import TuneConfig
from trainwell.train.config import TrainConfig
from trainwell.train.heads_config import DomainConfig, HeadConfig


class Config(Section):
    """A whole experiment."""

    name: str | None = Field(
        default=None, description="run name; default: derived from data and model"
    )
    seed: int = Field(
        default=0, ge=0, description="one seed for Python, NumPy, torch, splits and loader order"
    )
    runs_dir: str = Field(default="runs", description="where run directories are created")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    heads: dict[str, HeadConfig] = Field(
        default_factory=dict,
        description="named heads on one trunk (multitask learning); empty: one output",
    )
    domain: DomainConfig | None = Field(
        default=None, description="domain-adversarial training on unlabelled target data"
    )
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig,
        description="training-split augmentation, one table per operation; empty: off",
    )
    tta: TTAConfig = Field(
        default_factory=TTAConfig,
        description="test-time augmentation and Monte Carlo passes (docs/tta.md)",
    )
    ensemble: EnsembleConfig = Field(
        default_factory=EnsembleConfig, description="trainwell ensemble: members and averaging"
    )

    def head_targets(self) -> dict[str, tuple[list[str], str]] | None:
        """``{head: (target columns, task)}`` for data preparation; None without ``[heads]``."""
        from trainwell.train.heads_config import head_target_specs

        return head_target_specs(self.heads) if self.heads else None

    def to_dict(self) -> dict[str, Any]:
        # None is left out (TOML has no null) after the fields' serializers have run, so that a
        # field spelling None as a word (early_stopping.patience = "never") keeps it
        return _without_none(self.model_dump(mode="json"))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def format_validation_error(exc: ValidationError, root: type[BaseModel] = Config) -> str:
    """One line per invalid field of ``root`` (the whole Config by default); see
    :func:`trainwell.schema.format_validation_error`."""
    return schema.format_validation_error(exc, root)


# ---------------------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optimizer.lr=0.01"`` -> (["train", "optimizer", "lr"], 0.01).

    The value is read as a TOML value (numbers, booleans, strings, arrays, inline tables); a
    bare word that is not valid TOML is taken as a string.
    """
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value; got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects section.key=value; got {text!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` with each ``--set section.key=value`` applied (:func:`trainwell.schema.set_path`)."""
    for text in overrides:
        path, value = parse_override(text)
        try:
            schema.set_path(raw, path, value)
        except ConfigError as exc:
            raise ConfigError(f"--set {text}: {exc}") from None
    return raw


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """The validated Config of a dict; a ConfigError naming each invalid field otherwise."""
    return schema.validate_section(Config, raw, source)


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        tomls = sorted(p.name for p in path.glob("*.toml"))
        held = f"; it holds {', '.join(tomls[:5])}" if tomls else ""
        raise ConfigError(f"config file {path} is a folder, not a file; give the path of a TOML "
                          f"config file{held}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # deeper than the parser's stack
        raise ConfigError(
            f"config file {path} nests arrays or tables too deeply to be read"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None


def load_config(
    source: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Load and validate a config from a TOML path, a dict or a Config, with ``--set`` overrides.

    Example:
        >>> cfg = load_config({"data": {"source": "builtin:iris"}}, ["train.epochs=3"])
        >>> cfg.train.epochs
        3
    """
    if isinstance(source, Config):
        raw = source.to_dict()
        name = "config"
    elif isinstance(source, dict):
        import copy

        raw = copy.deepcopy(source)
        name = "config"
    elif source is None:
        raw, name = {}, "defaults"
    else:
        raw = read_toml(source)
        name = str(source)
        base = Path(source).resolve().parent
        raw.setdefault("_base_dir", str(base))
    base_dir = raw.pop("_base_dir", None)
    raw = apply_overrides(raw, list(overrides or []))
    cfg = config_from_dict(raw, name)
    if base_dir is not None:
        cfg.data.resolve_paths(Path(base_dir))
    check_cross_fields(cfg)
    return cfg


def check_cross_fields(cfg: Config) -> None:
    """Checks that span sections: the loss against the task, the search space against the config."""
    from trainwell.train.losses import check_loss_for_task

    check_loss_for_task(cfg.train.loss.name, cfg.data.task)
    if cfg.model.init_from is not None and (cfg.heads or cfg.domain is not None):
        raise ConfigError("model.init_from applies to a model of one head; it cannot be combined "
                          "with [heads] or [domain] yet: remove one of them")
    if cfg.heads or cfg.domain is not None:
        _check_heads_domain(cfg)
    if cfg.augment.enabled:
        from trainwell.data.augment.config import check_against_config
        from trainwell.train.losses import loss_tasks

        check_against_config(cfg.augment, task=cfg.data.task, loss=cfg.train.loss.name,
                             loss_tasks=loss_tasks(cfg.train.loss.name),
                             several_heads=bool(cfg.heads), domain=cfg.domain is not None)
    if cfg.tune.space and not cfg.tune.candidates:
        from trainwell.search.space import validate_space

        validate_space(cfg)
    from trainwell.data.augment.tta_config import check_tta

    check_tta(cfg)


def _check_heads_domain(cfg: Config) -> None:
    """``[heads]`` and ``[domain]`` against the rest of the config."""
    from trainwell.train.heads_config import check_heads

    if cfg.train.metrics or cfg.train.class_weight is not None or cfg.train.label_smoothing:
        raise ConfigError("train.metrics, train.class_weight and train.label_smoothing apply to "
                          "a model of one head; with [heads] or [domain] leave them unset")
    if cfg.domain is not None and cfg.domain.lr_schedule == "dann" and (
        cfg.train.schedule.name != "constant"
    ):
        raise ConfigError(
            f"domain.lr_schedule = 'dann' sets the learning rate itself, but train.schedule is "
            f"{cfg.train.schedule.name!r}; use one: remove train.schedule or set "
            "domain.lr_schedule = 'none'"
        )
    if cfg.heads and cfg.domain is not None:
        raise ConfigError(
            "[heads] and [domain] cannot be combined yet: domain-adversarial training has one "
            "label head (data.target); remove one of the two sections"
        )
    if cfg.heads:
        check_heads(cfg.heads)
        for name, head in cfg.heads.items():
            ignored = [c for c in head.columns(name) if cfg.data.columns.get(c) == "ignore"]
            if ignored:
                raise ConfigError(
                    f"heads.{name} learns column(s) {ignored}, which data.columns marks "
                    "\"ignore\"; remove one of the two"
                )
        for field, value, default in (
            ("data.target", cfg.data.target, None),
            ("train.loss", cfg.train.loss.name, "auto"),
            ("data.task", cfg.data.task, "auto"),
        ):
            if value != default:
                raise ConfigError(
                    f"{field} = {value!r} does not apply with [heads]: each head names its own "
                    f"target, task and loss (heads.<name>.target / .task / .loss); remove {field}"
                )
        if cfg.data.target_scale == "standardize":
            raise ConfigError(
                "data.target_scale = 'standardize' does not apply with [heads]: each head trains "
                "on its targets as they are; remove data.target_scale"
            )
    for field, metric in (
        ("train.early_stopping.metric", cfg.train.early_stopping.metric),
        ("tune.metric", cfg.tune.metric),
    ):
        if cfg.heads and metric.startswith("val_") and metric != "val_loss":
            _check_head_metric(field, metric, cfg)


def _check_head_metric(field: str, metric: str, cfg: Config) -> None:
    """A per-head metric name (``val_<head>_<metric>``) names a head and one of its metrics."""
    from trainwell.train.heads_config import HEAD_METRICS

    rest = metric.removeprefix("val_")
    for name, head in cfg.heads.items():
        if rest.startswith(name + "_"):
            what = rest[len(name) + 1 :]
            tasks = [head.task] if head.task != "auto" else list(HEAD_METRICS)
            allowed = {"loss", *(m for t in tasks for m in HEAD_METRICS[t])}
            if what in allowed or what.endswith("_accuracy") and "multiclass" in tasks:
                return
            raise ConfigError(
                f"{field} = {metric!r}: head {name!r} logs val_{name}_loss and "
                + ", ".join(f"val_{name}_{m}" for m in sorted(allowed - {"loss"}))
            )
    heads = ", ".join(cfg.heads)
    raise ConfigError(
        f"{field} = {metric!r} names no head; with [heads] it is val_loss (the weighted total) "
        f"or val_<head>_<metric> for a head of: {heads}"
    )


__all__ = [
    "Config",
    "apply_overrides",
    "config_from_dict",
    "format_validation_error",
    "load_config",
]
