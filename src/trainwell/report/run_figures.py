"""The figures of one run: learning curves, LR schedule, layer statistics, predictions, and
the domain classifier of a domain-adversarial run."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainwell.report.figures import (
    empty_axes,
    epoch_axis,
    label_width,
    log_scale,
    new_figure,
    panel_title,
    scatter_with_trend,
    use_log_scale,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trainwell.report.rundata import RunData

TRAIN, VAL = "tab:blue", "tab:orange"

# The per-layer statistics of stats.jsonl / doctor.json, with the words a reader sees.
LAYER_STATS = {
    "act_mean": "activation mean",
    "act_std": "activation std",
    "dead_frac": "dead fraction (zero activations)",
    "sat_frac": "saturated fraction",
    "grad_norm": "gradient norm",
    "update_ratio": "update / weight ratio",
}


def split_metric(name: str) -> tuple[str, str]:
    """``"val_accuracy"`` -> ``("val", "accuracy")``; names without a split get ``""``."""
    for prefix in ("train", "val", "test"):
        if name.startswith(prefix + "_"):
            return prefix, name[len(prefix) + 1:]
    return "", name


_PER_CLASS = re.compile(r"(precision|recall|f1)_\d+")


def metric_groups(run: RunData) -> dict[str, list[str]]:
    """Metric columns other than the loss, grouped by base name: accuracy -> [train_, val_]."""
    groups: dict[str, list[str]] = {}
    for name in run.metric_names():
        split, base = split_metric(name)
        if base == "loss" or not split or _PER_CLASS.fullmatch(base):
            continue  # per-class values (f1_3) are in the per-class table, not a panel each
        groups.setdefault(base, []).append(name)
    return groups


def split_head(base: str, heads: Sequence[str]) -> tuple[str, str]:
    """``("label", "accuracy")`` for ``"label_accuracy"`` when ``label`` is one of ``heads``
    (the longest name that fits wins); ``("", base)`` when no head's name starts it."""
    for head in sorted(heads, key=len, reverse=True):
        if base.startswith(head + "_") and len(base) > len(head) + 1:
            return head, base[len(head) + 1:]
    return "", base


def head_panels(
    groups: Mapping[str, Sequence[str]], heads: Mapping[str, str],
    other: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[dict[str, Sequence[str]], dict[str, tuple[str, str]]]:
    """The metric panels of a run with several heads, in order, and their titles.

    ``heads`` maps a head's name (the prefix of its metrics: ``val_label_accuracy``) to the
    words that name it in a title (``"label head"``). The groups of no head come first, titled
    by ``other`` or their own name; then each head's, in the order of ``heads``, its loss
    first, titled ``"<words>: <metric>"``.
    """
    other = other or {}
    rest = {base: names for base, names in groups.items() if not split_head(base, list(heads))[0]}
    order: dict[str, Sequence[str]] = dict(rest)
    titles = {base: other.get(base, (base, base)) for base in rest}
    for head, words in heads.items():
        own = [base for base in groups if split_head(base, list(heads))[0] == head]
        own.sort(key=lambda base: split_head(base, list(heads))[1] != "loss")
        for base in own:
            metric = split_head(base, list(heads))[1]
            order[base] = groups[base]
            titles[base] = (f"{words}: {metric}", metric)
    return order, titles


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` panels, at most ``max_cols`` wide (4 make 2 x 2)."""
    cols = 2 if n == 4 and max_cols >= 2 else max(1, min(n, max_cols))
    return -(-n // cols), cols


def _grid_size(rows: int, cols: int) -> tuple[float, float]:
    """Inches of a grid of 4.3 x 2.9 in panels with their tick labels, gaps and titles."""
    return 0.95 + 0.2 + cols * 4.3 + (cols - 1) * 0.75, 0.8 + rows * 2.9 + (rows - 1) * 0.9


def _hide_unused(axes: Sequence[Any], used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


def _loss_panel(ax: Any, run: RunData, title: str = "loss") -> None:
    values: list[float] = []
    for key, color, label in (("train_loss", TRAIN, "train loss"), ("val_loss", VAL, "val loss")):
        xs, ys = run.series(key)
        if xs:
            scatter_with_trend(ax, xs, ys, label, color)
            values += ys
    if not values:
        empty_axes(ax, "no loss recorded")
        return
    best = run.results.get("best_epoch")
    if isinstance(best, (int, float)) and not isinstance(best, bool):
        ax.axvline(best, color="0.5", ls="--", lw=1, label=f"best epoch ({best})")
    if use_log_scale(values):
        log_scale(ax)
    epoch_axis(ax)
    panel_title(ax, title)
    ax.legend(loc="best", fontsize=9)


def curves_figure(run: RunData, groups: dict[str, Sequence[str]],
                  titles: Mapping[str, tuple[str, str]] | None = None,
                  loss_title: str = "loss") -> Figure:
    """The learning curves: the loss, then each metric (accuracy, f1 ...), a panel each, per
    epoch, train and val overlaid as points and their moving average (lecture 002).

    ``titles`` maps a group to its panel's title and the metric's word in the legend (a run
    with several heads names the head in the title: ``("label head: accuracy", "accuracy")``);
    a group without one is titled by its own name.
    """
    import numpy as np

    titles = titles or {}
    rows, cols = grid_shape(1 + len(groups))
    fig, axes = new_figure(*_grid_size(rows, cols), rows, cols, top=0.4, hgap=0.9)
    axes = list(np.atleast_1d(axes).ravel())
    _loss_panel(axes[0], run, loss_title)
    for ax, (base, names) in zip(axes[1:], groups.items(), strict=False):  # spare panels stay
        title, word = titles.get(base, (base, base))
        for name in names:
            split, _ = split_metric(name)
            xs, ys = run.series(name)
            scatter_with_trend(ax, xs, ys, f"{split} {word}", TRAIN if split == "train" else VAL)
        epoch_axis(ax)
        panel_title(ax, title)
        ax.legend(loc="best", fontsize=9)
    _hide_unused(axes, 1 + len(groups))
    return fig


def lr_figure(run: RunData) -> Figure:
    fig, ax = new_figure(6.4, 3.0)
    xs, ys = run.series("lr")
    ax.plot(xs, ys, marker="o", ms=3, drawstyle="steps-post", color="tab:green")
    if use_log_scale(ys, 10.0):
        log_scale(ax)
    epoch_axis(ax)
    ax.set_ylabel("learning rate")
    return fig


#: the domain classifier's accuracy when it cannot tell source from target: the goal of DANN
CHANCE = 0.5


def domain_figure(run: RunData, baseline_target: float | None = None) -> Figure:
    """Domain-adversarial training over epochs: the domain classifier's training accuracy
    against chance (0.5, the goal: features that do not tell the domains apart), and, when the
    run logged them, the label head's accuracy on the source and the target validation data,
    with the source-only baseline's target accuracy as a dotted line when one was run."""
    import numpy as np

    source, target = run.series("val_accuracy"), run.series("val_target_accuracy")
    both = bool(target[0])
    fig, axes = new_figure(*_grid_size(1, 2 if both else 1), 1, 2 if both else 1, top=0.4)
    axes = list(np.atleast_1d(axes).ravel())
    ax = axes[0]
    xs, ys = run.series("train_domain_accuracy")
    if xs:
        scatter_with_trend(ax, xs, ys, "domain classifier", "tab:purple")
        ax.axhline(CHANCE, color="0.3", ls="--", lw=1.2, label="chance (0.5, the goal)")
        lo, hi = min([*ys, CHANCE]), max([*ys, CHANCE])
        pad = max(0.02, 0.08 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
        ax.legend(loc="best", fontsize=9)
    else:
        empty_axes(ax, "no domain classifier accuracy recorded")
    epoch_axis(ax)
    ax.set_ylabel("accuracy")
    panel_title(ax, "domain classifier accuracy (train)")
    if both:
        ax = axes[1]
        if source[0]:
            scatter_with_trend(ax, *source, "source (val)", VAL)
        scatter_with_trend(ax, *target, "target", "tab:green")
        if baseline_target is not None and math.isfinite(baseline_target):
            ax.axhline(baseline_target, color="tab:green", ls=":", lw=1.5,
                       label=f"target, source-only baseline ({baseline_target:.3g})")
        epoch_axis(ax)
        ax.set_ylabel("accuracy")
        panel_title(ax, "label head accuracy: source and target")
        ax.legend(loc="best", fontsize=9)
    return fig


def layer_table(snapshot: Any) -> dict[str, dict[str, float]]:
    """``{layer: {stat: value}}`` from a stats record or doctor snapshot, numbers only."""
    if isinstance(snapshot, dict) and isinstance(snapshot.get("layers"), dict):
        snapshot = snapshot["layers"]
    if not isinstance(snapshot, dict):
        return {}
    out: dict[str, dict[str, float]] = {}
    for layer, stats in snapshot.items():
        if isinstance(stats, dict):
            nums = {k: float(v) for k, v in stats.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if nums:
                out[str(layer)] = nums
    return out


def layer_bars_figure(snapshots: Sequence[tuple[str, dict[str, dict[str, float]]]],
                      stats: Sequence[str]) -> Figure:
    """Each statistic per layer, one panel per statistic, one bar per snapshot (init, end)."""
    import numpy as np

    layers: list[str] = []
    for _, table in snapshots:
        layers += [name for name in table if name not in layers]
    names = [_short(n, 18) for n in layers]
    rows, cols = grid_shape(len(stats))
    panel_h = max(1.6, 0.24 * len(layers) * len(snapshots) + 0.5)
    left = label_width(names)
    fig, axes = new_figure(left + 0.25 + cols * 3.4 + (cols - 1) * 0.35,
                           0.9 + rows * panel_h + (rows - 1) * 0.95, rows, cols, left=left,
                           right=0.25, top=0.35, bottom=0.55, wgap=0.35, hgap=0.95, sharey=True)
    axes = list(np.atleast_1d(axes).ravel())
    bar_h = 0.8 / max(1, len(snapshots))
    colors = ["tab:gray", "tab:purple", "tab:cyan"]
    for k, (ax, stat) in enumerate(zip(axes, stats, strict=False)):  # spare panels stay
        seen: list[float] = []
        for j, (label, table) in enumerate(snapshots):
            ys = [i + (j - (len(snapshots) - 1) / 2) * bar_h for i in range(len(layers))]
            vals = [table.get(layer, {}).get(stat, math.nan) for layer in layers]
            seen += vals
            ax.barh(ys, vals, height=bar_h, color=colors[j % len(colors)], label=label)
        panel_title(ax, LAYER_STATS.get(stat, stat), 11)
        if stat in ("grad_norm", "update_ratio") and use_log_scale(seen, 100.0):
            log_scale(ax, "x")
        ax.tick_params(axis="x", labelsize=10)
        if k == 0:
            ax.legend(loc="best", fontsize=9)
    axes[0].set_yticks(range(len(layers)), names)
    axes[0].invert_yaxis()
    for ax in axes:
        ax.tick_params(axis="y", labelleft=ax.get_subplotspec().is_first_col())
    _hide_unused(axes, len(stats))
    return fig


def layer_epochs_figure(records: Sequence[dict[str, Any]], stats: Sequence[str]) -> Figure:
    """Each layer's statistics per epoch, one panel per statistic, one line per layer."""
    import numpy as np

    tables = [(float(r.get("epoch", i)), layer_table(r)) for i, r in enumerate(records)]
    layers: list[str] = []
    for _, table in tables:
        layers += [name for name in table if name not in layers]
    rows, cols = grid_shape(len(stats), 2)
    fig, axes = new_figure(*_grid_size(rows, cols), rows, cols, top=0.4, hgap=0.9)
    axes = list(np.atleast_1d(axes).ravel())
    for ax, stat in zip(axes, stats, strict=False):  # spare panels stay
        seen: list[float] = []
        for k, layer in enumerate(layers):
            pts = [(e, t[layer][stat]) for e, t in tables if stat in t.get(layer, {})]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=2.5, lw=1.3,
                        color=f"C{k % 10}", label=_short(layer, 18))
                seen += [p[1] for p in pts]
        if stat in ("grad_norm", "update_ratio") and use_log_scale(seen, 100.0):
            log_scale(ax)
        panel_title(ax, LAYER_STATS.get(stat, stat))
        epoch_axis(ax)
    _hide_unused(axes, len(stats))
    if len(layers) <= 12:
        axes[0].legend(loc="best", fontsize=9)
    return fig


def confusion_figure(matrix: Any, labels: Sequence[str]) -> Figure:
    """Counts, colored by the row-normalized rate (recall of each true class)."""
    import numpy as np

    n = len(labels)
    size = min(9.0, max(4.2, 0.4 * n + 2.0))
    fig, ax = new_figure(size + 0.6, size, layout="constrained")
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.grid(False)
    short = [_short(str(lab), 12) for lab in labels]
    ax.set_xticks(range(n), short, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="fraction of the true class", shrink=0.8)
    return fig


def truth_figure(y_true: Any, y_pred: Any, names: Sequence[str]) -> Figure:
    """Predicted against true, with the diagonal of perfect predictions."""
    fig, ax = new_figure(height=4.2)
    for k, name in enumerate(names):
        ax.scatter(y_true[:, k], y_pred[:, k], s=12, alpha=0.55, color=f"C{k % 10}", label=name)
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1, label="perfect")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.legend(loc="best")
    return fig


def residual_figure(y_true: Any, y_pred: Any, names: Sequence[str]) -> Figure:
    """Residual (true - predicted) against predicted: structure here is unexplained signal."""
    fig, ax = new_figure(height=4.2)
    for k, name in enumerate(names):
        p = y_pred[:, k]
        ax.scatter(p, y_true[:, k] - p, s=12, alpha=0.55, color=f"C{k % 10}", label=name)
    ax.axhline(0.0, color="0.4", ls="--", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (true - predicted)")
    if len(names) > 1:
        ax.legend(loc="best")
    return fig


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
