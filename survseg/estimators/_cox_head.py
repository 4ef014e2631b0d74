r"""A Cox model refitted on a trained network's survival features (``survival_head="cox"``).

Trained end to end on batches of 8 patients for a few hundred iterations, a network's risk
layer barely learns on 50-400 patients, even from features that carry the prognosis: on the
development cohorts of issue 14 (150 patients, 32^3, seeds 1 and 11), DeepMTS's own head
reached a within-fold C of 0.706 and 0.609 while this Cox model on the *same* features of the
*same* networks reached 0.787 and 0.698 (the true risk: 0.831 and 0.792). The features are
fine; the stochastic Cox loss of small batches is what does not converge. So after training,
the network is frozen and the risk layer is replaced by a Cox model fitted on every training
patient at once:

.. math::

    \eta(x) = \beta^\top \frac{f(x) - \mu}{\sigma}, \qquad
    \hat\beta = \arg\max_\beta \; \ell(\beta) - \tfrac{\alpha}{2} \lVert \beta \rVert^2,

with :math:`f(x)` the network's survival features and the clinical covariates, :math:`\mu,
\sigma` their training means and standard deviations, and :math:`\ell` the Breslow partial
log-likelihood (``sksurv.linear_model.CoxPHSurvivalAnalysis``, Newton-Raphson). The ridge
term keeps :math:`\hat\beta` finite for collinear or separating features. This is the
papers' "deep features + Cox" small-data option (DeepMTS Sec. 4.7) inside the estimator, so
that it keeps ``predict_mask``, weight files and the rest: the head is plain arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["fit_cox_head", "cox_head_risk", "has_cox_head"]


def has_cox_head(estimator) -> bool:
    """Whether a fitted estimator predicts through a refitted Cox head (``head_coef_``)."""
    return getattr(estimator, "head_coef_", None) is not None


def fit_cox_head(features, event, time, alpha: float) -> dict:
    """Fitted state of a ridge Cox model on z-scored ``features`` ``(n, p)``.

    Returns ``{"head_mean_", "head_scale_", "head_coef_"}``; a constant feature gets scale 1
    and coefficient 0.
    """
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    features = np.asarray(features, dtype=np.float64)
    if not np.isfinite(features).all():
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        raise FloatingPointError(
            f"the survival features of patients (rows) {bad[:10].tolist()} are not finite; "
            "the Cox head cannot be fitted."
        )
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    constant = scale == 0
    scale[constant] = 1.0
    z = (features - mean) / scale
    model = CoxPHSurvivalAnalysis(alpha=alpha, ties="breslow")
    with warnings.catch_warnings():
        # sksurv warns when Newton stops at its iteration cap; the ridge term keeps the
        # estimate finite and the last iterate is the best found
        warnings.filterwarnings("ignore", message=".*(converge|overflow).*")
        model.fit(z, Surv.from_arrays(np.asarray(event, bool), np.asarray(time, float)))
    coef = np.asarray(model.coef_, dtype=np.float64)
    coef[constant] = 0.0
    return {"head_mean_": mean, "head_scale_": scale, "head_coef_": coef}


def cox_head_risk(head, features) -> np.ndarray:
    """Log-risk :math:`\\beta^\\top (f - \\mu) / \\sigma`, ``(n,)``, of a head given as
    :func:`fit_cox_head`'s dict (or an estimator's ``vars``)."""
    z = (np.asarray(features, dtype=np.float64) - head["head_mean_"]) / head["head_scale_"]
    return z @ head["head_coef_"]
