r"""Calibration of predicted survival curves: at a time horizon, and over the whole curve.

Discrimination (the C-index) says whether a model ranks patients; calibration says whether its
survival probabilities can be taken at face value. Two complementary checks, for any model
that gives survival functions (``predict_survival_function``):

**Calibration at a horizon** :math:`t^*`. Patients are put in ``n_groups`` groups by quantiles
of their predicted :math:`\hat S_i(t^*)`; in each group :math:`g`, the mean prediction
:math:`\bar S_g = \frac{1}{n_g}\sum_{i\in g}\hat S_i(t^*)` is set against the Kaplan-Meier
estimate :math:`\hat S^{KM}_g(t^*)` of the same patients (with its log-log 95 % interval). Two
numbers summarise the plot:

* the expected calibration error :math:`\mathrm{ECE}(t^*) = \sum_g \frac{n_g}{n}
  \bigl|\bar S_g - \hat S^{KM}_g(t^*)\bigr|` (0 is perfect; depends on ``n_groups``);
* the calibration slope: the coefficient :math:`\gamma` of a Cox model for the outcomes
  (administratively censored at :math:`t^*`) with the single covariate
  :math:`\log(-\log \hat S_i(t^*))`, the predicted log cumulative hazard. For a proportional-
  hazards model that is right, :math:`\log H_i(t) = \log H_0(t) + \eta_i` and
  :math:`\gamma = 1`; :math:`\gamma < 1` means predictions too extreme (over-fitting),
  :math:`\gamma > 1` too timid (van Houwelingen 2000; Crowson et al. 2016).

**D-calibration** (Haider et al. 2020). If the predicted curves are the true ones,
:math:`\hat S_i(T_i)` is uniform on :math:`[0, 1]` for the event times :math:`T_i`. With
:math:`B` equal bins :math:`[l_b, u_b)`, an uncensored patient adds 1 to the bin holding
:math:`\hat S_i(T_i)`; a patient censored at :math:`C_i`, with :math:`c = \hat S_i(C_i)`, is
known only to have :math:`\hat S_i(T_i) \le c` and is spread uniformly below :math:`c`: it adds
:math:`(c - l_b)/c` to the bin holding :math:`c` and :math:`(u_b - l_b)/c = 1/(Bc)` to every
bin below (a patient with :math:`c = 0` adds 1 to the lowest bin). The counts :math:`O_b` are
tested against :math:`n/B` each,

.. math::  \chi^2 = \sum_{b=1}^{B} \frac{(O_b - n/B)^2}{n/B}
           \sim \chi^2_{B-1},

and a model is called D-calibrated when the p-value is not small (Haider et al. use 0.05).

Uno's IPCW C-index (:func:`~survseg.evaluation.metrics.concordance_index_uno`) sits next to
these in :func:`~survseg.evaluation.benchmark`: unlike Harrell's, it does not depend on the
censoring distribution of the test data.

References
----------
Haider H, Hoehn B, Davis S, Greiner R. Effective ways to build and evaluate individual
survival distributions. JMLR 21(85):1-63, 2020.

van Houwelingen HC. Validation, calibration, revision and combination of prognostic survival
models. Stat Med 19:3401-3415, 2000.

Crowson CS, Atkinson EJ, Therneau TM. Assessing calibration of prognostic risk scores.
Stat Methods Med Res 25(4):1692-1706, 2016.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from ..data.errors import PatientError
from ..data.validation import survival_arrays

__all__ = [
    "DCalibration",
    "HorizonCalibration",
    "calibration_at_horizon",
    "calibration_slope",
    "d_calibration",
    "survival_at",
]


def survival_at(survival_functions, times) -> np.ndarray:
    r"""Each patient's predicted survival at their own time: :math:`\hat S_i(t_i)`.

    Parameters
    ----------
    survival_functions : sequence of ``StepFunction``
        One per patient (``predict_survival_function(X)``).
    times : float or array-like of shape (n_patients,)
        One time for all patients, or one per patient.

    Returns
    -------
    ndarray of shape (n_patients,)

    Notes
    -----
    A curve is constant after its last step, so a time beyond a curve's domain gets the
    curve's last value (as scikit-survival's estimators hold it; the model says nothing
    later), and a time before it the first value.
    """
    fns = list(survival_functions)
    t = np.broadcast_to(np.asarray(times, dtype=np.float64), (len(fns),))
    out = np.empty(len(fns))
    for i, (fn, ti) in enumerate(zip(fns, t, strict=True)):
        lo, hi = getattr(fn, "domain", (fn.x[0], fn.x[-1]))
        out[i] = float(fn(np.clip(ti, lo, hi)))
    return out


def _check_probabilities(s, n, what):
    s = np.asarray(s, dtype=np.float64).ravel()
    if s.shape[0] != n:
        raise ValueError(f"{what} has {s.shape[0]} values but y has {n} patients.")
    bad = ~np.isfinite(s) | (s < -1e-9) | (s > 1 + 1e-9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PatientError(
            f"{what} must be survival probabilities in [0, 1]; {{patient}} has {float(s[i])}.",
            patient=i,
        )
    return np.clip(s, 0.0, 1.0)


@dataclass(frozen=True)
class DCalibration:
    """Result of :func:`d_calibration`.

    Attributes
    ----------
    counts : ndarray of shape (n_bins,)
        :math:`O_b`, the (fractional) number of patients in each bin, lowest bin first; they
        sum to the number of patients.
    edges : ndarray of shape (n_bins + 1,)
        Bin edges on :math:`[0, 1]`.
    statistic : float
        Pearson's :math:`\\chi^2` against :math:`n/B` per bin.
    p_value : float
        Its p-value with :math:`B - 1` degrees of freedom.
    """

    counts: np.ndarray
    edges: np.ndarray
    statistic: float
    p_value: float

    @property
    def proportions(self) -> np.ndarray:
        """``counts / n``: the histogram, 1/B in each bin for a D-calibrated model."""
        return self.counts / self.counts.sum()


def d_calibration(y, survival, *, n_bins: int = 10) -> DCalibration:
    r"""D-calibration test of predicted survival curves (Haider et al. 2020).

    See :mod:`survseg.evaluation.calibration` for the histogram and the test.

    Parameters
    ----------
    y : structured ndarray
        Survival outcomes (event, time) of the patients the curves are for.
    survival : array-like of shape (n_patients,) or sequence of ``StepFunction``
        :math:`\hat S_i(t_i)`, each patient's predicted survival at their own observed time
        (event or censoring), or the curves themselves (evaluated with :func:`survival_at`).
    n_bins : int >= 2, default=10
        Number of equal-width bins of :math:`[0, 1]` (Haider et al. use 10).

    Returns
    -------
    DCalibration

    Examples
    --------
    Two patients with events at :math:`\hat S = 0.15` and :math:`0.85`, one censored at
    :math:`\hat S = 0.5`, four bins: the censored patient adds :math:`0.25/0.5` to each of the
    two lowest bins.

    >>> import numpy as np
    >>> from sksurv.util import Surv
    >>> from survseg.evaluation.calibration import d_calibration
    >>> y = Surv.from_arrays([True, True, False], [1.0, 2.0, 3.0])
    >>> d_calibration(y, [0.15, 0.85, 0.5], n_bins=4).counts
    array([1.5, 0.5, 0. , 1. ])
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins!r}.")
    event, time = survival_arrays(y)
    n = len(time)
    if n == 0:
        raise ValueError("y is empty.")
    if not isinstance(survival, np.ndarray) and len(survival) and hasattr(survival[0], "x"):
        survival = survival_at(survival, time)
    s = _check_probabilities(survival, n, "survival")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    lower, upper = edges[:-1], edges[1:]
    # bin of each value; S = 1 falls in the top bin
    b = np.minimum((s * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(b[event], minlength=n_bins).astype(np.float64)
    c = s[~event]
    bc = b[~event]
    zero = c <= 0
    counts[0] += zero.sum()
    c, bc = c[~zero], bc[~zero]
    if c.size:
        # bins below each censored patient's bin: 1/(B c) each; its own bin: (c - l_b)/c
        below = lower[None, :] < lower[bc][:, None]
        counts += (below * ((upper - lower)[None, :] / c[:, None])).sum(axis=0)
        np.add.at(counts, bc, (c - lower[bc]) / c)
    expected = n / n_bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    return DCalibration(counts, edges, stat, float(chi2.sf(stat, n_bins - 1)))


@dataclass(frozen=True)
class HorizonCalibration:
    """Result of :func:`calibration_at_horizon`.

    Attributes
    ----------
    horizon : float
    predicted : ndarray of shape (n_groups,)
        Mean predicted :math:`\\hat S(t^*)` per group (lowest predicted survival first).
    observed, observed_low, observed_high : ndarray of shape (n_groups,)
        Kaplan-Meier :math:`\\hat S(t^*)` of each group and its log-log 95 % interval (NaN
        where the group has no patient at risk left for an interval).
    n_patients : ndarray of int of shape (n_groups,)
    group : ndarray of int of shape (n_patients,)
        Group of each patient.
    ece : float
        Expected calibration error: size-weighted mean of ``|predicted - observed|``.
    slope : float
        Calibration slope (see :func:`calibration_slope`).
    """

    horizon: float
    predicted: np.ndarray
    observed: np.ndarray
    observed_low: np.ndarray
    observed_high: np.ndarray
    n_patients: np.ndarray
    group: np.ndarray
    ece: float
    slope: float


def _km_at(event, time, horizon):
    """Kaplan-Meier S(horizon) with its log-log 95 % interval (scikit-survival)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    if not event.any():  # no event: S = 1 up to the last time, no interval
        return 1.0, np.nan, np.nan
    t, s, ci = kaplan_meier_estimator(event, time, conf_type="log-log")
    i = np.searchsorted(t, horizon, side="right") - 1
    if i < 0:
        return 1.0, 1.0, 1.0
    return float(s[i]), float(ci[0][i]), float(ci[1][i])


def calibration_slope(y, survival_at_horizon, horizon) -> float:
    r"""Calibration slope at ``horizon``: Cox regression on the predicted log cumulative hazard.

    The coefficient :math:`\gamma` of the Cox model (Efron ties)
    :math:`h_i(t) = h_0(t)\exp\bigl(\gamma \log(-\log \hat S_i(t^*))\bigr)` fitted on the
    outcomes censored at :math:`t^*` (events after it count as censored there). 1 is ideal;
    below 1 the predictions spread too much. NaN when there is no event before the horizon
    or the predictions do not vary.

    Parameters
    ----------
    y : structured ndarray
    survival_at_horizon : array-like of shape (n_patients,)
        :math:`\hat S_i(t^*)` (probabilities of 0 and 1 are moved 1e-12 inside).
    horizon : float
    """
    from ..feature_selection import univariate_cox

    event, time = survival_arrays(y)
    s = _check_probabilities(survival_at_horizon, len(time), "survival_at_horizon")
    s = np.clip(s, 1e-12, 1 - 1e-12)
    ev = event & (time <= horizon)
    if not ev.any():
        return np.nan
    lch = np.log(-np.log(s))
    if np.ptp(lch) <= 1e-12 * max(1.0, np.abs(lch).max()):
        return np.nan
    from sksurv.util import Surv

    fit = univariate_cox(lch[:, None], Surv.from_arrays(ev, np.minimum(time, horizon)))
    return float(fit.coef[0]) if fit.converged[0] else np.nan


def calibration_at_horizon(
    y, survival_at_horizon, horizon, *, n_groups: int = 5
) -> HorizonCalibration:
    r"""Predicted against Kaplan-Meier observed survival at ``horizon``, by risk group.

    Patients are sorted by predicted :math:`\hat S_i(t^*)` and cut into ``n_groups`` groups
    of (nearly) equal size; see :mod:`survseg.evaluation.calibration` for the summaries.
    Plot the result with :func:`survseg.plotting.plot_calibration`.

    Parameters
    ----------
    y : structured ndarray
    survival_at_horizon : array-like of shape (n_patients,) or sequence of ``StepFunction``
        :math:`\hat S_i(t^*)`, or the curves (evaluated at ``horizon``).
    horizon : float
        The time :math:`t^*` (in the units of ``y``), inside the follow-up.
    n_groups : int >= 1, default=5
        Number of groups (quintiles by default; deciles are common with many patients).

    Returns
    -------
    HorizonCalibration
    """
    event, time = survival_arrays(y)
    n = len(time)
    if isinstance(n_groups, bool) or not isinstance(n_groups, numbers.Integral) or n_groups < 1:
        raise ValueError(f"n_groups must be an integer >= 1; got {n_groups!r}.")
    if n_groups > n:
        raise ValueError(f"n_groups ({n_groups}) is larger than the number of patients ({n}).")
    if not np.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be a positive time; got {horizon!r}.")
    if horizon > time.max():
        raise ValueError(
            f"horizon {horizon} is after the last follow-up time ({time.max()}): "
            "Kaplan-Meier says nothing there."
        )
    if not isinstance(survival_at_horizon, np.ndarray) and hasattr(
        next(iter(survival_at_horizon), None), "x"
    ):
        survival_at_horizon = survival_at(survival_at_horizon, horizon)
    s = _check_probabilities(survival_at_horizon, n, "survival_at_horizon")
    order = np.argsort(s, kind="stable")
    group = np.empty(n, dtype=np.int64)
    for g, idx in enumerate(np.array_split(order, n_groups)):
        group[idx] = g
    pred, obs, lo, hi, size = (np.empty(n_groups) for _ in range(5))
    for g in range(n_groups):
        m = group == g
        pred[g] = s[m].mean()
        obs[g], lo[g], hi[g] = _km_at(event[m], time[m], horizon)
        size[g] = m.sum()
    ece = float(np.sum(size / n * np.abs(pred - obs)))
    return HorizonCalibration(
        horizon=float(horizon),
        predicted=pred,
        observed=obs,
        observed_low=lo,
        observed_high=hi,
        n_patients=size.astype(np.int64),
        group=group,
        ece=ece,
        slope=calibration_slope(y, s, horizon),
    )
