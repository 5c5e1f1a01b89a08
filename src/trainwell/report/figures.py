"""Matplotlib plumbing shared by every report: a fixed style, PNG data URIs, smoothing.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot and no
global state), drawn under matplotlib's default style so that a user's ``matplotlibrc`` does
not leak in, and saved without the ``Software`` PNG text chunk, so the same data gives the same
bytes.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
STYLE = {
    "figure.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 12,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "svg.hashsalt": "trainwell",
    "path.simplify": True,
}


def new_figure(width: float = 5.2, height: float = 3.4, nrows: int = 1, ncols: int = 1,
               **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes (an array when ``nrows * ncols > 1``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **kwargs)
    return fig, axes


def to_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, with no timestamped metadata."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render(builder: Callable[..., Figure], *args: Any, **kwargs: Any) -> str:
    """Build a figure under the report style and return its PNG data URI."""
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = builder(*args, **kwargs)
        return to_data_uri(fig)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average; the first ``window - 1`` points average what exists so far.

    Lecture 002 ("look at learning curves"): losses are noisy, so plot them as a scatter and
    overlay a moving average to see the trend. Non-finite values are skipped in each window.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    out = []
    for i in range(len(values)):
        chunk = [v for v in values[max(0, i - window + 1): i + 1] if math.isfinite(v)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def smoothing_window(n: int) -> int:
    """Window of the moving average for ``n`` points: a tenth of the run, at least 3."""
    return max(1, min(n, max(3, n // 10)))


def use_log_scale(values: Sequence[float], ratio: float = 30.0) -> bool:
    """Whether positive values span more than ``ratio``, so a log axis reads better."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0:
        return False
    return max(finite) / min(finite) > ratio


def scatter_with_trend(ax: Axes, xs: Sequence[float], ys: Sequence[float], label: str,
                       color: Any) -> None:
    """Points of a noisy series plus its moving average, in one color."""
    ax.scatter(xs, ys, s=14, alpha=0.45, color=color, label=f"{label} (per epoch)")
    if len(ys) >= 3:
        w = smoothing_window(len(ys))
        ax.plot(xs, moving_average(ys, w), color=color, lw=1.8,
                label=f"{label} (moving avg, {w} epochs)")


def empty_axes(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()



def epoch_axis(ax: Axes, label: str = "epoch") -> None:
    """An x axis of whole epochs."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)
