"""``prepare(cfg, seed)``: read the source, check the target, split, fit preprocessing on train.

The order matters and is the lectures' (002: "fitted on the training data, then applied to the
test data"): the splits are fixed first, every statistic is computed from the training rows only,
and val / test go through the fitted steps unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.data.head_targets import HeadTarget, HeadTargetSpec, head_targets, heads_info
from trainwell.data.image_steps import ChannelMeanStd
from trainwell.data.memory import describe_source
from trainwell.data.pipeline import Pipeline, TargetScale, fit_target_scale, table_step
from trainwell.data.prepared_data import PreparedData, Split
from trainwell.data.sources import RawImageFolder, RawImages, RawTable, read_source
from trainwell.data.split import make_splits, split_fixed_test, take_per_class
from trainwell.data.steps import KIND_FAMILIES, StepSpec, list_steps, parse_steps
from trainwell.data.table_steps import OneHot, Standardize, Table
from trainwell.data.targets import Target, make_target, missing_mask
from trainwell.errors import DataError

if TYPE_CHECKING:
    from trainwell.data.config import DataConfig

log = logging.getLogger(__name__)
AUTO_TARGETS = ("target", "label", "y", "class")
DEFAULT_STEPS = {"table": [Standardize.name], "image": [ChannelMeanStd.name]}


def prepare(cfg: DataConfig, seed: int, heads: dict[str, HeadTargetSpec] | None = None
            ) -> PreparedData:
    """Load, split and preprocess the data a config describes.

    Args:
        cfg: the ``[data]`` section.
        seed: fixes the split (and generated builtin sets).
        heads: ``{head: (target columns, task)}`` of ``[heads]``
            (:func:`~trainwell.train.heads_config.head_target_specs`): one target block per
            head (tables only), missing labels
            kept as NaN; ``task`` is then ``"multitask"`` and ``heads`` describes each head.

    Returns:
        The train / val / test splits after preprocessing fitted on train only.

    Raises:
        DataError: bad input (missing file or column, bad target, too few rows, corrupt image ...).

    Example:
        >>> from trainwell.data.config import DataConfig
        >>> data = prepare(DataConfig(source="builtin:iris"), seed=0)
        >>> data.task, data.input_shape, data.n_outputs, len(data.train)
        ('multiclass', (4,), 3, 104)
    """
    seed = seed if cfg.seed is None else cfg.seed  # data.seed fixes the data alone
    raw = read_source(cfg.source, cfg.params, seed, dialect=cfg.csv_dialect())
    if isinstance(raw, RawTable):
        prepared = _prepare_table(cfg, raw, seed, heads or None)
    elif heads:
        raise DataError(f"[heads] takes a table (CSV, Parquet, NPZ or a builtin table); "
                        f"{raw.origin} gives images with one class each")
    else:
        prepared = _prepare_images(cfg, raw, seed)
    memory = describe_source(cfg.source)  # data given from Python: what it was
    if memory is not None:
        prepared.info["memory"] = memory
    return prepared


# ---------------------------------------------------------------------------- shared pieces


def _specs(cfg: DataConfig, kind: str, origin: str) -> list[StepSpec]:
    specs = parse_steps(cfg.preprocess if cfg.preprocess is not None else DEFAULT_STEPS[kind])
    allowed = [name for family in KIND_FAMILIES[kind] for name in list_steps(family)]
    for spec in specs:
        if spec.name not in allowed:
            what = "images" if kind == "image" else "a table"
            raise DataError(
                f"preprocessing step {spec.name!r} does not apply to {origin}, which gives {what}; "
                f"allowed for {what}: {', '.join(allowed)}"
            )
    return specs


def _target(cfg: DataConfig, values: np.ndarray, names: list[str], origin: str,
            task_hint: str | None) -> tuple[np.ndarray, Target, dict[str, Any]]:
    """Drop (or refuse) rows with a missing target; return kept positions, the Target, notes."""
    miss = missing_mask(values)
    dropped: dict[str, Any] = {}
    if miss.any():
        rows = np.flatnonzero(miss)
        if cfg.missing_target == "error":
            raise DataError(
                f"target {names[0] if len(names) == 1 else names!r} of {origin} has {len(rows)} "
                f"missing (NaN or empty) values, first at rows {rows[:5].tolist()}; fix them, or "
                "set data.missing_target = \"drop\" to drop those rows"
            )
        dropped = {"missing_target": int(len(rows)), "rows": rows[:20].tolist()}
        log.info("dropped %d rows with a missing target", len(rows))
    kept = np.flatnonzero(~miss)
    if not len(kept):
        raise DataError(f"every row of {origin} has a missing target")
    task = cfg.task if cfg.task != "auto" or task_hint is None else task_hint
    target = make_target(values[kept], names, task, origin)
    return kept, target, dropped


def _classes_not_in_train(target: Target, splits: dict[str, np.ndarray],
                          origin: str) -> dict[str, list[Any]]:
    """Per split, the classes it holds that train does not (the model never learns them);
    each is logged as a warning."""
    if target.classes is None:
        return {}
    count = {k: np.bincount(target.y[idx], minlength=len(target.classes))
             for k, idx in splits.items()}
    unseen: dict[str, list[Any]] = {}
    for split in ("val", "test"):
        only = np.flatnonzero((count[split] > 0) & (count["train"] == 0))
        for c in only:
            log.warning("class %r of %s is in the %s split (%d rows) but not in train: the model "
                        "cannot learn it; give train rows of it (data.split)",
                        target.classes[c], origin, split, count[split][c])
        if len(only):
            unseen[split] = [target.classes[c] for c in only]
    return unseen


def _scale_target(cfg: DataConfig, target: Target, train: np.ndarray, names: list[str]
                  ) -> tuple[Target, TargetScale | None, dict[str, Any]]:
    """Regression: the target standardized on the training rows (``data.target_scale``), the
    fitted scale (None when kept as is) and what ``describe`` says about it; other tasks: the
    target unchanged."""
    if target.task != "regression":
        return target, None, {}
    scale, how = fit_target_scale(target.y[train], cfg.target_scale, names)
    info: dict[str, Any] = {"mode": cfg.target_scale, "standardized": scale is not None,
                            "how": how}
    if scale is None:
        return target, None, info
    log.info("regression target %s", how)
    info.update(scale.to_dict())
    return Target(scale.transform(target.y), target.task, None, target.n_outputs), scale, info


def _torch_y(target: Target, idx: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(target.y[idx]))


def _stats(a: np.ndarray, axis: Any = 0) -> dict[str, list[float]]:
    if a.shape[0] == 0:
        return {"mean": [], "std": []}
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(a, axis=axis), np.nanstd(a, axis=axis)
    return {"mean": np.atleast_1d(mean).astype(float).tolist(),
            "std": np.atleast_1d(std).astype(float).tolist()}


# ---------------------------------------------------------------------------- tables


def _target_names(cfg: DataConfig, raw: RawTable) -> list[str]:
    from trainwell.data.tables import require_columns

    if raw.target is not None:  # builtin and npz sources name their own target
        return raw.target
    if cfg.target is not None:
        names = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
        require_columns(raw.frame, names, "target column", raw.origin)
        return names
    for guess in AUTO_TARGETS:
        if guess in raw.frame.columns:
            if cfg.columns.get(guess) == "ignore":
                raise DataError(f"data.target is not set, so column {guess!r} of {raw.origin} "
                                f"would be the target, but data.columns.{guess} = \"ignore\"; "
                                "set data.target to the label column")
            return [guess]
    raise DataError(f"data.target is not set and {raw.origin} has no column named "
                    f"{' / '.join(AUTO_TARGETS)}; set data.target to one of "
                    f"{list(map(str, raw.frame.columns))}")


def _take(t: Table, idx: np.ndarray) -> Table:
    return Table(t.num[idx], list(t.num_names), t.cat[idx], list(t.cat_names))


def _missing_report(t: Table, splits: dict[str, np.ndarray], specs: list[StepSpec],
                    origin: str) -> dict[str, Any]:
    """Per column: missing counts per split and what is done with them (by the first step, in
    order, that handles them); raise if nothing would be."""
    import pandas as pd

    steps = [table_step(s) for s in specs]
    report: dict[str, Any] = {}
    blocks = [(t.num_names, np.isnan(t.num), "numeric"),
              (t.cat_names, np.asarray(pd.isna(t.cat), dtype=bool).reshape(t.cat.shape),
               "categorical")]
    for names, miss, kind in blocks:
        for j, name in enumerate(names):
            total = int(miss[:, j].sum())
            if not total:
                continue
            per = {k: int(miss[idx, j].sum()) for k, idx in splits.items()}
            n_train = len(splits["train"])
            if n_train and per["train"] == n_train:
                raise DataError(f"feature column {name!r} of {origin} is missing in every training "
                                f"row ({n_train}); nothing can be learned from it to fill it; set "
                                f"data.columns.{name} = \"ignore\"")
            actions = (step.missing_action(name, kind, per["train"] > 0) for step in steps)
            action = next((a for a in actions if a is not None), None)
            if action is None:
                raise DataError(
                    f"feature column {name!r} of {origin} has {total} missing values "
                    f"(train {per['train']}, val {per['val']}, test {per['test']}); add \"impute\" "
                    "to data.preprocess (or set data.columns." + name + " = \"ignore\")"
                )
            report[name] = {"total": total, **per, "action": action}
    return report


def _prepare_table(cfg: DataConfig, raw: RawTable, seed: int,
                   heads: dict[str, HeadTargetSpec] | None = None) -> PreparedData:
    import torch

    from trainwell.data.tables import encode, infer_types, require_columns

    frame, origin = raw.frame, raw.origin
    frame.columns = [str(c) for c in frame.columns]
    if heads:
        targets = list(dict.fromkeys(c for cols, _ in heads.values() for c in cols))
    else:
        targets = _target_names(cfg, raw)
    extra = [c for c in (cfg.split.column, cfg.id_column) if c]
    require_columns(frame, extra, "column", origin)
    skip = set(targets) | set(extra) | {"_id"}
    features = raw.feature_names or [c for c in frame.columns if c not in skip]
    types = infer_types(frame, features, dict(cfg.columns), origin)
    if not types:
        raise DataError(f"{origin} has no feature columns left (target {targets}, ignored "
                        f"{sorted(k for k, v in cfg.columns.items() if v == 'ignore')})")
    head_list: list[HeadTarget] = []
    if heads:
        kept, Y, head_list = head_targets(frame, heads, origin)
        n_out = sum(h.n_outputs for h in head_list)
        target = Target(Y, "multitask", None, n_out)
        unlabelled = len(frame) - len(kept)
        dropped = {"no_label": unlabelled} if unlabelled else {}
    else:
        kept, target, dropped = _target(cfg, frame[targets].to_numpy(), targets, origin,
                                        raw.task_hint)
    sub = frame.iloc[kept]  # keeps the source row numbers for error messages
    for name in types:
        if sub[name].isna().all():
            raise DataError(f"feature column {name!r} of {origin} is entirely missing ({len(sub)} "
                            f"rows); drop it with data.columns.{name} = \"ignore\"")
    table = encode(sub, types, origin)
    for j, name in enumerate(table.cat_names):
        n_cat = len({v for v in table.cat[:, j] if v is not None})
        if n_cat > 20 and n_cat >= 0.9 * len(sub):
            log.warning("categorical column %r of %s has %d distinct values in %d rows: an "
                        "identifier? set data.columns.%s = \"ignore\"", name, origin, n_cat,
                        len(sub), name)
    col_values = sub[cfg.split.column].to_numpy() if cfg.split.column else None
    y_strat = target.y if target.classes is not None else None
    splits, how = make_splits(cfg.split, len(kept), y_strat, seed, col_values, len(frame), kept,
                              origin)
    unseen = _classes_not_in_train(target, splits, origin)
    raw_target = target  # in its own units, for the statistics describe shows
    target, target_scale, scale_info = _scale_target(cfg, target, splits["train"], targets)
    specs = _specs(cfg, "table", origin)
    if table.cat_names and not any(s.name == OneHot.name for s in specs):
        at = next((i for i, s in enumerate(specs) if s.family == "matrix"), len(specs))
        specs.insert(at, StepSpec(OneHot.name, {}))
    missing = _missing_report(table, splits, specs, origin)

    pipe = Pipeline("table", {"columns": [[c, t] for c, t in types.items()], "target": targets,
                              "id_column": cfg.id_column, "csv": cfg.csv_dialect().to_dict()},
                    specs, target_scale=target_scale)
    pipe.fit_table(_take(table, splits["train"]))
    arrays = {k: pipe.table_to_array(_take(table, idx)) for k, idx in splits.items()}
    feature_names = pipe.transform_table(_take(table, splits["train"][:1])).num_names
    pipe.input["feature_names"] = feature_names
    out = {k: Split(torch.from_numpy(arrays[k]), _torch_y(target, idx), kept[idx])
           for k, idx in splits.items()}
    before_names = table.num_names
    info = {
        "origin": origin,
        "n_rows": int(len(frame)),
        "target": targets,
        "feature_types": types,
        "dropped_rows": dropped,
        "missing": missing,
        "split_method": how,
        "steps": [s.label() for s in specs],
        "features_before": {"names": before_names,
                            **{k: _stats(table.num[idx]) for k, idx in splits.items()}},
        "categorical": {c: int(len(set(v for v in table.cat[:, j] if v is not None)))
                        for j, c in enumerate(table.cat_names)},
        "features_after": {"names": feature_names, **{k: _stats(a) for k, a in arrays.items()}},
    }
    if target.classes is None and not head_list:
        info["target_stats"] = {k: _stats(raw_target.y[idx]) for k, idx in splits.items()}
    if scale_info:
        info["target_scale"] = scale_info
    if unseen:
        info["classes_not_in_train"] = unseen
    if head_list:
        info["heads"] = heads_info(head_list)
    return PreparedData(cfg.source, target.task, target.classes, feature_names,
                        (len(feature_names),), target.n_outputs, out["train"], out["val"],
                        out["test"], pipe, info)


# ---------------------------------------------------------------------------- images


def _prepare_images(cfg: DataConfig, raw: RawImages | RawImageFolder, seed: int) -> PreparedData:
    import torch

    from trainwell.data import images as im

    origin = raw.origin
    if cfg.split.column is not None:
        raise DataError(f"data.split.column needs a table source; {origin} gives images "
                        "(use data.split.indices or fractions)")
    if isinstance(raw, RawImages):
        if raw.y is None:
            raise DataError(f"{origin} has no labels 'y'")
        labels = raw.y
    else:
        labels = np.asarray(raw.labels, dtype=object)
        if cfg.task == "regression":
            raise DataError(f"data.task is regression, but {origin} gives class folders; use "
                            "\"auto\", \"binary\" or \"multiclass\"")
    names = ["label"] if np.ndim(labels) == 1 else [f"y{j}" for j in range(labels.shape[1])]
    kept, target, dropped = _target(cfg, labels, names, origin, getattr(raw, "task_hint", None))
    y_strat = target.y if target.classes is not None else None
    splits, how = _image_splits(cfg, raw, kept, y_strat, seed, len(labels))
    unseen = _classes_not_in_train(target, splits, origin)
    raw_target = target
    target, target_scale, scale_info = _scale_target(cfg, target, splits["train"], names)
    specs = _specs(cfg, "image", origin)

    lazy = False
    if isinstance(raw, RawImages):
        X = raw.X[kept]
        shape = list(X.shape[1:])
        spec_in: dict[str, Any] = {"source": "array", "shape": shape}
    else:
        paths = [raw.paths[i] for i in kept]
        size = cfg.images.size or list(im.first_size(paths))
        mode = cfg.images.mode
        shape = [im.CHANNELS[mode], size[0], size[1]]
        spec_in = {"source": "folder", "mode": mode, "size": size, "shape": shape}
        need_mb = len(paths) * int(np.prod(shape)) * 4 / 2**20
        lazy = need_mb > cfg.images.memory_mb
        if lazy:
            log.info("images need %.0f MB > data.images.memory_mb=%s: reading lazily", need_mb,
                     cfg.images.memory_mb)
            train_set = set(splits["train"].tolist())
            for i, p in enumerate(paths):  # train images are decoded while fitting below
                if i not in train_set:
                    im.verify_image(p)
        else:
            X = im.read_many(paths, mode, size)
    pipe = Pipeline("image", spec_in, specs, target_scale=target_scale)
    tr = splits["train"]
    if lazy:
        train_paths = [paths[i] for i in tr]
        pipe.fit_images(lambda steps: im.iter_batches(train_paths, mode, size, steps))
        out = {k: Split(im.ImageFolderDataset([paths[i] for i in idx], _torch_y(target, idx), mode,
                                              size, pipe.steps), _torch_y(target, idx), kept[idx])
               for k, idx in splits.items()}
        sample_idx = tr[:512]
        before = im.read_many([paths[i] for i in sample_idx], mode, size)
        after_arrays = {k: out[k].head(512).numpy() for k in splits}
    else:
        pipe.fit_images(lambda steps: iter([_apply(steps, X[tr])]))
        after_arrays = {k: pipe.transform_images(X[idx]) for k, idx in splits.items()}
        out = {k: Split(torch.from_numpy(after_arrays[k]), _torch_y(target, idx), kept[idx])
               for k, idx in splits.items()}
        before = X[tr]
    chan = (0, 2, 3)
    info = {
        "origin": origin,
        "n_rows": int(len(labels)),
        "target": names,
        "dropped_rows": dropped,
        "missing": {},
        "split_method": how,
        "steps": [s.label() for s in specs],
        "lazy": lazy,
        "image": spec_in,
        "features_before": {"names": [f"channel {c}" for c in range(shape[0])],
                            "train": _stats(before, chan)},
        "features_after": {"names": [f"channel {c}" for c in range(shape[0])],
                           **{k: _stats(a, chan) for k, a in after_arrays.items()}},
    }
    if lazy:
        info["stats_sample"] = int(min(512, len(tr)))
    if target.classes is None:
        info["target_stats"] = {k: _stats(raw_target.y[idx]) for k, idx in splits.items()}
    if scale_info:
        info["target_scale"] = scale_info
    if unseen:
        info["classes_not_in_train"] = unseen
    if isinstance(raw, RawImageFolder) and raw.skipped:
        info["skipped_files"] = {"count": len(raw.skipped), "paths": raw.skipped[:20]}
    return PreparedData(cfg.source, target.task, target.classes, [], tuple(shape), target.n_outputs,
                        out["train"], out["val"], out["test"], pipe, info)


def _image_splits(cfg: DataConfig, raw: RawImages | RawImageFolder, kept: np.ndarray,
                  y: np.ndarray | None, seed: int, n_rows: int
                  ) -> tuple[dict[str, np.ndarray], str]:
    """The splits of an image set: a bundled set's fixed test split unless ``data.split.indices``
    is given, then its ``train_per_class`` subset of the training split."""
    fixed = raw.test_rows if isinstance(raw, RawImages) else None
    if fixed is not None and cfg.split.indices is None:
        splits = split_fixed_test(fixed, n_rows, kept, y, cfg.split.val, cfg.split.stratify, seed)
        how = (f"fixed test split of {raw.origin} ({len(splits['test'])} images, the same for "
               f"every seed; data.split.test is not used); val={cfg.split.val} of the others, "
               f"{'stratified' if cfg.split.stratify else 'random'}, seed {seed}")
    else:
        splits, how = make_splits(cfg.split, len(kept), y, seed, None, n_rows, kept, raw.origin)
    per_class = raw.train_per_class if isinstance(raw, RawImages) else None
    if per_class is not None and y is not None:
        splits["train"] = take_per_class(splits["train"], y, per_class, seed,
                                         "data.params.train_per_class")
        how += f"; train: {per_class} per class, drawn by the seed"
    return splits, how


def _apply(steps: list[Any], x: np.ndarray) -> np.ndarray:
    for step in steps:
        x = step.transform(x)
    return x


__all__ = ["prepare"]
