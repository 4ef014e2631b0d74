"""DeepSurv against scikit-survival's Cox model on a real dataset, Breslow curves, training rules."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sksurv.column import encode_categorical
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.util import Surv

from survseg.estimators.deepsurv import DeepSurv


@pytest.fixture(scope="module")
def whas500():
    X, y = load_whas500()
    return encode_categorical(X).astype(float).to_numpy(), y


@pytest.fixture(scope="module")
def whas500_scaled(whas500):
    X, y = whas500
    return StandardScaler().fit_transform(X), y


def test_cindex_close_to_coxph_on_whas500(whas500):
    """Held-out C-index over 5 stratified folds: DeepSurv within 0.02 of the Cox model."""
    X, y = whas500
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y["fstat"])
    deep, cox = [], []
    for tr, te in folds:
        cox.append(
            make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(ties="efron"))
            .fit(X[tr], y[tr])
            .score(X[te], y[te])
        )
        deep.append(
            make_pipeline(StandardScaler(), DeepSurv(random_state=0))
            .fit(X[tr], y[tr])
            .score(X[te], y[te])
        )
    assert abs(np.mean(deep) - np.mean(cox)) < 0.02, (np.mean(deep), np.mean(cox))


def test_linear_deepsurv_recovers_the_cox_model(whas500_scaled):
    """No hidden layer, no penalty: the network is x'beta and must converge to the Cox MLE."""
    X, y = whas500_scaled
    X = X[:, :5]
    cox = CoxPHSurvivalAnalysis(ties="efron").fit(X, y)
    net = DeepSurv(
        hidden_layer_sizes=(), dropout=0.0, weight_decay=0.0, lr=0.1, max_iter=300, random_state=0
    ).fit(X, y)
    weight = net.network_.output.weight.detach().double().numpy().ravel()
    np.testing.assert_allclose(weight, cox.coef_, atol=1e-4)
    np.testing.assert_allclose(net.predict(X), X @ cox.coef_, atol=1e-4)


def test_survival_functions_are_breslow_of_training_risks(whas500_scaled):
    X, y = whas500_scaled
    model = DeepSurv(max_iter=50, random_state=0).fit(X, y)
    ref = BreslowEstimator().fit(model.predict(X), y["fstat"], y["lenfol"])
    fns = model.predict_survival_function(X[:5])
    ref_fns = ref.get_survival_function(model.predict(X[:5]))
    times = ref.unique_times_
    np.testing.assert_allclose(
        np.vstack([f(times) for f in fns]), np.vstack([f(times) for f in ref_fns])
    )
    arr = model.predict_survival_function(X[:5], return_array=True)
    assert arr.shape == (5, len(times))
    assert np.all(np.diff(arr, axis=1) <= 1e-12) and np.all((arr >= 0) & (arr <= 1))


def test_minibatches_and_early_stopping(whas500_scaled):
    X, y = whas500_scaled
    model = DeepSurv(
        batch_size=64, max_iter=60, validation_fraction=0.2, validate_every=5, random_state=0
    ).fit(X, y)
    hist = model.history_
    assert len(hist) == 60 and {"loss", "val_loss", "val_c_index"} <= set(hist.columns)
    checked = hist.dropna(subset=["val_loss"])
    assert model.best_iteration_["survival"] == int(
        checked.loc[checked["val_loss"].idxmin(), "iteration"]
    )


def test_same_seed_same_model_clone_and_pickle(whas500_scaled):
    X, y = whas500_scaled
    a = DeepSurv(max_iter=30, random_state=1).fit(X, y)
    b = clone(a).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = DeepSurv(max_iter=30, random_state=2).fit(X, y)
    assert not np.allclose(a.predict(X), c.predict(X))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict(X), a.predict(X))


def test_diverging_training_stops_with_a_clear_error(whas500_scaled):
    X, y = whas500_scaled
    with pytest.raises(FloatingPointError, match="diverged at iteration"):
        DeepSurv(lr=1e20, max_iter=20, dropout=0.0, weight_decay=0.0, random_state=0).fit(X, y)
    # finite losses but absurd log-risks (unscaled inputs): refused, not turned into NaN curves
    with pytest.raises(FloatingPointError, match="log-risks span"):
        DeepSurv(max_iter=5, dropout=0.0, random_state=0).fit(X * 1e37, y)


def test_bad_input(whas500_scaled):
    X, y = whas500_scaled
    with pytest.raises(NotFittedError):
        DeepSurv().predict(X)
    with pytest.raises(TypeError, match="survival array"):
        DeepSurv().fit(X, y["lenfol"])
    censored = Surv.from_arrays(np.zeros(len(y), bool), y["lenfol"])
    with pytest.raises(ValueError, match="no events"):
        DeepSurv().fit(X, censored)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DeepSurv().fit(bad, y)
    with pytest.raises(ValueError, match="dropout"):
        DeepSurv(dropout=1.0).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        DeepSurv(activation="gelu").fit(X, y)
    model = DeepSurv(max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])


def as_survival(y):
    y = np.real(np.asarray(y)).astype(float).ravel()
    return Surv.from_arrays(np.arange(len(y)) % 4 != 3, rankdata(y))


class NumericYDeepSurv(DeepSurv):
    """DeepSurv fed survival outcomes made from the generic checks' numeric y."""

    def fit(self, X, y):
        return super().fit(X, None if y is None else as_survival(y))

    def score(self, X, y, sample_weight=None):
        return super().score(X, as_survival(y), sample_weight)


@parametrize_with_checks([NumericYDeepSurv(max_iter=5, random_state=0)])
def test_sklearn_checks_with_survival_y(estimator, check):
    check(estimator)
