import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from survseg.evaluation.benchmark import benchmark
from survseg.evaluation.compare import compare_concordance
from tests.conftest import MeanUptake, sphere_cohort


def _tumour_features(X):
    m = np.asarray(X["mask"], dtype=bool)
    pet = np.asarray(X["pet"], dtype=np.float64)
    return np.column_stack(
        [m.sum(axis=(1, 2, 3)), (pet * m).sum(axis=(1, 2, 3)) / m.sum(axis=(1, 2, 3))]
    )


def _cox_pipeline():
    return make_pipeline(FunctionTransformer(_tumour_features), CoxPHSurvivalAnalysis(alpha=1e-2))


def test_benchmark_matches_cross_val_predict_by_hand(tmp_path):
    X, y = sphere_cohort(n=30, seed=3)
    models = {"uptake": MeanUptake(), "cox": _cox_pipeline(), "whole": MeanUptake(use_mask=False)}
    res = benchmark(models, X, y, cv=3, n_bootstrap=100, output_dir=tmp_path, random_state=0)
    table = res.table.set_index("model")
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    for name, est in models.items():
        oof = cross_val_predict(est, X, y, cv=cv.split(X, y["event"]))
        ref = concordance_index_censored(y["event"], y["time"], oof)[0]
        assert table.loc[name, "cindex"] == pytest.approx(ref)
        assert table.loc[name, "cindex_low"] <= ref <= table.loc[name, "cindex_high"]
        # within folds: the pairs of each test fold, pooled over folds
        conc = comp = 0.0
        for _, test in cv.split(X, y["event"]):
            _, c, d, t, _ = concordance_index_censored(y["event"][test], y["time"][test], oof[test])
            conc, comp = conc + c + 0.5 * t, comp + c + d + t
        assert table.loc[name, "cindex_within_fold"] == pytest.approx(conc / comp)
        lo_w, hi_w = table.loc[name, ["cindex_within_fold_low", "cindex_within_fold_high"]]
        assert lo_w <= conc / comp <= hi_w
    assert np.isnan(table.loc["uptake", "p_value"])  # the reference
    assert 0 < table.loc["whole", "p_value"] <= 1
    assert np.isnan(table.loc["uptake", "p_value_within_fold"])
    fold = np.empty(len(y), dtype=int)
    for k, (_, test) in enumerate(cv.split(X, y["event"])):
        fold[test] = k
    oof = {
        name: cross_val_predict(est, X, y, cv=cv.split(X, y["event"]))
        for name, est in models.items()
    }
    ref = compare_concordance(
        y, oof["whole"], oof["uptake"], groups=fold, n_bootstrap=100, random_state=0
    )
    assert table.loc["whole", "p_value_within_fold"] == pytest.approx(ref.p_value)
    assert np.isfinite(table.loc["cox", "auc"]) and np.isfinite(table.loc["cox", "ibs"])
    assert np.isnan(table.loc["uptake", "ibs"])  # no survival function
    for f in ("results.csv", "predictions.csv", "run.json"):
        assert (tmp_path / f).exists()
    assert len(list((tmp_path / "folds").glob("*.npz"))) == 9
    # resume: the same models on the same data and folds are read back, not refitted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = benchmark(
            {"uptake": MeanUptake(), "cox": _cox_pipeline(), "whole": MeanUptake(use_mask=False)},
            X,
            y,
            cv=3,
            n_bootstrap=100,
            output_dir=tmp_path,
            random_state=0,
        )
    assert not [w for w in caught if "retraining" in str(w.message)]
    np.testing.assert_allclose(again.table["cindex"], res.table["cindex"])


class CountingFits(MeanUptake):
    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        return super().fit(X, y)


def test_resume_key_covers_model_parameters_data_and_folds(tmp_path):
    """A fold file is reused only for the same class, parameters, data and folds (issue 15)."""
    X, y = sphere_cohort(n=24, seed=6)
    kw = dict(cv=3, n_bootstrap=20, output_dir=tmp_path, random_state=0)

    def fits(estimator, X=X, y=y, **extra):
        CountingFits.fits = 0
        result = benchmark({"m": estimator}, X, y, **{**kw, **extra})
        return CountingFits.fits, result

    assert fits(CountingFits())[0] == 3
    assert fits(CountingFits())[0] == 0  # same everything: every fold read back
    with pytest.warns(UserWarning, match="another model, other parameters"):
        n, result = fits(CountingFits(use_mask=False))  # other parameters
    assert n == 3
    # the numbers are the new model's, not the stale ones
    fresh = benchmark({"m": MeanUptake(use_mask=False)}, X, y, cv=3, n_bootstrap=20)
    assert result.table.loc[0, "cindex"] == pytest.approx(fresh.table.loc[0, "cindex"])
    X2, y2 = sphere_cohort(n=24, seed=7)  # another cohort of the same size
    with pytest.warns(UserWarning, match="other data"):
        assert fits(CountingFits(use_mask=False), X=X2, y=y2)[0] == 3
    with pytest.warns(UserWarning, match="other folds"):
        assert fits(CountingFits(use_mask=False), X=X2, y=y2, random_state=1)[0] == 3
    assert fits(CountingFits(use_mask=False), X=X2, y=y2, random_state=1)[0] == 0
    assert fits(CountingFits(use_mask=False), X=X2, y=y2, random_state=1, resume=False)[0] == 3
    # another class with the same name and parameters
    with pytest.warns(UserWarning, match="another model"):
        benchmark({"m": MeanUptake(use_mask=False)}, X2, y2, **{**kw, "random_state": 1})


class FailsOnThirdFit(MeanUptake):
    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        if type(self).fits == 3:
            raise KeyboardInterrupt  # the user stops the run during the third fold
        return super().fit(X, y)


def test_interrupted_run_keeps_the_finished_folds(tmp_path, capsys):
    X, y = sphere_cohort(n=30, seed=3)
    with pytest.raises(KeyboardInterrupt):
        benchmark({"m": FailsOnThirdFit()}, X, y, cv=3, output_dir=tmp_path, verbose=1)
    assert sorted(p.name for p in (tmp_path / "folds").glob("*.npz")) == [
        "m__fold0.npz",
        "m__fold1.npz",
    ]
    assert capsys.readouterr().out.count("[benchmark] m, fold") == 2
    res = benchmark({"m": FailsOnThirdFit()}, X, y, cv=3, output_dir=tmp_path, n_bootstrap=50)
    assert FailsOnThirdFit.fits == 4  # only the interrupted fold was fitted again
    full = benchmark({"m": MeanUptake()}, X, y, cv=3, n_bootstrap=50)
    assert res.table.loc[0, "cindex"] == pytest.approx(full.table.loc[0, "cindex"])
    assert res.table.loc[0, "fit_seconds"] >= 0


def test_benchmark_external_test_uses_fold_ensemble():
    X, y = sphere_cohort(n=24, seed=4)
    Xt, yt = sphere_cohort(n=15, seed=5)
    res = benchmark(
        {"cox": _cox_pipeline()}, X, y, cv=3, X_test=Xt, y_test=yt, n_bootstrap=50, keep_models=True
    )
    fold_models = res.models["cox"]
    z = [(r - r.mean()) / r.std() for r in (m.predict(Xt) for m in fold_models)]
    ens = np.mean(z, axis=0)
    ref = concordance_index_censored(yt["event"], yt["time"], ens)[0]
    assert res.table.loc[0, "test_cindex"] == pytest.approx(ref)
    test_pred = res.predictions.query("set == 'test'")
    np.testing.assert_allclose(test_pred["risk"], ens)


def test_benchmark_errors():
    X, y = sphere_cohort(n=12)
    with pytest.raises(ValueError, match="reference"):
        benchmark({"a": MeanUptake()}, X, y, reference="b")
    with pytest.raises(ValueError, match="no estimators"):
        benchmark({}, X, y)


def test_ibs_uses_every_fold_and_matches_sksurv_by_hand(recwarn):
    from sksurv.metrics import integrated_brier_score

    from survseg.evaluation.metrics import evaluation_times

    X, y = sphere_cohort(n=40, seed=7)
    res = benchmark({"cox": _cox_pipeline()}, X, y, cv=4, n_bootstrap=20, random_state=1)
    assert not [w for w in recwarn if "no survival functions" in str(w.message)]
    times = evaluation_times(y, y)
    ibs = []
    for train, test in StratifiedKFold(4, shuffle=True, random_state=1).split(X, y["event"]):
        model = _cox_pipeline().fit(X[train], y[train])
        t_train = y["time"][train]
        inside = test[y["time"][test] < t_train.max()]
        t_in = y["time"][inside]
        keep = (times > max(t_train.min(), t_in.min())) & (times < t_in.max())
        surv = np.vstack([fn(times[keep]) for fn in model.predict_survival_function(X[inside])])
        ibs.append(integrated_brier_score(y[train], y[inside], surv, times[keep]))
    assert res.table.loc[0, "ibs"] == pytest.approx(np.mean(ibs))


class RecordsDevice(MeanUptake):
    """MeanUptake with a ``device`` parameter that remembers where each fit ran."""

    seen = []

    def __init__(self, use_mask=True, device="auto"):
        super().__init__(use_mask=use_mask)
        self.device = device

    def fit(self, X, y):
        type(self).seen.append(self.device)
        return super().fit(X, y)


def test_each_job_gets_its_own_gpu_on_a_multi_gpu_machine(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    X, y = sphere_cohort(n=24, seed=2)
    RecordsDevice.seen = []
    benchmark({"a": RecordsDevice(), "b": RecordsDevice(device="cpu")}, X, y, cv=3, n_bootstrap=10)
    # 'a' (device="auto") alternates over the two GPUs; an explicit device is left alone
    assert RecordsDevice.seen == ["cuda:0", "cuda:1", "cuda:0", "cpu", "cpu", "cpu"]
