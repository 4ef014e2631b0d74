"""Built-in data: a synthetic head-and-neck PET/CT cohort with known survival risk."""

from .synthetic import DEFAULT_COEF, make_petct_cohort

__all__ = ["make_petct_cohort", "DEFAULT_COEF"]
