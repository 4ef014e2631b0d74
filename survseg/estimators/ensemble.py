r"""The cross-validation fold ensemble of DeepMTS Sec. 4.7, for any survival estimator.

One clone of the estimator is trained per CV fold (on the fold's training part); a new
patient's risk is the average of the members' standardised risks,

.. math:: \hat\eta(x) = \frac{1}{K} \sum_{k=1}^{K} \frac{\eta_k(x) - \mu_k}{\sigma_k},

where :math:`\mu_k, \sigma_k` are the mean and standard deviation of member :math:`k`'s
risks, either on the cohort given to ``fit`` (``standardize="fit"``: a patient's risk does
not depend on who else is predicted) or on the cohort being predicted (``"predict"``: the
paper's literal recipe, which needs at least two patients).
"""

from __future__ import annotations

import numbers

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..base import SurvivalMixin
from ..data.validation import check_survival

__all__ = ["FoldEnsemble"]


def _set_random_state(estimator, seed: int):
    """Give every ``random_state`` parameter of ``estimator`` (nested ones too) ``seed``."""
    keys = [
        k
        for k in estimator.get_params(deep=True)
        if k == "random_state" or k.endswith("__random_state")
    ]
    if keys:
        estimator.set_params(**dict.fromkeys(keys, seed))
    return estimator


def _fit_member(estimator, X, y, train, test, seed):
    model = _set_random_state(clone(estimator), seed)
    model.fit(_safe_indexing(X, train), y[train])
    held_out = np.asarray(model.predict(_safe_indexing(X, test)), dtype=np.float64).ravel()
    return model, held_out


def _estimator_has(attr):
    def check(self):
        getattr(self.estimator, attr)
        return True

    return check


def _zscore(risk, mean, scale):
    return (risk - mean) / scale


class FoldEnsemble(SurvivalMixin, BaseEstimator):
    """Average of per-fold models with standardised risks (DeepMTS Sec. 4.7).

    Parameters
    ----------
    estimator : survival estimator
        Any estimator whose ``predict`` returns a risk (survseg, scikit-survival, or a
        ``Pipeline`` ending in one). Cloned once per fold.
    cv : int or CV splitter, default=5
        An int gives ``StratifiedKFold`` on the event indicator (shuffled with
        ``random_state``), or ``KFold`` when a fold could not hold an event; a splitter's
        ``split(X, event)`` is used as given.
    n_jobs : int or None, default=None
        Folds trained in parallel with joblib (any joblib backend applies).
    random_state : int, RandomState or None, default=None
        Seeds the fold assignment and gives each member its own ``random_state`` (every
        ``random_state`` parameter of the estimator, nested ones too, is overwritten).
    standardize : {"fit", "predict", None}, default="fit"
        Where each member's risk mean and SD come from: the ``fit`` cohort, the cohort being
        predicted (the paper's recipe), or no standardisation (plain average).

    Attributes
    ----------
    estimators_ : list of fitted estimators
        One per fold.
    folds_ : list of (train, test) index arrays
    fold_scores_ : ndarray of shape (n_folds,)
        Each member's C-index on its held-out fold (NaN for a fold without events).
    oof_risk_ : ndarray of shape (n_samples,)
        Out-of-fold risk of every training patient (each from the member that did not see
        it; raw, not standardised).
    risk_mean_, risk_scale_ : ndarray of shape (n_folds,)
        Member risk statistics on the fit cohort (``standardize="fit"``).

    References
    ----------
    M. Meng et al., "DeepMTS: Deep multi-task learning for survival prediction in patients
    with advanced nasopharyngeal carcinoma using pretreatment PET/CT", IEEE JBHI, 2022,
    Sec. 4.7.

    Examples
    --------
    >>> from sksurv.linear_model import CoxPHSurvivalAnalysis
    >>> from survseg.estimators.ensemble import FoldEnsemble
    >>> ens = FoldEnsemble(CoxPHSurvivalAnalysis(), cv=5, random_state=0)  # doctest: +SKIP
    >>> ens.fit(X_train, y_train).score(X_test, y_test)  # doctest: +SKIP
    """

    def __init__(self, estimator, *, cv=5, n_jobs=None, random_state=None, standardize="fit"):
        self.estimator = estimator
        self.cv = cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.standardize = standardize

    def _splitter(self, event):
        rs = check_random_state(self.random_state)
        if isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool):
            if self.cv < 2:
                raise ValueError(f"cv must be >= 2 folds; got {self.cv}.")
            seed = rs.randint(2**31 - 1)
            if min(event.sum(), (~event).sum()) >= self.cv:
                return StratifiedKFold(self.cv, shuffle=True, random_state=seed), rs
            return KFold(self.cv, shuffle=True, random_state=seed), rs
        return check_cv(self.cv), rs

    def fit(self, X, y):
        """Fit one clone of ``estimator`` per fold of ``cv``.

        Parameters
        ----------
        X : cohort, array-like or DataFrame
            Whatever the estimator accepts; indexed by patient (rows).
        y : structured ndarray
            Survival outcomes.

        Returns
        -------
        self
        """
        if self.standardize not in ("fit", "predict", None):
            raise ValueError(
                f"standardize must be 'fit', 'predict' or None; got {self.standardize!r}."
            )
        if not hasattr(self.estimator, "fit") or not hasattr(self.estimator, "predict"):
            raise TypeError(
                f"estimator must have fit and predict; got {type(self.estimator).__name__}."
            )
        event, _ = check_survival(y, len(X))
        splitter, rs = self._splitter(event)
        folds = [
            (np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(X)), event)
        ]
        seeds = rs.randint(2**31 - 1, size=len(folds))
        out = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(self.estimator, X, y, tr, te, int(s))
            for (tr, te), s in zip(folds, seeds, strict=True)
        )
        self.estimators_ = [model for model, _ in out]
        self.folds_ = folds
        self.oof_risk_ = np.full(len(X), np.nan)
        scores = []
        for (_, te), (_, risk) in zip(folds, out, strict=True):
            self.oof_risk_[te] = risk
            scores.append(self._safe_cindex(y[te], risk))
        self.fold_scores_ = np.asarray(scores)
        if self.standardize == "fit":
            risks = self._member_risks(X)
            self.risk_mean_ = risks.mean(axis=1)
            sd = risks.std(axis=1)
            self.risk_scale_ = np.where(sd > 0, sd, 1.0)
        return self

    @staticmethod
    def _safe_cindex(y, risk):
        from ..evaluation.metrics import concordance_index

        event, _ = check_survival(y, require_events=False)
        return concordance_index(y, risk) if event.any() else np.nan

    def _member_risks(self, X):
        """``(n_members, n_samples)`` raw risks."""
        return np.vstack(
            [np.asarray(m.predict(X), dtype=np.float64).ravel() for m in self.estimators_]
        )

    def predict(self, X):
        """Mean standardised risk of the members (higher = earlier event).

        Parameters
        ----------
        X : cohort or array-like

        Returns
        -------
        risk : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "estimators_")
        risks = self._member_risks(X)
        if self.standardize == "fit":
            risks = _zscore(risks, self.risk_mean_[:, None], self.risk_scale_[:, None])
        elif self.standardize == "predict":
            if risks.shape[1] < 2:
                raise ValueError(
                    "standardize='predict' z-scores each member over the predicted patients "
                    "and needs at least two of them; use standardize='fit' for single patients."
                )
            sd = risks.std(axis=1, keepdims=True)
            risks = _zscore(risks, risks.mean(axis=1, keepdims=True), np.where(sd > 0, sd, 1.0))
        return risks.mean(axis=0)

    @available_if(_estimator_has("predict_proba_mask"))
    def predict_mask(self, X, threshold=0.5):
        """Majority tumour mask: the members' mean probability above ``threshold``."""
        return (self.predict_proba_mask(X) > threshold).astype(np.uint8)

    @available_if(_estimator_has("predict_proba_mask"))
    def predict_proba_mask(self, X):
        """Members' mean tumour probability map."""
        check_is_fitted(self, "estimators_")
        return np.mean([m.predict_proba_mask(X) for m in self.estimators_], axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.estimator).input_tags
        return tags
