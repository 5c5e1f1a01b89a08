"""The ``[data]`` section: source, target, task, CSV dialect, splits, images and preprocessing.

This module imports neither torch nor scikit-learn, so ``trainwell check`` stays fast. The names
it checks (source kinds, bundled sets, preprocessing steps and their parameters) come from the
registries in ``sources.py``, ``builtin.py`` and ``steps.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from trainwell.schema import Section
from trainwell.tasks import Task

if TYPE_CHECKING:
    from trainwell.data.tables import CsvDialect

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
    seed: int | None = Field(
        default=None, ge=0, description="fixes the split (and generated builtin sets); default: "
        "the config seed (an ensemble's members share their data this way)"
    )
    missing_target: Literal["error", "drop"] = "error"
    target_scale: Literal["auto", "standardize", "none"] = Field(
        default="auto", description="regression: train on targets standardized on the training "
        "split (predictions and RMSE / MAE come back in the target's units); auto: when a "
        "target's train std is outside 0.1 .. 10 or its |mean| above 10"
    )
    delimiter: str | None = Field(
        default=None, description="csv: the one character between fields; default: detected "
        "from the file (, ; tab |)"
    )
    decimal: Literal[".", ","] = Field(default=".", description="csv: the decimal mark")
    encoding: str | None = Field(
        default=None, description="csv: a Python codec name (\"latin-1\", \"cp1252\" ...); "
        "default: UTF-8, or what a byte-order mark says"
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    preprocess: list[str | dict[str, Any]] | None = Field(
        default=None,
        description="preprocessing steps in order; default: standardize (tables), "
        "channel_mean_std (images)",
    )
    @model_validator(mode="before")
    @classmethod
    def _moved(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "augment" in raw:
            raise ValueError(
                f"data.augment: augmentation moved to its own section [augment]; remove "
                f"data.augment (got {raw['augment']!r}) and write each operation as a table, "
                "e.g. [augment.hflip] (see docs/augment.md)"
            )
        return raw

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v.isalnum() or v in "\r\n\".'"):
            raise ValueError(
                "must be one character that is not a letter, a digit, a quote, a dot or a line "
                f"break, e.g. \",\", \";\", \"\\t\" (tab) or \"|\"; got {v!r}"
            )
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str | None) -> str | None:
        import codecs

        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"must be a Python codec name such as \"utf-8\", \"latin-1\" "
                                 f"or \"cp1252\"; got {v!r}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        from trainwell.data.sources import split_source

        targets = [self.target] if isinstance(self.target, str) else list(self.target or [])
        ignored = [t for t in targets if self.columns.get(t) == "ignore"]
        if ignored:
            raise ValueError(
                f"data.columns.{ignored[0]}: \"ignore\" contradicts data.target, which names "
                f"{ignored[0]!r}; a target cannot be ignored: remove data.columns.{ignored[0]} "
                "or choose another target"
            )
        if self.delimiter is not None and self.delimiter == self.decimal:
            raise ValueError(f"data.delimiter: {self.delimiter!r} is also data.decimal; with a "
                             "decimal comma the fields are usually separated by \";\"")
        dialect = {k: v for k, v in (("delimiter", self.delimiter), ("encoding", self.encoding),
                                     ("decimal", None if self.decimal == "." else self.decimal))
                   if v is not None}
        if dialect and split_source(self.source)[0] != "csv":
            name, value = next(iter(dialect.items()))
            raise ValueError(f"data.{name}: {value!r} applies to csv sources only, and "
                             f"data.source is {self.source!r}; remove data.{name}")
        from trainwell.data.builtin import check_builtin_params

        check_builtin_params(self.source, self.params)  # a bundled set's own parameters
        return self

    def csv_dialect(self) -> CsvDialect:
        """How the CSV source (and a run's CSV input at prediction) is read."""
        from trainwell.data.tables import CsvDialect

        return CsvDialect(self.delimiter, self.decimal, self.encoding)

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
