"""Matplotlib plumbing shared by every report: a fixed style, PNG data URIs, smoothing.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot and no
global state), drawn under matplotlib's default style so that a user's ``matplotlibrc`` does
not leak in, and saved without the ``Software`` PNG text chunk, so the same data gives the same
bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

DPI = 110
STYLE: dict[RcKeyType, Any] = {
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


CHAR_IN = 0.105  # width of one tick-label character at the report's font size, inches


def new_figure(width: float = 5.2, height: float = 3.4, nrows: int = 1, ncols: int = 1, *,
               layout: Literal["fixed", "constrained"] = "fixed", left: float = 0.95,
               right: float = 0.2, bottom: float = 0.62, top: float = 0.2, wgap: float = 0.75,
               hgap: float = 0.75, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes (an array when ``nrows * ncols > 1``).

    ``layout="fixed"`` (the default) places the axes by margins and gaps given in inches,
    sized for the tick labels and axis labels a figure holds (``left`` grows with long
    y tick labels, see :func:`label_width`). matplotlib's ``constrained`` layout finds them
    itself but draws every figure twice, which triples the time a run's report takes; it is
    kept for the figures whose labels cannot be sized in advance (``layout="constrained"``).
    """
    from matplotlib.figure import Figure

    if layout == "fixed":
        fig = Figure(figsize=(width, height), dpi=DPI)
        _place(fig, nrows, ncols, {"left": left, "right": right, "bottom": bottom, "top": top,
                                   "wgap": wgap, "hgap": hgap})
    else:
        fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    axes = fig.subplots(nrows, ncols, squeeze=True, **kwargs)
    return fig, axes


def _place(fig: Figure, nrows: int, ncols: int, m: dict[str, float]) -> None:
    width, height = fig.get_size_inches()
    axes_w = max(width - m["left"] - m["right"] - (ncols - 1) * m["wgap"], 0.5) / ncols
    axes_h = max(height - m["top"] - m["bottom"] - (nrows - 1) * m["hgap"], 0.5) / nrows
    fig.subplots_adjust(left=m["left"] / width, right=1 - m["right"] / width,
                        bottom=m["bottom"] / height, top=1 - m["top"] / height,
                        wspace=m["wgap"] / axes_w, hspace=m["hgap"] / axes_h)


def _fixed_grid(fig: Figure) -> tuple[int, int, dict[str, float]] | None:
    """Rows, columns and margins in inches of a fixed-layout figure (None for the others)."""
    if fig.get_layout_engine() is not None or not fig.axes:
        return None
    spec = fig.axes[0].get_subplotspec()
    if spec is None:
        return None
    nrows, ncols = spec.get_gridspec().get_geometry()
    width, height = fig.get_size_inches()
    p = fig.subplotpars
    axes_w = width * (p.right - p.left) / (ncols + (ncols - 1) * p.wspace)
    axes_h = height * (p.top - p.bottom) / (nrows + (nrows - 1) * p.hspace)
    return nrows, ncols, {"left": p.left * width, "right": (1 - p.right) * width,
                          "bottom": p.bottom * height, "top": (1 - p.top) * height,
                          "wgap": p.wspace * axes_w, "hgap": p.hspace * axes_h}


def fit_margins(fig: Figure) -> None:
    """Widen a fixed layout's left margin and column gap to the y tick labels it will draw.

    The labels come from each axis's locator and formatter at its final limits, without
    drawing; the y label, when there is one, adds its line. Margins never shrink.
    """
    grid = _fixed_grid(fig)
    if grid is None:
        return
    nrows, ncols, margins = grid
    need_first, need_other = 0.0, 0.0
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if not ax.get_visible() or spec is None:
            continue
        if not ax.yaxis.get_tick_params().get("labelleft", True):
            continue
        lo, hi = sorted(ax.get_ylim())
        locs = [v for v in ax.yaxis.get_major_locator()() if lo <= v <= hi]
        labels = ax.yaxis.get_major_formatter().format_ticks(locs) if locs else []
        need = label_width(labels, 0.2) + (0.3 if ax.get_ylabel() else 0.0)
        if spec.is_first_col():
            need_first = max(need_first, need)
        else:
            need_other = max(need_other, need)
    changed = dict(margins)
    changed["left"] = max(margins["left"], need_first)
    if ncols > 1:
        changed["wgap"] = max(margins["wgap"], need_other + 0.15)
    if any(changed[k] > margins[k] + 1e-9 for k in margins):
        _place(fig, nrows, ncols, changed)


def label_width(labels: Sequence[str], extra: float = 0.3) -> float:
    """Inches for a column of tick labels (plus ``extra`` for ticks and padding)."""
    return CHAR_IN * max((len(str(lab)) for lab in labels), default=0) + extra


def to_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, with no timestamped metadata."""
    buf = io.BytesIO()
    # zlib level 1: a third faster than the default 6, for 10% more bytes
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None},
                pil_kwargs={"compress_level": 1})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# Figures drawn lately, by what they were drawn from: a report rewritten while a run trains
# (report/live.py) draws again only the figures whose data changed since the last refresh.
CACHE_SIZE = 32
CACHE_MAX_BYTES = 8 << 20  # data larger than this, pickled, is drawn again rather than hashed
_drawn: OrderedDict[tuple[str, Callable[..., Any], str], Any] = OrderedDict()


def _digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A digest of a builder's arguments and the report style; None for data that cannot be
    pickled or is too large to hash cheaply."""
    try:
        data = pickle.dumps((args, sorted(kwargs.items()), DPI, sorted(STYLE.items())),
                            protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any unpicklable argument: the figure is just drawn
        return None
    if len(data) > CACHE_MAX_BYTES:
        return None
    return hashlib.sha256(data).hexdigest()


def _cached(kind: str, builder: Callable[..., Any], args: tuple[Any, ...],
            kwargs: dict[str, Any], draw: Callable[[], Any]) -> Any:
    digest = _digest(args, kwargs)
    if digest is None:
        return draw()
    key = (kind, builder, digest)  # the builder itself: a replaced function is drawn anew
    if key in _drawn:
        _drawn.move_to_end(key)
        return _drawn[key]
    value = draw()
    _drawn[key] = value
    while len(_drawn) > CACHE_SIZE:
        _drawn.popitem(last=False)
    return value


def render(builder: Callable[..., Figure], *args: Any, **kwargs: Any) -> str:
    """Build a figure under the report style and return its PNG data URI (the one drawn before
    when the same builder got equal arguments lately: the same data gives the same bytes)."""
    return str(_cached("render", builder, args, kwargs, lambda: _render(builder, args, kwargs)))


def _render(builder: Callable[..., Figure], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = builder(*args, **kwargs)
        fit_margins(fig)
        return to_data_uri(fig)


def render_panels(builder: Callable[..., Figure], *args: Any, **kwargs: Any) -> list[str]:
    """Build a figure of several panels and return one PNG data URI per visible panel.

    The figure is drawn once; each panel is cut out of the drawing along its tight bounding box
    (its tick labels, title and legend included), so that a page can lay the panels side by
    side on a wide screen and stack them on a phone. A figure of one panel gives one URI.
    Like :func:`render`, equal arguments drawn lately give the URIs drawn then.
    """
    return list(_cached("panels", builder, args, kwargs,
                        lambda: tuple(_render_panels(builder, args, kwargs))))


def _render_panels(builder: Callable[..., Figure], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> list[str]:
    import matplotlib
    import matplotlib.style
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = builder(*args, **kwargs)
        fit_margins(fig)
        fig.set_dpi(DPI)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())
        renderer = canvas.get_renderer()
        height, width = pixels.shape[:2]
        uris = []
        for ax in fig.axes:
            if not ax.get_visible() or not ax.has_data() and not ax.texts:
                continue
            box = ax.get_tightbbox(renderer)
            if box is None:
                continue
            pad = 4
            x0, x1 = max(int(box.x0) - pad, 0), min(int(np.ceil(box.x1)) + pad, width)
            y0, y1 = max(int(height - box.y1) - pad, 0), min(int(np.ceil(height - box.y0)) + pad,
                                                             height)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            buf = io.BytesIO()
            Image.fromarray(pixels[y0:y1, x0:x1, :3]).save(buf, format="png", compress_level=1)
            uris.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
        return uris


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



def _plain_number(value: float, _pos: Any = None) -> str:
    return f"{value:g}"


def log_scale(ax: Axes, axis: str = "y") -> None:
    """A log axis labelled with plain numbers (0.001, 0.01 ... 1e-05) instead of mathtext
    powers of ten, whose parsing costs more than the rest of the panel."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_formatter(FuncFormatter(_plain_number))
    target.set_minor_formatter(NullFormatter())


def panel_title(ax: Axes, text: str, fontsize: float = 12) -> None:
    """A title above a panel, placed directly (``set_title`` measures every tick label to
    dodge them, which costs more than drawing the panel)."""
    ax.text(0.5, 1.03, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=fontsize)


def epoch_axis(ax: Axes, label: str = "epoch") -> None:
    """An x axis of whole epochs."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)
