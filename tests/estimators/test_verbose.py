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
