"""The experiment config: one TOML file, validated with pydantic before anything runs.

Each section's model lives beside the code that uses it (``data/config.py``, ``nn/config.py``,
``train/config.py`` ...); this module composes them, loads TOML, applies ``--set`` overrides and
turns pydantic's errors into messages that name the dotted path, the value and what is allowed.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from trainwell.data.config import DataConfig
from trainwell.diagnose.config import DoctorConfig
from trainwell.errors import ConfigError
from trainwell.nn.config import ModelConfig
from trainwell.registry import closest
from trainwell.report.config import LogConfig
from trainwell.schema import Section
from trainwell.train.config import TrainConfig
from trainwell.tune.config import TuneConfig


class Config(Section):
    """A whole experiment."""

    name: str | None = Field(default=None, description="run name; default: derived from data and model")
    seed: int = Field(default=0, ge=0, description="one seed for Python, NumPy, torch, splits and loader order")
    runs_dir: str = Field(default="runs", description="where run directories are created")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


# ---------------------------------------------------------------------------- error formatting


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by walking ``loc`` from ``cls`` (None if not a model)."""
    current: Any = cls
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _first_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union-member tags ("str", "function-after[...]") into locs; drop them
    out = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict"}):
            continue
        out.append(part)
    return tuple(out)


def _describe(err: dict[str, Any], root: type[BaseModel]) -> str:
    loc = _clean_loc(tuple(err.get("loc", ())))
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        valid = sorted(parent.model_fields) if parent is not None else []
        hint = closest(str(loc[-1]), valid) if loc else None
        did = f" did you mean {'.'.join(map(str, loc[:-1] + (hint,)))!r}?" if hint else ""
        allowed = f" valid keys here: {', '.join(valid)}" if valid else ""
        return f"{path}: unknown key.{did}{allowed}"
    msg = err.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    if kind == "missing":
        return f"{path}: required field is missing"
    if "got " in msg:  # the validator already named the value it received
        return f"{path}: {msg}"
    return f"{path}: {msg}; got {shown}"


_TYPE_WORDS = {
    "string_type": "a string",
    "dict_type": "a table",
    "model_type": "a table",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "an array",
    "literal_error": None,
}


def _merge_type_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One message per field when a union field (``str | dict``) rejects a value of every kind."""
    by_loc: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in errors:
        by_loc.setdefault(_clean_loc(tuple(err.get("loc", ()))), []).append(err)
    out = []
    for loc, errs in by_loc.items():
        kinds = [_TYPE_WORDS.get(e.get("type", "")) for e in errs]
        if len(errs) > 1 and all(kinds):
            words = list(dict.fromkeys(k for k in kinds if k))
            merged = dict(errs[0], loc=loc, type="union_type", msg="expected " + " or ".join(words))
            out.append(merged)
        else:
            out.extend(errs)
    return out


def format_validation_error(exc: ValidationError, root: type[BaseModel] = Config) -> str:
    seen: list[str] = []
    for err in _merge_type_errors(list(exc.errors())):
        line = _describe(err, root)
        if line not in seen:
            seen.append(line)
    return "\n".join(f"  {line}" for line in seen)


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
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str):
                # e.g. activation = "relu" then --set model.activation.negative_slope=0.1
                child = node[part] = {"name": child}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"--set {text}: {'.'.join(path[:-1])} is {child!r}, not a table, so it has "
                    f"no key {path[-1]!r}"
                )
            node = child
        node[path[-1]] = value
    return raw


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config ({source}):\n{format_validation_error(exc)}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None


def load_config(
    source: str | Path | dict[str, Any] | Config | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Load and validate a config from a TOML path, a dict or a Config, then apply ``--set`` overrides.

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
    from trainwell.train.config import check_loss_for_task

    check_loss_for_task(cfg.train.loss.name, cfg.data.task)
    if cfg.tune.space and not cfg.tune.candidates:
        from trainwell.tune.space import validate_space

        validate_space(cfg)


__all__ = ["Config", "apply_overrides", "config_from_dict", "format_validation_error", "load_config"]
