"""The ``[data]`` section: source, target, task, splits, images and preprocessing steps.

This module imports neither torch nor scikit-learn, so ``trainwell check`` stays fast. The names
it checks (source kinds, bundled sets, preprocessing steps and their parameters) come from the
registries in ``sources.py``, ``builtin.py`` and ``steps.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from trainwell.schema import Section
from trainwell.tasks import Task

ColumnType = Literal["numeric", "categorical", "boolean", "ignore"]


class SplitConfig(Section):
    """How rows are divided into train / val / test.

    Either fractions (``val``, ``test``; stratified for classification, fixed by the seed), or a
    ``column`` whose values are ``train`` / ``val`` / ``test``, or ``indices``: a JSON file
    ``{"train": [...], "val": [...], "test": [...]}`` or a table of index files per split.
    """

    val: float = Field(default=0.15, ge=0.0, lt=1.0)
    test: float = Field(default=0.15, ge=0.0, lt=1.0)
    stratify: bool = True
    column: str | None = None
    indices: str | dict[str, str] | None = None

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if self.val + self.test >= 1.0:
            raise ValueError(
                f"val + test must be below 1 so that rows remain for training (val={self.val} + "
                f"test={self.test} = {self.val + self.test:g})"
            )
        if self.column is not None and self.indices is not None:
            raise ValueError("give either split.column or split.indices, not both")
        if isinstance(self.indices, dict):
            bad = sorted(set(self.indices) - {"train", "val", "test"})
            if bad:
                from trainwell.registry import closest

                hint = closest(bad[0], ["train", "val", "test"])
                did = f" did you mean {hint!r}?" if hint else ""
                raise ValueError(f"split.indices has an unknown key {bad[0]!r};{did} allowed: "
                                 "train, val, test")
            if "train" not in self.indices:
                raise ValueError("split.indices needs a 'train' file")
        return self


class ImageConfig(Section):
    """How ``images:`` folders are read: one mode, one size, an in-memory budget."""

    mode: Literal["L", "RGB", "RGBA"] = "RGB"
    size: list[int] | None = Field(
        default=None, description="[height, width]; default: the size of the first image"
    )
    memory_mb: float = Field(
        default=1024.0, gt=0, description="above this many MB of decoded pixels, load lazily"
    )

    @field_validator("size")
    @classmethod
    def _size(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or min(v) < 1):
            raise ValueError("size must be [height, width] with both >= 1")
        return v


class DataConfig(Section):
    """The ``[data]`` section (see docs/data.md)."""

    source: str = "builtin:digits"
    params: dict[str, Any] = Field(default_factory=dict)
    target: str | list[str] | None = None
    task: Literal["auto", Task] = "auto"
    columns: dict[str, ColumnType] = Field(
        default_factory=dict, description="per-column type overrides for csv/parquet sources"
    )
    id_column: str | None = None
    missing_target: Literal["error", "drop"] = "error"
    split: SplitConfig = Field(default_factory=SplitConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    preprocess: list[str | dict[str, Any]] | None = Field(
        default=None,
        description="preprocessing steps in order; default: standardize (tables), "
        "channel_mean_std (images)",
    )
    augment: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="batch augmentation steps; none are available in this version (must be empty)",
    )

    @field_validator("augment")
    @classmethod
    def _augment(cls, v: list[Any]) -> list[Any]:
        if v:
            raise ValueError(
                "data augmentation is not available in this version of trainwell; leave "
                f"data.augment empty (got {v!r})"
            )
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        from trainwell.data.sources import check_source

        check_source(v)
        return v

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, v: list[str | dict[str, Any]] | None) -> list[str | dict[str, Any]] | None:
        if v is not None:
            from trainwell.data.steps import parse_steps
            from trainwell.errors import ConfigError

            try:
                parse_steps(v)
            except ConfigError as exc:  # the loader prefixes "data.preprocess:" and the value
                raise ValueError(str(exc).replace(" of data.preprocess", "")
                                 .removeprefix("data.preprocess: ")) from None
        return v

    def resolve_paths(self, base: Path) -> None:
        """Make relative file paths (source, split index files) relative to the config's folder."""
        from trainwell.data.sources import is_path_source

        kind, _, rest = self.source.partition(":")
        if is_path_source(self.source) and rest and not Path(rest).is_absolute():
            self.source = f"{kind}:{(base / rest)}"
        idx = self.split.indices
        if isinstance(idx, str) and not Path(idx).is_absolute():
            self.split.indices = str(base / idx)
        elif isinstance(idx, dict):
            self.split.indices = {
                k: (p if Path(p).is_absolute() else str(base / p)) for k, p in idx.items()
            }
