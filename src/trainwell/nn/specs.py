"""Named specs: ``"relu"`` or ``{name = "leaky_relu", negative_slope = 0.1}`` -> (name, params)."""

from __future__ import annotations

from typing import Any

from trainwell.errors import ModelSpecError


def parse_spec(spec: str | dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    """Split a spec into its name and its parameters.

    Args:
        spec: a name, or a table with a ``name`` key and the parameters.
        kind: what the spec names ("activation", "init" ...), for error messages.

    Returns:
        The name (stripped, lower case) and a copy of the parameters.

    Raises:
        ModelSpecError: the spec is neither a name nor a table with a string ``name``.

    Example:
        >>> parse_spec({"name": "leaky_relu", "negative_slope": 0.1}, "activation")
        ('leaky_relu', {'negative_slope': 0.1})
    """
    if isinstance(spec, str):
        return spec.strip().lower(), {}
    if isinstance(spec, dict):
        name = spec.get("name")
        if not isinstance(name, str):
            raise ModelSpecError(
                f"a {kind} table needs a string 'name' key, e.g. {{name = \"...\", ...}}; "
                f"got {spec!r}"
            )
        params = {k: v for k, v in spec.items() if k != "name"}
        return name.strip().lower(), params
    raise ModelSpecError(f"a {kind} must be a name or a table with a 'name' key; got {spec!r}")


def call_with_params(factory: Any, kind: str, name: str, params: dict[str, Any], *args: Any) -> Any:
    """Call ``factory(*args, **params)``, turning an unknown keyword into a clear error."""
    import inspect

    sig = inspect.signature(factory)
    accepted = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in {"num_features"}
    ]
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in params if k not in accepted]
    if unknown and not has_var_kw:
        allowed = ", ".join(accepted) if accepted else "none"
        raise ModelSpecError(
            f"{kind} {name!r} has no parameter {unknown[0]!r}; its parameters: {allowed}"
        )
    return factory(*args, **params)


def require_float(
    what: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a real number in the given range and return it as a float.

    Raises:
        ModelSpecError: naming ``what``, the allowed range and the value received.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        if low is not None and (v < low or (low_open and v == low)):
            ok = False
        if high is not None and (v > high or (high_open and v == high)):
            ok = False
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rng = f" in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ModelSpecError(f"{what} must be a number{rng}; got {value!r}")
    return float(value)


def require_int(what: str, value: Any, *, low: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) >= ``low`` and return it."""
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ModelSpecError(f"{what} must be an integer{bound}; got {value!r}")
    return value
