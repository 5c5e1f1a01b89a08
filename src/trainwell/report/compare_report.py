"""A comparison of several runs: overlaid curves, config differences, results side by side."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import RunError
from trainwell.report import html as h
from trainwell.report.figures import epoch_axis, log_scale, new_figure, render, use_log_scale
from trainwell.report.run_figures import split_metric
from trainwell.report.rundata import TIME_LABEL, TIME_NOTE, RunData, flatten, load_run

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def run_labels(runs: Sequence[RunData]) -> list[str]:
    """Each run's name, or its path where two runs share a name."""
    names = [r.name for r in runs]
    return [r.name if names.count(r.name) == 1 else str(r.path) for r in runs]


def overlay_figure(runs: Sequence[RunData], labels: Sequence[str], key: str) -> Figure:
    """One column of metrics.jsonl for every run on one figure (lecture 002)."""
    fig, ax = new_figure(height=3.6, layout="constrained")
    seen: list[float] = []
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        xs, ys = run.series(key)
        if xs:
            ax.plot(xs, ys, marker="o", ms=2.5, lw=1.5, color=f"C{i % 10}", label=label,
                    drawstyle="steps-post" if key == "lr" else "default")
            seen += ys
    if use_log_scale(seen, 10.0 if key == "lr" else 30.0):
        log_scale(ax)
    epoch_axis(ax)
    ax.set_ylabel(key)
    if len(runs) <= 12:
        ax.legend(loc="best")
    return fig


def overlay_keys(runs: Sequence[RunData]) -> list[str]:
    """Loss first, then val and train metrics, then the LR: the columns any run logged."""
    present: list[str] = []
    for run in runs:
        present += [k for k in run.metric_names() if k not in present]
    losses = [k for k in ("train_loss", "val_loss") if k in present]
    others = sorted((k for k in present if k not in losses and split_metric(k)[0]),
                    key=lambda k: (split_metric(k)[1], split_metric(k)[0]))
    lr = ["lr"] if any(run.series("lr")[0] for run in runs) else []
    return losses + others + lr


def config_diff(runs: Sequence[RunData]) -> list[tuple[str, list[Any]]]:
    """Config keys (dotted) whose values differ between the runs, sorted by key."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f} - {"name"})
    missing = object()
    out = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out.append((key, [None if v is missing else v for v in values]))
    return out


def results_rows(runs: Sequence[RunData],
                 labels: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    sections = ("best", "final", "test")
    keys: list[tuple[str, str]] = []
    for run in runs:
        for sec in sections:
            block = run.results.get(sec)
            if isinstance(block, dict):
                keys += [(sec, k) for k in block
                         if (sec, k) not in keys and k not in ("epoch", "step")]
    header = ["run", "status", "best epoch", *(f"{k} ({sec})" for sec, k in keys),
              "wall time", "parameters"]
    rows = []
    for run, label in zip(runs, labels, strict=True):
        vals = []
        for sec, k in keys:
            block = run.results.get(sec)
            vals.append(block.get(k) if isinstance(block, dict) else None)
        rows.append([label, run.meta.get("status"), run.results.get("best_epoch"), *vals,
                     h.fmt_duration(run.results.get("wall_time")), run.results.get("n_params")])
    return header, rows


def runs_table(runs: Sequence[RunData], labels: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """One row per run: its name and status, the config keys that differ between the runs (only
    those; "default" where a run's config leaves the key out), then its best epoch, metrics,
    training wall time and parameter count."""
    diff = config_diff(runs)
    header, rows = results_rows(runs, labels)
    header = [*header[:2], *(k for k, _ in diff), *header[2:]]
    header[header.index("wall time")] = TIME_LABEL
    out = []
    for i, row in enumerate(rows):
        out.append([*row[:2], *("default" if vals[i] is None else vals[i] for _, vals in diff),
                    *row[2:]])
    return header, out


def render_comparison(runs: Sequence[RunData]) -> str:
    labels = run_labels(runs)
    header, rows = runs_table(runs, labels)
    n_diff = len(config_diff(runs))
    table = h.filter_table(header, rows, "runs-table")
    if n_diff:
        intro = h.note(f"{n_diff} config key{'s' if n_diff != 1 else ''} differ between the "
                       "runs; only those are shown, after the status. Type in a column's box to "
                       "filter the rows (text, or a comparison such as >0.9).")
    else:
        intro = h.note("the runs' configs are identical (apart from their names); type in a "
                       "column's box to filter the rows (text, or a comparison such as >0.9)")
    keys = overlay_keys(runs)
    figs = [h.figure(f"fig-overlay-{key}", render(overlay_figure, runs, labels, key),
                     f"{key} per epoch of every run") for key in keys]
    curves = h.figures(figs) if figs else h.note("no run recorded metrics.jsonl")
    missing = [f"{label}: {run.problems['metrics.jsonl']}"
               for run, label in zip(runs, labels, strict=True) if "metrics.jsonl" in run.problems]
    curves += "".join(h.note(m) for m in missing)
    sections = [
        ("runs", "Runs: config differences and results", intro + table + h.note(TIME_NOTE)),
        ("curves", "Learning curves", curves),
    ]
    return h.page(f"Comparison of {len(runs)} runs", " · ".join(labels), sections,
                  script=h.FILTER_JS)


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write one self-contained page comparing several runs.

    Args:
        run_dirs: two or more run directories.
        out: the HTML file to write.

    Returns:
        The path of the written page.

    Raises:
        RunError: if fewer than two runs are given or one is not a run directory.

    Example:
        >>> write_comparison(["runs/a", "runs/b"], "compare.html")  # doctest: +SKIP
        PosixPath('compare.html')
    """
    if len(run_dirs) < 2:
        raise RunError(f"a comparison needs at least 2 run directories; got {len(run_dirs)}")
    runs = [load_run(p) for p in run_dirs]
    path = Path(out)
    h.write_page(path, lambda: render_comparison(runs))
    logger.info("wrote %s", path)
    return path
