"""Survival outcomes of the synthetic cohort: Weibull proportional hazards, calibrated censoring.

Event times follow

.. math:: S(t \\mid \\eta) = \\exp\\!\\left(-\\ln 2\\,(t / m)^k\\, e^{\\eta}\\right),

a Weibull proportional-hazards model with shape ``k`` and median ``m`` at ``eta = 0``, so that
``T = m (E / \\ln 2)^{1/k} e^{-\\eta / k}`` with ``E ~ Exp(1)``. Censoring is independent of
``T`` given the covariates: uniform staggered entry into a study of length ``tau``,
``C = tau (a + (1 - a) V)`` with ``V ~ U(0, 1)``; ``tau`` is chosen so that the *expected*
fraction of events in the cohort equals the requested rate.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "DEFAULT_COEF",
    "TUMOUR_TERMS",
    "OUTSIDE_TERMS",
    "CLINICAL_TERMS",
    "CENTRE",
    "linear_predictor",
    "weibull_times",
    "calibrate_study_length",
    "censor",
]

#: Log-hazard coefficients of the generating model, per unit of each covariate.
DEFAULT_COEF = {
    "tumour_size": 0.45,  # per SD of log tumour volume
    "tumour_uptake": 0.30,  # per SD of log peak SUV
    "tumour_heterogeneity": 0.35,  # per SD of the heterogeneity score
    "node_burden": 1.30,  # per unit of log(1 + total nodal volume in ml)
    "age": 0.025,  # per year
    "hpv": -0.70,  # HPV-positive oropharyngeal cancers do better
}
TUMOUR_TERMS = ("tumour_size", "tumour_uptake", "tumour_heterogeneity")  # inside the mask
OUTSIDE_TERMS = ("node_burden",)  # outside the mask
CLINICAL_TERMS = ("age", "hpv")
#: Centres c_j of the covariates (population means; the latent scores are centred already).
CENTRE = {
    "tumour_size": 0.0,
    "tumour_uptake": 0.0,
    "tumour_heterogeneity": 0.0,
    "node_burden": float(np.log1p(3.0)),
    "age": 60.0,
    "hpv": 0.65,
}

WEIBULL_SHAPE = 1.2  # slowly rising hazard, usual for recurrence after (chemo)radiotherapy
MEDIAN_MONTHS = 60.0  # median time to event of a patient with linear predictor 0
MIN_FOLLOW_UP = 0.2  # a = shortest follow-up as a fraction of the study length

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)


def linear_predictor(covariates, coef) -> dict:
    """The parts of :math:`\\eta = \\sum_j \\beta_j (x_j - c_j)`.

    Parameters
    ----------
    covariates : mapping of str to ndarray
        One array per key of :data:`DEFAULT_COEF`.
    coef : mapping of str to float

    Returns
    -------
    dict
        ``'tumour'``, ``'nodes'`` and ``'clinical'`` sums over :data:`TUMOUR_TERMS`,
        :data:`OUTSIDE_TERMS` and :data:`CLINICAL_TERMS`.
    """

    def part(terms):
        return sum(coef[k] * (np.asarray(covariates[k], dtype=float) - CENTRE[k]) for k in terms)

    return {
        "tumour": part(TUMOUR_TERMS),
        "nodes": part(OUTSIDE_TERMS),
        "clinical": part(CLINICAL_TERMS),
    }


def weibull_times(eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw event times (months) from the Weibull PH model with linear predictor ``eta``."""
    e = rng.standard_exponential(len(eta))
    return MEDIAN_MONTHS * (e / np.log(2.0)) ** (1.0 / WEIBULL_SHAPE) * np.exp(-eta / WEIBULL_SHAPE)


def _expected_event_rate(log_tau: float, eta: np.ndarray) -> float:
    """Mean over patients of P(T <= C | eta), integrating C over its uniform law."""
    tau = np.exp(log_tau)
    c = tau * (MIN_FOLLOW_UP + (1.0 - MIN_FOLLOW_UP) * (_NODES + 1.0) / 2.0)  # (32,)
    cum_hazard = np.log(2.0) * (c[None, :] / MEDIAN_MONTHS) ** WEIBULL_SHAPE * np.exp(eta)[:, None]
    p_event = 1.0 - np.exp(-cum_hazard)
    return float((p_event @ _WEIGHTS).mean() / 2.0)


def calibrate_study_length(eta: np.ndarray, event_rate: float) -> float:
    """Study length ``tau`` (months) whose expected event fraction is ``event_rate``."""
    lo, hi = np.log(MEDIAN_MONTHS) - 40.0, np.log(MEDIAN_MONTHS) + 40.0
    log_tau = brentq(lambda s: _expected_event_rate(s, eta) - event_rate, lo, hi, xtol=1e-10)
    return float(np.exp(log_tau))


def censor(times: np.ndarray, tau: float, rng: np.random.Generator):
    """Apply uniform-entry censoring; guarantee at least one event.

    If no patient has an event (possible for a handful of patients), the study is extended
    just enough for the first event to be observed, as a trial would run until it has one.

    Returns
    -------
    event : ndarray of bool
    observed : ndarray of float64
        ``min(T, C)``.
    censoring : ndarray of float64
        ``C``.
    tau : float
        The study length actually used.
    """
    entry = MIN_FOLLOW_UP + (1.0 - MIN_FOLLOW_UP) * rng.uniform(size=len(times))
    censoring = tau * entry
    if not (times <= censoring).any():
        tau = float(np.min(times / entry)) * (1.0 + 1e-9)
        censoring = tau * entry
    event = times <= censoring
    return event, np.minimum(times, censoring), censoring, tau
