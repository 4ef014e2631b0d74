"""Kaplan–Meier risk-group plot and its log-rank test, against scikit-survival and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2
from sksurv.compare import compare_survival
from sksurv.datasets import load_veterans_lung_cancer, load_whas500
from sksurv.util import Surv

from survseg.plotting import logrank_risk_groups, plot_risk_groups


def _logrank_by_hand(event, time, group):
    """Two-sample log-rank chi-square (Mantel–Haenszel variance), textbook formula."""
    o_minus_e, var = 0.0, 0.0
    for t in np.unique(time[event]):
        at_risk = time >= t
        n, n1 = at_risk.sum(), (at_risk & group).sum()
        d = (event & (time == t)).sum()
        d1 = (event & (time == t) & group).sum()
        o_minus_e += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    stat = o_minus_e**2 / var
    return stat, chi2.sf(stat, 1)


def _km_by_hand(event, time):
    """Product-limit estimate at the distinct times."""
    times = np.unique(time)
    s, out = 1.0, []
    for t in times:
        n = (time >= t).sum()
        d = (event & (time == t)).sum()
        s *= 1 - d / n
        out.append(s)
    return times, np.array(out)


@pytest.fixture(scope="module")
def whas():
    X, y = load_whas500()
    rng = np.random.default_rng(0)
    train = rng.permutation(len(y))[:250]
    test = np.setdiff1d(np.arange(len(y)), train)
    risk = X["age"].to_numpy(dtype=float) + 10.0 * X["chf"].astype(float).to_numpy()
    return y, risk, train, test


def test_logrank_matches_sksurv_and_hand_formula(whas):
    y, risk, train, test = whas
    threshold = np.median(risk[train])  # the papers' protocol: cut at the training median
    result = logrank_risk_groups(y[test], risk[test], threshold)
    high = risk[test] > threshold
    np.testing.assert_array_equal(result.high_risk, high)
    chisq, p = compare_survival(y[test], high)
    assert result.p_value == pytest.approx(p, rel=1e-12)
    assert result.chisq == pytest.approx(chisq, rel=1e-12)
    event, time = y[test]["fstat"], y[test]["lenfol"]
    hand_stat, hand_p = _logrank_by_hand(event, time, high)
    assert result.chisq == pytest.approx(hand_stat, rel=1e-8)
    assert result.p_value == pytest.approx(hand_p, rel=1e-6)


def test_default_threshold_is_median_of_risk():
    X, y = load_veterans_lung_cancer()
    risk = X["Karnofsky_score"].to_numpy(dtype=float) * -1.0
    result = logrank_risk_groups(y, risk)
    assert result.threshold == np.median(risk)
    np.testing.assert_array_equal(result.high_risk, risk > np.median(risk))


def test_plot_shows_sksurv_pvalue_and_km_curves(whas, check_png):
    y, risk, train, test = whas
    threshold = np.median(risk[train])
    fig = plot_risk_groups(y[test], risk[test], threshold, time_label="Days")
    ax = fig.axes[0]
    _, p = compare_survival(y[test], risk[test] > threshold)
    title = ax.get_legend().get_title().get_text()
    assert (f"p = {p:.3f}" if p >= 1e-3 else "p < 0.001") in title
    # the two step curves are the product-limit estimates of the two groups, from (0, 1)
    event, time = y[test]["fstat"], y[test]["lenfol"]
    curves = [line for line in ax.lines if line.get_drawstyle() == "steps-post"]
    assert len(curves) == 2
    for line, members in zip(curves, (risk[test] <= threshold, risk[test] > threshold)):
        t, s = _km_by_hand(event[members], time[members])
        np.testing.assert_allclose(line.get_xdata(), np.r_[0.0, t])
        np.testing.assert_allclose(line.get_ydata(), np.r_[1.0, s], atol=1e-12)
    # confidence bands: one filled area per group
    assert len(ax.collections) >= 2
    check_png(fig, "km")


def test_number_at_risk_row(check_png):
    event = np.array([True, False, True, True, False, True, True, False])
    time = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0])
    y = Surv.from_arrays(event, time)
    risk = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    fig = plot_risk_groups(y, risk, threshold=4.5, conf_int=False)
    ax = fig.axes[0]
    ticks = ax.get_xticks()
    texts = [t for t in ax.texts if t.get_text().isdigit()]
    assert len(texts) == 2 * len(ticks)
    high = risk > 4.5
    expected = [int((time[m] >= tk).sum()) for m in (~high, high) for tk in ticks]
    assert [int(t.get_text()) for t in texts] == expected
    check_png(fig, "km_small")


def test_draws_into_given_axes():
    import matplotlib.pyplot as plt

    X, y = load_veterans_lung_cancer()
    fig, (a, b) = plt.subplots(1, 2)
    out = plot_risk_groups(y, X["Age_in_years"].to_numpy(dtype=float), ax=b, at_risk=False)
    assert out is fig and len(b.lines) > 0 and len(a.lines) == 0


def test_one_sided_split_is_an_error():
    y = Surv.from_arrays([True, False, True], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same side"):
        logrank_risk_groups(y, [1.0, 2.0, 3.0], threshold=5.0)


def test_bad_risk_is_an_error():
    y = Surv.from_arrays([True, False, True], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one value per patient"):
        logrank_risk_groups(y, [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        logrank_risk_groups(y, [1.0, np.nan, 2.0])
    with pytest.raises(TypeError, match="survival array"):
        logrank_risk_groups(np.array([1.0, 2.0, 3.0]), [1.0, 2.0, 3.0])
