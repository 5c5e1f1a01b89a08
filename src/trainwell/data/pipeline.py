"""The fitted preprocessing of a run: how raw input is read, then each step in order.

Saved as ``preprocess.json`` (input spec, step names, parameters and non-array state) plus
``preprocess.safetensors`` (the arrays, float64, keyed ``"<i>.<name>.<array>"``). No pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.data.image_steps import ImageStep
from trainwell.data.steps import KIND_FAMILIES, StepSpec, step_class
from trainwell.data.table_steps import Table, TableStep
from trainwell.errors import ConfigError, DataError, RunError

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1


@dataclass
class Pipeline:
    """``kind`` is ``table`` or ``image``; ``input`` says how raw input is read.

    For tables ``input`` holds ``columns`` ([name, type] pairs in order), ``target``,
    ``id_column``; for images ``mode``, ``size`` ([H, W]) and ``shape`` ([C, H, W]).
    """

    kind: str
    input: dict[str, Any]
    specs: list[StepSpec] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)

    # ---------------------------------------------------------------- fitting

    def fit_table(self, t: Table) -> Table:
        """Fit every step on the training Table in order; return the transformed training Table."""
        self.steps = []
        for spec in self.specs:
            step = table_step(spec).fit(t)
            t = step.transform(t)
            self.steps.append(step)
        return t

    def fit_images(self, batches_of: Any) -> None:
        """Fit image steps; ``batches_of(steps)`` yields training batches already passed through
        ``steps``."""
        self.steps = []
        for spec in self.specs:
            step = image_step(spec).fit(batches_of(list(self.steps)))
            self.steps.append(step)

    # ---------------------------------------------------------------- applying

    @property
    def columns(self) -> dict[str, str]:
        return dict(self.input.get("columns", []))

    def transform_table(self, t: Table) -> Table:
        for step in self.steps:
            t = step.transform(t)
        return t

    def table_to_array(self, t: Table) -> np.ndarray:
        out = self.transform_table(t)
        if out.cat.shape[1]:
            raise DataError(f"categorical columns {out.cat_names} were not encoded; add \"onehot\"")
        bad = np.isnan(out.num).any(axis=0)
        if bad.any():
            cols = [out.num_names[i] for i in np.flatnonzero(bad)]
            raise DataError(
                f"columns {cols} have missing values; add \"impute\" to data.preprocess"
            )
        return out.num.astype(np.float32)

    def frame_to_array(self, frame: pd.DataFrame, origin: str) -> np.ndarray:
        from trainwell.data.tables import encode

        return self.table_to_array(encode(frame, self.columns, origin))

    def transform_images(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        for step in self.steps:
            x = step.transform(x)
        return x

    @property
    def feature_names(self) -> list[str]:
        return list(self.input.get("feature_names", []))

    # ---------------------------------------------------------------- state

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        for i, (spec, step) in enumerate(zip(self.specs, self.steps, strict=True)):
            meta.append({"name": spec.name, "params": spec.params, "state": step.meta()})
            for key, arr in step.arrays().items():
                arrays[f"{i}.{spec.name}.{key}"] = np.asarray(arr, dtype=np.float64)
        doc = {"format": FORMAT_VERSION, "kind": self.kind, "input": self.input, "steps": meta}
        return doc, arrays

    def save(self, run_dir: str | Path) -> None:
        import torch

        from trainwell.runs import write_json_atomic, write_safetensors_atomic

        doc, arrays = self.state()
        run_dir = Path(run_dir)
        write_safetensors_atomic(run_dir / "preprocess.safetensors",
                                 {k: torch.from_numpy(np.ascontiguousarray(v))
                                  for k, v in arrays.items()},
                                 metadata={"format": str(FORMAT_VERSION)})
        write_json_atomic(run_dir / "preprocess.json", doc)

    @classmethod
    def from_state(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Pipeline:
        if doc.get("format") != FORMAT_VERSION or doc.get("kind") not in {"table", "image"}:
            raise RunError(f"preprocess.json has an unknown format {doc.get('format')!r} / kind "
                           f"{doc.get('kind')!r}; expected format {FORMAT_VERSION}")
        kind = doc["kind"]
        pipe = cls(kind, doc["input"])
        for i, entry in enumerate(doc["steps"]):
            name = entry["name"]
            try:
                known = step_class(name).family in KIND_FAMILIES[kind]
            except ConfigError:
                known = False
            if not known:
                what = "a table" if kind == "table" else "images"
                raise RunError(f"preprocess.json step {i} is {name!r}, not a step for {what}")
            prefix = f"{i}.{name}."
            mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            spec = StepSpec(name, dict(entry["params"]))
            step = table_step(spec) if kind == "table" else image_step(spec)
            pipe.specs.append(spec)
            pipe.steps.append(step.load(entry["state"], mine))
        return pipe

    @classmethod
    def load(cls, run_dir: str | Path) -> Pipeline:
        from trainwell.runs import read_json, read_safetensors

        run_dir = Path(run_dir)
        doc = read_json(run_dir / "preprocess.json")
        tensors = read_safetensors(run_dir / "preprocess.safetensors")
        return cls.from_state(doc, {k: v.numpy() for k, v in tensors.items()})


def table_step(spec: StepSpec) -> TableStep:
    """A new, unfitted table step (column or matrix family) for ``spec``."""
    cls = step_class(spec.name)
    if not issubclass(cls, TableStep):
        raise DataError(f"preprocessing step {spec.name!r} works on images, not on a table")
    return cls(**spec.params)


def image_step(spec: StepSpec) -> ImageStep:
    """A new, unfitted image step for ``spec``."""
    cls = step_class(spec.name)
    if not issubclass(cls, ImageStep):
        raise DataError(f"preprocessing step {spec.name!r} works on a table, not on images")
    return cls(**spec.params)


__all__ = ["Pipeline", "image_step", "table_step"]
