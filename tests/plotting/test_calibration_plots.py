"""Calibration plots draw what the evaluation functions computed."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.util import Surv

from survseg.evaluation.calibration import calibration_at_horizon, d_calibration
from survseg.plotting import plot_calibration, plot_d_calibration


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    rate = 0.1 * np.exp(0.8 * x)
    t_event, t_cens = rng.exponential(1 / rate), rng.exponential(15.0, size=400)
    y = Surv.from_arrays(t_event <= t_cens, np.minimum(t_event, t_cens))
    return y, rate


def test_plot_calibration_points_are_the_groups(cohort, check_png):
    y, rate = cohort
    good = calibration_at_horizon(y, np.exp(-rate * 8.0), 8.0)
    bad = calibration_at_horizon(y, np.exp(-2 * rate * 8.0), 8.0)
    fig = plot_calibration([good, bad], label=["exact", "hazard x2"], time_label="months")
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    np.testing.assert_allclose(lines[0].get_xdata(), good.predicted)
    np.testing.assert_allclose(lines[0].get_ydata(), good.observed)
    np.testing.assert_allclose(lines[1].get_xdata(), bad.predicted)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"ECE {good.ece:.3f}" in t for t in texts)
    assert "t = 8 months" in ax.get_title()
    check_png(fig, "calibration")
    with pytest.raises(ValueError, match="different horizons"):
        plot_calibration([good, calibration_at_horizon(y, np.exp(-rate * 4.0), 4.0)])


def test_plot_d_calibration_bars_are_the_histogram(cohort, check_png):
    y, rate = cohort
    res = d_calibration(y, np.exp(-rate * y["time"]))
    fig = plot_d_calibration(res, title="exact model")
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, res.proportions)
    check_png(fig, "d_calibration")
