"""Metrics and statistical comparison of survival and segmentation models."""

from .metrics import (
    concordance_index,
    dice_score,
    evaluation_times,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = [
    "concordance_index",
    "dice_score",
    "evaluation_times",
    "integrated_brier_score",
    "time_dependent_auc",
]
