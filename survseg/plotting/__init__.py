"""Figures for survival models on PET/CT: risk groups, masks, attention, training, comparison.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``;
most accept an existing ``ax`` (single-panel plots) or ``fig`` (multi-panel plots) to draw
into. matplotlib is optional: install it with ``pip install survseg[plot]``. It is imported
when a plot is drawn, not when this package is imported.
"""

from ._mpl import save_figure
from .attention import plot_attention, plot_fusion_weights, resample_to
from .calibration import plot_calibration, plot_d_calibration
from .comparison import plot_cindex_comparison
from .history import plot_history, split_history_columns
from .overlay import plot_overlay
from .report import figures_for_benchmark, fold_thresholds
from .slices import largest_cross_section, take_slice
from .survival import RiskGroupTest, logrank_risk_groups, plot_risk_groups

__all__ = [
    "RiskGroupTest",
    "figures_for_benchmark",
    "fold_thresholds",
    "largest_cross_section",
    "logrank_risk_groups",
    "plot_attention",
    "plot_calibration",
    "plot_d_calibration",
    "plot_cindex_comparison",
    "plot_fusion_weights",
    "plot_history",
    "plot_overlay",
    "plot_risk_groups",
    "resample_to",
    "save_figure",
    "split_history_columns",
    "take_slice",
]
