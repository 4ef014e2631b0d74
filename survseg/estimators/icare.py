r"""ICARE: sign-averaged features, the HECKTOR 2022 prognosis winner, and its bagged version.

ICARE (Rebaud et al. 2023) won the HECKTOR 2022 recurrence-free-survival task (test
C-index 0.682) with a deliberately simple model on PET/CT radiomics: no coefficients are
fitted, only a sign per feature. Fitting on :math:`(X, y)`:

1. optionally keep a random fraction ``max_features`` of the features;
2. drop redundant features: in a random order, a feature is dropped when its absolute
   (Pearson or Spearman) correlation with a feature kept before it exceeds
   ``correlation_threshold``;
3. for each feature :math:`x_j` alone, compute its univariate concordance with the outcome by
   each of the ``sign_metrics`` (Harrell's C, Uno's IPCW C, the mean cumulative/dynamic AUC);
   its sign :math:`w_j = +1` if the metrics are :math:`\ge 1/2` (high values, early events),
   :math:`-1` if they are all below; a feature whose metrics disagree in sign, or whose mean
   :math:`\max(c, 1 - c)` is below ``cmin``, gets :math:`w_j = 0` and is not used;
4. standardise each used feature on the training data, :math:`z_j = (x_j - m_j)/s_j`.

The risk of a patient is the mean of the signed standardised features it has (missing
values are skipped), :math:`r = \frac{1}{|J|}\sum_{j \in J} w_j z_j`, re-standardised with the
mean and SD of the training risks. Because every used feature has weight :math:`\pm 1`, the
model cannot over-fit the magnitude of coefficients, which is why it transfers well to
external centres.

:class:`BaggedIcareSurvival` fits ``n_estimators`` ICARE models on bootstrap resamples (each
with parameters drawn from ``parameter_sets`` when given, as the winning entry did) and
averages (or takes the median of) their risks.

The ``icare`` package (0.1.0, Apache-2.0) on PyPI implements the same method but fails on
scikit-learn >= 1.8 (``check_array(force_all_finite=...)`` was removed) and writes a
``testoutput.txt`` when ``max_features < 1``; this module is an independent implementation
from the paper's description with the project's scikit-learn conventions.

References
----------
Rebaud L, Escobar T, Khalid F, Girum K, Buvat I. Simplicity is all you need: out-of-the-box
nnUNet followed by binary-weighted radiomic model for segmentation and outcome prediction in
head and neck PET/CT. In: Head and Neck Tumor Segmentation and Outcome Prediction (HECKTOR
2022), LNCS 13626, Springer, 2023, pp. 121-134.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..base import SurvivalMixin
from ..data.errors import PatientError, rows_of
from ..data.validation import check_survival

__all__ = ["BaggedIcareSurvival", "IcareSurvival"]

_METRICS = {"harrell", "uno", "auc"}


def _check_X(estimator, X, *, reset):
    """Float matrix with NaN allowed (missing values), infinity refused naming the cell."""
    names = getattr(X, "columns", None)
    X = validate_data(estimator, X, dtype=np.float64, ensure_all_finite=False, reset=reset)
    if np.isinf(X).any():
        row, col = np.argwhere(np.isinf(X))[0]
        feature = str(names[col]) if names is not None else f"column {col}"
        raise PatientError(f"feature {feature} is infinite for {{patient}}.", patient=row)
    return X


def _univariate_metric(metric, y, event, time, x):
    """Concordance of one feature (as a risk) with the outcome; NaN where undefined."""
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
    )

    try:
        if metric == "harrell":
            return concordance_index_censored(event, time, x)[0]
        if metric == "uno":
            return concordance_index_ipcw(y, y, x, tau=time[event].max())[0]
        # mean cumulative/dynamic AUC at percentiles 10-80 of the times, inside the follow-up
        grid = np.unique(np.percentile(time, np.linspace(10, 80, 15)))
        # (times before the first event have no case: AUC undefined there)
        grid = grid[(grid >= time[event].min()) & (grid < time.max())]
        if grid.size == 0:
            return np.nan
        return cumulative_dynamic_auc(y, y, x, grid)[1]
    except ValueError:
        return np.nan


def _correlation(X, method):
    from ..radiomics.correlation import spearman_matrix

    if method == "spearman":
        return spearman_matrix(X)
    Z = X - X.mean(axis=0)
    norm = np.sqrt((Z**2).sum(axis=0))
    Z = Z / np.where(norm > 0, norm, 1.0)
    corr = np.clip(Z.T @ Z, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return corr


class IcareSurvival(SurvivalMixin, BaseEstimator):
    r"""ICARE: each feature standardised, given the sign of its univariate association, averaged.

    See :mod:`survseg.estimators.icare` for the method. On radiomics, use it after the
    papers' reduction, e.g. ``make_radiomics_pipeline("icare")``.

    Parameters
    ----------
    correlation_threshold : float in [0, 1] or None, default=None
        Drop a feature whose absolute correlation with a feature kept before it (in a random
        order) is above it; ``None`` keeps all (ICARE's ``rho``).
    correlation_method : {"pearson", "spearman"}, default="pearson"
    sign_metrics : tuple of {"harrell", "uno", "auc"}, default=("harrell", "uno", "auc")
        Univariate metrics that must agree on a feature's sign (ICARE's ``sign_method``).
    cmin : float in [0.5, 1) or None, default=None
        Minimum mean :math:`\max(c, 1 - c)` over the metrics for a feature to be used.
    max_features : float in (0, 1], default=1.0
        Fraction of the features drawn at random before anything else.
    random_state : int, RandomState or None, default=None
        Seeds the feature draw and the order of the correlation filter.

    Attributes
    ----------
    signs_ : ndarray of shape (n_features_in_,)
        :math:`w_j \in \{-1, 0, +1\}` (0: not used).
    scores_ : ndarray of shape (len(sign_metrics), n_features_in_)
        The univariate metrics (NaN for features not evaluated).
    mean_, scale_ : ndarray of shape (n_features_in_,)
        Training mean and SD of each feature.
    risk_mean_, risk_scale_ : float
        Mean and SD of the training risks before re-standardisation.
    coef_ : ndarray of shape (n_features_in_,)
        The model as a linear risk (for patients without missing values):
        :math:`w_j / (s_j |J|)`.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` has column names.

    See Also
    --------
    BaggedIcareSurvival, survseg.feature_selection.concordance_score

    References
    ----------
    Rebaud et al., HECKTOR 2022, LNCS 13626 (2023) 121-134.

    Examples
    --------
    >>> from sksurv.datasets import load_whas500
    >>> from survseg.estimators import IcareSurvival
    >>> X, y = load_whas500()
    >>> X = X[["age", "bmi", "hr", "sysbp", "diasbp"]]
    >>> model = IcareSurvival().fit(X, y)
    >>> model.signs_
    array([ 1., -1.,  1., -1., -1.])
    >>> round(model.score(X, y), 3)
    0.72
    """

    _parameter_constraints = {
        "correlation_threshold": [None, Interval(numbers.Real, 0, 1, closed="both")],
        "correlation_method": [StrOptions({"pearson", "spearman"})],
        "sign_metrics": [tuple, list],
        "cmin": [None, Interval(numbers.Real, 0.5, 1, closed="left")],
        "max_features": [Interval(numbers.Real, 0, 1, closed="right")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        correlation_threshold=None,
        correlation_method="pearson",
        sign_metrics=("harrell", "uno", "auc"),
        cmin=None,
        max_features=1.0,
        random_state=None,
    ):
        self.correlation_threshold = correlation_threshold
        self.correlation_method = correlation_method
        self.sign_metrics = sign_metrics
        self.cmin = cmin
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, X, y):
        """Choose the features and their signs.

        Parameters
        ----------
        X : array-like of shape (n_patients, n_features)
            Features; NaN (missing) is allowed and skipped, infinite values are not.
        y : structured ndarray
            Survival outcomes with at least one event.

        Returns
        -------
        self
        """
        self._validate_params()
        metrics = tuple(self.sign_metrics)
        unknown = set(metrics) - _METRICS
        if not metrics or unknown:
            raise ValueError(
                f"sign_metrics must be a non-empty subset of {sorted(_METRICS)}; "
                f"got {self.sign_metrics!r}."
            )
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                "(survival outcomes, sksurv.util.Surv)."
            )
        X = _check_X(self, X, reset=True)
        event, time = check_survival(y, X.shape[0])
        rng = check_random_state(self.random_state)
        n_feat = X.shape[1]
        candidates = np.arange(n_feat)
        if self.max_features < 1:
            k = max(1, int(self.max_features * n_feat))
            candidates = np.sort(rng.choice(n_feat, k, replace=False))
        mean = np.nanmean(X, axis=0) if len(X) else np.zeros(n_feat)
        scale = np.nanstd(X, axis=0)
        varies = np.isfinite(scale) & (scale > 1e-12 * np.maximum(1.0, np.abs(mean)))
        candidates = candidates[varies[candidates]]
        order = rng.permutation(candidates)
        if self.correlation_threshold is not None and order.size > 1:
            filled = np.where(np.isnan(X[:, order]), mean[order], X[:, order])
            corr = np.abs(_correlation(filled, self.correlation_method))
            kept = []
            for i in range(order.size):
                if not kept or corr[i, kept].max() <= self.correlation_threshold:
                    kept.append(i)
            order = order[kept]
        scores = np.full((len(metrics), n_feat), np.nan)
        signs = np.zeros(n_feat)
        for j in order:
            ok = ~np.isnan(X[:, j])
            if not event[ok].any():
                continue
            c = np.array(
                [_univariate_metric(m, y[ok], event[ok], time[ok], X[ok, j]) for m in metrics]
            )
            scores[:, j] = c
            if np.isnan(c).any():
                continue
            s = np.where(c >= 0.5, 1.0, -1.0)
            if np.all(s == s[0]) and (
                self.cmin is None or np.mean(np.maximum(c, 1 - c)) >= self.cmin
            ):
                signs[j] = s[0]
        self.signs_, self.scores_ = signs, scores
        self.mean_, self.scale_ = mean, np.where(varies, scale, 1.0)
        self.risk_mean_, self.risk_scale_ = 0.0, 1.0
        used = signs != 0
        if not used.any():
            warnings.warn(
                "no feature has a consistent sign: ICARE predicts the same risk for everyone.",
                UserWarning,
                stacklevel=2,
            )
        else:
            raw = self._raw_risk(X)
            self.risk_mean_ = float(np.nanmean(raw))
            sd = float(np.nanstd(raw))
            self.risk_scale_ = sd if sd > 0 else 1.0
        self.coef_ = np.where(used, signs / self.scale_ / max(int(used.sum()), 1), 0.0)
        self.coef_ = self.coef_ / self.risk_scale_
        return self

    def _raw_risk(self, X):
        used = self.signs_ != 0
        if not used.any():
            return np.zeros(len(X))
        z = (X[:, used] - self.mean_[used]) / self.scale_[used] * self.signs_[used]
        has = ~np.isnan(z)
        n = has.sum(axis=1)
        risk = np.where(n > 0, np.where(has, z, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)
        return risk

    def predict(self, X):
        """Risk score (higher = earlier event): the re-standardised mean signed feature.

        A patient missing every used feature gets the mean training risk (0).
        """
        check_is_fitted(self, "signs_")
        X = _check_X(self, X, reset=False)
        return (self._raw_risk(X) - self.risk_mean_) / self.risk_scale_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _fit_member(estimator, X, y, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(X), len(X))
    if not y[y.dtype.names[0]][idx].any():  # a resample without events: resample again
        idx = np.concatenate([idx[:-1], rng.choice(np.flatnonzero(y[y.dtype.names[0]]), 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with rows_of(idx, "a bootstrap resample"):
            return estimator.fit(X[idx], y[idx])


class BaggedIcareSurvival(SurvivalMixin, BaseEstimator):
    r"""Bootstrap ensemble of :class:`IcareSurvival` models (the HECKTOR 2022 entry).

    Each of ``n_estimators`` members is fitted on a bootstrap resample of the patients, with
    its own seed and, when ``parameter_sets`` is given, parameters drawn uniformly from it;
    the risk is the mean (or median) of the members' standardised risks.

    Parameters
    ----------
    estimator : IcareSurvival or None, default=None
        Template of the members (cloned); ``None`` is ``IcareSurvival()``.
    n_estimators : int >= 1, default=10
    parameter_sets : list of dict or None, default=None
        Parameter settings of the members (``set_params`` keys of the template), one drawn
        per member.
    aggregation : {"mean", "median"}, default="mean"
    n_jobs : int or None, default=None
        Members are fitted in parallel through joblib.
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    estimators_ : list of IcareSurvival
    sign_frequency_ : ndarray of shape (n_features_in_,)
        Mean sign of each feature over the members (0 where unused): a stability measure.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    References
    ----------
    Rebaud et al., HECKTOR 2022, LNCS 13626 (2023) 121-134.
    """

    _parameter_constraints = {
        "estimator": [None, IcareSurvival],
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left")],
        "parameter_sets": [None, list],
        "aggregation": [StrOptions({"mean", "median"})],
        "n_jobs": [None, numbers.Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        n_estimators=10,
        parameter_sets=None,
        aggregation="mean",
        n_jobs=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.parameter_sets = parameter_sets
        self.aggregation = aggregation
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the members on bootstrap resamples.

        Parameters
        ----------
        X : array-like of shape (n_patients, n_features)
        y : structured ndarray

        Returns
        -------
        self
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                "(survival outcomes, sksurv.util.Surv)."
            )
        X = _check_X(self, X, reset=True)
        check_survival(y, X.shape[0])
        if self.parameter_sets is not None and not self.parameter_sets:
            raise ValueError("parameter_sets is empty; pass None or a list of dicts.")
        rng = check_random_state(self.random_state)
        template = IcareSurvival() if self.estimator is None else self.estimator
        members = []
        for _ in range(self.n_estimators):
            m = clone(template)
            if self.parameter_sets is not None:
                m.set_params(**self.parameter_sets[rng.randint(len(self.parameter_sets))])
            m.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
            members.append((m, rng.randint(np.iinfo(np.int32).max)))
        fitted = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(m, X, y, seed) for m, seed in members
        )
        self.estimators_ = fitted
        self.sign_frequency_ = np.mean([m.signs_ for m in fitted], axis=0)
        return self

    def predict(self, X):
        """Mean (or median) of the members' risks (higher = earlier event)."""
        check_is_fitted(self, "estimators_")
        X = _check_X(self, X, reset=False)
        risks = np.array([m.predict(X) for m in self.estimators_])
        agg = np.mean if self.aggregation == "mean" else np.median
        return agg(risks, axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
