import pickle

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.datasets import load_whas500
from sksurv.ensemble import RandomSurvivalForest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from survseg.data.cohort import volumes
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.estimators.ensemble import FoldEnsemble


@pytest.fixture(scope="module")
def whas():
    X, y = load_whas500()
    return X[["age", "bmi", "hr", "sysbp", "diasbp"]].astype(float), y


@pytest.fixture(scope="module")
def cox_ensemble(whas):
    X, y = whas
    return FoldEnsemble(CoxPHSurvivalAnalysis(), cv=5, random_state=0).fit(X, y)


def _zscore(r, ref):
    return (r - ref.mean()) / ref.std()


def test_members_are_the_fold_models(cox_ensemble, whas):
    X, y = whas
    ens = cox_ensemble
    assert len(ens.estimators_) == len(ens.folds_) == 5
    test_idx = np.concatenate([te for _, te in ens.folds_])
    assert np.array_equal(np.sort(test_idx), np.arange(len(X)))  # a partition
    for k, ((tr, te), member) in enumerate(zip(ens.folds_, ens.estimators_, strict=True)):
        assert not np.intersect1d(tr, te).size
        assert y["fstat"][te].any()  # stratified: every fold has events
        ref = CoxPHSurvivalAnalysis().fit(X.iloc[tr], y[tr])
        np.testing.assert_allclose(member.coef_, ref.coef_, rtol=1e-8)
        np.testing.assert_allclose(ens.oof_risk_[te], ref.predict(X.iloc[te]))
        c = concordance_index_censored(y["fstat"][te], y["lenfol"][te], ref.predict(X.iloc[te]))[0]
        assert ens.fold_scores_[k] == pytest.approx(c)


def test_predict_is_mean_of_zscored_member_risks(cox_ensemble, whas):
    X, y = whas
    ens = cox_ensemble
    X_new = X.iloc[:40]
    expected = np.mean([_zscore(m.predict(X_new), m.predict(X)) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict(X_new), expected, rtol=1e-10)
    # a single patient's risk does not depend on who else is predicted
    np.testing.assert_allclose(ens.predict(X.iloc[[3]]), ens.predict(X_new)[[3]])
    c = concordance_index_censored(y["fstat"], y["lenfol"], ens.predict(X))[0]
    assert ens.score(X, y) == pytest.approx(c)


def test_paper_standardisation_over_the_predicted_patients(cox_ensemble, whas):
    X, _ = whas
    ens = clone(cox_ensemble).set_params(standardize="predict")
    ens.fit(*whas)
    X_new = X.iloc[100:150]
    expected = np.mean(
        [_zscore(m.predict(X_new), m.predict(X_new)) for m in ens.estimators_], axis=0
    )
    np.testing.assert_allclose(ens.predict(X_new), expected, rtol=1e-10)
    with pytest.raises(ValueError, match="at least two"):
        ens.predict(X.iloc[[0]])
    plain = clone(cox_ensemble).set_params(standardize=None).fit(*whas)
    expected = np.mean([m.predict(X_new) for m in plain.estimators_], axis=0)
    np.testing.assert_allclose(plain.predict(X_new), expected)


def test_random_state_reproducible_and_seeds_members(whas):
    X, y = whas
    X, y = X.iloc[:150], y[:150]
    rsf = RandomSurvivalForest(n_estimators=5, max_depth=3, random_state=None)
    a = FoldEnsemble(rsf, cv=3, random_state=1).fit(X, y)
    b = FoldEnsemble(rsf, cv=3, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    seeds = [m.random_state for m in a.estimators_]
    assert len(set(seeds)) == 3 and all(isinstance(s, int) for s in seeds)
    c = FoldEnsemble(rsf, cv=3, random_state=2).fit(X, y)
    assert not all(
        np.array_equal(fa, fc) for (_, fa), (_, fc) in zip(a.folds_, c.folds_, strict=True)
    )


def test_parallel_equals_serial_and_pipelines_work(whas):
    X, y = whas
    pipe = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis())
    serial = FoldEnsemble(pipe, cv=3, random_state=0).fit(X, y)
    with parallel_backend("threading"):
        parallel = FoldEnsemble(pipe, cv=3, random_state=0, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(serial.predict(X), parallel.predict(X))


def test_sklearn_api(cox_ensemble, whas):
    ens = FoldEnsemble(CoxPHSurvivalAnalysis(alpha=0.1), cv=4)
    assert ens.get_params()["estimator__alpha"] == 0.1
    ens.set_params(estimator__alpha=0.5, cv=3)
    assert clone(ens).get_params()["estimator__alpha"] == 0.5
    with pytest.raises(Exception, match="not fitted"):
        ens.predict(whas[0])
    restored = pickle.loads(pickle.dumps(cox_ensemble))
    np.testing.assert_array_equal(restored.predict(whas[0]), cox_ensemble.predict(whas[0]))
    assert not hasattr(cox_ensemble, "predict_mask")


@pytest.mark.parametrize(
    "kwargs, match", [(dict(cv=1), "cv must be"), (dict(standardize="z"), "standardize")]
)
def test_bad_parameters(kwargs, match, whas):
    with pytest.raises(ValueError, match=match):
        FoldEnsemble(CoxPHSurvivalAnalysis(), **kwargs).fit(*whas)


def test_works_with_deepmts_on_a_cohort():
    from sksurv.util import Surv

    rng = np.random.default_rng(0)
    n, shape = 8, (20, 20, 20)
    mask = np.zeros((n, *shape), np.uint8)
    mask[:, 8:12, 8:12, 8:12] = 1
    X = volumes(
        pet=rng.normal(size=(n, *shape)) + 2 * mask, ct=rng.normal(size=(n, *shape)), mask=mask
    )
    y = Surv.from_arrays(np.arange(n) % 2 == 0, rng.uniform(1, 10, n))
    tiny = dict(
        channels=(2, 3, 4),
        encoder_convs=(1, 1, 1),
        decoder_convs=(1, 1),
        feature_channels=(1, 1, 1),
        dense_stem_channels=2,
        dense_block_layers=(1, 1, 1),
        dense_transition_channels=(1, 1, 1),
        dense_growth_rate=2,
        dense_bottleneck_channels=2,
        fc_units=2,
    )
    ens = FoldEnsemble(
        DeepMTSRegressor(network_params=tiny, max_iter=1, batch_size=2), cv=2, random_state=0
    ).fit(X, y)
    assert ens.predict(X).shape == (n,)
    prob = np.mean([m.predict_proba_mask(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba_mask(X), prob)
    np.testing.assert_array_equal(ens.predict_mask(X), (prob > 0.5).astype(np.uint8))
    assert ens.estimators_[0].random_state != ens.estimators_[1].random_state
