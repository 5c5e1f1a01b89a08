"""Preprocessing step names, their parameters, and parsing of ``data.preprocess``.

A step is written as a name (``"standardize"``) or a table (``{name = "pca", components = 0.95}``).
Three families (lectures 000-002):

- column steps, on raw table columns: ``impute``, ``onehot``;
- matrix steps, on the numeric feature matrix: ``center``, ``standardize``, ``minmax``, ``pca``,
  ``whiten``;
- image steps, on (C, H, W) images: ``mean_image``, ``channel_mean``, ``channel_mean_std``.

Column steps come before matrix steps. This module imports neither torch nor scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from trainwell.errors import ConfigError
from trainwell.registry import Registry, closest
from trainwell.schema import Section


class NoParams(Section):
    """A step without parameters."""


class ImputeParams(Section):
    strategy: Literal["mean", "median", "most_frequent"] = "mean"
    indicator: bool = True


class MinMaxParams(Section):
    range: list[float] = Field(default_factory=lambda: [0.0, 1.0])

    @field_validator("range")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not v[0] < v[1]:
            raise ValueError("range must be [low, high] with low < high")
        return v


def _check_components(v: int | float | None) -> int | float | None:
    if v is None:
        return v
    bad = (isinstance(v, bool) or (isinstance(v, int) and v < 1)
           or (isinstance(v, float) and not 0.0 < v < 1.0))
    if bad:
        raise ValueError("components must be an int >= 1 or a fraction in (0, 1)")
    return v


class PCAParams(Section):
    components: int | float | None = None

    @field_validator("components", mode="before")
    @classmethod
    def _components(cls, v: int | float | None) -> int | float | None:
        return _check_components(v)


class WhitenParams(Section):
    components: int | float | None = None
    eps: float = Field(default=1e-5, ge=0.0)

    @field_validator("components", mode="before")
    @classmethod
    def _components(cls, v: int | float | None) -> int | float | None:
        return _check_components(v)


@dataclass(frozen=True)
class StepInfo:
    family: Literal["column", "matrix", "image"]
    params: type[Section]
    doc: str


STEPS: Registry[StepInfo] = Registry("preprocessing step", ConfigError)
for _name, _info, _aliases in [
    ("impute", StepInfo("column", ImputeParams, "fill missing values (mean, median, most_frequent) and add missing-indicator columns"), ()),
    ("onehot", StepInfo("column", NoParams, "one-hot encode categorical columns"), ("one_hot",)),
    ("center", StepInfo("matrix", NoParams, "subtract the training mean of each feature"), ("zero_center", "centre")),
    ("standardize", StepInfo("matrix", NoParams, "z-score: (x - mean) / std, training statistics"), ("zscore", "z_score", "standardise")),
    ("minmax", StepInfo("matrix", MinMaxParams, "scale each feature to [low, high] using the training min and max"), ("min_max",)),
    ("pca", StepInfo("matrix", PCAParams, "project on the top principal components (k, or a variance fraction)"), ()),
    ("whiten", StepInfo("matrix", WhitenParams, "PCA whitening: project, then divide by sqrt(eigenvalue + eps)"), ("pca_whiten", "pca_whitening")),
    ("mean_image", StepInfo("image", NoParams, "subtract the training mean image (C, H, W)"), ()),
    ("channel_mean", StepInfo("image", NoParams, "subtract the training per-channel mean"), ("per_channel_mean",)),
    ("channel_mean_std", StepInfo("image", NoParams, "subtract the per-channel mean, divide by the per-channel std"), ("per_channel_mean_std",)),
]:
    STEPS.register(_name, *_aliases)(_info)


@dataclass(frozen=True)
class StepSpec:
    """One parsed step: its canonical name and validated parameters."""

    name: str
    params: dict[str, Any]

    @property
    def family(self) -> str:
        return STEPS.get(self.name).family

    def label(self) -> str:
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({inner})"


def parse_step(item: str | dict[str, Any], position: int) -> StepSpec:
    """Parse one item of ``data.preprocess``.

    Raises:
        ConfigError: an unknown step name or parameter, or a value out of range.
    """
    where = f"step {position} of data.preprocess"
    if isinstance(item, str):
        raw_name, raw_params = item, {}
    elif isinstance(item, dict):
        raw = dict(item)
        raw_name = raw.pop("name", None)
        if not isinstance(raw_name, str):
            raise ConfigError(f"{where}: a table step needs name = \"...\"; got {item!r}")
        raw_params = raw
    else:
        raise ConfigError(f"{where}: expected a step name or a table; got {item!r}")
    try:
        name = STEPS.canonical(raw_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    model = STEPS.get(name).params
    unknown = [k for k in raw_params if k not in model.model_fields]
    if unknown:
        valid = sorted(model.model_fields)
        hint = closest(unknown[0], valid)
        did = f" did you mean {hint!r}?" if hint else ""
        allowed = ", ".join(valid) if valid else "none"
        raise ConfigError(
            f"{where}: step {name!r} has no parameter {unknown[0]!r};{did} its parameters: {allowed}"
        )
    try:
        params = model.model_validate(raw_params).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p not in {"int", "float"}) or name
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {name}.{field}: {msg}; got {first.get('input')!r}") from None
    return StepSpec(name, params)


def parse_steps(items: list[str | dict[str, Any]]) -> list[StepSpec]:
    """Parse and order-check ``data.preprocess``: column steps must precede matrix steps."""
    specs = [parse_step(item, i) for i, item in enumerate(items)]
    seen_matrix: str | None = None
    for spec in specs:
        if spec.family == "matrix":
            seen_matrix = seen_matrix or spec.name
        elif spec.family == "column" and seen_matrix is not None:
            raise ConfigError(
                f"data.preprocess: {spec.name!r} works on raw columns, so it must come before "
                f"{seen_matrix!r}"
            )
    return specs


def step_names(family: str) -> list[str]:
    return [n for n in STEPS.names() if STEPS.get(n).family == family]


__all__ = ["STEPS", "StepInfo", "StepSpec", "parse_step", "parse_steps", "step_names"]
