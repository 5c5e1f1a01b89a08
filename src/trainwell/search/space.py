"""Search spaces: parsing ``[tune].space``, checking paths against the Config, sampling, grids.

A space maps a dotted config path to a distribution::

    "train.optimizer.lr" = "loguniform(1e-4, 1e-1)"
    "model.dropout" = "uniform(0, 0.5)"
    "model.hidden.depth" = "int(1, 3)"          # architecture: hidden = [width] * depth
    "model.hidden.width" = "logint(16, 256)"
    "model.activation" = ["relu", "tanh"]       # a list is a categorical choice

    [tune.space."train.optimizer.momentum"]     # conditional: searched only with SGD
    dist = "uniform(0.5, 0.99)"
    when = { "train.optimizer.name" = "sgd" }

Kinds (registered in :data:`KINDS`): ``uniform(lo, hi)``, ``loguniform(lo, hi)``,
``int(lo, hi)``, ``logint(lo, hi)``, ``choice(a, b, ...)``. A table may add ``when`` (the
parameter exists only when every listed path has the given value, or one of a list of values),
``important = true`` (a finer grid) and ``points`` (grid points for this parameter).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
import typing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import trainwell.schema as schema
from trainwell.errors import ConfigError
from trainwell.registry import Registry, closest

if TYPE_CHECKING:
    import optuna

_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Kind:
    """A distribution kind of ``[tune].space``: numbers (on a log scale or not, integers or not)
    or a choice among listed values."""

    numeric: bool = True
    integer: bool = False
    log: bool = False


KINDS: Registry[Kind] = Registry("distribution", ConfigError)
KINDS.register("uniform", "float")(Kind())
KINDS.register("loguniform", "log_uniform")(Kind(log=True))
KINDS.register("int")(Kind(integer=True))
KINDS.register("logint", "log_int")(Kind(integer=True, log=True))
KINDS.register("choice", "categorical")(Kind(numeric=False))

ARCH_KEYS = ("depth", "width")  # virtual fields under a list-of-int field such as model.hidden


@dataclass(frozen=True)
class Param:
    """One dimension of a search space."""

    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    important: bool = False
    points: int | None = None

    @property
    def spec(self) -> Kind:
        return KINDS.get(self.kind)

    @property
    def log(self) -> bool:
        return self.spec.log

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a numeric parameter."""
        if self.low is None or self.high is None:
            raise ValueError(f"{self.path}: a {self.kind} parameter has no bounds")
        return float(self.low), float(self.high)

    def active(self, values: dict[str, Any], base: dict[str, Any]) -> bool:
        """Whether every ``when`` condition holds for the values sampled so far (or the base
        config)."""
        for path, allowed in self.when.items():
            current = values[path] if path in values else get_path(base, path)
            if _normalize(current) not in [_normalize(a) for a in allowed]:
                return False
        return True

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution :meth:`suggest` samples from (values encoded)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if not self.spec.numeric:
            return CategoricalDistribution([_encode(c) for c in self.choices])
        lo, hi = self.bounds
        if self.spec.integer:
            return IntDistribution(int(lo), int(hi), log=self.log)
        return FloatDistribution(lo, hi, log=self.log)

    def size(self) -> int | None:
        """How many values the parameter can take; None for a continuous one."""
        if not self.spec.numeric:
            return len(self.choices)
        if self.spec.integer:
            lo, hi = self.bounds
            return int(hi) - int(lo) + 1
        return None

    def suggest(self, trial: optuna.Trial) -> Any:
        """This parameter's value sampled in ``trial`` (decoded)."""
        if not self.spec.numeric:
            return decode(trial.suggest_categorical(self.path, [_encode(c) for c in self.choices]))
        lo, hi = self.bounds
        if self.spec.integer:
            return trial.suggest_int(self.path, int(lo), int(hi), log=self.log)
        return trial.suggest_float(self.path, lo, hi, log=self.log)

    def grid(self, n_points: int) -> list[Any]:
        """Grid values: every choice; ``n_points`` evenly spaced values (log-spaced for log
        kinds)."""
        if not self.spec.numeric:
            return list(self.choices)
        lo, hi = self.bounds
        if self.spec.integer and hi - lo + 1 <= n_points:
            return list(range(int(lo), int(hi) + 1))
        if n_points == 1:
            pts = [math.sqrt(lo * hi) if self.log else (lo + hi) / 2]
        elif self.log:
            pts = [
                math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (n_points - 1))
                for i in range(n_points)
            ]
        else:
            pts = [lo + i * (hi - lo) / (n_points - 1) for i in range(n_points)]
        pts = [min(max(p, lo), hi) for p in pts]  # exp(log(x)) may step past a bound by an ulp
        if self.spec.integer:
            return sorted({int(round(p)) for p in pts})
        return pts


def _normalize(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _encode(choice: Any) -> Any:
    """Optuna stores None/bool/int/float/str choices; lists and tables travel as JSON text."""
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return "json:" + json.dumps(choice, sort_keys=True)


def decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    return value


# ---------------------------------------------------------------------------- parsing


def _parse_args(text: str, where: str) -> list[Any]:
    text = text.strip()
    if not text:
        return []
    try:
        return list(tomllib.loads(f"v = [{text}]")["v"])
    except tomllib.TOMLDecodeError:
        pass
    out: list[Any] = []
    for part in text.split(","):  # bare words: choice(relu, tanh)
        part = part.strip()
        try:
            out.append(tomllib.loads(f"v = {part}")["v"])
        except tomllib.TOMLDecodeError:
            out.append(part)
    return out


def parse_param(path: str, spec: Any, prefix: str = "tune.space") -> Param:
    """Parse one space entry; raise ConfigError naming ``prefix.path`` when it is malformed."""
    where = f"{prefix}.{path!r}" if "." in path else f"{prefix}.{path}"
    extra: dict[str, Any] = {}
    if isinstance(spec, dict):
        spec = dict(spec)
        allowed = {"dist", "type", "low", "high", "choices", "when", "important", "points"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}"
            )
        when = spec.pop("when", {}) or {}
        if not isinstance(when, dict):
            raise ConfigError(f"{where}.when must be a table of path = value; got {when!r}")
        extra["when"] = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}
        extra["important"] = bool(spec.pop("important", False))
        points = spec.pop("points", None)
        if points is not None and (not isinstance(points, int) or points < 1):
            raise ConfigError(f"{where}.points must be an integer >= 1; got {points!r}")
        extra["points"] = points
        if "dist" in spec:
            spec = spec["dist"]
        elif "choices" in spec:
            spec = list(spec["choices"])
        elif "type" in spec:
            args = [spec.get("low"), spec.get("high")]
            spec = (str(spec["type"]), args)
        else:
            raise ConfigError(
                f"{where}: a table needs 'dist' (e.g. \"uniform(0, 1)\"), 'choices', or 'type' "
                "with 'low' and 'high'"
            )
    if isinstance(spec, list):
        kind, args = "choice", spec
    elif isinstance(spec, tuple):
        kind, args = spec
    elif isinstance(spec, str):
        m = _CALL.match(spec)
        if not m:
            raise ConfigError(
                f'{where}: cannot read {spec!r}; write e.g. "loguniform(1e-4, 1e-1)"; '
                f"kinds: {', '.join(KINDS.names())}"
            )
        kind, args = m.group(1), _parse_args(m.group(2), where)
    else:
        raise ConfigError(
            f'{where}: expected a string such as "uniform(0, 0.5)", a list of choices or a '
            f"table; got {spec!r}"
        )
    try:
        kind = KINDS.canonical(kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    info = KINDS.get(kind)
    if not info.numeric:
        if not args:
            raise ConfigError(f"{where}: {kind} needs at least one value; got an empty list")
        return Param(path, kind, choices=tuple(args), **extra)
    if len(args) != 2 or not all(
        isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
    ):
        raise ConfigError(f"{where}: {kind} needs two numbers (low, high); got {args!r}")
    low, high = args
    if info.integer and (int(low) != low or int(high) != high):
        raise ConfigError(f"{where}: {kind} bounds must be integers; got ({low}, {high})")
    if not low < high:
        raise ConfigError(f"{where}: empty range: {kind}({low}, {high}) needs low < high")
    if info.log and low <= 0:
        raise ConfigError(f"{where}: {kind} needs low > 0; got low = {low}")
    return Param(path, kind, low=low, high=high, **extra)


def parse_space(space: dict[str, Any], prefix: str = "tune.space") -> list[Param]:
    """Parse a whole space, ordered so that a parameter comes after those its ``when`` names."""
    params = [parse_param(str(path), spec, prefix) for path, spec in space.items()]
    ordered: list[Param] = []
    names = {p.path for p in params}
    remaining = list(params)
    while remaining:
        placed = {p.path for p in ordered}
        ready = [p for p in remaining if all(w in placed or w not in names for w in p.when)]
        if not ready:
            cyc = ", ".join(p.path for p in remaining)
            raise ConfigError(
                f"{prefix}: the 'when' conditions of {cyc} depend on each other in a cycle"
            )
        ordered += ready
        remaining = [p for p in remaining if p not in ready]
    return ordered


# ---------------------------------------------------------------------------- config paths


def get_path(raw: dict[str, Any], path: str) -> Any:
    """The value at ``path`` of a config dict (:func:`trainwell.schema.get_path`), where
    ``X.depth`` and ``X.width`` of a list-of-int field such as ``model.hidden`` read its length
    and its first width."""
    head, _, last = path.rpartition(".")
    if last in ARCH_KEYS:
        node = schema.get_path(raw, head)
        if isinstance(node, list):
            return len(node) if last == "depth" else (node[0] if node else None)
    return schema.get_path(raw, path)


def apply_params(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The config dict ``base`` with the sampled ``values`` (dotted path -> value) set in it.

    ``X.depth`` and ``X.width`` set a list-of-int field such as ``model.hidden`` to
    ``[width] * depth`` (the other taken from ``base`` when only one is searched).
    """
    import copy

    raw = copy.deepcopy(base)
    arch: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        value = decode(value)
        head, _, last = path.rpartition(".")
        if last in ARCH_KEYS and isinstance(schema.get_path(base, head), list):
            arch.setdefault(head, {})[last] = value
            continue
        schema.set_path(raw, path, value)
    for head, dims in arch.items():
        current = schema.get_path(base, head) or [64]
        depth = int(dims.get("depth", len(current)))
        width = int(dims.get("width", current[0] if current else 64))
        schema.set_path(raw, head, [width] * depth)
    return raw


def _annotation_at(root: type[BaseModel], path: str) -> tuple[Any, str | None]:
    """Walk ``root``'s fields along ``path``; return (annotation, error message or None)."""
    current: Any = root
    parts = path.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[:i]) or "the config"
        model = schema.first_model(current, containers=False)
        if model is not None:
            fields = model.model_fields
            if part not in fields:
                valid = sorted(fields)
                hint = closest(part, valid)
                did = (
                    f" did you mean {'.'.join(parts[:i] + [hint] + parts[i + 1 :])!r}?"
                    if hint
                    else ""
                )
                return (
                    None,
                    f"{path!r} is not a config field:{did} valid keys under {here}: "
                    f"{', '.join(valid)}",
                )
            current = fields[part].annotation
            continue
        if _allows_dict(current):
            return Any, None  # free-form table (optimizer, schedule, activation params ...)
        if _is_list(current) and part in ARCH_KEYS and i == len(parts) - 1:
            return int, None
        return None, f"{path!r} is not a config field: {here} is a single value, not a table"
    if schema.first_model(current, containers=False) is not None:
        return None, f"{path!r} is a whole section; search one of its fields instead"
    return current, None


def _allows_dict(annotation: Any) -> bool:
    if annotation is Any or annotation is dict or typing.get_origin(annotation) is dict:
        return True
    return any(_allows_dict(a) for a in typing.get_args(annotation))


def _is_list(annotation: Any) -> bool:
    return (
        annotation is list
        or typing.get_origin(annotation) is list
        or any(_is_list(a) for a in typing.get_args(annotation))
    )


def validate_space(cfg: Any, params: list[Param] | None = None) -> list[Param]:
    """Check every path of ``cfg.tune.space`` names a real field of the config ``cfg`` and that
    each sampled value gives a valid config; raise ConfigError naming the dotted path otherwise.

    ``cfg`` is a whole :class:`trainwell.config.Config`; the paths are checked against its own
    class, so this module needs no import of the config that composes the sections.
    """
    root: type[BaseModel] = type(cfg)
    tune = cfg.tune
    params = parse_space(tune.space) if params is None else params
    base = cfg.to_dict()  # None left out after the serializers (patience = "never" kept)
    for p in params:
        if p.path.startswith("tune."):
            raise ConfigError(
                f"tune.space: {p.path!r} cannot be searched (it configures the search itself)"
            )
        _, err = _annotation_at(root, p.path)
        if err:
            raise ConfigError(f"tune.space: {err}")
        for w in p.when:
            _, err = _annotation_at(root, w)
            if err:
                raise ConfigError(f"tune.space.{p.path!r}.when: {err}")
        probes = p.grid(2)  # both ends of a range, every choice
        context = {w: _encode(allowed[0]) for w, allowed in p.when.items()}  # make it active
        for value in probes:
            raw = apply_params(base, {**context, p.path: _encode(value)})
            raw.pop("tune", None)
            try:
                schema.validate_section(root, raw, "search space")
            except ConfigError as exc:
                raise ConfigError(
                    f"tune.space.{p.path!r}: value {value!r} gives an invalid config:\n{exc}"
                ) from None
    return params


# ---------------------------------------------------------------------------- sampling and grids


def suggest(trial: optuna.Trial, params: list[Param], base: dict[str, Any]) -> dict[str, Any]:
    """Sample the active parameters into ``trial``; return path -> value (decoded)."""
    values: dict[str, Any] = {}
    for p in params:
        if not p.active(values, base):
            continue
        values[p.path] = p.suggest(trial)
    return values


def grid(
    params: list[Param],
    points: int = 3,
    points_important: int = 5,
    important: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every grid point (path -> encoded value); conditional parameters only where active.

    Lecture 002: not all hyperparameters matter equally, so the grid is finer over the ones
    marked important (``points_important`` values) than over the others (``points``).
    """
    base = base or {}
    marked = set(important)
    out: list[dict[str, Any]] = []

    def rec(i: int, current: dict[str, Any]) -> None:
        if i == len(params):
            out.append(dict(current))
            return
        p = params[i]
        if not p.active({k: decode(v) for k, v in current.items()}, base):
            rec(i + 1, current)
            return
        n = p.points or (points_important if (p.important or p.path in marked) else points)
        for value in p.grid(n):
            current[p.path] = _encode(value)
            rec(i + 1, current)
            del current[p.path]

    rec(0, {})
    return out


def finite_points(
    params: list[Param], base: dict[str, Any] | None = None, limit: int = 10_000
) -> list[dict[str, Any]] | None:
    """Every configuration of a space whose parameters all take finitely many values (choices,
    integers), path -> encoded value, conditional parameters only where active; None when a
    parameter is continuous or the space holds more than ``limit`` configurations.

    Example:
        >>> space = {"model.activation": ["relu", "tanh"], "model.hidden.depth": "int(1, 3)"}
        >>> len(finite_points(parse_space(space)))
        6
    """
    sizes = [p.size() for p in params]
    if any(n is None for n in sizes):
        return None
    if math.prod(n for n in sizes if n is not None) > limit:
        return None
    widest = max((n for n in sizes if n is not None), default=1)
    # every value of every parameter: a parameter's own grid `points` does not limit this
    every = [replace(p, points=None, important=False) for p in params]
    return grid(every, widest, widest, (), base)


def narrow(params: list[Param], best: list[dict[str, Any]], margin: float = 0.25) -> list[Param]:
    """The refined space of the recipe: each range shrunk to cover the best trials' values,
    widened by ``margin`` of its width (in log space for log kinds), within the old bounds."""
    out = []
    for p in params:
        seen = [decode(b[p.path]) for b in best if p.path in b]
        if not seen:
            out.append(p)
            continue
        if not p.spec.numeric:
            keep = tuple(c for c in p.choices if any(_normalize(c) == _normalize(s) for s in seen))
            out.append(replace(p, choices=keep or p.choices))
            continue
        f = math.log if p.log else (lambda v: v)
        g = math.exp if p.log else (lambda v: v)
        p_lo, p_hi = p.bounds
        lo_all, hi_all = f(p_lo), f(p_hi)
        lo, hi = min(f(float(s)) for s in seen), max(f(float(s)) for s in seen)
        width = max(hi - lo, 0.1 * (hi_all - lo_all))
        lo, hi = max(lo_all, lo - margin * width), min(hi_all, hi + margin * width)
        low, high = g(lo), g(hi)
        if p.spec.integer:
            low, high = max(int(p_lo), math.floor(low)), min(int(p_hi), math.ceil(high))
            if low >= high:
                low, high = (low - 1, high) if low > int(p_lo) else (low, high + 1)
        out.append(replace(p, low=low, high=high))
    return out


def to_spec(p: Param) -> Any:
    """A Param back in the TOML form of ``[tune].space`` (for the study's records)."""
    if not p.spec.numeric:
        body: Any = list(p.choices)
    else:
        body = f"{p.kind}({p.low}, {p.high})"
    if p.when or p.important or p.points:
        table: dict[str, Any] = {"dist": body} if isinstance(body, str) else {"choices": body}
        if p.when:
            table["when"] = {k: list(v) for k, v in p.when.items()}
        if p.important:
            table["important"] = True
        if p.points:
            table["points"] = p.points
        return table
    return body


__all__ = [
    "ARCH_KEYS",
    "KINDS",
    "Kind",
    "Param",
    "apply_params",
    "decode",
    "finite_points",
    "get_path",
    "grid",
    "narrow",
    "parse_param",
    "parse_space",
    "suggest",
    "to_spec",
    "validate_space",
]
