"""The contract checks catch what they claim to: one broken estimator per check."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from survseg.base import SurvivalMixin
from survseg.utils.estimator_checks import (
    check_estimator,
    estimator_checks,
    make_check_tabular,
)


class LinearRisk(SurvivalMixin, BaseEstimator):
    """A correct estimator: risk = X @ w with w the per-feature mean of X among events."""

    def __init__(self, scale=1.0, random_state=None):
        self.scale = scale
        self.random_state = random_state

    def fit(self, X, y):
        X = np.asarray(X, float)
        self.coef_ = self.scale * X[y["event"]].mean(axis=0)
        return self

    def predict(self, X):
        check_is_fitted(self, "coef_")
        return np.asarray(X, float) @ self.coef_


class SetsInInit(LinearRisk):
    def __init__(self, scale=1.0, random_state=None):
        super().__init__(scale, random_state)
        self.cache = {}


class NoFittedCheck(LinearRisk):
    def predict(self, X):
        return np.asarray(X, float) @ getattr(self, "coef_", np.ones(np.shape(X)[1]))


class ReturnsNone(LinearRisk):
    def fit(self, X, y):
        super().fit(X, y)


class PublicFittedName(LinearRisk):
    def fit(self, X, y):
        super().fit(X, y)
        self.weights = self.coef_
        return self


class Unseeded(LinearRisk):
    def fit(self, X, y):
        super().fit(X, y)
        self.coef_ = self.coef_ + np.random.default_rng().normal(size=self.coef_.shape)
        return self


class ChangesParam(LinearRisk):
    def fit(self, X, y):
        self.scale = 2 * self.scale
        return super().fit(X, y)


class BadCurves(LinearRisk):
    def predict_survival_function(self, X, return_array=False):
        check_is_fitted(self, "coef_")
        return np.tile(np.linspace(0.1, 1.0, 5), (len(X), 1))  # increasing


class CrypticFewEvents(LinearRisk):
    def fit(self, X, y):
        if y["event"].sum() < 3:
            raise ValueError("bad input")
        return super().fit(X, y)


def test_a_correct_estimator_passes():
    check_estimator(LinearRisk())


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (SetsInInit, "check_init_stores_params"),
        (NoFittedCheck, "check_not_fitted"),
        (ReturnsNone, "check_fit"),
        (PublicFittedName, "check_fit"),
        (ChangesParam, "check_fit"),
        (Unseeded, "check_random_state"),
        (BadCurves, "check_survival_curves"),
        (CrypticFewEvents, "check_few_events"),
    ],
)
def test_each_check_catches_its_violation(cls, check):
    X, y = make_check_tabular()
    checks = dict(estimator_checks(cls(), X, y))
    with pytest.raises(AssertionError):
        checks[check]()
    with pytest.raises(AssertionError, match=r"^check_\w+: "):
        check_estimator(cls(), X, y)


def test_needs_both_x_and_y():
    X, _ = make_check_tabular()
    with pytest.raises(ValueError, match="both X and y"):
        dict(estimator_checks(LinearRisk(), X))
