"""Cohorts to learn from: loaders of PET/CT data on disk (a CSV manifest, the HECKTOR 2022
layout) and a synthetic head-and-neck PET/CT cohort with known survival risk.

As in scikit-learn's ``datasets``, ``load_*`` read real data and ``make_*`` generate it; each
returns a survseg cohort ``X`` and scikit-survival's ``y``.
"""

from .hecktor import load_hecktor
from .manifest import load_manifest
from .synthetic import DEFAULT_COEF, make_petct_cohort

__all__ = ["DEFAULT_COEF", "load_hecktor", "load_manifest", "make_petct_cohort"]
