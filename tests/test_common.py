"""The scikit-learn contract over every public estimator (survseg.utils.estimator_checks)."""

from __future__ import annotations

import pytest

from survseg.estimators import (
    AdaMSSRegressor,
    BaggedIcareSurvival,
    ClinicalColumns,
    DeepMTSRegressor,
    DeepSurv,
    FoldEnsemble,
    IcareSurvival,
    LassoCoxCV,
    RadiomicsCox,
)
from survseg.radiomics import RadiomicsExtractor
from survseg.utils.estimator_checks import CHECK_NAMES, all_estimators, estimator_checks
from tests.tiny_models import DEEPMTS_NETWORK_MINI

_FAST_RADIOMICS = dict(
    feature_classes=["firstorder"], image_types=["original"], settings={"binCount": 8}
)
_CT_PET = {"pet": "zscore", "ct": "window"}

#: One tiny instance of every public estimator (the test fails when a new one is missing).
TINY = {
    "AdaMSSRegressor": lambda: AdaMSSRegressor(
        network_params=dict(
            single_channels=(2, 2), fuse_channels=(2, 4), n_convs=(1, 1), hidden_features=4
        ),
        max_iter=2,
        radiomics=False,
        intensity=_CT_PET,
        device="cpu",
    ),
    "BaggedIcareSurvival": lambda: BaggedIcareSurvival(n_estimators=3, random_state=0),
    "ClinicalColumns": lambda: ClinicalColumns(columns=["age", "tnm_stage"]),
    "DeepMTSRegressor": lambda: DeepMTSRegressor(
        network_params=DEEPMTS_NETWORK_MINI,
        max_iter=2,
        batch_size=4,
        intensity=_CT_PET,
        device="cpu",
    ),
    "DeepSurv": lambda: DeepSurv((4,), max_iter=20),
    "FoldEnsemble": lambda: FoldEnsemble(DeepSurv((3,), max_iter=10), cv=2),
    "IcareSurvival": lambda: IcareSurvival(),
    "LassoCoxCV": lambda: LassoCoxCV(n_alphas=10, cv=2),
    "RadiomicsCox": lambda: RadiomicsCox(
        RadiomicsExtractor(**_FAST_RADIOMICS), clinical=["age"], n_alphas=10, cv=2
    ),
}

#: Settings that change what ``fit`` assigns and ``predict`` reads: checked as well.
VARIANTS = {
    "AdaMSSRegressor[cox head]": lambda: TINY["AdaMSSRegressor"]().set_params(
        survival_head="cox", survival_inputs="segmentation", intensity={"pet": "zscore"},
        modalities=("pet",),
    ),
    "DeepMTSRegressor[cox head]": lambda: TINY["DeepMTSRegressor"]().set_params(
        survival_head="cox", survival_inputs="segmentation", feature_scaling="standardize"
    ),
}  # fmt: skip
CONFIGS = {**TINY, **VARIANTS}

_CONTEXTS = {}


def _checks(name):
    if name not in _CONTEXTS:
        _CONTEXTS[name] = dict(estimator_checks(CONFIGS[name]()))
    return _CONTEXTS[name]


def test_every_public_estimator_is_checked():
    assert sorted(TINY) == [name for name, _ in all_estimators()]


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_contract(name, check):
    _checks(name)[check]()
