"""RadiomicsCox end to end on a synthetic PET/CT cohort: readable model, CV with caching, API."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score

import survseg.radiomics.extractor as extractor_module
from survseg.data.cohort import volumes
from survseg.datasets import make_petct_cohort
from survseg.estimators.radiomics_cox import RadiomicsCox
from survseg.radiomics import RadiomicsExtractor, clear_cache


@pytest.fixture(scope="module")
def data():
    X, y, truth = make_petct_cohort(
        60, (24, 24, 24), random_state=0, event_rate=0.5, return_truth=True
    )
    return X, y, truth.spacing_mm


def small_extractor(spacing, **kwargs):
    """A fast feature set: first-order and GLCM on the original images, plus shape."""
    return RadiomicsExtractor(
        feature_classes=["firstorder", "glcm", "shape"],
        image_types=["original"],
        bin_width={"pet": 0.5, "ct": 25.0},
        spacing=spacing,
        **kwargs,
    )


@pytest.fixture(scope="module")
def fitted(data):
    X, y, spacing = data
    train = np.arange(45)
    model = RadiomicsCox(
        small_extractor(spacing), clinical=["age", "tnm_stage"], cv=3, random_state=0
    )
    return model.fit(X[train], y[train])


def test_model_is_readable_and_predicts_from_its_coefficients(data, fitted):
    X, y, spacing = data
    model = fitted
    assert isinstance(model.coef_, pd.Series)
    assert list(model.coef_.index) == list(model.feature_names_)
    nonzero = model.coef_[model.coef_ != 0]
    assert sorted(model.selected_features_) == sorted(nonzero.index)
    assert list(np.abs(model.coef_[model.selected_features_])) == sorted(
        np.abs(nonzero), reverse=True
    )
    assert {"clinical_age", "clinical_tnm_stage"} <= set(model.feature_names_)

    # risk = z-scored features (training mean / population sd) times the readable coefficients
    def table(rows):
        f = small_extractor(spacing).fit_transform(X[rows])
        f["clinical_age"] = X["age"][rows].astype(float)
        f["clinical_tnm_stage"] = X["tnm_stage"][rows].astype(float)
        return f

    train, test = table(np.arange(45)), table(np.arange(45, 60))
    cols = list(model.feature_names_)
    mean, sd = train[cols].mean(), train[cols].std(ddof=0)
    np.testing.assert_allclose(
        model.predict(X[45:]), ((test[cols] - mean) / sd) @ model.coef_, atol=1e-8
    )


def test_kept_radiomics_features_are_not_redundant(data, fitted):
    X, _, spacing = data
    radiomics = [c for c in fitted.feature_names_ if not c.startswith("clinical_")]
    features = small_extractor(spacing).fit_transform(X[:45])[radiomics]
    rho = np.abs(spearmanr(features.to_numpy()).statistic)
    np.fill_diagonal(rho, 0)
    assert rho.max() <= 0.7
    # and a feature that was dropped is correlated > 0.7 with a kept one
    allf = small_extractor(spacing).fit_transform(X[:45])
    dropped = [c for c in allf.columns if c not in radiomics and allf[c].std() > 0]
    assert dropped
    d = dropped[0]
    assert max(abs(spearmanr(allf[d], allf[k]).statistic) for k in radiomics) > 0.7


def test_survival_functions(data, fitted):
    X, _, _ = data
    fns = fitted.predict_survival_function(X[45:50])
    arr = fitted.predict_survival_function(X[45:50], return_array=True)
    assert len(fns) == 5 and arr.shape == (5, len(fitted.unique_times_))
    np.testing.assert_allclose(np.vstack([f(fitted.unique_times_) for f in fns]), arr)
    assert np.all(np.diff(arr, axis=1) <= 1e-12) and np.all((arr >= 0) & (arr <= 1))
    chf = fitted.predict_cumulative_hazard_function(X[45:50], return_array=True)
    np.testing.assert_allclose(np.exp(-chf), arr)


def test_cross_validation_extracts_each_patient_once(data, monkeypatch):
    X, y, spacing = data
    calls = []
    original = extractor_module._run_unit
    monkeypatch.setattr(
        extractor_module, "_run_unit", lambda i, *a: calls.append(i) or original(i, *a)
    )
    clear_cache()
    cv = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"])
    scores = cross_val_score(
        RadiomicsCox(small_extractor(spacing), cv=3, random_state=0), X, y, cv=list(cv)
    )
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    assert len(calls) == len(X) * 3  # (pet, ct, shape) per patient, across 3 folds x (fit, score)


def test_clone_pickle_and_nested_parameters(data, fitted):
    X, y, spacing = data
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X[45:]), fitted.predict(X[45:]))
    params = fitted.get_params(deep=True)
    assert params["extractor__bin_width"] == {"pet": 0.5, "ct": 25.0}
    other = clone(fitted).set_params(extractor__spacing=2 * spacing, correlation_threshold=0.9)
    assert not hasattr(other, "coef_")
    assert other.get_params()["extractor__spacing"] == 2 * spacing
    # the cohort carries its own spacing: a different one is a conflict, not a silent rescale
    with pytest.raises(ValueError, match="conflicts with the cohort's own voxel spacing"):
        other.fit(X[:45], y[:45])
    other.set_params(extractor__spacing=None).fit(X[:45], y[:45])  # the cohort's own
    assert other.extractor_.spacing_ == (spacing,) * 3
    assert fitted.extractor_.spacing_ == (spacing,) * 3  # the original's extractor untouched
    assert RadiomicsCox().get_params()["extractor"] is None


def test_clinical_all_and_seeded_inner_cv(data):
    X, y, spacing = data
    a = RadiomicsCox(small_extractor(spacing), clinical="all", cv=3, random_state=1).fit(
        X[:45], y[:45]
    )
    b = RadiomicsCox(small_extractor(spacing), clinical="all", cv=3, random_state=1).fit(
        X[:45], y[:45]
    )
    assert {"clinical_age", "clinical_sex", "clinical_hpv", "clinical_tnm_stage"} <= set(
        a.feature_names_
    )
    np.testing.assert_array_equal(a.predict(X[45:]), b.predict(X[45:]))


def test_empty_mask_policy_through_the_model(data):
    X, y, spacing = data
    X = X[:45].copy()
    X["mask"][3] = 0
    with pytest.raises(ValueError, match="patient 3: the mask is empty"):
        RadiomicsCox(small_extractor(spacing), cv=3).fit(X, y[:45])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = RadiomicsCox(small_extractor(spacing, empty_mask="nan"), cv=3, random_state=0).fit(
            X, y[:45]
        )
        risk = model.predict(X)
    assert any("patient 3" in str(w.message) for w in caught)
    assert np.isfinite(risk).all()  # the patient gets the training medians, not NaN


def test_bad_input(data):
    X, y, spacing = data
    with pytest.raises(NotFittedError):
        RadiomicsCox().predict(X)
    with pytest.raises(ValueError, match="X has 10 patients but y has 60"):
        RadiomicsCox(small_extractor(spacing)).fit(X[:10], y)
    with pytest.raises(ValueError, match=r"clinical field\(s\) \['bmi'\] not in X"):
        RadiomicsCox(small_extractor(spacing), clinical=["bmi"]).fit(X, y)
    no_mask = volumes(pet=X["pet"], ct=X["ct"])
    with pytest.raises(ValueError, match="no 'mask' field"):
        RadiomicsCox(small_extractor(spacing)).fit(no_mask, y)
    with pytest.raises(ValueError, match="extractor"):
        RadiomicsCox(extractor="pyradiomics").fit(X, y)
    with pytest.raises(ValueError, match="correlation_threshold"):
        RadiomicsCox(correlation_threshold=2).fit(X, y)
    with pytest.raises(TypeError, match="survival array"):
        RadiomicsCox(small_extractor(spacing)).fit(X, y["time"])


@pytest.mark.slow
def test_papers_full_feature_set_end_to_end():
    """The default extractor (1,456 features, wavelets) through 3-fold CV on 40 patients."""
    X, y = make_petct_cohort(40, (32, 32, 32), random_state=1, event_rate=0.5)
    model = RadiomicsCox(
        RadiomicsExtractor(
            bin_width={
                "pet": {"original": 0.5, "wavelet": 0.25},
                "ct": {"original": 25, "wavelet": 10},
            },
            spacing=5.0,
        ),
        cv=3,
        random_state=0,
    )
    scores = cross_val_score(
        model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"])
    )
    assert np.all((scores >= 0) & (scores <= 1))
    assert len(model.fit(X, y).extractor_.get_feature_names_out()) == 1456


def test_regions_and_shells_reach_the_extractor(data):
    X, y, spacing = data
    extractor = RadiomicsExtractor(
        feature_classes=["firstorder", "shape"],
        image_types=["original"],
        bin_width={"pet": 0.5, "ct": 25.0},
        spacing=spacing,
    )
    model = RadiomicsCox(extractor, regions=("tumour", "nodes"), shells=(7.0,), cv=3)
    assert clone(model).get_params()["regions"] == ("tumour", "nodes")
    model.fit(X[:40], y[:40])
    assert model.extractor_.regions_ == ("tumour", "nodes", "shell7mm")
    assert extractor.regions == ("tumour",)  # the given extractor is left as it was
    names = model.extractor_.get_feature_names_out()
    assert "nodes_burden_Volume" in names and "shell7mm_pet_original_firstorder_Mean" in names
    # the node burden reaches the Cox model unless the filters drop it as redundant
    assert any(f.startswith("nodes_") for f in model.feature_names_)
    assert np.isfinite(model.predict(X[40:])).all()
    # None keeps the extractor's own setting
    plain = RadiomicsCox(clone(extractor).set_params(regions=("nodes",)), cv=3).fit(X[:40], y[:40])
    assert all(f.startswith("nodes_") for f in plain.extractor_.get_feature_names_out())


def test_regions_need_an_extractor_that_has_them(data):
    from sklearn.preprocessing import FunctionTransformer

    X, y, _ = data
    custom = FunctionTransformer(lambda X: np.asarray(X["age"])[:, None])
    with pytest.raises(ValueError, match="has no such parameter"):
        RadiomicsCox(custom, regions=("tumour", "nodes")).fit(X, y)
    no_nodes = X[["pet", "ct", "mask", "age"]]
    with pytest.raises(ValueError, match="no 'nodes' field"):
        RadiomicsCox(regions=("tumour", "nodes")).fit(no_nodes, y)
