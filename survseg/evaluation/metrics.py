r"""Survival and segmentation metrics.

Concordance, time-dependent AUC and the integrated Brier score are scikit-survival's
implementations; this module only adapts their inputs (risk arrays, ``StepFunction`` lists).
"""

from __future__ import annotations

import numpy as np

from ..data.validation import survival_arrays

__all__ = [
    "concordance_index",
    "concordance_index_uno",
    "check_groups",
    "concordant_pairs",
    "group_members",
    "dice_score",
    "time_dependent_auc",
    "integrated_brier_score",
    "survival_matrix",
    "evaluation_times",
]


def concordance_index(y, risk, *, groups=None) -> float:
    r"""Harrell's concordance index (``sksurv.metrics.concordance_index_censored``).

    .. math:: C = \frac{\sum_{i,j} 1[T_i < T_j]\,1[\eta_i > \eta_j]\,\delta_i}
                       {\sum_{i,j} 1[T_i < T_j]\,\delta_i}

    with ties in risk counted as 1/2. With ``groups``, only pairs of patients in the same
    group count (a stratified C-index):

    .. math:: C_{strat} = \frac{\sum_g \text{concordant}_g}{\sum_g \text{comparable}_g},

    which is what to report for out-of-fold risks pooled over cross-validation folds: each
    fold's model puts its risks on its own scale (e.g. AdaMSS's expected survival time over
    that fold's intervals), so pairs across folds compare two models, not two patients.

    Parameters
    ----------
    y : structured ndarray
        Survival outcomes.
    risk : array-like of shape (n_patients,)
        Predicted risk (higher = earlier event).
    groups : array-like of shape (n_patients,), optional
        Stratum of each patient (e.g. the cross-validation fold).
    """
    event, time = survival_arrays(y)
    risk = np.asarray(risk, dtype=np.float64).ravel()
    if risk.shape != time.shape:
        raise ValueError(f"risk has {risk.shape[0]} values but y has {time.shape[0]} patients.")
    if not np.isfinite(risk).all():
        raise ValueError("predicted risk contains NaN or inf.")
    if not event.any():
        raise ValueError("the concordance index needs at least one event in y.")
    groups = check_groups(groups, len(time))
    concordant, comparable = concordant_pairs(event, time, risk, group_members(groups))
    if comparable == 0:
        raise ValueError("no comparable pair of patients (within a group): C is undefined.")
    return concordant / comparable


def check_groups(groups, n: int) -> np.ndarray:
    """``groups`` as a 1-D array of length ``n``; ``None`` puts every patient in one group."""
    if groups is None:
        return np.zeros(n, dtype=np.int64)
    groups = np.asarray(groups).ravel()
    if groups.shape[0] != n:
        raise ValueError(f"groups has {groups.shape[0]} values but y has {n} patients.")
    return groups


def group_members(groups) -> list:
    """Indices of the patients of each group, one array per distinct value of ``groups``."""
    return [np.flatnonzero(groups == g) for g in np.unique(groups)]


def concordant_pairs(event, time, risk, members) -> tuple[float, int]:
    """Concordant (ties in risk as 1/2) and comparable pairs of Harrell's C within groups.

    Parameters
    ----------
    event : ndarray of bool
    time, risk : ndarray of float
    members : list of int ndarray
        Patient indices of each group (:func:`group_members`); only pairs inside one group
        count. An index may repeat (bootstrap resamples).

    Returns
    -------
    concordant : float
    comparable : int
    """
    from sksurv.metrics import concordance_index_censored

    concordant, comparable = 0.0, 0
    for m in members:
        if not event[m].any():
            continue  # no event: no comparable pair in this group
        try:
            _, conc, disc, tied, _ = concordance_index_censored(event[m], time[m], risk[m])
        except ValueError:  # sksurv's NoComparablePairException: this group adds nothing
            continue
        concordant += conc + 0.5 * tied
        comparable += conc + disc + tied
    return float(concordant), int(comparable)


def dice_score(mask_true, mask_pred, *, ignore_empty: bool = True) -> np.ndarray:
    r"""Dice similarity coefficient per patient, :math:`2|A \cap B| / (|A| + |B|)`.

    A patient whose true mask :math:`A` is empty has no tumour to overlap: with
    ``ignore_empty=True`` (the default, as MONAI's ``DiceMetric(ignore_empty=True)``) their
    Dice is NaN, so that ``np.nanmean`` averages over the patients with a tumour only. With
    ``ignore_empty=False`` the limit convention applies: 1 when both masks are empty, 0 when
    only the prediction has voxels (MONAI's ``ignore_empty=False``).

    Parameters
    ----------
    mask_true, mask_pred : array-like of shape (n_patients, D, H, W) or (D, H, W)
        Binary masks (non-zero = tumour).
    ignore_empty : bool, default=True
        NaN for an empty true mask (``True``) or 1/0 as above (``False``).

    Returns
    -------
    dice : ndarray of shape (n_patients,) (a float for a single volume)
    """
    a = np.asarray(mask_true) != 0
    b = np.asarray(mask_pred) != 0
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}.")
    single = a.ndim == 3
    if single:
        a, b = a[None], b[None]
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    inter = (a & b).sum(axis=1).astype(np.float64)
    total = (a.sum(axis=1) + b.sum(axis=1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2.0 * inter / total, 1.0)
    if ignore_empty:
        dice = np.where(a.any(axis=1), dice, np.nan)
    return float(dice[0]) if single else dice


def survival_matrix(survival_functions, times) -> np.ndarray:
    """Evaluate a list of ``StepFunction``\\ s (or pass an array) at ``times``."""
    if isinstance(survival_functions, np.ndarray) and survival_functions.dtype != object:
        return survival_functions
    return np.vstack([fn(times) for fn in survival_functions])


def evaluation_times(y_train, y_test, n_times: int = 20) -> np.ndarray:
    """Times inside the follow-up of both sets, where IPCW metrics are defined.

    scikit-survival's AUC and Brier scores need test times strictly inside the training
    follow-up; this picks percentiles 10-80 of the test event times, clipped to that range.
    """
    _, t_train = survival_arrays(y_train)
    e_test, t_test = survival_arrays(y_test)
    lo = max(t_test.min(), t_train.min())
    hi = min(t_test.max(), t_train.max())
    ref = t_test[e_test] if e_test.any() else t_test
    times = np.unique(np.percentile(ref, np.linspace(10, 80, n_times)))
    times = times[(times > lo) & (times < hi)]
    if times.size == 0:
        raise ValueError("no evaluation time lies inside both follow-up ranges.")
    return times


def time_dependent_auc(y_train, y_test, risk, times=None):
    """Cumulative/dynamic AUC (``sksurv.metrics.cumulative_dynamic_auc``).

    Returns ``(auc_at_times, mean_auc, times)``.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    if times is None:
        times = evaluation_times(y_train, y_test)
    auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, np.asarray(risk, float), times)
    return auc, float(mean_auc), times


def integrated_brier_score(y_train, y_test, survival_functions, times=None):
    """Integrated Brier score (``sksurv.metrics.integrated_brier_score``) over ``times``."""
    from sksurv.metrics import integrated_brier_score as _ibs

    if times is None:
        times = evaluation_times(y_train, y_test)
    if len(times) < 2:
        raise ValueError("the integrated Brier score needs at least two evaluation times.")
    surv = survival_matrix(survival_functions, times)
    return float(_ibs(y_train, y_test, surv, times))


def concordance_index_uno(y_train, y_test, risk, tau=None) -> float:
    r"""Uno's IPCW concordance index (``sksurv.metrics.concordance_index_ipcw``).

    .. math:: C_{\tau} = \frac{\sum_{i,j} \delta_i\, \hat G(T_i)^{-2}\,
                               1[T_i < T_j,\ T_i < \tau]\, 1[\eta_i > \eta_j]}
                              {\sum_{i,j} \delta_i\, \hat G(T_i)^{-2}\, 1[T_i < T_j,\ T_i < \tau]}

    with :math:`\hat G` the Kaplan-Meier estimate of the censoring distribution on
    ``y_train`` (ties in risk count 1/2). The weights undo the dependence of Harrell's C on
    the censoring of the test data; :math:`\tau` truncates the pairs to a time where
    :math:`\hat G` is still well estimated.

    Parameters
    ----------
    y_train : structured ndarray
        Outcomes from which the censoring distribution is estimated (the training data, or
        the whole cohort).
    y_test : structured ndarray
        Outcomes of the patients scored; their times must not exceed the last time of
        ``y_train`` (scikit-survival's requirement).
    risk : array-like of shape (n_test,)
    tau : float, optional
        Truncation time; default: the last time of ``y_test``.
    """
    from sksurv.metrics import concordance_index_ipcw

    event, time = survival_arrays(y_test)
    risk = np.asarray(risk, dtype=np.float64).ravel()
    if risk.shape != time.shape:
        raise ValueError(f"risk has {risk.shape[0]} values but y has {time.shape[0]} patients.")
    if not np.isfinite(risk).all():
        raise ValueError("predicted risk contains NaN or inf.")
    if not event.any():
        raise ValueError("the concordance index needs at least one event in y.")
    return float(concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0])
