"""Metrics and statistical comparison of survival and segmentation models."""

from .benchmark import BenchmarkResult, benchmark
from .calibration import (
    DCalibration,
    HorizonCalibration,
    calibration_at_horizon,
    calibration_slope,
    d_calibration,
    survival_at,
)
from .compare import ConcordanceComparison, compare_concordance, concordance_ci
from .metrics import (
    concordance_index,
    concordance_index_uno,
    dice_score,
    evaluation_times,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = [
    "DCalibration",
    "HorizonCalibration",
    "calibration_at_horizon",
    "calibration_slope",
    "d_calibration",
    "survival_at",
    "concordance_index_uno",
    "BenchmarkResult",
    "benchmark",
    "ConcordanceComparison",
    "compare_concordance",
    "concordance_ci",
    "concordance_index",
    "dice_score",
    "evaluation_times",
    "integrated_brier_score",
    "time_dependent_auc",
]
