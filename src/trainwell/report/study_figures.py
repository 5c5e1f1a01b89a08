"""The figures of a study: history, best so far, parallel coordinates, importances, all curves."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trainwell.report.figures import empty_axes, epoch_axis, log_scale, new_figure, use_log_scale
from trainwell.report.studydata import objective_values

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trainwell.report.studydata import StudyData, TrialData


# objective values whose positive max / min exceeds this are shown on log axes and colors
LOG_RATIO = 100.0


def spans_decades(values: list[float]) -> bool:
    """Whether a study's objective values span decades (all positive, max / min above
    :data:`LOG_RATIO`): then a log axis keeps a few bad trials from flattening the others."""
    return use_log_scale(values, LOG_RATIO)


def _norm(study: StudyData):  # noqa: ANN202 - a matplotlib Normalize
    from matplotlib.colors import LogNorm, Normalize

    values = objective_values(study.completed())
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if spans_decades(values):
        return LogNorm(vmin=lo, vmax=hi)
    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)


def _cmap(study: StudyData) -> Any:
    import matplotlib

    # the best trials are drawn dark whatever the direction
    return matplotlib.colormaps["viridis" if study.direction == "minimize" else "viridis_r"]


def history_figure(study: StudyData) -> Figure:
    """Each trial's objective against its number; pruned and failed trials marked below."""
    fig, ax = new_figure(layout="constrained")
    done = study.completed()
    if not done:
        empty_axes(ax, "no completed trial")
        return fig
    ax.scatter([t.index for t in done], [t.value for t in done], s=22, color="tab:blue",
               label="completed trial", zorder=3)
    other = [t for t in study.trials if t not in done]
    if other:
        values = objective_values(done)
        worst = max(values) if study.direction == "minimize" else min(values)
        ax.scatter([t.index for t in other], [worst] * len(other), marker="x", color="tab:red",
                   label="pruned / failed (no value)", zorder=3)
    if spans_decades(objective_values(done)):
        log_scale(ax)
    epoch_axis(ax, "trial (in the order they ran)" if study.staged else "trial")
    ax.set_ylabel(study.metric)
    ax.legend(loc="best")
    return fig


def best_so_far_figure(study: StudyData) -> Figure:
    """The best objective after each trial (a step line)."""
    fig, ax = new_figure(layout="constrained")
    done = study.completed()
    if not done:
        empty_axes(ax, "no completed trial")
        return fig
    better = max if study.direction == "maximize" else min
    xs = [t.index for t in done]
    ys: list[float] = []
    for value in objective_values(done):
        ys.append(value if not ys else better(ys[-1], value))
    ax.plot(xs, ys, drawstyle="steps-post", color="tab:green", lw=2, label=f"best {study.metric}")
    ax.scatter([t.index for t in done], [t.value for t in done], s=12, color="0.6",
               label="trial", zorder=3)
    if spans_decades(objective_values(done)):
        log_scale(ax)
    epoch_axis(ax, "trial (in the order they ran)" if study.staged else "trial")
    ax.set_ylabel(f"best {study.metric} so far ({study.direction})")
    ax.legend(loc="best")
    return fig


def _axis_values(study: StudyData, name: str,
                 trials: list[TrialData]) -> tuple[list[float], list[str]]:
    """Values of one parameter scaled to [0, 1], and labels for the axis's bottom and top."""
    raw = [t.params.get(name) for t in trials]
    nums = [v for v in raw if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) == len(raw) and nums:
        log = name in study.log_params and min(nums) > 0
        vals = [math.log10(v) for v in nums] if log else [float(v) for v in nums]
        lo, hi = min(vals), max(vals)
        span = hi - lo or 1.0
        scaled = [(v - lo) / span for v in vals]
        return scaled, [f"{min(nums):.3g}", f"{max(nums):.3g}" + (" (log)" if log else "")]
    cats = sorted({str(v) for v in raw})
    pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return [pos[str(v)] for v in raw], [cats[0], cats[-1]]


def parallel_figure(study: StudyData) -> Figure:
    """Parallel coordinates: one vertical axis per parameter and one for the objective."""
    done = study.completed()
    names = study.param_names()
    fig, ax = new_figure(max(5.2, 1.5 * (len(names) + 1) + 0.6), 4.2, layout="constrained")
    if not done or not names:
        empty_axes(ax, "no completed trial with parameters")
        return fig
    columns = [_axis_values(study, n, done) for n in names]
    obj = objective_values(done)
    lo, hi = min(obj), max(obj)
    if spans_decades(obj):  # a few bad trials must not squeeze the others into one point
        logs = [math.log10(v) for v in obj]
        span = math.log10(hi) - math.log10(lo)
        columns.append(([(v - math.log10(lo)) / span for v in logs],
                        [f"{lo:.4g}", f"{hi:.4g} (log)"]))
    else:
        columns.append(([(v - lo) / ((hi - lo) or 1.0) for v in obj], [f"{lo:.4g}", f"{hi:.4g}"]))
    norm, cmap = _norm(study), _cmap(study)
    best = study.best()
    order = sorted(range(len(done)), key=lambda i: done[i] is best)  # best drawn last, on top
    xs = list(range(len(columns)))
    for i in order:
        ys = [col[0][i] for col in columns]
        is_best = done[i] is best
        ax.plot(xs, ys, color="tab:red" if is_best else cmap(norm(obj[i])),
                lw=2.4 if is_best else 1.1, alpha=1.0 if is_best else 0.75,
                label=f"best (trial {done[i].label(study.staged)})" if is_best else None)
    for x, (_, (bottom, top)) in zip(xs, columns, strict=True):
        ax.axvline(x, color="0.3", lw=0.8)
        ax.text(x, -0.06, bottom, ha="center", va="top", fontsize=9.5)
        ax.text(x, 1.06, top, ha="center", va="bottom", fontsize=9.5)
    ax.set_xticks(xs, [*(n.split(".")[-1] for n in names), study.metric], fontsize=10.5)
    ax.xaxis.set_ticks_position("none")
    ax.tick_params(axis="x", pad=18)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.grid(False)
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.1), fontsize=9)
    return fig


def importance_figure(importances: dict[str, float]) -> Figure:
    items = sorted(importances.items(), key=lambda kv: (-kv[1], kv[0]))
    fig, ax = new_figure(height=max(2.2, 0.4 * len(items) + 1.0), layout="constrained")
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("importance (share of the objective's variance)")
    return fig


def curves_figure(study: StudyData, key: str) -> Figure:
    """Every trial's learning curve on one figure, colored by its final objective (lecture 002)."""
    fig, ax = new_figure(height=3.8, layout="constrained")
    norm, cmap = _norm(study), _cmap(study)
    best = study.best()
    drawn = 0
    seen: list[float] = []
    for t in study.trials:
        if t.run is None:
            continue
        xs, ys = t.run.series(key)
        if not xs:
            continue
        drawn += 1
        seen += ys
        if t is best:
            continue
        if t.state.upper() == "COMPLETE" and t.value is not None:
            ax.plot(xs, ys, color=cmap(norm(t.value)), lw=1.1, alpha=0.8)
        else:  # pruned or failed: grey and dashed
            ax.plot(xs, ys, color="0.6", lw=0.9, ls="--", marker="x", ms=4, alpha=0.7)
    if use_log_scale(seen):
        log_scale(ax)
    if best is not None and best.run is not None:
        xs, ys = best.run.series(key)
        ax.plot(xs, ys, color="tab:red", lw=2.4, label=f"best (trial {best.label(study.staged)})")
        ax.legend(loc="best")
    if not drawn:
        empty_axes(ax, f"no trial recorded {key}")
        return fig
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=study.metric)
    epoch_axis(ax)
    ax.set_ylabel(key)
    return fig
