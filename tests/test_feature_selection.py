"""Survival-aware selectors, checked against scikit-survival's Cox model and log-rank test."""

from __future__ import annotations

import pickle
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_selection import SelectFdr, SelectKBest, SelectPercentile
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.compare import compare_survival
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import CoxPHOptimizer
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from survseg.feature_selection import (
    CoxPValueSelector,
    concordance_score,
    cox_score_test,
    univariate_cox,
)


@pytest.fixture(scope="module")
def whas():
    X, y = load_whas500()
    return X[["age", "bmi", "hr", "sysbp", "diasbp"]].astype(float), y


def _sksurv_tests(x, y, ties):
    """Score, Wald and LR statistics from scikit-survival's own likelihood, gradient, Hessian."""
    event, time = y["fstat"], y["lenfol"]
    n = len(y)
    coef = CoxPHSurvivalAnalysis(ties=ties).fit(x, y).coef_
    opt = CoxPHOptimizer(x, event, time, np.zeros(1), ties)
    opt.update(np.zeros(1))  # gradient and Hessian of the mean negative log-likelihood
    score = n * opt.gradient[0] ** 2 / opt.hessian[0, 0]
    opt.update(coef)
    info = n * opt.hessian[0, 0]
    lr = 2 * n * (opt.nlog_likelihood(np.zeros(1)) - opt.nlog_likelihood(coef))
    return coef[0], 1 / np.sqrt(info), score, coef[0] ** 2 * info, lr


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_univariate_cox_matches_sksurv_on_whas500(whas, ties):
    X, y = whas
    fit = univariate_cox(X, y, ties=ties)
    stat, p = cox_score_test(X, y, ties=ties)
    assert fit.converged.all()
    for j, col in enumerate(X.columns):
        coef, se, score, wald, lr = _sksurv_tests(X[[col]].to_numpy(), y, ties)
        assert fit.coef[j] == pytest.approx(coef, rel=1e-8, abs=1e-10)
        assert fit.se[j] == pytest.approx(se, rel=1e-8)
        assert fit.score[j] == pytest.approx(score, rel=1e-10)
        assert stat[j] == pytest.approx(score, rel=1e-10)
        assert fit.wald[j] == pytest.approx(wald, rel=1e-8)
        assert fit.likelihood_ratio[j] == pytest.approx(lr, rel=1e-8)
    from scipy.stats import chi2

    np.testing.assert_allclose(p, chi2.sf(stat, 1))


def test_score_test_of_a_binary_feature_is_the_logrank_test():
    rng = np.random.default_rng(3)
    n = 60
    group = rng.integers(0, 2, n)
    time = rng.exponential(1.0 / (1.0 + group))  # continuous: no tied event times
    event = rng.random(n) < 0.7
    y = Surv.from_arrays(event, time)
    chisq, pval = compare_survival(y, group)
    for ties in ("breslow", "efron"):  # identical without ties
        stat, p = cox_score_test(group[:, None], y, ties=ties)
        assert stat[0] == pytest.approx(chisq, rel=1e-10)
        assert p[0] == pytest.approx(pval, rel=1e-8)


def test_concordance_score_matches_sksurv_and_sign(whas):
    X, y = whas
    signed = concordance_score(X, y, signed=True)
    for j, col in enumerate(X.columns):
        c = concordance_index_censored(y["fstat"], y["lenfol"], X[col].to_numpy())[0]
        assert signed[j] == pytest.approx(c - 0.5, abs=1e-14)
    np.testing.assert_allclose(concordance_score(X, y), np.abs(signed))
    assert signed[0] > 0  # age: older, earlier death


def test_constant_feature_scores_nothing(whas):
    X, y = whas
    X = X.assign(const=3.0)
    stat, p = cox_score_test(X, y)
    assert stat[-1] == 0 and p[-1] == 1
    assert concordance_score(X, y)[-1] == 0
    fit = univariate_cox(X, y)
    assert np.isnan(fit.coef[-1]) and fit.wald[-1] == 0 and fit.likelihood_ratio[-1] == 0


def test_selectkbest_with_structured_y_in_a_pipeline(whas):
    """scikit-learn 1.9's SelectKBest passes the structured y on: no wrapper needed."""
    X, y = whas
    for score in (concordance_score, cox_score_test, partial(concordance_score, signed=True)):
        pipe = make_pipeline(
            StandardScaler(), SelectKBest(score, k=2), CoxPHSurvivalAnalysis()
        ).set_output(transform="pandas")
        pipe.fit(X, y)
        assert pipe[:-1].get_feature_names_out().shape == (2,)
        assert 0.5 < pipe.score(X, y) < 1
    stat, _ = cox_score_test(X, y)
    kept = SelectPercentile(cox_score_test, percentile=40).fit(X, y).get_feature_names_out()
    assert set(kept) == set(X.columns[np.argsort(stat)[-2:]])
    grid = GridSearchCV(
        make_pipeline(SelectKBest(cox_score_test), CoxPHSurvivalAnalysis()),
        {"selectkbest__k": [1, 3]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert grid.best_params_["selectkbest__k"] in (1, 3)


def test_selector_against_hand_thresholds(whas):
    X, y = whas
    fit = univariate_cox(X, y)
    for test, p in (("wald", fit.wald_p), ("likelihood_ratio", fit.likelihood_ratio_p)):
        sel = CoxPValueSelector(alpha=1e-3, test=test).fit(X, y)
        np.testing.assert_allclose(sel.pvalues_, p)
        np.testing.assert_array_equal(sel.get_support(), p <= 1e-3)
        np.testing.assert_allclose(sel.coef_, fit.coef)
    sel = CoxPValueSelector(alpha=0.05).fit(X, y)
    assert sel.coef_ is None
    np.testing.assert_allclose(sel.pvalues_, fit.score_p)
    # Bonferroni and Benjamini-Hochberg as scikit-learn's SelectFwe / SelectFdr compute them
    bonf = CoxPValueSelector(alpha=1e-8, correction="bonferroni").fit(X, y)
    np.testing.assert_array_equal(bonf.get_support(), fit.score_p <= 1e-8 / 5)
    bh = CoxPValueSelector(alpha=0.01, correction="fdr_bh").fit(X, y)
    np.testing.assert_array_equal(
        bh.get_support(), SelectFdr(cox_score_test, alpha=0.01).fit(X, y).get_support()
    )
    assert list(sel.get_feature_names_out()) == list(X.columns[fit.score_p <= 0.05])


def test_selector_min_features_and_conventions(whas):
    X, y = whas
    noise = pd.DataFrame(np.random.default_rng(0).normal(size=(len(X), 3)), columns=list("abc"))
    with pytest.warns(UserWarning, match="keeping the 1"):
        sel = CoxPValueSelector(alpha=1e-12).fit(noise, y)
    assert sel.get_support().sum() == 1
    assert sel.get_support()[np.argmin(sel.pvalues_)]
    assert CoxPValueSelector(alpha=1e-12, min_features=0).fit(noise, y).get_support().sum() == 0
    sel = CoxPValueSelector(test="wald")
    assert clone(sel).get_params() == sel.get_params()
    fitted = pickle.loads(pickle.dumps(sel.fit(X, y)))
    np.testing.assert_array_equal(fitted.transform(X), sel.transform(X))
    with pytest.raises(ValueError, match="alpha"):
        CoxPValueSelector(alpha=0).fit(X, y)
    with pytest.raises(ValueError, match="test"):
        CoxPValueSelector(test="t").fit(X, y)


def test_bad_input_names_feature_and_patient(whas):
    X, y = whas
    X = X.copy()
    X.iloc[7, 2] = np.nan
    with pytest.raises(ValueError, match="feature hr .* patient 7"):
        cox_score_test(X, y)
    with pytest.raises(ValueError, match="feature hr .* patient 7"):
        CoxPValueSelector().fit(X, y)
    with pytest.raises(TypeError, match="survival array"):
        concordance_score(X.fillna(0), y["lenfol"])
    with pytest.raises(ValueError, match="ties"):
        cox_score_test(X.fillna(0), y, ties="exact")


def _as_survival(y):
    from scipy.stats import rankdata

    y = np.real(np.asarray(y)).astype(float).ravel()
    return Surv.from_arrays(np.arange(len(y)) % 4 != 3, rankdata(y))


class _NumericYSelector(CoxPValueSelector):
    """CoxPValueSelector fed survival outcomes made from the generic checks' numeric y."""

    def fit(self, X, y):
        return super().fit(X, None if y is None else _as_survival(y))


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks([_NumericYSelector(min_features=1)])
def test_sklearn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # min_features' warning on noise data
        check(estimator)
