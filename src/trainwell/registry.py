"""Name -> factory registries (activations, inits, models, losses, schedules, samplers)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from trainwell.errors import TrainwellError

T = TypeVar("T")


def closest(name: str, valid: list[str]) -> str | None:
    """The valid name nearest to ``name``, or None when nothing is close."""
    found = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_name_message(kind: str, name: object, valid: list[str]) -> str:
    """``unknown activation 'rleu'; did you mean 'relu'? valid: ...``."""
    hint = closest(str(name), valid)
    did = f"; did you mean {hint!r}?" if hint else ";"
    return f"unknown {kind} {name!r}{did} valid: {', '.join(sorted(valid))}"


class Registry(Generic[T]):
    """A registry of named factories.

    Example:
        >>> acts = Registry("activation")
        >>> @acts.register("identity")
        ... def _identity():
        ...     return lambda x: x
        >>> acts.get("identity")()(3)
        3
    """

    def __init__(self, kind: str, error: type[Exception] = TrainwellError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return deco

    def canonical(self, name: str) -> str:
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise self.error(unknown_name_message(self.kind, name, self.names(aliases=True)))
        return key

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self, aliases: bool = False) -> list[str]:
        out = list(self._items)
        if aliases:
            out += list(self._aliases)
        return sorted(out)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name.lower() in self._items or name.lower() in self._aliases
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
