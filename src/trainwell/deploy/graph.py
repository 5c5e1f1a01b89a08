"""A run's fitted preprocessing and output as torch modules, for an exported graph.

:class:`Exported` is raw input -> the run's preprocessing (built from the fitted step
parameters) -> the model -> probabilities and the class index (classification) or values in
the target's own units (regression). Nothing in it calls NumPy or scikit-learn, so
``torch.export``, ``torch.jit.trace`` and the ONNX exporter see one graph of tensor ops.

The input of a table run is one float64 matrix (n, columns), a column per raw feature in the
run's column order: numbers as they are, booleans as 0 / 1, a categorical column as the index of
its value in that column's code table (the categories seen in training), NaN for a missing
value and -1 for a category not in the table. Images are float32 (n, C, H, W), as ``predict``
takes them. The table steps run in float64 as :mod:`trainwell.data.table_steps` does, the
image steps in float32 as :mod:`trainwell.data.image_steps` does; the model gets float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainwell.data.image_steps import ImageStep
from trainwell.data.pipeline import Pipeline
from trainwell.data.table_steps import (
    Center,
    Impute,
    MinMax,
    OneHot,
    PCAStep,
    Standardize,
)
from trainwell.errors import RunError

_F64 = torch.float64


def _t(a: Any, dtype: torch.dtype = _F64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype).clone()


def code_tables(pipe: Pipeline) -> dict[str, list[str]]:
    """Per categorical column, its code table: the training categories of the run's one-hot
    step in the order it encodes them (a missing value is not in the table)."""
    names = [c for c, t in pipe.input.get("columns", []) if t == "categorical"]
    if not names:
        return {}
    onehot = next((s for s in pipe.steps if isinstance(s, OneHot)), None)
    if onehot is None:
        raise RunError(f"the run's categorical columns {names} have no one-hot step in "
                       "preprocess.json; they cannot be exported")
    return {name: [c for c in cats if c is not None]
            for name, cats in zip(names, onehot.categories_, strict=True)}


class _Impute(nn.Module):
    stats: torch.Tensor
    num_ind: torch.Tensor
    cat_ind: torch.Tensor
    cat_fill: torch.Tensor

    def __init__(self, step: Impute, tables: list[list[str]]) -> None:
        super().__init__()
        self.register_buffer("stats", _t(step.num_stats_))
        self.register_buffer("num_ind", torch.as_tensor(step.num_ind_, dtype=torch.long))
        self.register_buffer("cat_ind", torch.as_tensor(step.cat_ind_, dtype=torch.long))
        fill = []
        for j, stat in enumerate(step.cat_stats_):
            if stat not in tables[j]:
                raise RunError(f"the imputed category {stat!r} is not in the code table of "
                               f"categorical column {j}; the run cannot be exported")
            fill.append(float(tables[j].index(stat)))
        self.register_buffer("cat_fill", _t(fill))
        self.has_cat = bool(step.cat_stats_)
        self.n_num_ind, self.n_cat_ind = len(step.num_ind_), len(step.cat_ind_)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        miss = torch.isnan(num)
        blocks = [torch.where(miss, self.stats, num)]
        if self.n_num_ind:
            blocks.append(miss.index_select(1, self.num_ind).to(_F64))
        if self.has_cat:
            cat_miss = torch.isnan(cat)
            if self.n_cat_ind:
                blocks.append(cat_miss.index_select(1, self.cat_ind).to(_F64))
            cat = torch.where(cat_miss, self.cat_fill, cat)
        return torch.cat(blocks, dim=1), cat


class _OneHot(nn.Module):
    codes: torch.Tensor
    is_missing: torch.Tensor
    column: torch.Tensor

    def __init__(self, step: OneHot) -> None:
        super().__init__()
        self.widths: list[int] = []
        codes, missing = [], []
        for cats in step.categories_:
            known = [c for c in cats if c is not None]
            codes += [float(known.index(c)) if c is not None else float("nan") for c in cats]
            missing += [c is None for c in cats]
            self.widths.append(len(cats))
        self.register_buffer("codes", _t(codes))
        self.register_buffer("is_missing", torch.as_tensor(missing, dtype=torch.bool))
        self.register_buffer("column", torch.as_tensor(
            [j for j, w in enumerate(self.widths) for _ in range(w)], dtype=torch.long))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.widths:
            return num, cat
        values = cat.index_select(1, self.column)  # (n, every category of every column)
        hit = (values == self.codes) | (torch.isnan(values) & self.is_missing)
        return torch.cat([num, hit.to(_F64)], dim=1), cat[:, :0]


class _Affine(nn.Module):
    shift: torch.Tensor
    div: torch.Tensor

    def __init__(self, shift: np.ndarray, div: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("shift", _t(shift))
        self.register_buffer("div", _t(div))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (num - self.shift) / self.div, cat


class _PCA(nn.Module):
    mean: torch.Tensor
    components_t: torch.Tensor
    scale: torch.Tensor

    def __init__(self, step: PCAStep) -> None:
        super().__init__()
        self.register_buffer("mean", _t(step.mean_))
        self.register_buffer("components_t", _t(step.components_.T))
        scale = (np.sqrt(step.explained_variance_ + step.params.get("eps", 1e-5)) if step.whiten
                 else np.ones(step.components_.shape[0]))
        self.register_buffer("scale", _t(scale))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((num - self.mean) @ self.components_t) / self.scale, cat


def _table_op(step: Any, tables: list[list[str]]) -> nn.Module:
    if isinstance(step, Impute):
        return _Impute(step, tables)
    if isinstance(step, OneHot):
        return _OneHot(step)
    if isinstance(step, (Center, Standardize, MinMax)):
        return _Affine(step.shift_, step.div_)
    if isinstance(step, PCAStep):
        return _PCA(step)
    raise RunError(f"preprocessing step {step.name!r} has no exported form")


class TableInput(nn.Module):
    """Raw table columns (float64, categorical columns as codes) -> the model's float32 input."""

    num_cols: torch.Tensor
    cat_cols: torch.Tensor

    def __init__(self, pipe: Pipeline) -> None:
        super().__init__()
        columns = list(pipe.input.get("columns", []))
        tables = code_tables(pipe)
        self.register_buffer("num_cols", torch.as_tensor(
            [i for i, (_, t) in enumerate(columns) if t != "categorical"], dtype=torch.long))
        self.register_buffer("cat_cols", torch.as_tensor(
            [i for i, (_, t) in enumerate(columns) if t == "categorical"], dtype=torch.long))
        self.width = len(columns)
        self.ops = nn.ModuleList(_table_op(s, list(tables.values())) for s in pipe.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num, cat = x.index_select(1, self.num_cols), x.index_select(1, self.cat_cols)
        for op in self.ops:
            num, cat = op(num, cat)
        return num.to(torch.float32)


class ImageInput(nn.Module):
    """Images (float32 (n, C, H, W)) -> the model's input, each step's (x - shift) / div."""

    def __init__(self, pipe: Pipeline) -> None:
        super().__init__()
        self.n = len(pipe.steps)
        for i, step in enumerate(pipe.steps):
            if not isinstance(step, ImageStep):
                raise RunError(f"preprocessing step {step.name!r} has no exported form")
            self.register_buffer(f"shift{i}", _t(step.shift_.astype(np.float32), torch.float32))
            self.register_buffer(f"div{i}", _t(step.div_.astype(np.float32), torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n):
            x = (x - getattr(self, f"shift{i}")) / getattr(self, f"div{i}")
        return x


class Exported(nn.Module):
    """Raw input -> preprocessing -> model -> ``(probabilities, label_index)`` for
    classification (binary: ``[1 - p, p]`` and ``logit > 0``), ``prediction`` (float64, the
    target's own units) for regression."""

    def __init__(self, pipe: Pipeline, model: nn.Module, task: str) -> None:
        super().__init__()
        self.inputs = TableInput(pipe) if pipe.kind == "table" else ImageInput(pipe)
        self.model = model.eval()
        self.task = task
        scale = pipe.target_scale
        k = 1 if scale is None else len(scale.mean)
        self.register_buffer("y_mean", _t(scale.mean if scale is not None else np.zeros(k)))
        self.register_buffer("y_std", _t(scale.std if scale is not None else np.ones(k)))

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(self.inputs(x))
        if self.task == "regression":
            return out.to(_F64) * self.y_std + self.y_mean
        if self.task == "binary":
            p1 = torch.sigmoid(out.reshape(-1))
            return torch.stack([1 - p1, p1], dim=1), (out.reshape(-1) > 0).long()
        return torch.softmax(out, dim=1), out.argmax(1)


__all__ = ["Exported", "ImageInput", "TableInput", "code_tables"]
