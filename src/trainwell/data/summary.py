"""``describe``: what the model will be fed, in words, and a PNG grid of an image batch.

Lecture 004's debugging recipe: "look at the output of your data loader" before training.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from trainwell.data.prepared_data import PreparedData


def _clean(v: float, scale: float = 1.0) -> float:
    """0 for float32 round-off (|v| below 1e-6 of ``scale``), so a centred mean reads 0."""
    return 0.0 if abs(v) < 1e-6 * max(abs(scale), 1e-12) else v


def _fmt(v: float, scale: float = 1.0, width: int = 9) -> str:
    return f"{_clean(v, scale):{width}.4g}"


def _feature_table(data: PreparedData, max_features: int) -> list[str]:
    info = data.info
    before, after = info["features_before"], info["features_after"]
    lines = []
    b_names, a_names = before["names"], after["names"]
    images = len(data.input_shape) == 3
    if images:
        lines.append(f"pixels before preprocessing, per channel (train, {len(b_names)} channels):")
    else:
        lines.append(f"features before preprocessing (train, {len(b_names)} numeric columns):")
    lines.append(f"  {'name':<24} {'mean':>9} {'std':>9}")
    for i, name in enumerate(b_names[:max_features]):
        mean, std = before["train"]["mean"][i], before["train"]["std"][i]
        lines.append(f"  {name:<24} {_fmt(mean, std)} {_fmt(std)}")
    if len(b_names) > max_features:
        lines.append(f"  ... {len(b_names) - max_features} more")
    for col, n in info.get("categorical", {}).items():
        lines.append(f"  {col:<24} categorical, {n} categories")
    if images:
        lines.append("pixels after preprocessing, per channel:")
    else:
        lines.append(f"features after preprocessing ({len(a_names)} model inputs):")
    lines.append(f"  {'name':<24} {'train mean':>10} {'train std':>10} {'val mean':>10} "
                 f"{'val std':>10} {'test mean':>10} {'test std':>10}")
    for i, name in enumerate(a_names[:max_features]):
        cells = []
        for split in ("train", "val", "test"):
            st = after[split]
            if st["mean"]:
                cells += [_fmt(st["mean"][i], st["std"][i], 10), _fmt(st["std"][i], 1.0, 10)]
            else:
                cells += ["-".rjust(10)] * 2
        lines.append(f"  {name:<24} " + " ".join(cells))
    if len(a_names) > max_features:
        lines.append(f"  ... {len(a_names) - max_features} more")
    return lines


def describe(data: PreparedData, max_features: int = 20) -> str:
    """A plain-text account of ``data``: source, task, splits, class balance, missing values,
    preprocessing, and per-feature (or per-channel) mean / std before and after."""
    info = data.info
    out = [f"source: {data.source} ({info['n_rows']} rows, target {info['target']})"]
    if data.heads:
        out.append(f"task: multitask, {len(data.heads)} heads on one trunk:")
        for name, h in data.heads.items():
            what = (f"{len(h['classes'])} classes {h['classes'][:10]}" if h["classes"] is not None
                    else f"{h['n_outputs']} value(s)")
            out.append(f"  {name}: {h['task']} from {', '.join(h['columns'])}, {what}, "
                       f"labelled in {h['labelled']} of {info['n_rows']} rows")
    elif data.classes is not None:
        shown = ", ".join(f"{i}={c!r}" for i, c in enumerate(data.classes[:20]))
        more = f", ... {len(data.classes) - 20} more" if len(data.classes) > 20 else ""
        out.append(f"task: {data.task}, {len(data.classes)} classes: {shown}{more}")
    else:
        out.append(f"task: {data.task}, {data.n_outputs} target(s)")
    lazy = " (read lazily from disk)" if info.get("lazy") else ""
    out.append(f"model input: shape {tuple(data.input_shape)} per sample{lazy}, "
               f"n_outputs {data.n_outputs}")
    sizes = ", ".join(f"{k} {len(s)}" for k, s in data.splits.items())
    out.append(f"splits: {sizes} ({info['split_method']})")
    counts = data.class_counts()
    if counts is not None:
        out.append("class balance:")
        names = [str(c) for c in data.classes or []][:20]
        width = max(8, *(len(n) for n in names))
        out.append("  " + " " * 6 + "".join(f"{n:>{width}}" for n in names))
        for split, row in counts.items():
            out.append(f"  {split:<6}" + "".join(f"{v:>{width}}" for v in row[:20]))
    elif "target_stats" in info:
        for split, st in info["target_stats"].items():
            if st["mean"]:
                out.append(f"target {split}: mean {st['mean']}, std {st['std']}")
    if "target_scale" in info:  # regression: what the model trains on
        scale = info["target_scale"]
        out.append(f"target scale: {scale['how']}")
        if scale["standardized"]:
            out.append("  the model trains on (target - mean) / std; predictions, RMSE and MAE "
                       "are given in the target's own units")
        elif scale["mode"] == "none":
            out.append("  set data.target_scale = \"auto\" or \"standardize\" to train on the "
                       "standardized target")
    for split, classes in (info.get("classes_not_in_train") or {}).items():
        out.append(f"classes in {split} but not in train (never learned): {classes}")
    skipped = info.get("skipped_files")
    if skipped:
        more = " ..." if skipped["count"] > len(skipped["paths"]) else ""
        out.append(f"skipped: {skipped['count']} entries of the image folder that are not "
                   f"images ({', '.join(skipped['paths'])}{more})")
    dropped = info.get("dropped_rows") or {}
    if dropped.get("no_label"):
        out.append(f"dropped rows: {dropped['no_label']} without a label for any head")
    elif dropped:
        out.append(f"dropped rows: {dropped['missing_target']} with a missing target "
                   f"(rows {dropped['rows']}{' ...' if dropped['missing_target'] > 20 else ''})")
    if info.get("missing"):
        out.append("missing values:")
        for col, m in info["missing"].items():
            out.append(f"  {col}: {m['total']} (train {m['train']}, val {m['val']}, test "
                       f"{m['test']}) -> {m['action']}")
    else:
        out.append("missing values: none")
    out.append("preprocessing (fitted on train only): " + (" -> ".join(info["steps"]) or "none"))
    if info.get("stats_sample") and info["stats_sample"] < len(data.train):
        out.append(f"(image statistics below from the first {info['stats_sample']} training "
                   "images)")
    out += _feature_table(data, max_features)
    if "domain" in info:
        d = info["domain"]
        labels = ("labels kept for evaluation only" if d["labelled"]
                  else "no labels (unlabelled, as domain adaptation assumes)")
        out.append(f"domain target: {d['origin']} ({d['n_rows']} rows, {labels}); "
                   f"preprocessing {d['preprocess']}")
        names = list(data.feature_names)[:max_features] or [
            f"input {i}" for i in range(len(d["features_after"]["mean"]))][:max_features]
        out.append(f"  {'name':<24} {'target mean':>11} {'target std':>10}")
        for name, m, sd in zip(names, d["features_after"]["mean"], d["features_after"]["std"],
                               strict=False):
            out.append(f"  {name:<24} {m:>11.4g} {sd:>10.4g}")
    return "\n".join(out)


def image_grid_png(data: PreparedData, n: int = 32, cols: int = 8, seed: int = 0) -> bytes:
    """PNG bytes of a batch of ``n`` training images as the model sees them, with their labels.

    The batch is drawn at random (fixed by ``seed``) from the training split, as a shuffling
    loader would give it, so that it shows every class rather than the first one in file order.
    Each image is min-max scaled for display only (preprocessing makes values signed).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch

    train = data.train
    pick = np.random.default_rng(seed).permutation(len(train))[:n]
    if train.lazy:
        x = torch.stack([train.X[int(i)][0] for i in pick]).numpy() if len(pick) else np.empty((0,))
    else:
        x = train.X[torch.from_numpy(pick)].numpy()
    y = train.y[torch.from_numpy(pick)].numpy()
    rows = max(1, int(np.ceil(len(x) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(x):
        lo, hi = float(img.min()), float(img.max())
        show = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        show = show[0] if show.shape[0] == 1 else show[:3].transpose(1, 2, 0)
        ax = axes.ravel()[i]
        ax.imshow(show, cmap="gray" if show.ndim == 2 else None, interpolation="nearest")
        label: Any = data.classes[int(y[i])] if data.classes is not None else float(y[i][0])
        ax.set_title(str(label), fontsize=8)
    fig.suptitle(f"a batch of {len(x)} training inputs after preprocessing (seed {seed})",
                 fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["describe", "image_grid_png"]
