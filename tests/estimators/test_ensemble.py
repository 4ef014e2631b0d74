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
from tests.tiny_models import DEEPMTS_NETWORK_MINI


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
    "kwargs, match",
    [(dict(cv=1), "cv. parameter .* range .2, inf"), (dict(standardize="z"), "standardize")],
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
    ens = FoldEnsemble(
        DeepMTSRegressor(network_params=DEEPMTS_NETWORK_MINI, max_iter=1, batch_size=2),
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert ens.predict(X).shape == (n,)
    prob = np.mean([m.predict_proba_mask(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba_mask(X), prob)
    np.testing.assert_array_equal(ens.predict_mask(X), (prob > 0.5).astype(np.uint8))
    assert ens.estimators_[0].random_state != ens.estimators_[1].random_state


def test_segments_both_regions_at_the_members_threshold():
    from sksurv.util import Surv

    from survseg.estimators._deep import label_map

    rng = np.random.default_rng(1)
    n, shape = 8, (20, 20, 20)
    mask = np.zeros((n, *shape), np.uint8)
    mask[:, 8:12, 8:12, 8:12] = 1
    nodes = np.zeros_like(mask)
    nodes[::2, 2:5, 2:5, 14:17] = 1
    X = volumes(
        pet=rng.normal(size=(n, *shape)) + 2 * mask + 2 * nodes,
        ct=rng.normal(size=(n, *shape)),
        mask=mask,
        nodes=nodes,
    )
    y = Surv.from_arrays(np.arange(n) % 2 == 0, rng.uniform(1, 10, n))
    member = DeepMTSRegressor(
        network_params=DEEPMTS_NETWORK_MINI, max_iter=1, batch_size=2, mask_threshold=0.3
    )
    ens = FoldEnsemble(member, cv=2, random_state=0).fit(X, y)
    assert ens.regions_ == ("tumour", "nodes")
    per_region = {
        r: np.mean([m.predict_proba_mask(X, region=r) for m in ens.estimators_], axis=0)
        for r in ens.regions_
    }
    for r, prob in per_region.items():
        np.testing.assert_allclose(ens.predict_proba_mask(X, region=r), prob, rtol=1e-6)
        np.testing.assert_array_equal(ens.predict_mask(X, region=r), (prob > 0.3).astype(np.uint8))
    expected = label_map(np.stack([per_region["tumour"], per_region["nodes"]], axis=1), 0.3)
    np.testing.assert_array_equal(ens.predict_label_map(X), expected)
    with pytest.raises(ValueError, match="region must be one of"):
        ens.predict_mask(X, region="shell")


def test_no_mask_methods_when_the_members_do_not_segment(cox_ensemble):
    for name in ("predict_mask", "predict_proba_mask", "predict_label_map"):
        assert not hasattr(cox_ensemble, name)
    assert not hasattr(cox_ensemble, "regions_")
    no_seg = FoldEnsemble(DeepMTSRegressor(segmentation=False))
    assert not hasattr(no_seg, "predict_mask")


def test_fold_without_comparable_pair_is_named_before_any_fit(whas):
    X, y = whas
    X, y = X.iloc[:12].reset_index(drop=True), y[:12].copy()
    time = np.arange(1.0, 13.0)
    event = np.zeros(12, bool)
    event[[0, 2, 4, 11]] = True  # fold 2 holds patients 6-11: its only event is the latest
    y["lenfol"], y["fstat"] = time, event
    folds = [(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))]

    class Refuses(CoxPHSurvivalAnalysis):
        def fit(self, X, y):
            raise AssertionError("fitted before the folds were checked")

    with pytest.raises(ValueError, match="held-out fold 2 of 2 .*no comparable pair"):
        FoldEnsemble(Refuses(), cv=folds).fit(X, y)


def _member_mean(ens, X, method):
    """Reference: each sksurv member's own curves, averaged on the union of their grids."""
    per = [getattr(m, method)(X) for m in ens.estimators_]
    grid = np.unique(np.concatenate([fns[0].x for fns in per]))
    # a member's curve is constant after its last time (sksurv's domain ends there)
    return grid, np.mean([[fn(np.minimum(grid, fn.x[-1])) for fn in fns] for fns in per], axis=0)


@pytest.mark.parametrize(
    "method", ["predict_survival_function", "predict_cumulative_hazard_function"]
)
def test_survival_functions_average_the_members(cox_ensemble, whas, method):
    X, _ = whas
    X_new = X.iloc[:7]
    grid, expected = _member_mean(cox_ensemble, X_new, method)
    np.testing.assert_array_equal(cox_ensemble.unique_times_, grid)
    fns = getattr(cox_ensemble, method)(X_new)
    assert len(fns) == 7
    np.testing.assert_allclose(np.vstack([fn(grid) for fn in fns]), expected, rtol=1e-12)
    np.testing.assert_allclose(getattr(cox_ensemble, method)(X_new, return_array=True), expected)
    steps = np.diff(expected, axis=1)
    if method == "predict_survival_function":
        assert (expected <= 1).all() and (expected >= 0).all() and (steps <= 1e-12).all()
    else:
        assert (expected >= 0).all() and (steps >= -1e-12).all()


def test_ibs_scorer_and_benchmark_auc_ibs_work(whas):
    from sklearn.model_selection import cross_val_score
    from sksurv.metrics import as_integrated_brier_score_scorer, integrated_brier_score

    from survseg.evaluation.benchmark import benchmark

    X, y = whas
    X, y = X.iloc[:200], y[:200]
    times = np.percentile(y["lenfol"][y["fstat"]], [20, 40, 60])
    ens = FoldEnsemble(CoxPHSurvivalAnalysis(), cv=3, random_state=0)
    scorer = as_integrated_brier_score_scorer(ens, times)
    train = np.arange(100, 200)
    # sksurv's IPCW needs test times below the training follow-up's end
    test = np.flatnonzero(y["lenfol"][:100] < y["lenfol"][train].max())
    scores = cross_val_score(scorer, X, y, cv=[(train, test)])
    ens.fit(X.iloc[train], y[train])
    surv = ens.predict_survival_function(X.iloc[test])
    ref = integrated_brier_score(y[train], y[test], np.vstack([f(times) for f in surv]), times)
    assert -scores[0] == pytest.approx(ref)  # the scorer's sign: higher is better
    result = benchmark({"ensemble": ens}, X.to_numpy(), y, cv=3, n_bootstrap=20)
    row = result.table.iloc[0]
    assert np.isfinite(row["auc"]) and 0 < row["ibs"] < 0.5
