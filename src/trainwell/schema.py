"""The base of every config section, and the tools every section shares.

* :class:`Section`: strict pydantic models (unknown keys refused, values checked on assignment);
* dotted paths: reading and setting ``"train.optimizer.lr"`` in a config dict (``--set``
  overrides and the tuner's sampled values both go through :func:`set_path`), and walking the
  section models along a path (:func:`model_at`, :func:`first_model`);
* pydantic's errors turned into one line per field that names the dotted path once, the value
  and what is allowed (:func:`format_validation_error`, :func:`validate_section`).

This module imports no section: ``trainwell.config`` composes them, and the packages that edit
or check configs by path (``trainwell.search``) use these tools without importing it back.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from trainwell.errors import ConfigError
from trainwell.registry import closest

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """A config section: unknown keys are refused, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ---------------------------------------------------------------------------- dotted paths


def split_path(path: str | Sequence[str]) -> list[str]:
    return path.split(".") if isinstance(path, str) else list(path)


def get_path(raw: dict[str, Any], path: str | Sequence[str]) -> Any:
    """The value at a dotted ``path`` of a config dict; None where a part is missing.

    A string where a table would be is read as the table's ``name`` (``activation = "relu"``
    is ``activation.name``).

    Example:
        >>> get_path({"model": {"activation": "relu"}}, "model.activation.name")
        'relu'
    """
    node: Any = raw
    parts = split_path(path)
    for i, part in enumerate(parts):
        if isinstance(node, str) and i == len(parts) - 1 and part == "name":
            return node
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_path(raw: dict[str, Any], path: str | Sequence[str], value: Any) -> None:
    """Set a dotted ``path`` of a config dict to ``value``, creating tables on the way.

    A string on the way becomes a table with that ``name`` (``activation = "relu"`` then
    ``model.activation.negative_slope = 0.1``); any other value on the way is refused.

    Example:
        >>> raw = {"model": {"activation": "relu"}}
        >>> set_path(raw, "model.activation.negative_slope", 0.1)
        >>> raw
        {'model': {'activation': {'name': 'relu', 'negative_slope': 0.1}}}
    """
    parts = split_path(path)
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str):
            child = node[part] = {"name": child}
        elif not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(
                f"{where} is {child!r}, not a table, so it has no key {parts[i + 1]!r}"
            )
        node = child
    node[parts[-1]] = value


def first_model(annotation: Any, containers: bool = True) -> type[BaseModel] | None:
    """The pydantic model in a field's annotation: ``X``, ``X | None``, and with ``containers``
    also inside ``list[X]`` or ``dict[str, X]``; None when there is none."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if not containers and typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        found = first_model(arg, containers)
        if found is not None:
            return found
    return None


def model_at(root: type[BaseModel], path: str | Sequence[Any]) -> type[BaseModel] | None:
    """The section model found by walking ``path`` from ``root`` (None where it is not one)."""
    current: type[BaseModel] | None = root
    for part in split_path(path) if isinstance(path, str) else path:
        if current is None:
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = first_model(field.annotation)
    return current


# ---------------------------------------------------------------------------- error messages

# pydantic adds union-member tags ("str", "function-after[...]") into locs
_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict"}
# a message that starts with a field path: "train.loss: ...", "train.optimizer.betas must ..."
# a dotted path at the start of a message; a segment may be quoted ("tune.space.'train.lr'")
_LEADING_PATH = re.compile(r"^([A-Za-z_][\w]*(?:\.(?:[A-Za-z_][\w]*|'[^']*'))*)(: | )")

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


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS)))


def _own_path(path: str, msg: str) -> tuple[str, str]:
    """``(path, msg)`` with the field path said once: a validator that starts its message with
    the path (or a part of it) loses that start, and the longer of the two paths is kept."""
    m = _LEADING_PATH.match(msg)
    if m is None:
        return path, msg
    said, sep = m.group(1), m.group(2)
    if sep == " " and "." not in said:
        return path, msg  # an ordinary first word ("size must be ..."), not a path
    same = said == path or path.endswith("." + said) or path.startswith(said + ".")
    if same:
        return path, msg[m.end() :]
    if said.startswith(path + "."):
        return said, msg[m.end() :]
    return path, msg


def _describe(err: dict[str, Any], root: type[BaseModel]) -> str:
    loc = _clean_loc(tuple(err.get("loc", ())))
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        valid = sorted(parent.model_fields) if parent is not None else []
        hint = closest(str(loc[-1]), valid) if loc else None
        did = f" did you mean {'.'.join(map(str, loc[:-1] + (hint,)))!r}?" if hint else ""
        allowed = f" valid keys here: {', '.join(valid)}" if valid else ""
        return f"{path}: unknown key.{did}{allowed}"
    if kind == "missing":
        return f"{path}: required field is missing"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    field_path = path
    path, msg = _own_path(path, msg)
    if path != field_path:  # the validator named a part of the value: the whole is not shown
        return f"{path}: {msg}"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    # the validator already named the value it received
    if "got " in msg or (isinstance(value, str) and repr(value) in msg):
        return f"{path}: {msg}"
    return f"{path}: {msg}; got {shown}"


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


def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One indented line per invalid field: ``  train.schedule.name: unknown schedule ...``."""
    seen: list[str] = []
    errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    for err in _merge_type_errors(errors):
        line = _describe(err, root)
        if line not in seen:
            seen.append(line)
    return "\n".join(f"  {line}" for line in seen)


def validate_section(model: type[M], raw: dict[str, Any], source: str = "config") -> M:
    """``model`` validated from ``raw``; a :class:`ConfigError` listing every invalid field.

    Example:
        >>> class Box(Section):
        ...     size: int = 1
        >>> validate_section(Box, {"size": 3}).size
        3
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid config ({source}):\n{format_validation_error(exc, model)}"
        ) from None


def section_from_spec(model: type[M], spec: Any, field: str) -> M:
    """``spec`` (a ``model``, a name, or a dict) as a validated ``model``.

    A ConfigError reads ``invalid <field>:`` and one line per invalid key.

    Example:
        >>> class Named(Section):
        ...     name: str = "a"
        >>> section_from_spec(Named, "b", "train.thing").name
        'b'
    """
    if isinstance(spec, model):
        return spec
    raw = {"name": spec} if isinstance(spec, str) else spec
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, model)
        raise ConfigError(f"invalid {field}:\n{lines}") from None


__all__ = [
    "Section",
    "first_model",
    "format_validation_error",
    "get_path",
    "model_at",
    "section_from_spec",
    "set_path",
    "split_path",
    "validate_section",
]
