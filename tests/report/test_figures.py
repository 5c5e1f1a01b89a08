"""Figure plumbing: the moving average against pandas, PNG bytes without timestamps."""

from __future__ import annotations

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
