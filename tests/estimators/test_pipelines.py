"""Feature pipelines: clinical columns, the selection stack by hand, any features + each head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sksurv.ensemble import RandomSurvivalForest
from sksurv.functions import StepFunction

from survseg.datasets import make_petct_cohort
from survseg.estimators.deepsurv import DeepSurv
from survseg.estimators.lasso_cox import LassoCoxCV
from survseg.estimators.pipelines import (
    ClinicalColumns,
    make_feature_selector,
    make_radiomics_pipeline,
    make_survival_pipeline,
)
from survseg.radiomics import RadiomicsExtractor


@pytest.fixture(scope="module")
def data():
    X, y, truth = make_petct_cohort(
        60, (24, 24, 24), random_state=0, event_rate=0.5, return_truth=True
    )
    return X, y, truth.spacing_mm


class TumourStats(TransformerMixin, BaseEstimator):
    """A stand-in for any feature transformer (e.g. deep features): simple mask statistics."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        m = X["mask"].astype(bool)
        pet = np.where(m, X["pet"], np.nan)
        return pd.DataFrame(
            {
                "deep_volume": m.reshape(len(X), -1).sum(axis=1).astype(float),
                "deep_volume_copy": 2.0 * m.reshape(len(X), -1).sum(axis=1) + 1,
                "deep_suv_mean": np.nanmean(pet.reshape(len(X), -1), axis=1),
                "deep_suv_max": np.nanmax(pet.reshape(len(X), -1), axis=1),
            }
        )

    def get_feature_names_out(self, input_features=None):
        return np.array(
            ["deep_volume", "deep_volume_copy", "deep_suv_mean", "deep_suv_max"], dtype=object
        )


def test_clinical_columns(data):
    X, _, _ = data
    out = ClinicalColumns(["age", "hpv"]).fit_transform(X)
    assert list(out.columns) == ["clinical_age", "clinical_hpv"]
    np.testing.assert_array_equal(out["clinical_age"], X["age"].astype(float))
    assert list(ClinicalColumns().fit(X).get_feature_names_out()) == [
        "clinical_age",
        "clinical_sex",
        "clinical_hpv",
        "clinical_tnm_stage",
    ]
    with pytest.raises(ValueError, match=r"\['bmi'\] not in X"):
        ClinicalColumns(["bmi"]).fit(X)
    with pytest.raises(ValueError, match="'all' or a list"):
        ClinicalColumns("age").fit(X)


def test_selector_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    df = pd.DataFrame(
        {
            "f_a": a,
            "f_a_cubed": a**3,  # same ranks as f_a: redundant
            "f_const": np.full(30, 4.0),  # constant: dropped
            "f_gappy": rng.normal(size=30),  # missing values: training median
            "clinical_age": a,  # perfectly correlated with f_a but clinical: kept
        }
    )
    df.loc[[2, 5], "f_gappy"] = np.nan
    sel = make_feature_selector(0.7).set_output(transform="pandas")
    out = sel.fit_transform(df)
    assert list(out.columns) == ["clinical_age", "f_a", "f_gappy"]
    gappy = df["f_gappy"].fillna(df["f_gappy"].median())
    expected = (gappy - gappy.mean()) / gappy.std(ddof=0)
    np.testing.assert_allclose(out["f_gappy"], expected)
    np.testing.assert_allclose(out["f_a"], (a - a.mean()) / a.std())


@pytest.mark.parametrize(
    "head, cls", [("lasso_cox", LassoCoxCV), ("rsf", RandomSurvivalForest), ("deepsurv", DeepSurv)]
)
def test_any_features_with_each_head(data, head, cls):
    X, y, _ = data
    pipe = make_survival_pipeline(TumourStats(), head, clinical=["age"], random_state=0)
    assert isinstance(pipe.named_steps["model"], cls)
    pipe.fit(X[:45], y[:45])
    names = list(pipe[:-1].get_feature_names_out())
    assert "clinical_age" in names and "deep_volume" in names and "deep_volume_copy" not in names
    risk = pipe.predict(X[45:])
    assert risk.shape == (15,) and np.isfinite(risk).all()
    fns = pipe.predict_survival_function(X[45:48])
    assert len(fns) == 3 and all(isinstance(f, StepFunction) for f in fns)
    assert 0 <= pipe.score(X[45:], y[45:]) <= 1


def test_custom_head_is_cloned(data):
    X, y, _ = data
    head = LassoCoxCV(n_alphas=5, cv=2)
    pipe = make_survival_pipeline(TumourStats(), head).fit(X, y)
    assert pipe.named_steps["model"] is not head and not hasattr(head, "coef_")


@pytest.mark.parametrize(
    "head, cls", [("lasso_cox", LassoCoxCV), ("rsf", RandomSurvivalForest), ("deepsurv", DeepSurv)]
)
def test_ready_made_radiomics_pipelines(data, head, cls):
    X, y, spacing = data
    ext = RadiomicsExtractor(
        feature_classes=["firstorder", "glcm", "shape"],
        image_types=["original"],
        bin_width={"pet": 0.5, "ct": 25.0},
        spacing=spacing,
    )
    pipe = make_radiomics_pipeline(head, extractor=ext, clinical=["tnm_stage"], random_state=0)
    assert isinstance(pipe.named_steps["model"], cls)
    if head == "rsf":  # one cross-validation end to end (RadiomicsCox's test covers Lasso-Cox)
        cv = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y["event"])
        scores = cross_val_score(pipe, X, y, cv=list(cv))
        assert np.all((scores >= 0) & (scores <= 1))
    else:
        pipe.fit(X[:45], y[:45])
        assert np.isfinite(pipe.predict(X[45:])).all()
        assert "clinical_tnm_stage" in pipe[:-1].get_feature_names_out()


def test_default_extractor_is_the_papers():
    pipe = make_radiomics_pipeline("lasso_cox")
    ext = pipe.named_steps["features"]
    assert isinstance(ext, RadiomicsExtractor) and ext.feature_classes is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="head must be"):
        make_survival_pipeline(TumourStats(), "cox_boost")
    with pytest.raises(TypeError, match="features must be a transformer"):
        make_survival_pipeline(LassoCoxCV(), "lasso_cox")
    with pytest.raises(TypeError, match="correlation_threshold"):
        make_survival_pipeline(TumourStats(), correlation_threshold="0.7")
