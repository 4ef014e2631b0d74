r"""The cross-validation fold ensemble of DeepMTS Sec. 4.7, for any survival estimator.

One clone of the estimator is trained per CV fold (on the fold's training part); a new
patient's risk is the average of the members' standardised risks,

.. math:: \hat\eta(x) = \frac{1}{K} \sum_{k=1}^{K} \frac{\eta_k(x) - \mu_k}{\sigma_k},

where :math:`\mu_k, \sigma_k` are the mean and standard deviation of member :math:`k`'s
risks, either on the cohort given to ``fit`` (``standardize="fit"``: a patient's risk does
not depend on who else is predicted) or on the cohort being predicted (``"predict"``: the
paper's literal recipe, which needs at least two patients).

Survival functions are the members' average, as a random survival forest averages its
trees' (Ishwaran et al. 2008; ``sksurv.ensemble.RandomSurvivalForest``):

.. math:: \hat S(t \mid x) = \frac{1}{K} \sum_{k=1}^{K} S_k(t \mid x), \qquad
          \hat H(t \mid x) = \frac{1}{K} \sum_{k=1}^{K} H_k(t \mid x),

on the union of the members' time grids, each member's curve held constant after its last
time (the two averages are each a member average, so :math:`\hat S \ne e^{-\hat H}` in
general, as in the forest). Averaging keeps each member's own calibration; a Breslow
baseline on the standardised ensemble risk would not, because a z-scored risk is not a
log-hazard.
"""

from __future__ import annotations

import numbers

import numpy as np
from joblib import delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._parallel import parallel_run
from ..base import SurvivalMixin
from ..data.errors import rows_of
from ..data.validation import check_survival
from ..evaluation.metrics import concordant_pairs
from ._segmentation import SegmentationMixin

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


def _fit_member(estimator, X, y, train, test, seed, fold):
    model = _set_random_state(clone(estimator), seed)
    with rows_of(train, f"fold {fold + 1}"):
        model.fit(_safe_indexing(X, train), y[train])
    with rows_of(test, f"fold {fold + 1}"):
        held_out = np.asarray(model.predict(_safe_indexing(X, test)), dtype=np.float64).ravel()
    return fold, model, held_out


def _check_folds(folds, event, time):
    """Every held-out fold with an event must hold a comparable pair (its C-index exists)."""
    for k, (_, test) in enumerate(folds):
        if not event[test].any():
            continue  # no event: the fold's C-index is NaN, documented
        _, comparable = concordant_pairs(
            event[test], time[test], np.zeros(len(test)), [np.arange(len(test))]
        )
        if comparable == 0:
            raise ValueError(
                f"held-out fold {k + 1} of {len(folds)} ({len(test)} patients, "
                f"{int(event[test].sum())} event(s)) has no comparable pair: no event happens "
                "before another patient's time in it, so its C-index is undefined. Use fewer "
                "folds, another random_state or a splitter that spreads the events."
            )


def _mean_step_functions(per_member, name):
    """Average each patient's curves over the members on the union of their time grids."""
    from sksurv.functions import StepFunction

    grid = np.unique(np.concatenate([fn.x for fns in per_member for fn in fns[:1]]))
    n = len(per_member[0])
    total = np.zeros((n, grid.size))
    for fns in per_member:
        if len(fns) != n:
            raise RuntimeError(f"members returned {len(fns)} and {n} {name} functions.")
        for i, fn in enumerate(fns):
            lo, hi = fn.domain
            total[i] += fn(np.clip(grid, lo, hi))  # constant after the member's last time
    mean = total / len(per_member)
    return grid, mean, [StepFunction(grid, row) for row in mean]


def _estimator_has(attr):
    def check(self):
        getattr(self.estimator, attr)
        return True

    return check


def _zscore(risk, mean, scale):
    return (risk - mean) / scale


class FoldEnsemble(SegmentationMixin, SurvivalMixin, BaseEstimator):
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
        Folds trained in parallel with joblib (any joblib backend applies: loky, Dask,
        Ray; see the Scaling out page).
    random_state : int, RandomState or None, default=None
        Seeds the fold assignment and gives each member its own ``random_state`` (every
        ``random_state`` parameter of the estimator, nested ones too, is overwritten).
    standardize : {"fit", "predict", None}, default="fit"
        Where each member's risk mean and SD come from: the ``fit`` cohort, the cohort being
        predicted (the paper's recipe), or no standardisation (plain average).
    verbose : int, default=0
        ``> 0`` shows a progress bar of the fitted folds (with each fold's C-index).

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
    unique_times_ : ndarray
        Time grid of the survival functions (the union of the members' grids); only when
        the estimator has ``predict_survival_function``.
    regions_ : tuple of str
        The regions the members segment (``("tumour",)`` or ``("tumour", "nodes")``); only
        when the estimator segments. ``predict_proba_mask``, ``predict_mask`` and
        ``predict_label_map`` then average the members' probabilities and threshold the mean
        at the estimator's ``mask_threshold``.

    Notes
    -----
    Before any member is fitted, every held-out fold that has an event must contain a
    comparable pair (an event before another patient's time), or ``fit`` raises naming the
    fold: its C-index would be undefined. A held-out fold without events gets a NaN score.

    References
    ----------
    M. Meng et al., "DeepMTS: Deep multi-task learning for survival prediction in patients
    with advanced nasopharyngeal carcinoma using pretreatment PET/CT", IEEE JBHI, 2022,
    Sec. 4.7.
    H. Ishwaran, U. B. Kogalur, E. H. Blackstone, M. S. Lauer, "Random survival forests",
    Ann. Appl. Stat. 2(3):841-860, 2008 (the ensemble survival and cumulative hazard
    functions as member averages).

    Examples
    --------
    >>> from sksurv.linear_model import CoxPHSurvivalAnalysis
    >>> from survseg.estimators.ensemble import FoldEnsemble
    >>> ens = FoldEnsemble(CoxPHSurvivalAnalysis(), cv=5, random_state=0)  # doctest: +SKIP
    >>> ens.fit(X_train, y_train).score(X_test, y_test)  # doctest: +SKIP
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "cv": ["cv_object"],
        "n_jobs": [None, numbers.Integral],
        "random_state": ["random_state"],
        "standardize": [StrOptions({"fit", "predict"}), None],
        "verbose": ["verbose"],
    }

    def __init__(
        self, estimator, *, cv=5, n_jobs=None, random_state=None, standardize="fit", verbose=0
    ):
        self.estimator = estimator
        self.cv = cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.standardize = standardize
        self.verbose = verbose

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
        self._validate_params()
        event, time = check_survival(y, len(X))
        splitter, rs = self._splitter(event)
        folds = [
            (np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(X)), event)
        ]
        _check_folds(folds, event, time)
        seeds = rs.randint(2**31 - 1, size=len(folds))
        results = parallel_run(
            (
                delayed(_fit_member)(self.estimator, X, y, tr, te, int(s), k)
                for k, ((tr, te), s) in enumerate(zip(folds, seeds, strict=True))
            ),
            n_jobs=self.n_jobs,
            return_as="generator_unordered",
        )
        members, oof, scores = [None] * len(folds), np.full(len(X), np.nan), np.empty(len(folds))
        bar = tqdm(total=len(folds), desc="FoldEnsemble", unit="fold", disable=not self.verbose)
        with bar:
            for k, model, risk in results:
                test = folds[k][1]
                members[k], oof[test] = model, risk
                scores[k] = self._safe_cindex(y[test], risk)
                bar.set_postfix_str(f"fold {k + 1}: C-index {scores[k]:.3f}")
                bar.update()
        state = dict(estimators_=members, folds_=folds, oof_risk_=oof, fold_scores_=scores)
        if self.standardize == "fit":
            risks = self._member_risks(X, members)
            sd = risks.std(axis=1)
            state.update(risk_mean_=risks.mean(axis=1), risk_scale_=np.where(sd > 0, sd, 1.0))
        if hasattr(self.estimator, "predict_survival_function"):
            first = _safe_indexing(X, [0])
            state["unique_times_"] = np.unique(
                np.concatenate([m.predict_survival_function(first)[0].x for m in members])
            )
        if self._segmenting_members():
            state["regions_"] = tuple(members[0].regions_)
        # the fitted state is set only once all of it is computed (fit is atomic)
        for key, value in state.items():
            setattr(self, key, value)
        return self

    def _segmenting_members(self) -> bool:
        return hasattr(self.estimator, "predict_mask") and hasattr(
            self.estimator, "_region_probabilities"
        )

    def _can_segment(self) -> bool:
        if not self._segmenting_members():
            raise AttributeError(
                f"{type(self.estimator).__name__} does not segment, so neither does its ensemble."
            )
        return True

    def _mask_threshold(self) -> float:
        return self.estimator.mask_threshold

    def _region_probabilities(self, X) -> np.ndarray:
        """The members' mean probabilities of every region, ``(n, R, D, H, W)`` float32."""
        check_is_fitted(self, "estimators_")
        total = None
        for member in self.estimators_:  # a running sum: one member's maps in memory at once
            p = member._region_probabilities(X).astype(np.float32)
            total = p if total is None else total + p
        return total / len(self.estimators_)

    @staticmethod
    def _safe_cindex(y, risk):
        from ..evaluation.metrics import concordance_index

        event, _ = check_survival(y, require_events=False)
        return concordance_index(y, risk) if event.any() else np.nan

    def _member_risks(self, X, members=None):
        """``(n_members, n_samples)`` raw risks of ``members`` (default: the fitted ones)."""
        members = self.estimators_ if members is None else members
        return np.vstack([np.asarray(m.predict(X), dtype=np.float64).ravel() for m in members])

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

    @available_if(_estimator_has("predict_survival_function"))
    def predict_survival_function(self, X, return_array=False):
        r"""Members' mean survival function :math:`\frac1K \sum_k S_k(t \mid x)`.

        Parameters
        ----------
        X : cohort or array-like
        return_array : bool, default=False
            Return an array of shape ``(n_samples, n_times)`` on the union of the members'
            time grids instead of ``StepFunction``\ s.

        Returns
        -------
        survival : ndarray of sksurv.functions.StepFunction, or ndarray of float
        """
        check_is_fitted(self, "estimators_")
        per_member = [m.predict_survival_function(X) for m in self.estimators_]
        _, mean, fns = _mean_step_functions(per_member, "survival")
        return mean if return_array else np.asarray(fns)

    @available_if(_estimator_has("predict_cumulative_hazard_function"))
    def predict_cumulative_hazard_function(self, X, return_array=False):
        r"""Members' mean cumulative hazard :math:`\frac1K \sum_k H_k(t \mid x)`.

        Parameters
        ----------
        X : cohort or array-like
        return_array : bool, default=False
            Return an array of shape ``(n_samples, n_times)`` instead of ``StepFunction``\ s.

        Returns
        -------
        cumulative_hazard : ndarray of sksurv.functions.StepFunction, or ndarray of float
        """
        check_is_fitted(self, "estimators_")
        per_member = [m.predict_cumulative_hazard_function(X) for m in self.estimators_]
        _, mean, fns = _mean_step_functions(per_member, "cumulative hazard")
        return mean if return_array else np.asarray(fns)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.estimator).input_tags
        return tags
