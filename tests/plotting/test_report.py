"""The benchmark's figures: files written, risk-group thresholds, overlays of held-out patients."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold

from survseg.base import SurvivalMixin
from survseg.evaluation.benchmark import benchmark
from survseg.plotting import figures_for_benchmark, fold_thresholds


class PetThreshold(SurvivalMixin, BaseEstimator):
    """Segment by a PET threshold learnt from the training masks; risk = segmented volume."""

    def __init__(self, quantile=0.5):
        self.quantile = quantile

    def fit(self, X, y):
        inside = X["pet"][X["mask"].astype(bool)]
        self.threshold_ = float(np.quantile(inside, self.quantile))
        return self

    def predict_mask(self, X):
        return (np.asarray(X["pet"]) > self.threshold_).astype(np.uint8)

    def predict(self, X):
        return self.predict_mask(X).reshape(len(X), -1).sum(axis=1).astype(float)


class Age(SurvivalMixin, BaseEstimator):
    """Risk = age (no masks, no history)."""

    def fit(self, X, y):
        self.n_features_in_ = 1
        return self

    def predict(self, X):
        return np.asarray(X["age"], dtype=float)


@pytest.fixture(scope="module")
def run():
    from survseg.datasets import make_petct_cohort

    X, y = make_petct_cohort(n_patients=24, shape=(24, 24, 24), random_state=1)
    models = {"threshold": PetThreshold(), "age": Age()}
    result = benchmark(models, X, y, cv=3, n_bootstrap=30, random_state=0, keep_models=True)
    return X, y, result


def _not_blank(path):
    rgb = mpimg.imread(path)[..., :3]
    return rgb.std() > 0.02 and (rgb.min(axis=-1) < 0.9).mean() > 0.02


def test_files_written_and_not_blank(run, tmp_path):
    X, y, result = run
    written = figures_for_benchmark(result, X, y, tmp_path)
    assert set(written) == {"cindex.png", "km_threshold.png", "km_age.png", "overlay_threshold.png"}
    for path in written.values():
        assert path.parent == tmp_path and _not_blank(path)


def test_thresholds_are_training_medians_of_each_fold(run):
    X, y, result = run
    # the benchmark's folds, rebuilt independently: stratified on the event, seed 0
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"]))
    risk, threshold, from_training = fold_thresholds(result, "threshold", X)
    assert from_training
    for train, test in folds:
        model = PetThreshold().fit(X[train], y[train])  # refit: same data, same model
        np.testing.assert_allclose(risk[test], model.predict(X[test]))
        np.testing.assert_allclose(threshold[test], np.median(model.predict(X[train])))


def _without_fold_train(result, models):
    """The result as a benchmark of an older version gave it: no ``fold_train`` rows."""
    pred = result.predictions
    return type(result)(
        table=result.table, predictions=pred[pred["set"] != "fold_train"], models=models
    )


def test_thresholds_need_neither_models_nor_images(run):
    X, y, result = run
    bare = type(result)(table=result.table, predictions=result.predictions, models={})
    risk, threshold, from_training = fold_thresholds(bare, "threshold")  # no X either
    assert from_training
    expected = fold_thresholds(result, "threshold", X)
    np.testing.assert_array_equal(risk, expected[0])
    np.testing.assert_array_equal(threshold, expected[1])


def test_fold_train_rows_are_each_fold_models_training_risks(run):
    X, y, result = run
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"]))
    rows = result.predictions.query("model == 'threshold' and set == 'fold_train'")
    for k, (train, _) in enumerate(folds):
        part = rows[rows["fold"] == k]
        np.testing.assert_array_equal(np.sort(part["patient"]), np.sort(train))
        model = PetThreshold().fit(X[train], y[train])
        np.testing.assert_allclose(part["risk"], model.predict(X[part["patient"].to_numpy()]))


def test_older_results_take_thresholds_from_kept_models(run):
    X, y, result = run
    old = _without_fold_train(result, result.models)
    risk, threshold, from_training = fold_thresholds(old, "threshold", X)
    assert from_training
    np.testing.assert_allclose(threshold, fold_thresholds(result, "threshold", X)[1])


def test_without_models_thresholds_fall_back_to_fold_medians(run, tmp_path):
    X, y, result = run
    bare = _without_fold_train(result, {})
    risk, threshold, from_training = fold_thresholds(bare, "age", X)
    assert not from_training
    pred = result.predictions.query("model == 'age' and set == 'train_cv'")
    for _, part in pred.groupby("fold"):
        np.testing.assert_allclose(threshold[part["patient"]], np.median(part["risk"]))
    assert set(figures_for_benchmark(bare, X, y, tmp_path)) == {
        "cindex.png",
        "km_threshold.png",
        "km_age.png",
    }


def test_overlay_shows_largest_tumour_held_out(run, tmp_path, monkeypatch):
    import survseg.plotting.report as report

    X, y, result = run
    seen = {}
    real = report.plot_overlay

    def spy(images, **kwargs):
        seen.update(kwargs, record=images)
        return real(images, **kwargs)

    monkeypatch.setattr(report, "plot_overlay", spy)
    figures_for_benchmark(result, X, y, tmp_path)
    i = int(np.argmax(X["mask"].reshape(len(X), -1).sum(axis=1)))
    assert seen["record"]["age"] == X[i]["age"]
    pred = result.predictions.query("model == 'threshold' and set == 'train_cv'")
    fold = int(pred.loc[pred["patient"] == i, "fold"].iloc[0])
    train = np.setdiff1d(pred["patient"], pred.loc[pred["fold"] == fold, "patient"])
    expected = PetThreshold().fit(X[train], y[train]).predict_mask(X[i : i + 1])[0]
    np.testing.assert_array_equal(seen["predicted"], expected)


def test_failing_figure_warns_and_continues(run, tmp_path, monkeypatch):
    import survseg.plotting.report as report

    X, y, result = run

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "plot_overlay", broken)
    with pytest.warns(UserWarning, match="overlay_threshold.png skipped: RuntimeError: boom"):
        written = figures_for_benchmark(result, X, y, tmp_path)
    assert "km_threshold.png" in written and "overlay_threshold.png" not in written


@pytest.mark.slow
def test_deep_models_figures(tmp_path):
    """AdaMSS and DeepMTS, a few iterations each: history, overlay, attention, fusion."""
    import torch

    from survseg.datasets import make_petct_cohort
    from survseg.estimators.adamss import AdaMSSRegressor
    from survseg.estimators.deepmts import DeepMTSRegressor

    torch.set_num_threads(1)
    X, y = make_petct_cohort(n_patients=16, shape=(32, 32, 32), random_state=0)
    models = {
        "AdaMSS": AdaMSSRegressor(
            max_iter=6,
            radiomics=False,
            random_state=0,
            network_params=dict(
                single_channels=(4, 8, 16, 32, 64), fuse_channels=(8, 16, 32, 64, 128)
            ),
        ),
        "DeepMTS": DeepMTSRegressor(max_iter=6, random_state=0),
    }
    result = benchmark(models, X, y, cv=2, n_bootstrap=30, keep_models=True)
    written = figures_for_benchmark(result, X, y, tmp_path)
    assert set(written) == {
        "cindex.png",
        "km_AdaMSS.png",
        "km_DeepMTS.png",
        "history_AdaMSS.png",
        "history_DeepMTS.png",
        "overlay_AdaMSS.png",
        "overlay_DeepMTS.png",
        "attention_AdaMSS.png",
        "fusion_AdaMSS.png",
        "calibration.png",
        "dcal_AdaMSS.png",
        "dcal_DeepMTS.png",
    }
    assert all(_not_blank(p) for p in written.values())


class AgeCox(SurvivalMixin, BaseEstimator):
    """scikit-survival's Cox model on age: gives survival functions, so calibration figures."""

    def fit(self, X, y):
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        self.cox_ = CoxPHSurvivalAnalysis().fit(self._age(X), y)
        return self

    @staticmethod
    def _age(X):
        return np.asarray(X["age"], dtype=float)[:, None]

    def predict(self, X):
        return self.cox_.predict(self._age(X))

    def predict_survival_function(self, X, return_array=False):
        return self.cox_.predict_survival_function(self._age(X), return_array=return_array)


@pytest.fixture(scope="module")
def run_cox():
    from survseg.datasets import make_petct_cohort

    X, y = make_petct_cohort(n_patients=30, shape=(16, 16, 16), random_state=2)
    models = {"age": Age(), "agecox": AgeCox()}
    result = benchmark(models, X, y, cv=3, n_bootstrap=30, random_state=0)
    return X, y, result


def test_calibration_figures_of_models_with_survival_functions(run_cox, tmp_path, monkeypatch):
    import survseg.plotting.report as report
    from survseg.evaluation.calibration import calibration_at_horizon, d_calibration

    X, y, result = run_cox
    seen = {}
    real_cal, real_dcal = report.plot_calibration, report.plot_d_calibration

    def spy_cal(cals, **kwargs):
        seen["cal"], seen["labels"] = cals, kwargs["label"]
        return real_cal(cals, **kwargs)

    def spy_dcal(dcal, **kwargs):
        seen["dcal"] = dcal
        return real_dcal(dcal, **kwargs)

    monkeypatch.setattr(report, "plot_calibration", spy_cal)
    monkeypatch.setattr(report, "plot_d_calibration", spy_dcal)
    written = figures_for_benchmark(result, X, y, tmp_path)
    # only the model with survival functions gets calibration figures
    assert {"calibration.png", "dcal_agecox.png"} <= set(written)
    assert "dcal_age.png" not in written and seen["labels"] == ["agecox"]
    assert all(_not_blank(written[n]) for n in ("calibration.png", "dcal_agecox.png"))
    # reference: the benchmark's folds refitted independently with scikit-survival's Cox
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    horizon = result.table.attrs["calibration_horizon"]
    at_horizon, own = np.empty(len(X)), np.empty(len(X))
    age = np.asarray(X["age"], float)[:, None]
    for train, test in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"]):
        cox = CoxPHSurvivalAnalysis().fit(age[train], y[train])
        fns = cox.predict_survival_function(age[test])
        # a curve is constant after its last step: times past it take its last value
        at_horizon[test] = [fn(min(horizon, fn.x[-1])) for fn in fns]
        own[test] = [fn(min(t, fn.x[-1])) for fn, t in zip(fns, y["time"][test], strict=True)]
    expected = calibration_at_horizon(y, at_horizon, horizon)
    (cal,) = seen["cal"]
    np.testing.assert_allclose(cal.predicted, expected.predicted, rtol=1e-10)
    np.testing.assert_allclose(cal.observed, expected.observed, rtol=1e-10)
    np.testing.assert_allclose(seen["dcal"].proportions, d_calibration(y, own).proportions)
    # the table's calibration columns are of the same out-of-fold curves
    row = result.table.set_index("model").loc["agecox"]
    np.testing.assert_allclose(row["ece"], expected.ece, rtol=1e-10)
