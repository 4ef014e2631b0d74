"""``survival_head="cox"``: a ridge Cox model refitted on the frozen network's features."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from survseg.estimators._cox_head import cox_head_risk, fit_cox_head
from survseg.persistence import load_weights
from tests.estimators.test_deepmts_survival_inputs import tiny, volume_cohort


@pytest.fixture(scope="module")
def data():
    X, y = volume_cohort(n=24, seed=3)
    X = _with_age(X)
    return X, y


def _with_age(X):
    from numpy.lib import recfunctions as rfn

    age = np.random.default_rng(0).uniform(40, 80, len(X))
    return rfn.append_fields(X, "age", age, usemask=False)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return tiny(survival_head="cox", cox_alpha=2.0, clinical=["age"]).fit(X, y)


def test_head_is_sksurvs_ridge_cox_on_the_features_and_clinical(data, fitted):
    X, y = data
    features = np.hstack([fitted.transform(X), X["age"][:, None]])
    # sksurv's ridge Cox on StandardScaler'd features (StandardScaler: population SD, as ours)
    ref = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=2.0)).fit(features, y)
    np.testing.assert_allclose(fitted.predict(X), ref.predict(features), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.head_coef_, ref[-1].coef_, rtol=1e-6, atol=1e-8)
    assert fitted.head_coef_.shape == (fitted.n_features_out_ + 1,)


def test_head_gives_the_breslow_baseline_of_its_own_risks(data, fitted):
    X, y = data
    np.testing.assert_allclose(
        fitted.baseline_model_.baseline_survival_.y,
        fitted.baseline_model_.__class__()
        .fit(fitted.predict(X), y["event"], y["time"])
        .baseline_survival_.y,
    )
    s = fitted.predict_survival_function(X[:3], return_array=True)
    assert np.all(np.diff(s, axis=1) <= 1e-12) and np.all((s >= 0) & (s <= 1))


def test_network_head_has_no_cox_head(data):
    X, y = data
    est = tiny().fit(X, y)
    assert est.head_coef_ is None
    # predict is then the network's own log-risk, as transform's features do not enter it
    assert est.predict(X).shape == (len(X),)


def test_cox_head_survives_weights_file_and_clone(tmp_path, data, fitted):
    X, _ = data
    path = fitted.save_weights(tmp_path / "m.weights")
    back = load_weights(path)
    np.testing.assert_allclose(back.predict(X), fitted.predict(X), rtol=1e-5, atol=1e-6)
    c = clone(fitted)
    assert c.get_params()["survival_head"] == "cox" and not hasattr(c, "head_coef_")


def test_constant_feature_gets_zero_weight_and_nonfinite_is_named():
    rng = np.random.default_rng(0)
    f = np.column_stack([rng.normal(size=30), np.ones(30)])
    y = Surv.from_arrays(rng.random(30) < 0.7, rng.uniform(1, 10, 30))
    head = fit_cox_head(f, y["event"], y["time"], alpha=1.0)
    assert head["head_coef_"][1] == 0 and head["head_scale_"][1] == 1
    assert np.isfinite(cox_head_risk(head, f)).all()
    f[4, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"patients \(rows\) \[4\]"):
        fit_cox_head(f, y["event"], y["time"], alpha=1.0)


def test_unknown_survival_head_is_a_clear_error(data):
    X, y = data
    with pytest.raises(ValueError, match="survival_head"):
        tiny(survival_head="lasso").fit(X, y)


# ------------------------------------------------------------------ AdaMSS
def _adamss(**kw):
    from tests.estimators.test_adamss_survival_inputs import tiny as adamss_tiny

    return adamss_tiny(survival_head="cox", cox_alpha=3.0, validation_fraction=0, **kw)


@pytest.fixture(scope="module")
def adamss_fitted():
    from tests.estimators.test_adamss_nodes import nodes_cohort

    X, y = nodes_cohort()
    return X, y, _adamss().fit(X, y)


def test_adamss_cox_head_is_sksurvs_cox_on_the_stage_one_map_features(adamss_fitted):
    from tests.estimators.test_adamss_survival_inputs import _hand_features

    X, y, est = adamss_fitted
    features = _hand_features(est, X)  # from the public probability maps
    ref = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=3.0)).fit(features, y)
    np.testing.assert_allclose(est.predict(X), ref.predict(features), rtol=1e-3, atol=1e-4)
    # no stage II: one network, stage I's history only
    assert est.network_ is est.segmentation_network_
    assert set(est.history_["stage"]) == {"segmentation"}


def test_adamss_cox_head_survival_functions_are_breslows(adamss_fitted):
    X, y, est = adamss_fitted
    from sksurv.linear_model.coxph import BreslowEstimator

    ref = BreslowEstimator().fit(est.predict(X), y["event"], y["time"])
    got = est.predict_survival_function(X[:4], return_array=True)
    want = np.vstack(
        [fn(est.unique_times_) for fn in ref.get_survival_function(est.predict(X[:4]))]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not hasattr(est, "predict_time") and not hasattr(est, "predict_interval_probabilities")


def test_adamss_cox_head_weights_file_round_trip(tmp_path, adamss_fitted):
    X, _, est = adamss_fitted
    back = load_weights(est.save_weights(tmp_path / "a.weights"))
    np.testing.assert_allclose(back.predict(X), est.predict(X), rtol=1e-5, atol=1e-6)
    assert back.network_ is back.segmentation_network_


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(learning_strategy="mtl", survival_inputs="pooled"), "learning_strategy 'ssl'"),
        (dict(survival_inputs="pooled"), "survival_inputs='segmentation'"),
    ],
)
def test_adamss_cox_head_needs_stage_one_features(kw, match):
    from tests.estimators.test_adamss_nodes import nodes_cohort

    X, y = nodes_cohort()
    with pytest.raises(ValueError, match=match):
        _adamss(**kw).fit(X, y)
