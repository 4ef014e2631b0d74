r"""Uncertainty of the concordance index and paired comparison of two models.

Both papers report two-sided p-values for "model A's C-index differs from model B's on the
same patients" without naming the test. We use the paired bootstrap: patients are resampled
with replacement, both models' C-indices are recomputed on each replicate, and the
distribution of the difference :math:`\hat d^{*}_b = C^{*}_{A,b} - C^{*}_{B,b}` gives

.. math::

    p = \frac{1 + \#\{b : |\hat d^{*}_b - \hat d| \ge |\hat d|\}}{B + 1},

the centred (null-shifted) bootstrap p-value (Efron & Tibshirani, 1993, ch. 16), and a
percentile confidence interval for the difference. Pairing matters: both models are scored on
the same resampled patients, so their correlation is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ..data.validation import survival_arrays
from .metrics import check_groups, concordance_index, concordant_pairs, group_members

__all__ = ["concordance_ci", "compare_concordance", "ConcordanceComparison"]


#: largest group whose pair matrices (n x n float64 per model) are built for the bootstrap;
#: a larger group is scored replicate by replicate with scikit-survival (same numbers, slower)
_MAX_PAIR_MATRIX = 4000


def _harrell_pairs(event, time, risk):
    r"""Comparable and concordant pairs of Harrell's C as ``n x n`` matrices.

    ``comparable[i, j] = 1`` when patient :math:`i` has an event and :math:`T_j > T_i`, or
    :math:`T_j = T_i` and :math:`j` is censored (scikit-survival's definition);
    ``concordant[i, j]`` is 1 there when :math:`r_i > r_j`, 1/2 when the risks tie (within
    scikit-survival's tolerance of 1e-8). A patient never pairs with itself, so a resample in
    which patient :math:`i` appears :math:`w_i` times has
    :math:`w^\top\,\mathrm{concordant}\,w` concordant and :math:`w^\top\,\mathrm{comparable}\,w`
    comparable pairs, exactly what scikit-survival counts on the resampled arrays.
    """
    later = time[None, :] > time[:, None]
    tied_censored = (time[None, :] == time[:, None]) & ~event[None, :]
    comparable = (event[:, None] & (later | tied_censored)).astype(np.float64)
    out = []
    for r in risk:
        tie = np.abs(r[None, :] - r[:, None]) <= 1e-8
        score = np.where(tie, 0.5, (r[:, None] > r[None, :]).astype(np.float64))
        out.append(comparable * score)
    return comparable, out


def _bootstrap_cindex(event, time, risks, n_bootstrap, rng, groups):
    """C-index of each risk vector on the same ``n_bootstrap`` patient resamples.

    Patients are resampled within each group (a stratified bootstrap that keeps every
    group's size; one group is the ordinary bootstrap) and the C-index counts pairs within
    groups only. Each group's pairs are counted once (:func:`_harrell_pairs`) and every
    replicate is a quadratic form in its resampling counts, so the bootstrap costs a matrix
    product instead of ``n_bootstrap`` calls of scikit-survival.
    """
    members = group_members(groups)
    draws = [[m[rng.randint(0, len(m), len(m))] for m in members] for _ in range(n_bootstrap)]
    concordant = np.zeros((n_bootstrap, len(risks)))
    comparable = np.zeros(n_bootstrap)  # the same pairs for every risk vector
    for g, m in enumerate(members):
        if not event[m].any():
            continue  # no event: no comparable pair in this group
        if len(m) > _MAX_PAIR_MATRIX:
            for b in range(n_bootstrap):
                for k, risk in enumerate(risks):
                    conc, comp = concordant_pairs(event, time, risk, [draws[b][g]])
                    concordant[b, k] += conc
                comparable[b] += comp  # the same for every risk vector
            continue
        position = np.full(len(event), -1)
        position[m] = np.arange(len(m))
        counts = np.stack([np.bincount(position[d[g]], minlength=len(m)) for d in draws])
        counts = counts.astype(np.float64)
        comp_m, conc_m = _harrell_pairs(event[m], time[m], [r[m] for r in risks])
        comparable += np.einsum("bi,ij,bj->b", counts, comp_m, counts)
        for k, c in enumerate(conc_m):
            concordant[:, k] += np.einsum("bi,ij,bj->b", counts, c, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(comparable[:, None] > 0, concordant / comparable[:, None], np.nan)
    # a replicate without comparable pairs has no C: it is skipped
    return out[np.isfinite(out).all(axis=1)]


def _check_risk(risk, n, name):
    risk = np.asarray(risk, dtype=np.float64).ravel()
    if risk.shape[0] != n:
        raise ValueError(f"{name} has {risk.shape[0]} values but y has {n} patients.")
    if not np.isfinite(risk).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return risk


def concordance_ci(
    y, risk, *, groups=None, n_bootstrap: int = 1000, alpha: float = 0.05, random_state=None
):
    """Harrell's C with a bootstrap percentile ``1 - alpha`` confidence interval.

    With ``groups`` (e.g. cross-validation folds), the C-index counts pairs within groups
    only (see :func:`~survseg.evaluation.metrics.concordance_index`) and patients are
    resampled within groups.

    Returns
    -------
    cindex, low, high : float
    """
    event, time = survival_arrays(y)
    risk = _check_risk(risk, len(time), "risk")
    groups = check_groups(groups, len(time))
    rng = check_random_state(random_state)
    boot = _bootstrap_cindex(event, time, [risk], n_bootstrap, rng, groups)
    low, high = np.percentile(boot[:, 0], [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return concordance_index(y, risk, groups=groups), float(low), float(high)


@dataclass(frozen=True)
class ConcordanceComparison:
    """Result of :func:`compare_concordance`."""

    cindex_a: float
    cindex_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_bootstrap: int


def compare_concordance(
    y,
    risk_a,
    risk_b,
    *,
    groups=None,
    n_bootstrap: int = 2000,
    alpha: float = 0.05,
    random_state=None,
) -> ConcordanceComparison:
    """Paired two-sided bootstrap test of :math:`C_A = C_B` on the same patients.

    Parameters
    ----------
    y : structured ndarray
        Survival outcomes.
    risk_a, risk_b : array-like of shape (n_patients,)
        Risks of the two models for the same patients, in the same order.
    groups : array-like of shape (n_patients,), optional
        Count pairs within groups only and resample within groups (as in
        :func:`concordance_ci`).
    n_bootstrap : int
        Number of patient resamples.
    alpha : float
        Level of the percentile interval of the difference.
    random_state : int, RandomState or None

    Returns
    -------
    ConcordanceComparison
        Both C-indices, their difference ``A - B`` with its interval, and the p-value.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1; got {n_bootstrap}.")
    event, time = survival_arrays(y)
    a = _check_risk(risk_a, len(time), "risk_a")
    b = _check_risk(risk_b, len(time), "risk_b")
    groups = check_groups(groups, len(time))
    ca, cb = concordance_index(y, a, groups=groups), concordance_index(y, b, groups=groups)
    diff = ca - cb
    rng = check_random_state(random_state)
    boot = _bootstrap_cindex(event, time, [a, b], n_bootstrap, rng, groups)
    d = boot[:, 0] - boot[:, 1]
    if diff == 0 and np.allclose(d, 0):
        p = 1.0
    else:
        p = (1 + np.count_nonzero(np.abs(d - diff) >= abs(diff))) / (len(d) + 1)
    low, high = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return ConcordanceComparison(ca, cb, diff, float(low), float(high), float(min(p, 1.0)), len(d))
