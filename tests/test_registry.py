"""The model registry behind the CLI and the demo."""

import pytest
from sklearn.base import BaseEstimator

from survseg.commands import make_model as cli_model
from survseg.demo import demo_models
from survseg.radiomics import RadiomicsExtractor
from survseg.registry import CPU_NETWORKS, MODEL_NAMES, PAPER_INTENSITY, make_model


def _extractors(est):
    """Every RadiomicsExtractor inside an estimator's parameters."""
    return [v for v in est.get_params(deep=True).values() if isinstance(v, RadiomicsExtractor)]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_spacing_reaches_every_radiomics_extractor(name):
    est = make_model(name, spacing=(3.0, 1.0, 1.0))
    for extractor in _extractors(est):
        assert extractor.spacing == (3.0, 1.0, 1.0)
    has_radiomics = name.startswith("Radiomics") or name == "AdaMSS"
    assert bool(_extractors(est)) == has_radiomics


def test_paper_and_cpu_settings_and_units():
    paper = make_model("AdaMSS")
    assert paper.network_params is None and paper.lr == (1e-4, 5e-5)
    assert paper.intensity == PAPER_INTENSITY["AdaMSS"]
    assert make_model("AdaMSS", units="normalised").intensity is None
    cpu = make_model("DeepMTS", settings="cpu", max_iter=7)
    assert cpu.network_params == CPU_NETWORKS["DeepMTS"] and cpu.lr == 1e-3 and cpu.max_iter == 7
    assert make_model("DeepMTS", {"max_iter": 3}).max_iter == 3
    with pytest.raises(ValueError, match="unknown model"):
        make_model("CoxNet")
    with pytest.raises(ValueError, match="settings"):
        make_model("DeepMTS", settings="gpu")


def test_cli_and_demo_build_from_the_registry():
    for name in MODEL_NAMES:
        assert isinstance(cli_model(name), BaseEstimator)
    demo = demo_models(iterations=5, spacing=2.0)
    assert demo["AdaMSS-small-data"].max_iter == 5
    assert demo["AdaMSS-small-data"].survival_head == "cox"
    # the registry's small-data AdaMSS trains on batches of 8 at the CPU rate and keeps its
    # best tumour Dice; the demo's on batches of 4, at 3x that rate, by the mean Dice
    registry = make_model("AdaMSS-small-data", settings="cpu")
    assert (registry.batch_size, registry.segmentation_monitor) == (8, "tumour")
    assert registry.lr == (1e-3, 5e-4)
    ada = demo["AdaMSS-small-data"]
    assert (ada.batch_size, ada.lr, ada.segmentation_monitor) == (4, (3e-3, 5e-4), "mean")
    assert demo["Radiomics+RSF"].get_params()["features__features__spacing"] == 2.0
    assert demo["RadiomicsCox"].extractor.image_types == ("original",)
    assert demo["DeepMTS-small-data"].survival_inputs == "segmentation"
    assert demo["DeepMTS-small-data"].survival_head == "cox"


def test_clinical_cox_matches_scikit_survival_on_the_clinical_columns():
    """The ClinicalCox row is scikit-survival's Cox model on the z-scored clinical fields."""
    import numpy as np
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from survseg.datasets import make_petct_cohort

    X, y = make_petct_cohort(40, (16, 16, 16), random_state=5)
    fields = ["age", "hpv", "tnm_stage"]
    model = make_model("ClinicalCox", clinical=fields).fit(X, y)
    Z = np.column_stack([X[f].astype(float) for f in fields])
    Z = (Z - Z.mean(0)) / Z.std(0)
    reference = CoxPHSurvivalAnalysis().fit(Z, y)
    np.testing.assert_allclose(model[-1].coef_, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.predict(X), reference.predict(Z), rtol=1e-6)
