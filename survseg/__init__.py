"""survseg: survival prediction and tumour segmentation from 3D PET/CT as scikit-learn estimators.

The cohort ``X`` is a numpy structured array (one record per patient: image fields, an optional
``'mask'`` and clinical scalars; see :func:`volumes`); ``y`` is scikit-survival's structured
survival array. Every estimator takes the same ``X``.
"""

from .data.cohort import from_dataframe, load_cohort, save_cohort, volumes

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "from_dataframe", "load_cohort", "save_cohort", "volumes"]
