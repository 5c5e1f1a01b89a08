"""Figure plumbing: the moving average against pandas, PNG bytes without timestamps."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest

from trainwell.report.figures import moving_average, new_figure, render, smoothing_window
from trainwell.report.html import fmt, png_size


@pytest.mark.parametrize("window", [1, 3, 7])
def test_moving_average_matches_pandas_rolling(window):
    values = list(np.random.default_rng(0).normal(size=25))
    expected = pd.Series(values).rolling(window, min_periods=1).mean().tolist()
    np.testing.assert_allclose(moving_average(values, window), expected, rtol=1e-12)


def test_moving_average_skips_non_finite_and_rejects_bad_window():
    assert moving_average([1.0, math.nan, 3.0], 2) == [1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="window must be >= 1; got 0"):
        moving_average([1.0], 0)


def test_smoothing_window_is_a_tenth_of_the_run_at_least_three():
    assert [smoothing_window(n) for n in (1, 3, 10, 50, 200)] == [1, 3, 3, 5, 20]


def _line():
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3.0, 1.0, 2.0], label="x")
    ax.legend()
    return fig


def test_png_is_byte_identical_and_has_no_software_chunk():
    import base64

    a, b = render(_line), render(_line)
    assert a == b
    raw = base64.b64decode(a.split(",", 1)[1])
    assert b"Software" not in raw and b"matplotlib" not in raw
    # 5.2 x 3.4 inches at 110 dpi
    assert png_size(a) == (572, 374)


def test_fmt_is_short_and_stable():
    assert [fmt(v) for v in (None, True, 3, 0.123456, 1.5e-5, 2.5e6, float("nan"))] == [
        "–", "yes", "3", "0.1235", "1.500e-05", "2.500e+06", "nan"]


def _clipped_texts(builder, *args):
    """Where the drawn artists of a figure ``render`` would save overflow the image, in inches."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from trainwell.report.figures import STYLE, fit_margins

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = builder(*args)
        fit_margins(fig)
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        drawn = fig.get_tightbbox(renderer)  # every label, tick label, title and legend drawn
        width, height = fig.get_size_inches()
        tol = 0.02
        over = {"left": -drawn.x0, "bottom": -drawn.y0, "right": drawn.x1 - width,
                "top": drawn.y1 - height}
        return {side: round(v, 2) for side, v in over.items() if v > tol}


def test_run_figures_keep_every_label_inside_the_image(iris_run):
    """The fixed layout's margins are sized from the labels: nothing is cut off."""
    from trainwell.report import run_figures as rf
    from trainwell.report.run_report import layer_snapshots
    from trainwell.report.rundata import load_run

    run = load_run(iris_run)
    snaps, _ = layer_snapshots(run)
    assert _clipped_texts(rf.curves_figure, run, rf.metric_groups(run)) == {}
    assert _clipped_texts(rf.lr_figure, run) == {}
    assert _clipped_texts(rf.layer_bars_figure, snaps, list(rf.LAYER_STATS)) == {}
    assert _clipped_texts(rf.layer_epochs_figure, run.stats, ["grad_norm", "act_std"]) == {}
    # long tick labels: tiny learning rates, long layer names, small-valued panels side by side
    run.metrics = [{"epoch": e, "lr": 1.04e-3 - 1e-5 * (e % 9)} for e in range(1, 30)]
    assert _clipped_texts(rf.lr_figure, run) == {}
    long = [(lab, {f"encoder.block{i}.attention_out": stats for i, stats in enumerate(t.values())})
            for lab, t in snaps]
    assert _clipped_texts(rf.layer_bars_figure, long, list(rf.LAYER_STATS)) == {}
    metrics = [{"epoch": e, "val_mae": 1e-4 * e + 1.23456, "val_rmse": 1234.5 + e, "val_r2": -e}
               for e in range(1, 20)]
    run.metrics = metrics
    assert _clipped_texts(rf.curves_figure, run, rf.metric_groups(run)) == {}


def test_fixed_layout_left_margin_grows_with_the_labels():
    from trainwell.report.figures import fit_margins

    fig, ax = new_figure()
    ax.plot([1, 2], [1.0, 2.0])
    fit_margins(fig)
    narrow = fig.subplotpars.left
    fig, ax = new_figure()
    ax.plot([1, 2], [0.000101, 0.000104])
    ax.set_ylabel("learning rate")
    fit_margins(fig)
    assert fig.subplotpars.left > narrow


def test_a_figure_drawn_lately_from_equal_data_is_not_drawn_again():
    """A live report rewritten every few epochs draws again only the figures whose data
    changed: equal arguments give the URIs drawn before, without calling the builder."""
    from trainwell.report.figures import render_panels

    built = []

    def two_panels(values, title="t", note=None):
        built.append(list(values))
        fig, axes = new_figure(6.0, 2.5, 1, 2)
        for ax in axes:
            ax.plot(values)
            ax.set_title(title)
        return fig

    first = render_panels(two_panels, [1.0, 2.0, 3.0])
    assert render_panels(two_panels, [1.0, 2.0, 3.0]) == first and len(built) == 1
    changed = render_panels(two_panels, [1.0, 2.0, 4.0])  # one value more: drawn again
    assert changed != first and len(built) == 2
    assert render_panels(two_panels, [1.0, 2.0, 3.0], title="u") != first and len(built) == 3
    single = render(two_panels, np.arange(3.0))
    assert render(two_panels, np.arange(3.0)) == single and len(built) == 4
    render(two_panels, [1.0], note=lambda: 0)  # arguments that cannot be pickled: drawn each time
    render(two_panels, [1.0], note=lambda: 0)
    assert len(built) == 6

    @functools.wraps(two_panels)
    def spy(*args, **kwargs):  # a replaced builder of the same name is drawn anew
        return two_panels(*args, **kwargs)

    assert render_panels(spy, [1.0, 2.0, 3.0]) == first and len(built) == 7
