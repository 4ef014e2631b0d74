r"""Calibration plots: predicted vs Kaplan-Meier survival at a horizon, and D-calibration.

Both draw results of :mod:`survseg.evaluation.calibration`:
:func:`plot_calibration` a :class:`~survseg.evaluation.calibration.HorizonCalibration`
(one point per risk group, the observed Kaplan-Meier survival with its 95 % interval against
the mean predicted survival; a calibrated model lies on the diagonal), and
:func:`plot_d_calibration` a :class:`~survseg.evaluation.calibration.DCalibration` (the
histogram of :math:`\hat S_i(T_i)`, flat at :math:`1/B` for a D-calibrated model).
"""

from __future__ import annotations

import numpy as np

from ._mpl import new_axes

__all__ = ["plot_calibration", "plot_d_calibration"]


def plot_calibration(calibration, *, label=None, color="tab:blue", time_label=None, ax=None):
    """Observed (Kaplan-Meier) against predicted survival at the horizon, by risk group.

    Parameters
    ----------
    calibration : HorizonCalibration or sequence of them
        From :func:`survseg.evaluation.calibration.calibration_at_horizon`; several (e.g. one
        per model, with ``label`` a sequence) are drawn on one axes.
    label : str or sequence of str, optional
        Legend entry (the ECE and slope are appended).
    color : colour or sequence of colours
    time_label : str, optional
        Unit of the horizon for the title (e.g. ``"months"``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from survseg.evaluation.calibration import calibration_at_horizon
    >>> from survseg.plotting import plot_calibration
    >>> cal = calibration_at_horizon(y_test, model.predict_survival_function(X_test), 24.0)  # doctest: +SKIP
    >>> plot_calibration(cal, label="DeepMTS").savefig("calibration.png")  # doctest: +SKIP
    """
    cals = [calibration] if hasattr(calibration, "predicted") else list(calibration)
    if not cals:
        raise ValueError("no calibration result to plot.")
    labels = [label] if isinstance(label, str) or label is None else list(label)
    colors = [color] if isinstance(color, str) else list(color)
    if len(labels) == 1:
        labels = labels * len(cals)
    if len(colors) == 1 and len(cals) > 1:
        colors = [f"C{i}" for i in range(len(cals))]
    if len(labels) != len(cals) or len(colors) != len(cals):
        raise ValueError(
            f"{len(cals)} calibration results but {len(labels)} labels and {len(colors)} colours."
        )
    horizons = {c.horizon for c in cals}
    if len(horizons) > 1:
        raise ValueError(f"the results are at different horizons {sorted(horizons)}.")
    fig, ax = new_axes(ax, figsize=(5.0, 5.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="Perfect calibration")
    for cal, lab, col in zip(cals, labels, colors, strict=True):
        lo = np.where(np.isfinite(cal.observed_low), cal.observed_low, cal.observed)
        hi = np.where(np.isfinite(cal.observed_high), cal.observed_high, cal.observed)
        err = np.vstack([cal.observed - lo, hi - cal.observed]).clip(min=0)
        text = f"ECE {cal.ece:.3f}, slope {cal.slope:.2f}"
        ax.errorbar(
            cal.predicted,
            cal.observed,
            yerr=err,
            fmt="o-",
            color=col,
            ms=5,
            lw=1.2,
            capsize=3,
            label=text if lab is None else f"{lab} ({text})",
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("Predicted survival probability")
    ax.set_ylabel("Observed (Kaplan-Meier) survival")
    unit = f" {time_label}" if time_label else ""
    ax.set_title(f"Calibration at t = {cals[0].horizon:g}{unit}")
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return fig


def plot_d_calibration(dcal, *, color="tab:blue", title=None, ax=None):
    """Histogram of each patient's predicted survival at their own time (D-calibration).

    Parameters
    ----------
    dcal : DCalibration
        From :func:`survseg.evaluation.calibration.d_calibration`.
    color : colour
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = new_axes(ax, figsize=(5.5, 4.0))
    widths = np.diff(dcal.edges)
    ax.bar(
        dcal.edges[:-1],
        dcal.proportions,
        width=widths,
        align="edge",
        color=color,
        alpha=0.75,
        edgecolor="white",
    )
    ax.axhline(1.0 / len(widths), color="0.3", ls="--", lw=1, label="Uniform (D-calibrated)")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"Predicted survival at the patient's own time, $\hat S_i(T_i)$")
    ax.set_ylabel("Proportion of patients")
    p = dcal.p_value
    ax.legend(
        loc="upper right",
        frameon=False,
        title=f"$\\chi^2_{{{len(widths) - 1}}}$ = {dcal.statistic:.1f}, "
        + (f"p = {p:.3f}" if p >= 1e-3 else f"p = {p:.1e}"),
    )
    if title is not None:
        ax.set_title(title)
    return fig
