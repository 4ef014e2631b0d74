"""scikit-learn survival estimators: the deep models, the radiomics baselines and meta-estimators."""

from .adamss import AdaMSSRegressor
from .deepmts import DeepMTSRegressor
from .deepsurv import DeepSurv
from .ensemble import FoldEnsemble
from .icare import BaggedIcareSurvival, IcareSurvival
from .lasso_cox import LassoCoxCV
from .pipelines import (
    ClinicalColumns,
    make_feature_selector,
    make_radiomics_pipeline,
    make_survival_pipeline,
)
from .radiomics_cox import RadiomicsCox

__all__ = [
    "AdaMSSRegressor",
    "BaggedIcareSurvival",
    "ClinicalColumns",
    "DeepMTSRegressor",
    "DeepSurv",
    "FoldEnsemble",
    "IcareSurvival",
    "LassoCoxCV",
    "RadiomicsCox",
    "make_feature_selector",
    "make_radiomics_pipeline",
    "make_survival_pipeline",
]
