"""survseg: survival prediction and tumour segmentation from 3D PET/CT as scikit-learn estimators.

The cohort ``X`` is a numpy structured array (one record per patient: image fields, an optional
``'mask'`` and clinical scalars; see :func:`volumes`); ``y`` is scikit-survival's structured
survival array. Every estimator takes the same ``X``.

Estimators and the benchmark are imported lazily, so ``import survseg`` stays cheap.
"""

from importlib import import_module

from .data.cohort import from_dataframe, load_cohort, save_cohort, volumes

__version__ = "0.1.0.dev0"

_LAZY = {
    "RadiomicsCox": "survseg.estimators",
    "DeepSurv": "survseg.estimators",
    "DeepMTSRegressor": "survseg.estimators",
    "AdaMSSRegressor": "survseg.estimators",
    "FoldEnsemble": "survseg.estimators",
    "LassoCoxCV": "survseg.estimators",
    "make_survival_pipeline": "survseg.estimators",
    "make_radiomics_pipeline": "survseg.estimators",
    "IcareSurvival": "survseg.estimators",
    "BaggedIcareSurvival": "survseg.estimators",
    "RadiomicsExtractor": "survseg.radiomics",
    "CoxPValueSelector": "survseg.feature_selection",
    "concordance_score": "survseg.feature_selection",
    "cox_score_test": "survseg.feature_selection",
    "benchmark": "survseg.evaluation.benchmark",
    "calibration_at_horizon": "survseg.evaluation.calibration",
    "d_calibration": "survseg.evaluation.calibration",
    "Checkpoint": "survseg.training.checkpoint",
    "EarlyStopping": "survseg.training.checkpoint",
    "save_weights": "survseg.persistence",
    "load_weights": "survseg.persistence",
}

__all__ = ["__version__", "from_dataframe", "load_cohort", "save_cohort", "volumes", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'survseg' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
