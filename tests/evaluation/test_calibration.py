"""Calibration metrics against analytic cases, hand counts and scikit-survival."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sksurv.functions import StepFunction
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_ipcw
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from survseg.evaluation.benchmark import benchmark
from survseg.evaluation.calibration import (
    calibration_at_horizon,
    calibration_slope,
    d_calibration,
    survival_at,
)
from survseg.evaluation.metrics import concordance_index_uno
from tests.conftest import MeanUptake, sphere_cohort


def _exponential_cohort(n=2000, seed=0):
    """Exponential event times with rate 0.1 exp(0.8 x), independent exponential censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    rate = 0.1 * np.exp(0.8 * x)
    t_event = rng.exponential(1 / rate)
    t_cens = rng.exponential(15.0, size=n)
    y = Surv.from_arrays(t_event <= t_cens, np.minimum(t_event, t_cens))
    return y, rate


def test_d_calibration_by_hand():
    # 4 bins; events at S = 0.15 (bin 0), 0.6 (bin 2), 1.0 (top bin by convention);
    # censored at S = 0.5: (0.5 - 0.5)/0.5 = 0 to bin 2 and 0.25/0.5 to bins 0 and 1;
    # censored at S = 0.3: (0.3 - 0.25)/0.3 = 1/6 to bin 1 and 0.25/0.3 = 5/6 to bin 0;
    # censored at S = 0: 1 to bin 0.
    y = Surv.from_arrays([True, True, True, False, False, False], [1, 2, 3, 4, 5, 6])
    res = d_calibration(y, [0.15, 0.6, 1.0, 0.5, 0.3, 0.0], n_bins=4)
    expected = np.array([1 + 0.5 + 5 / 6 + 1, 0.5 + 1 / 6, 1.0, 1.0])
    np.testing.assert_allclose(res.counts, expected)
    assert res.counts.sum() == pytest.approx(6)
    stat = ((expected - 1.5) ** 2 / 1.5).sum()
    assert res.statistic == pytest.approx(stat)
    from scipy.stats import chi2

    assert res.p_value == pytest.approx(chi2.sf(stat, 3))
    np.testing.assert_allclose(res.edges, [0, 0.25, 0.5, 0.75, 1])


def test_d_calibration_exact_model_is_uniform_and_wrong_models_are_not():
    y, rate = _exponential_cohort()
    t = y["time"]
    exact = d_calibration(y, np.exp(-rate * t))
    assert exact.p_value > 0.05
    np.testing.assert_allclose(exact.proportions, 0.1, atol=0.02)
    # twice the true hazard: S(T) piles up near 0
    assert d_calibration(y, np.exp(-2 * rate * t)).p_value < 1e-10
    # no covariate effect (the marginal rate): a different miss
    assert d_calibration(y, np.exp(-rate.mean() * t)).p_value < 1e-3


def test_survival_at_evaluates_step_functions_at_own_times():
    fns = [
        StepFunction(np.array([1.0, 2.0, 3.0]), np.array([0.9, 0.5, 0.2])),
        StepFunction(np.array([1.0, 2.0, 3.0]), np.array([0.8, 0.4, 0.1])),
    ]
    np.testing.assert_allclose(survival_at(fns, [2.5, 0.5]), [0.5, 0.8])
    np.testing.assert_allclose(survival_at(fns, 7.0), [0.2, 0.1])  # held after the last step
    y = Surv.from_arrays([True, False], [2.5, 3.0])
    np.testing.assert_allclose(d_calibration(y, fns).counts, d_calibration(y, [0.5, 0.1]).counts)


def test_horizon_calibration_uses_kaplan_meier_per_group():
    y, rate = _exponential_cohort(n=600, seed=1)
    horizon = 8.0
    pred = np.exp(-rate * horizon)
    cal = calibration_at_horizon(y, pred, horizon, n_groups=4)
    assert cal.n_patients.sum() == 600 and np.all(cal.n_patients == 150)
    assert np.all(np.diff(cal.predicted) > 0)
    for g in range(4):
        m = cal.group == g
        t, s, ci = kaplan_meier_estimator(y["event"][m], y["time"][m], conf_type="log-log")
        i = np.searchsorted(t, horizon, side="right") - 1
        assert cal.observed[g] == pytest.approx(s[i])
        assert cal.observed_low[g] == pytest.approx(ci[0][i])
        assert cal.observed_high[g] == pytest.approx(ci[1][i])
        assert cal.predicted[g] == pytest.approx(pred[m].mean())
    ece = np.sum(cal.n_patients / 600 * np.abs(cal.predicted - cal.observed))
    assert cal.ece == pytest.approx(ece)
    # the exact model is calibrated within the sampling error of 150-patient groups
    assert np.all((cal.observed_low <= cal.predicted) & (cal.predicted <= cal.observed_high))


def test_calibration_slope_analytic_cases():
    y, rate = _exponential_cohort()
    horizon = 8.0
    # exact model: slope 1; a shifted hazard is a level error, not a slope error
    assert calibration_slope(y, np.exp(-rate * horizon), horizon) == pytest.approx(1, abs=0.1)
    assert calibration_slope(y, np.exp(-2 * rate * horizon), horizon) == pytest.approx(1, abs=0.1)
    # log-hazards doubled (over-fitted): slope 1/2; halved: slope 2
    over = np.exp(-0.1 * (rate / 0.1) ** 2 * horizon)
    assert calibration_slope(y, over, horizon) == pytest.approx(0.5, abs=0.06)
    under = np.exp(-0.1 * np.sqrt(rate / 0.1) * horizon)
    assert calibration_slope(y, under, horizon) == pytest.approx(2, abs=0.25)
    assert np.isnan(calibration_slope(y, np.full(len(y), 0.5), horizon))


def test_calibration_errors_name_the_problem():
    y = Surv.from_arrays([True, False, True], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="patient 1 has 1.5"):
        d_calibration(y, [0.2, 1.5, 0.3])
    with pytest.raises(ValueError, match="3 values but y has 2"):
        d_calibration(y[:2], [0.2, 0.5, 0.3])
    with pytest.raises(ValueError, match="after the last follow-up"):
        calibration_at_horizon(y, [0.2, 0.5, 0.3], 5.0, n_groups=1)
    with pytest.raises(ValueError, match="n_groups"):
        calibration_at_horizon(y, [0.2, 0.5, 0.3], 2.0, n_groups=4)
    with pytest.raises(ValueError, match="n_bins"):
        d_calibration(y, [0.2, 0.5, 0.3], n_bins=1)


def test_uno_matches_sksurv():
    y, rate = _exponential_cohort(n=300, seed=2)
    risk = np.log(rate) + np.random.default_rng(0).normal(size=300)
    tau = np.percentile(y["time"][y["event"]], 80)
    ref = concordance_index_ipcw(y[:200], y[200:], risk[200:], tau=tau)[0]
    assert concordance_index_uno(y[:200], y[200:], risk[200:], tau=tau) == ref
    with pytest.raises(ValueError, match="NaN"):
        concordance_index_uno(y, y, np.full(300, np.nan))


def _features(X):
    m = np.asarray(X["mask"], dtype=bool)
    return m.sum(axis=(1, 2, 3), keepdims=False)[:, None].astype(float)


def test_benchmark_calibration_columns():
    X, y = sphere_cohort(n=30, seed=3)
    models = {
        "cox": make_pipeline(FunctionTransformer(_features), CoxPHSurvivalAnalysis(alpha=1e-2)),
        "uptake": MeanUptake(),  # no survival functions
    }
    res = benchmark(models, X, y, cv=3, n_bootstrap=50, random_state=0)
    table = res.table.set_index("model")
    horizon = res.table.attrs["calibration_horizon"]
    assert horizon == pytest.approx(np.median(y["time"][y["event"]]))
    # the same numbers from the out-of-fold curves, fold by fold, by hand
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    own, at_h, risk = np.empty(30), np.empty(30), np.empty(30)
    for train, test in cv.split(X, y["event"]):
        model = models["cox"].fit(X[train], y[train])
        fns = model.predict_survival_function(X[test])
        own[test] = [fn(np.clip(t, *fn.domain)) for fn, t in zip(fns, y["time"][test])]
        at_h[test] = [fn(np.clip(horizon, *fn.domain)) for fn in fns]
        risk[test] = model.predict(X[test])
    assert table.loc["cox", "dcal_p"] == pytest.approx(d_calibration(y, own).p_value)
    cal = calibration_at_horizon(y, at_h, horizon)
    assert table.loc["cox", "ece"] == pytest.approx(cal.ece)
    assert table.loc["cox", "calibration_slope"] == pytest.approx(cal.slope)
    tau = np.percentile(y["time"][y["event"]], 80)
    assert table.loc["cox", "cindex_uno"] == pytest.approx(
        concordance_index_ipcw(y, y, risk, tau=tau)[0], rel=1e-6
    )
    assert np.isfinite(table.loc["uptake", "cindex_uno"])
    for col in ("dcal_p", "ece", "calibration_slope"):
        assert np.isnan(table.loc["uptake", col])


def test_benchmark_test_cohort_uno():
    X, y = sphere_cohort(n=30, seed=3)
    X_test, y_test = sphere_cohort(n=12, seed=5)
    keep = y_test["time"] <= y["time"].max()  # IPCW needs test times inside the training ones
    X_test, y_test = X_test[keep], y_test[keep]
    res = benchmark(
        {"uptake": MeanUptake()}, X, y, cv=3, X_test=X_test, y_test=y_test, n_bootstrap=20
    )
    ens = res.predictions.query("set == 'test'")["risk"].to_numpy()
    tau = np.percentile(y["time"][y["event"]], 80)
    ref = concordance_index_ipcw(y, y_test, ens, tau=tau)[0]
    assert res.table.loc[0, "test_cindex_uno"] == pytest.approx(ref)
