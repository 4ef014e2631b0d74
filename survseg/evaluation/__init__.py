"""Metrics and statistical comparison of survival and segmentation models."""

from .benchmark import BenchmarkResult, benchmark
from .compare import ConcordanceComparison, compare_concordance, concordance_ci
from .metrics import (
    concordance_index,
    dice_score,
    evaluation_times,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = [
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
