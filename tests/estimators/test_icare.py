"""ICARE against the icare 0.1.0 package's predictions and by hand; the pipeline head."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import KFold, cross_val_score
from sksurv.datasets import load_whas500
from sksurv.metrics import concordance_index_censored

from survseg.estimators import BaggedIcareSurvival, IcareSurvival
from survseg.estimators.pipelines import make_survival_pipeline


@pytest.fixture(scope="module")
def whas():
    X, y = load_whas500()
    return X[["age", "bmi", "hr", "sysbp", "diasbp"]].astype(float), y


def _with_gaps(X):
    X = X.copy()
    X.iloc[0, 1] = np.nan
    X.iloc[3, 0] = np.nan
    X.iloc[3, 2] = np.nan
    return X


# Predictions of icare 0.1.0 (Apache-2.0) IcareSurvival(sign_method="harrell,uno") on whas500
# (the five vital-sign columns, with the gaps of _with_gaps), recorded from a run of the
# package with its removed check_array(force_all_finite=...) argument mapped to
# ensure_all_finite; the package computes in float32.
ICARE_PKG = np.array([0.335979238, 0.1817334051, 0.0488795856, 0.4474930785, -0.2137338878])
ICARE_PKG_CMIN = np.array([1.0831642763, -0.5738082739, 0.4994892385, -0.0046030989, 0.248723074])


def test_matches_the_icare_package(whas):
    X, y = whas
    X = _with_gaps(X)
    model = IcareSurvival(sign_metrics=("harrell", "uno")).fit(X, y)
    np.testing.assert_allclose(model.predict(X)[:5], ICARE_PKG, rtol=2e-5, atol=5e-6)
    model = IcareSurvival(sign_metrics=("harrell", "uno"), cmin=0.6).fit(X, y)
    np.testing.assert_allclose(model.predict(X)[:5], ICARE_PKG_CMIN, rtol=2e-5, atol=5e-6)
    np.testing.assert_array_equal(model.signs_, [1, -1, 0, 0, 0])  # age and bmi pass cmin


def test_signs_and_risk_by_hand(whas):
    X, y = whas
    model = IcareSurvival(sign_metrics=("harrell",)).fit(X, y)
    c = np.array(
        [concordance_index_censored(y["fstat"], y["lenfol"], X[col])[0] for col in X.columns]
    )
    np.testing.assert_array_equal(model.signs_, np.where(c >= 0.5, 1, -1))
    z = (X - X.mean()) / X.std(ddof=0) * np.sign(c - 0.5)
    raw = z.mean(axis=1)
    expected = (raw - raw.mean()) / raw.std(ddof=0)
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-12)
    # the linear form
    np.testing.assert_allclose(
        X.to_numpy() @ model.coef_,
        expected - expected.mean() + (X.to_numpy() @ model.coef_).mean(),
        atol=1e-12,
    )
    assert model.score(X, y) == pytest.approx(
        concordance_index_censored(y["fstat"], y["lenfol"], expected)[0]
    )


def test_correlated_and_constant_features_are_dropped(whas):
    X, y = whas
    X = X.assign(age_copy=2 * X["age"] + 1, const=1.0)
    model = IcareSurvival(correlation_threshold=0.9, random_state=0).fit(X, y)
    assert model.signs_[-1] == 0
    assert (model.signs_[[0, 5]] != 0).sum() == 1  # one of age and its copy
    with pytest.raises(ValueError, match="sign_metrics"):
        IcareSurvival(sign_metrics=("harrell", "logrank")).fit(X, y)
    with pytest.raises(ValueError, match="cmin"):
        IcareSurvival(cmin=0.3).fit(X, y)
    bad = X.copy()
    bad.iloc[4, 1] = np.inf
    with pytest.raises(ValueError, match="feature bmi is infinite for patient 4"):
        IcareSurvival().fit(bad, y)


def test_bagged_conventions(whas):
    X, y = whas
    model = BaggedIcareSurvival(
        n_estimators=4,
        parameter_sets=[{"correlation_threshold": 0.8}, {"cmin": 0.55}],
        random_state=0,
    )
    assert clone(model).get_params() == model.get_params()
    model.fit(X, y)
    assert len(model.estimators_) == 4
    thresholds = {m.correlation_threshold for m in model.estimators_}
    assert thresholds <= {None, 0.8} and {m.cmin for m in model.estimators_} <= {None, 0.55}
    risk = model.predict(X)
    np.testing.assert_allclose(
        risk, np.mean([m.predict(X.to_numpy()) for m in model.estimators_], axis=0)
    )
    again = clone(model).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), risk)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), risk)
    assert 0.6 < model.score(X, y) < 0.8
    assert np.all(np.abs(model.sign_frequency_) <= 1)
    with pytest.raises(ValueError, match="n_estimators"):
        BaggedIcareSurvival(n_estimators=0).fit(X, y)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        BaggedIcareSurvival().predict(X)


class _TumourStats(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        m = X["mask"].astype(bool).reshape(len(X), -1)
        pet = np.where(m, X["pet"].reshape(len(X), -1), np.nan)
        return pd.DataFrame(
            {
                "volume": m.sum(axis=1).astype(float),
                "suv_mean": np.nanmean(pet, axis=1),
                "suv_max": np.nanmax(pet, axis=1),
            }
        )

    def get_feature_names_out(self, input_features=None):
        return np.array(["volume", "suv_mean", "suv_max"], dtype=object)


def test_icare_pipeline_head():
    from tests.conftest import sphere_cohort

    X, y = sphere_cohort(n=30, seed=1)
    pipe = make_survival_pipeline(_TumourStats(), "icare", clinical=["age"], random_state=0)
    assert isinstance(pipe.named_steps["model"], BaggedIcareSurvival)
    scores = cross_val_score(pipe, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert np.all((scores >= 0) & (scores <= 1))
    # risk grows with tumour volume in this cohort: ICARE finds it
    assert pipe.fit(X, y).score(X, y) > 0.7


def _as_survival(y):
    from scipy.stats import rankdata
    from sksurv.util import Surv

    y = np.real(np.asarray(y)).astype(float).ravel()
    return Surv.from_arrays(np.arange(len(y)) % 4 != 3, rankdata(y))


class _NumericYIcare(IcareSurvival):
    def fit(self, X, y):
        return super().fit(X, None if y is None else _as_survival(y))

    def score(self, X, y, sample_weight=None):
        return super().score(X, _as_survival(y), sample_weight)


class _NumericYBagged(BaggedIcareSurvival):
    def fit(self, X, y):
        return super().fit(X, None if y is None else _as_survival(y))

    def score(self, X, y, sample_weight=None):
        return super().score(X, _as_survival(y), sample_weight)


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks(
    [_NumericYIcare(sign_metrics=("harrell",)), _NumericYBagged(n_estimators=2, random_state=0)]
)
def test_sklearn_checks(estimator, check):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)
