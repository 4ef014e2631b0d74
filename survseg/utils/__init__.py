"""Utilities for people who build on survseg: the estimator contract checks."""

from .estimator_checks import all_estimators, check_estimator, estimator_checks

__all__ = ["all_estimators", "check_estimator", "estimator_checks"]
