r"""Kaplan–Meier curves of the high- and low-risk groups, with the log-rank test.

Both papers show a model's prognostic value this way: patients are split at a risk threshold
— the median risk of the *training* patients, so that the split is fixed before the test
patients are seen — and the two groups' survival curves are compared with the log-rank test.

The Kaplan–Meier estimate of a group is

.. math::

    \hat S(t) = \prod_{t_j \le t} \Bigl(1 - \frac{d_j}{n_j}\Bigr),

with :math:`d_j` events among the :math:`n_j` patients at risk at time :math:`t_j`; its
pointwise 95 % band uses the log-log transform (it stays inside [0, 1]). The log-rank
statistic compares observed and expected events per group,

.. math::

    \chi^2 = \frac{\bigl(\sum_j d_{1j} - E_{1j}\bigr)^2}{\sum_j V_{1j}},\qquad
    E_{1j} = d_j\frac{n_{1j}}{n_j},\quad
    V_{1j} = d_j \frac{n_{1j}}{n_j}\Bigl(1-\frac{n_{1j}}{n_j}\Bigr)\frac{n_j-d_j}{n_j-1},

referred to a :math:`\chi^2_1` distribution. Both come from scikit-survival
(:func:`sksurv.nonparametric.kaplan_meier_estimator`, :func:`sksurv.compare.compare_survival`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.validation import survival_arrays
from ._mpl import new_axes

__all__ = ["RiskGroupTest", "logrank_risk_groups", "plot_risk_groups"]


@dataclass(frozen=True)
class RiskGroupTest:
    """Result of :func:`logrank_risk_groups`.

    Attributes
    ----------
    threshold : float
        Risks above it form the high-risk group.
    high_risk : ndarray of bool
        Group membership per patient (``True`` = high risk).
    chisq : float
        Log-rank statistic.
    p_value : float
        Its two-sided p-value (:math:`\\chi^2_1`).
    """

    threshold: float
    high_risk: np.ndarray
    chisq: float
    p_value: float


def _check_risk(risk, n: int) -> np.ndarray:
    risk = np.asarray(risk, dtype=np.float64)
    if risk.ndim != 1 or risk.shape[0] != n:
        raise ValueError(f"risk must have one value per patient ({n}); got shape {risk.shape}.")
    if not np.isfinite(risk).all():
        raise ValueError("risk contains NaN or inf.")
    return risk


def logrank_risk_groups(y, risk, threshold: float | None = None) -> RiskGroupTest:
    """Split patients at ``threshold`` and compare the two groups with the log-rank test.

    Parameters
    ----------
    y : structured ndarray
        Survival outcomes (:func:`sksurv.util.Surv.from_arrays`).
    risk : array-like of shape (n_patients,)
        Predicted risks (higher = earlier event).
    threshold : float, optional
        Patients with ``risk > threshold`` are high risk. Pass the median risk of the
        training patients (``np.median(model.predict(X_train))``) to follow the papers;
        the default, the median of ``risk`` itself, splits these patients in half but
        uses their own risks to place the cut.

    Returns
    -------
    RiskGroupTest

    Raises
    ------
    ValueError
        If one group is empty (every risk on the same side of the threshold).
    """
    from sksurv.compare import compare_survival

    event, time = survival_arrays(y)
    risk = _check_risk(risk, len(time))
    threshold = float(np.median(risk) if threshold is None else threshold)
    high = risk > threshold
    if high.all() or not high.any():
        raise ValueError(
            f"every patient is on the same side of the risk threshold {threshold:.4g} "
            f"(risks range {risk.min():.4g} to {risk.max():.4g}); cannot form two groups."
        )
    chisq, p_value = compare_survival(y, high)
    return RiskGroupTest(threshold, high, float(chisq), float(p_value))


def _format_p(p: float) -> str:
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}"


def _km_step(event, time, conf_int: bool):
    """KM curve starting at (0, 1), with its log-log band when requested."""
    from sksurv.nonparametric import kaplan_meier_estimator

    if conf_int:
        t, s, band = kaplan_meier_estimator(event, time, conf_type="log-log")
        # the log-log band is undefined where S = 1 or 0; there the band collapses to S
        band = np.where(np.isfinite(band), band, s)
        band = np.hstack([[[1.0], [1.0]], band])
    else:
        t, s = kaplan_meier_estimator(event, time)
        band = None
    return np.r_[0.0, t], np.r_[1.0, s], band


def _survival_at(t_curve, s_curve, t):
    """Right-continuous step function value at times ``t``."""
    idx = np.searchsorted(t_curve, t, side="right") - 1
    return s_curve[np.clip(idx, 0, None)]


def plot_risk_groups(
    y,
    risk,
    threshold: float | None = None,
    *,
    conf_int: bool = True,
    at_risk: bool = True,
    labels=("Low risk", "High risk"),
    colors=("tab:blue", "tab:red"),
    time_label: str = "Time",
    title: str | None = None,
    ax=None,
):
    """Kaplan–Meier curves of the low- and high-risk groups with the log-rank p-value.

    Parameters
    ----------
    y : structured ndarray
        Survival outcomes of the patients to plot (usually test patients).
    risk : array-like of shape (n_patients,)
        Their predicted risks.
    threshold : float, optional
        Risk cut; pass the training median (see :func:`logrank_risk_groups`). Defaults to
        the median of ``risk``.
    conf_int : bool
        Draw the pointwise 95 % confidence bands (log-log transform).
    at_risk : bool
        Write the number of patients at risk per group under the x-axis ticks.
    labels : pair of str
        Names of the low- and high-risk groups.
    colors : pair of colours
    time_label : str
        x-axis label (say the unit, e.g. ``"Months"``).
    title : str, optional
    ax : matplotlib Axes, optional
        Axes to draw into; a new figure is made otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Censored patients are marked with ``+`` on their group's curve. The p-value shown is the
    one :func:`logrank_risk_groups` returns for the same split.

    Examples
    --------
    >>> from survseg.plotting import plot_risk_groups
    >>> threshold = np.median(model.predict(X_train))          # doctest: +SKIP
    >>> fig = plot_risk_groups(y_test, model.predict(X_test), threshold)  # doctest: +SKIP
    >>> fig.savefig("km.png")                                    # doctest: +SKIP
    """
    test = logrank_risk_groups(y, risk, threshold)
    event, time = survival_arrays(y)
    own_figure = ax is None
    fig, ax = new_axes(ax, figsize=(6.0, 5.0 if at_risk else 4.5))
    if own_figure and at_risk:
        fig.get_layout_engine().set(h_pad=0.1)  # room for the descenders of the last row
    groups = (~test.high_risk, test.high_risk)
    for members, label, color in zip(groups, labels, colors):
        t, s, band = _km_step(event[members], time[members], conf_int)
        n, d = int(members.sum()), int(event[members].sum())
        ax.step(t, s, where="post", color=color, lw=1.8, label=f"{label} (n={n}, {d} events)")
        if band is not None:
            ax.fill_between(t, band[0], band[1], step="post", color=color, alpha=0.18, lw=0)
        censored = time[members][~event[members]]
        ax.plot(censored, _survival_at(t, s, censored), "+", color=color, ms=7, mew=1.2)
    ax.set_xlim(0, time.max() * 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(time_label)
    ax.set_ylabel("Survival probability")
    ax.legend(loc="lower left", frameon=False, title=_format_p(test.p_value) + " (log-rank)")
    if title is not None:
        ax.set_title(title)
    if at_risk:
        _number_at_risk(ax, time, groups, labels, colors)
    return fig


def _number_at_risk(ax, time, groups, labels, colors) -> None:
    """Rows of "number at risk" under the x-axis, one per group, at the major ticks."""
    ticks = [t for t in ax.get_xticks() if 0 <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks)  # freeze them, so the table and the ticks agree
    trans = ax.get_xaxis_transform()  # x in data units, y in axes fraction
    ax.text(
        -0.08,
        -0.2,
        "At risk",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize="small",
        fontweight="bold",
    )
    for row, (members, label, color) in enumerate(zip(groups, labels, colors)):
        y_pos = -0.26 - 0.07 * row
        ax.text(
            -0.08,
            y_pos,
            label,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize="small",
            color=color,
        )
        for t in ticks:
            n = int((time[members] >= t).sum())
            ax.text(
                t,
                y_pos,
                str(n),
                transform=trans,
                ha="center",
                va="top",
                fontsize="small",
                color=color,
            )
