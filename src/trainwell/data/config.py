"""The ``[data]`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from trainwell.schema import Section


class SplitConfig(Section):
    val: float = Field(default=0.15, ge=0.0, lt=1.0)
    test: float = Field(default=0.15, ge=0.0, lt=1.0)
    stratify: bool = True
    column: str | None = None
    indices: str | None = None


class DataConfig(Section):
    source: str = "builtin:digits"
    params: dict[str, Any] = Field(default_factory=dict)
    target: str | None = None
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    split: SplitConfig = Field(default_factory=SplitConfig)
    preprocess: list[str | dict[str, Any]] = Field(default_factory=lambda: ["standardize"])
    augment: list[str | dict[str, Any]] = Field(default_factory=list)

    def resolve_paths(self, base: Path) -> None:
        """Make a relative file path in ``source`` relative to the config file's folder."""
        kind, sep, rest = self.source.partition(":")
        if sep and kind in {"csv", "parquet", "npz", "images"} and rest and not Path(rest).is_absolute():
            self.source = f"{kind}:{(base / rest)}"
