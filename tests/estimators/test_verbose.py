"""``verbose`` shows progress bars (on stderr, through tqdm) and nothing when off."""

import numpy as np
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis

from survseg.estimators.ensemble import FoldEnsemble
from survseg.estimators.radiomics_cox import RadiomicsCox
from survseg.radiomics import RadiomicsExtractor
from tests.conftest import sphere_cohort


def test_fold_ensemble_progress(capsys):
    X, y = load_whas500()
    X = X[["age", "bmi", "hr"]].astype(float)
    FoldEnsemble(CoxPHSurvivalAnalysis(), cv=3, random_state=0, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "FoldEnsemble" in err and "3/3" in err and "C-index" in err
    FoldEnsemble(CoxPHSurvivalAnalysis(), cv=3, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""


def test_radiomics_cox_progress_reaches_the_extractor(capsys):
    X, y = sphere_cohort(n=10, seed=2)
    extractor = RadiomicsExtractor(
        image_types=("original",),
        feature_classes=("firstorder", "shape"),
        bin_width={"pet": 0.1, "ct": 0.02},
        cache=False,
    )
    model = RadiomicsCox(extractor=extractor, n_alphas=5, cv=2, random_state=0, verbose=1)
    model.fit(X, y)
    err = capsys.readouterr().err
    assert "radiomics" in err and "30/30" in err  # 10 patients x (pet, ct, shape)
    assert model.extractor_.verbose == 1 and extractor.verbose == 0  # the clone, not the user's
    quiet = RadiomicsCox(extractor=extractor, n_alphas=5, cv=2, random_state=0).fit(X, y)
    assert "radiomics" not in capsys.readouterr().err
    np.testing.assert_allclose(quiet.predict(X), model.predict(X))


def test_training_bar_shows_the_validation_scores(capsys):
    from survseg.estimators.deepsurv import DeepSurv

    X, y = load_whas500()
    X = X[["age", "bmi", "hr"]].to_numpy(float)
    X = (X - X.mean(0)) / X.std(0)
    model = DeepSurv(
        hidden_layer_sizes=(4,),
        max_iter=6,
        validation_fraction=0.2,
        validate_every=3,
        random_state=0,
        verbose=1,
    ).fit(X, y)
    err = capsys.readouterr().err
    # the values shown are the history's (rounded to 4 decimals)
    last = model.history_.dropna(subset=["val_c_index"]).iloc[-1]
    assert f"val_c_index={last['val_c_index']:.4f}" in err
    assert f"val_loss={last['val_loss']:.4f}" in err and "loss=" in err
    DeepSurv(hidden_layer_sizes=(4,), max_iter=6, validation_fraction=0.2, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""


def test_adamss_radiomics_extraction_shows_progress(capsys):
    """AdaMSS's radiomics of its stage-I masks get a progress bar with verbose (issue 16)."""
    from survseg.datasets import make_petct_cohort
    from survseg.estimators.adamss import AdaMSSRegressor
    from survseg.radiomics import clear_cache
    from tests.estimators.test_adamss_estimator import FAST_RADIOMICS, TINY, _normalise

    # the process-wide feature cache would serve an earlier test's extraction of the same
    # masks without a progress bar: this test must extract
    clear_cache()
    X, y = make_petct_cohort(12, shape=(16, 16, 16), random_state=0)
    X = _normalise(X)
    model = AdaMSSRegressor(
        **{**TINY, "radiomics": True, "extractor": FAST_RADIOMICS, "max_iter": 1, "verbose": 1}
    ).fit(X, y)
    err = capsys.readouterr().err
    assert "radiomics" in err and "segmentation" in err and "survival" in err
    assert FAST_RADIOMICS.verbose == 0  # the user's extractor is not changed
    model.set_params(verbose=0).predict(X)
    assert capsys.readouterr().err == ""
