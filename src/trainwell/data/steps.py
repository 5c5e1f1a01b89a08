"""The registry of preprocessing steps, their parameters, and parsing of ``data.preprocess``.

A step is written as a name (``"standardize"``) or a table (``{name = "pca", components = 0.95}``).
Three families (lectures 000-002):

- column steps, on raw table columns: ``impute``, ``onehot``;
- matrix steps, on the numeric feature matrix: ``center``, ``standardize``, ``minmax``, ``pca``,
  ``whiten``;
- image steps, on (C, H, W) images: ``mean_image``, ``channel_mean``, ``channel_mean_std``.

Column steps come before matrix steps. Each step is a class registered once, with its name,
family and parameter model, where it is defined (:mod:`trainwell.data.table_steps`,
:mod:`trainwell.data.image_steps`); parsing, preparation and loading a saved pipeline look the
name up here. Importing this module loads neither torch nor scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import ValidationError

from trainwell.errors import ConfigError
from trainwell.registry import Registry, closest
from trainwell.schema import Section

Family = Literal["column", "matrix", "image"]

#: the step families each kind of data takes, in the order they run
KIND_FAMILIES: dict[str, tuple[Family, ...]] = {"table": ("column", "matrix"), "image": ("image",)}


class NoParams(Section):
    """A step without parameters."""


class Step:
    """What every preprocessing step class carries; :func:`register_step` sets it."""

    name: ClassVar[str] = ""
    family: ClassVar[Family]
    params_model: ClassVar[type[Section]] = NoParams


S = TypeVar("S", bound=type[Step])

STEPS: Registry[type[Step]] = Registry("preprocessing step", ConfigError)


def register_step(
    name: str, *aliases: str, family: Family, params: type[Section] = NoParams
) -> Callable[[S], S]:
    """Register a step class under ``name`` (and ``aliases``) in ``family``, with the pydantic
    model that checks its parameters."""

    def deco(cls: S) -> S:
        cls.name = name
        cls.family = family
        cls.params_model = params
        STEPS.register(name, *aliases)(cls)
        return cls

    return deco


def step_registry() -> Registry[type[Step]]:
    """:data:`STEPS`, with every step module imported (they register themselves)."""
    import trainwell.data.image_steps  # noqa: F401 - registers the image steps
    import trainwell.data.table_steps  # noqa: F401 - registers the column and matrix steps

    return STEPS


def step_class(name: str) -> type[Step]:
    """The class of the step named ``name`` (or an alias).

    Raises:
        ConfigError: an unknown name; the valid ones and the closest are listed.
    """
    return step_registry().get(name)


def list_steps(family: str | None = None) -> list[str]:
    """The registered step names (aliases not included), of one ``family`` when given."""
    reg = step_registry()
    return [n for n in reg.names() if family is None or reg.get(n).family == family]


@dataclass(frozen=True)
class StepSpec:
    """One parsed step: its canonical name and validated parameters."""

    name: str
    params: dict[str, Any]

    @property
    def family(self) -> Family:
        return step_class(self.name).family

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
        name = step_registry().canonical(raw_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    model = step_class(name).params_model
    unknown = [k for k in raw_params if k not in model.model_fields]
    if unknown:
        valid = sorted(model.model_fields)
        hint = closest(unknown[0], valid)
        did = f" did you mean {hint!r}?" if hint else ""
        allowed = ", ".join(valid) if valid else "none"
        raise ConfigError(
            f"{where}: step {name!r} has no parameter {unknown[0]!r};{did} its parameters: "
            f"{allowed}"
        )
    try:
        params = model.model_validate(raw_params).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p not in {"int", "float"}) or name
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {name}.{field}: {msg}; got {first.get('input')!r}") from None
    return StepSpec(name, params)


def parse_steps(items: Sequence[str | dict[str, Any]]) -> list[StepSpec]:
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


__all__ = [
    "KIND_FAMILIES",
    "STEPS",
    "NoParams",
    "Step",
    "StepSpec",
    "list_steps",
    "parse_step",
    "parse_steps",
    "register_step",
    "step_class",
    "step_registry",
]
