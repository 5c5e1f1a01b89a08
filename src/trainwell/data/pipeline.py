"""The fitted preprocessing of a run: how raw input is read, then each step in order, and the
standardization of regression targets.

Saved as ``preprocess.json`` (input spec, step names, parameters and non-array state) plus
``preprocess.safetensors`` (the arrays, float64, keyed ``"<i>.<name>.<array>"``, and
``"target.mean"`` / ``"target.std"`` for a standardized target). No pickle.
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
#: ``preprocess.json`` of a run whose regression targets are standardized: a reader that does not
#: know ``target_scale`` refuses it instead of predicting on the standardized scale
TARGET_SCALE_FORMAT = 2
TARGET_SCALES = ("auto", "standardize", "none")
#: ``data.target_scale = "auto"`` standardizes a target whose training std or |mean| is outside
#: these bounds (a unit-scale target is left as it is)
AUTO_STD_RANGE = (0.1, 10.0)
AUTO_MAX_ABS_MEAN = 10.0


@dataclass
class TargetScale:
    """``z = (y - mean) / std`` per regression target column, fitted on the training rows.

    The model trains on ``z``; :meth:`inverse` brings outputs and targets back to the target's
    own units wherever a value is shown (predictions, RMSE / MAE).

    Example:
        >>> s = TargetScale(np.array([1e6]), np.array([1e5]))
        >>> s.transform(np.array([[1.1e6]])).tolist(), s.inverse(np.array([[1.0]])).tolist()
        ([[1.0]], [[1100000.0]])
    """

    mean: np.ndarray  # float64 (k,)
    std: np.ndarray  # float64 (k,), > 0
    columns: list[str] = field(default_factory=list)  # the target columns, for messages

    @classmethod
    def fit(cls, y: np.ndarray, columns: list[str] | None = None) -> TargetScale:
        """Per-column mean and std of training targets ``y`` (n, k); a constant column keeps
        std 1 (it is only centred)."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        mean, std = y.mean(axis=0), y.std(axis=0)
        return cls(mean, np.where(std > 0, std, 1.0), list(columns or []))

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Targets in their own units -> the standardized scale, float32 (n, k)."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return ((y - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: Any) -> Any:
        """Standardized values -> the target's own units, as float64 of the same kind (a tensor
        stays on its device). ``z`` is (n, k), or (n,) for a single target."""
        one = z.ndim == 1
        if hasattr(z, "detach"):
            import torch

            mean = torch.as_tensor(self.mean, dtype=torch.float64, device=z.device)
            std = torch.as_tensor(self.std, dtype=torch.float64, device=z.device)
            if one:
                mean, std = mean[0], std[0]
            return z.detach().double() * std + mean
        z = np.asarray(z, dtype=np.float64)
        return z * (self.std[0] if one else self.std) + (self.mean[0] if one else self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}


def fit_target_scale(y_train: np.ndarray, mode: str, columns: list[str] | None = None
                     ) -> tuple[TargetScale | None, str]:
    """Whether and how to standardize regression targets (``data.target_scale``), and why.

    ``"standardize"`` always does; ``"none"`` never; ``"auto"`` does when a column's training
    std is outside :data:`AUTO_STD_RANGE` or its |mean| above :data:`AUTO_MAX_ABS_MEAN`.
    """
    if mode not in TARGET_SCALES:
        raise ConfigError(f"data.target_scale must be one of {', '.join(TARGET_SCALES)}; got "
                          f"{mode!r}")
    fitted = TargetScale.fit(y_train, columns)
    y = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
    mean, std = y.mean(axis=0), y.std(axis=0)
    shown = f"train mean {_short(mean)}, std {_short(std)}"
    if mode == "none":
        return None, f"kept as is (data.target_scale = \"none\"; {shown})"
    if mode == "standardize":
        return fitted, f"standardized on train (data.target_scale = \"standardize\"; {shown})"
    lo, hi = AUTO_STD_RANGE
    off = (std < lo) | (std > hi) | (np.abs(mean) > AUTO_MAX_ABS_MEAN)
    if off.any():
        return fitted, (f"standardized on train (data.target_scale = \"auto\": {shown}; unit "
                        f"scale is std {lo:g} .. {hi:g} and |mean| <= {AUTO_MAX_ABS_MEAN:g})")
    return None, f"kept as is (data.target_scale = \"auto\": {shown}, already near unit scale)"


def _short(values: np.ndarray) -> str:
    text = ", ".join(f"{v:.4g}" for v in values[:4]) + (" ..." if len(values) > 4 else "")
    return text if len(values) == 1 else f"[{text}]"


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
    #: the standardization of regression targets (None: the model trains on them as they are)
    target_scale: TargetScale | None = None

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
        if self.target_scale is not None:
            doc["format"] = TARGET_SCALE_FORMAT
            doc["target_scale"] = {"columns": self.target_scale.columns}
            arrays["target.mean"] = np.asarray(self.target_scale.mean, dtype=np.float64)
            arrays["target.std"] = np.asarray(self.target_scale.std, dtype=np.float64)
        return doc, arrays

    def save(self, run_dir: str | Path) -> None:
        import torch

        from trainwell.runs import write_json_atomic, write_safetensors_atomic

        doc, arrays = self.state()
        run_dir = Path(run_dir)
        write_safetensors_atomic(run_dir / "preprocess.safetensors",
                                 {k: torch.from_numpy(np.ascontiguousarray(v))
                                  for k, v in arrays.items()},
                                 metadata={"format": str(doc["format"])})
        write_json_atomic(run_dir / "preprocess.json", doc)

    @classmethod
    def from_state(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Pipeline:
        formats = (FORMAT_VERSION, TARGET_SCALE_FORMAT)
        if doc.get("format") not in formats or doc.get("kind") not in {"table", "image"}:
            raise RunError(f"preprocess.json has an unknown format {doc.get('format')!r} / kind "
                           f"{doc.get('kind')!r}; expected format {FORMAT_VERSION} or "
                           f"{TARGET_SCALE_FORMAT}")
        kind = doc["kind"]
        pipe = cls(kind, doc["input"])
        if doc["format"] == TARGET_SCALE_FORMAT:
            pipe.target_scale = _target_scale_state(doc, arrays)
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


def _target_scale_state(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> TargetScale:
    mean, std = arrays.get("target.mean"), arrays.get("target.std")
    if "target_scale" not in doc or mean is None or std is None:
        raise RunError("preprocess.json says the targets are standardized (format "
                       f"{TARGET_SCALE_FORMAT}), but preprocess.safetensors lacks target.mean / "
                       "target.std")
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.ndim != 1 or mean.shape != std.shape or not (np.isfinite(mean).all()
                                                         and np.isfinite(std).all()
                                                         and (std > 0).all()):
        raise RunError(f"preprocess.safetensors: target.mean / target.std must be finite vectors "
                       f"of one length with std > 0; got shapes {mean.shape} / {std.shape}")
    columns = doc["target_scale"].get("columns") if isinstance(doc["target_scale"], dict) else []
    return TargetScale(mean, std, [str(c) for c in columns or []])


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


__all__ = ["TARGET_SCALES", "Pipeline", "TargetScale", "fit_target_scale", "image_step",
           "table_step"]
