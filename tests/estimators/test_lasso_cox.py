"""LassoCoxCV (the tabular stage of RadiomicsCox) against scikit-survival and sklearn's checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from survseg.estimators.lasso_cox import LassoCoxCV


def as_survival(y):
    """Numeric targets of sklearn's generic checks -> a survival array (times = ranks)."""
    y = np.real(np.asarray(y)).astype(float).ravel()
    event = np.arange(len(y)) % 4 != 3
    return Surv.from_arrays(event, rankdata(y))


class NumericYLassoCoxCV(LassoCoxCV):
    """LassoCoxCV fed survival outcomes made from the checks' numeric y, so the generic
    checks (pickling, idempotence, dtypes, memmaps, ...) exercise the real fit/predict."""

    def fit(self, X, y):
        return super().fit(X, None if y is None else as_survival(y))

    def score(self, X, y, sample_weight=None):
        return super().score(X, as_survival(y), sample_weight)


# Checks that hand numeric (regression/classification) targets to fit or score. A survival
# estimator needs y = (event, time) and refuses them with a TypeError naming the problem; the
# same checks run on NumericYLassoCoxCV below, where they pass.
NUMERIC_Y_REASON = "passes a numeric y; survival estimators need sksurv's (event, time) y"
NUMERIC_Y_CHECKS = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
]


def numeric_y_failures(estimator):
    return {name: NUMERIC_Y_REASON for name in NUMERIC_Y_CHECKS}


@parametrize_with_checks([LassoCoxCV(n_alphas=10, cv=2)], expected_failed_checks=numeric_y_failures)
def test_sklearn_checks_with_numeric_y(estimator, check):
    check(estimator)


@parametrize_with_checks([NumericYLassoCoxCV(n_alphas=10, cv=2)])
def test_sklearn_checks_with_survival_y(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def whas500():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].astype(float)
    X = ((X - X.mean()) / X.std()).to_numpy()
    return X, y


def test_alpha_is_the_cross_validated_best_of_coxnet(whas500):
    X, y = whas500
    event, time = y["fstat"], y["lenfol"]
    model = LassoCoxCV(n_alphas=20, cv=4, random_state=0).fit(X, y)
    # reference: scikit-survival's path and our own loop over the same stratified folds
    path = CoxnetSurvivalAnalysis(
        l1_ratio=1.0, n_alphas=20, alpha_min_ratio=0.01, fit_baseline_model=True
    ).fit(X, y)
    np.testing.assert_allclose(model.alphas_, path.alphas_)
    folds = StratifiedKFold(4, shuffle=True, random_state=0).split(X, event)
    scores = []
    for tr, te in folds:
        fold = CoxnetSurvivalAnalysis(l1_ratio=1.0, alphas=path.alphas_).fit(X[tr], y[tr])
        scores.append(
            [
                concordance_index_censored(event[te], time[te], fold.predict(X[te], alpha=a))[0]
                for a in path.alphas_
            ]
        )
    mean = np.mean(scores, axis=0)
    best = int(np.flatnonzero(mean == mean.max())[0])
    assert model.alpha_ == path.alphas_[best]
    np.testing.assert_allclose(model.cv_scores_.mean(axis=1), mean)
    np.testing.assert_allclose(model.coef_, path.coef_[:, best])
    np.testing.assert_allclose(model.predict(X), X @ path.coef_[:, best] - path.offset_[best])
    np.testing.assert_allclose(
        model.predict_survival_function(X[:5], return_array=True),
        path.predict_survival_function(X[:5], alpha=path.alphas_[best], return_array=True),
    )
    assert model.score(X, y) == pytest.approx(
        concordance_index_censored(event, time, model.predict(X))[0]
    )


def test_survival_functions_are_step_functions(whas500):
    X, y = whas500
    model = LassoCoxCV(n_alphas=10, cv=3, random_state=0).fit(X, y)
    fns = model.predict_survival_function(X[:4])
    arr = model.predict_survival_function(X[:4], return_array=True)
    assert arr.shape == (4, len(model.unique_times_))
    np.testing.assert_allclose(np.vstack([f(model.unique_times_) for f in fns]), arr)
    assert np.all(np.diff(arr, axis=1) <= 1e-12) and np.all((arr >= 0) & (arr <= 1))
    chf = model.predict_cumulative_hazard_function(X[:4], return_array=True)
    np.testing.assert_allclose(np.exp(-chf), arr)


def test_same_seed_same_model_and_clone(whas500):
    X, y = whas500
    a = LassoCoxCV(n_alphas=10, cv=3, random_state=3).fit(X, y)
    b = clone(a).fit(X, y)
    assert a.alpha_ == b.alpha_
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)


def test_bad_input(whas500):
    X, y = whas500
    with pytest.raises(TypeError, match="survival array"):
        LassoCoxCV().fit(X, y["lenfol"])
    with pytest.raises(ValueError, match="X has 500 patients but y has 10"):
        LassoCoxCV().fit(X, y[:10])
    few = y.copy()
    few["fstat"] = False
    few["fstat"][:2] = True
    with pytest.warns(
        UserWarning, match="2 events cannot be spread over cv=5 inner folds; using 2"
    ):
        assert LassoCoxCV(cv=5, n_alphas=5).fit(X, few).cv_scores_.shape == (5, 2)
    few["fstat"][1] = False
    with pytest.raises(ValueError, match="1 event"):
        LassoCoxCV(cv=5).fit(X, few)
    with pytest.raises(ValueError, match="l1_ratio"):
        LassoCoxCV(l1_ratio=0.0).fit(X, y)
    model = LassoCoxCV(n_alphas=5, cv=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])


def _breslow_null_loglik(event, time):
    """log partial likelihood at beta = 0: -sum over events of log |risk set|."""
    return -sum(np.log(np.sum(time >= t)) for t, e in zip(time, event, strict=True) if e)


def test_partial_likelihood_score_at_the_null_model_is_analytic(whas500):
    X, y = whas500
    event, time = y["fstat"], y["lenfol"]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, event))
    alphas = [10.0, 0.1, 0.03, 0.01, 0.003]  # 10 >> alpha_max of every fold: beta = 0
    model = LassoCoxCV(alphas=alphas, cv=folds, scoring="partial_likelihood").fit(X, y)
    # at beta = 0 each fold's term is l(0) - l_{-k}(0)
    assert np.all(model.estimator_.coef_[:, 0] == 0)
    expected = [
        _breslow_null_loglik(event, time) - _breslow_null_loglik(event[tr], time[tr])
        for tr, _ in folds
    ]
    np.testing.assert_allclose(model.cv_scores_[0], expected, rtol=1e-10)
    # and the data carry signal: a penalty below alpha_max wins
    assert model.alpha_ < model.alphas_[0]
    assert np.count_nonzero(model.coef_) > 0


def test_fold_without_comparable_pair_is_skipped(whas500):
    X, y = whas500
    X, y = X[:60], y[:60].copy()
    event, time = y["fstat"], y["lenfol"]
    last = int(np.argmax(time))
    y["fstat"][last] = True  # the longest time is an event: alone it is comparable to no one
    others = np.setdiff1d(np.arange(60), [last])
    censored = others[~event[others]][:3]
    lonely = np.r_[last, censored]  # its only event is its longest time: no comparable pair
    rest = np.setdiff1d(np.arange(60), lonely)
    half = len(rest) // 2
    folds = [
        (np.setdiff1d(np.arange(60), lonely), lonely),
        (np.setdiff1d(np.arange(60), rest[:half]), rest[:half]),
        (np.setdiff1d(np.arange(60), rest[half:]), rest[half:]),
    ]
    model = LassoCoxCV(n_alphas=6, cv=folds).fit(X, y)
    assert np.isnan(model.cv_scores_[:, 0]).all()
    assert np.isfinite(model.cv_scores_[:, 1:]).all()
    best = np.argmax(model.cv_scores_[:, 1:].mean(axis=1))
    assert model.alpha_ == model.alphas_[best]
    with pytest.raises(ValueError, match="no inner cross-validation fold has a comparable pair"):
        LassoCoxCV(n_alphas=6, cv=[folds[0]]).fit(X, y)
