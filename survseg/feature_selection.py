r"""Survival-aware univariate feature selection for scikit-learn pipelines.

scikit-learn's ``f_regression`` or ``mutual_info_regression`` cannot read scikit-survival's
structured ``y`` (an event flag and a time per patient). This module gives score functions
that can, for :class:`sklearn.feature_selection.SelectKBest`, ``SelectPercentile``,
``SelectFpr``, ``SelectFdr`` and ``SelectFwe`` (which, in scikit-learn 1.9, hand ``y`` to the
score function unchanged), and a selector by univariate Cox p-value:

* :func:`concordance_score`: Harrell's C of each feature used as a risk score, as
  :math:`|C - 1/2|` (default) or signed :math:`C - 1/2`.
* :func:`cox_score_test`: the score (log-rank type) test of a univariate Cox model per
  feature, ``(statistics, p_values)``.
* :func:`univariate_cox`: per feature, the univariate Cox fit with Wald, likelihood-ratio and
  score tests.
* :class:`CoxPValueSelector`: keeps the features whose univariate Cox p-value is below
  ``alpha`` (optionally Bonferroni or Benjamini-Hochberg corrected).

For one feature :math:`x` the Cox partial log-likelihood (Breslow ties) is

.. math::

    \ell(\beta) = \sum_j \Bigl[\beta \sum_{i \in D_j} x_i
                  - d_j \log \sum_{k \in R_j} e^{\beta x_k}\Bigr],

with :math:`D_j` the :math:`d_j` patients with an event at the :math:`j`-th distinct event
time and :math:`R_j` those still at risk then. Efron's ties replace the :math:`d_j` equal
terms :math:`\log\sum_{R_j}` by :math:`\sum_{l=0}^{d_j-1}\log\bigl(\sum_{R_j} e^{\beta x_k}
- \tfrac{l}{d_j}\sum_{D_j} e^{\beta x_k}\bigr)`. With the score :math:`U(\beta)=\ell'(\beta)`
and the information :math:`I(\beta)=-\ell''(\beta)`, the three tests of :math:`\beta = 0` are

.. math::

    \chi^2_{\text{score}} = \frac{U(0)^2}{I(0)},\qquad
    \chi^2_{\text{Wald}} = \hat\beta^2\, I(\hat\beta),\qquad
    \chi^2_{\text{LR}} = 2\bigl[\ell(\hat\beta) - \ell(0)\bigr],

each referred to :math:`\chi^2_1`. At :math:`\beta = 0`,
:math:`U(0) = \sum_j (\sum_{D_j} x_i - d_j \bar x_{R_j})` and, with Breslow ties,
:math:`I(0) = \sum_j d_j \operatorname{Var}_{R_j}(x)`: for a binary feature and no tied event
times the score test is the log-rank test.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.stats import chi2
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .data.errors import PatientError
from .data.validation import check_survival

__all__ = [
    "CoxPValueSelector",
    "UnivariateCox",
    "concordance_score",
    "cox_score_test",
    "univariate_cox",
]


def _check_inputs(X, y):
    """``X`` as a finite float matrix and ``(event, time)``; errors name feature and patient."""
    names = getattr(X, "columns", None)
    X = check_array(X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2)
    event, time = check_survival(y, X.shape[0])
    _check_finite(X, names)
    return X, event, time


def _check_finite(X, names=None):
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        feature = str(names[col]) if names is not None else f"column {col}"
        raise PatientError(
            f"feature {feature} is NaN or infinite for {{patient}} and "
            f"{int(bad.sum()) - 1} other value(s); impute first (e.g. SimpleImputer).",
            patient=row,
        )


def concordance_score(X, y, *, signed=False):
    r"""Harrell's concordance index of each feature used as a risk score.

    For feature :math:`x`, :math:`C = P(x_i > x_j \mid T_i < T_j, \delta_i = 1)` over the
    comparable pairs (ties in :math:`x` count 1/2), computed with
    :func:`sksurv.metrics.concordance_index_censored`. A feature with :math:`C < 1/2` is as
    informative as one with :math:`1 - C`, with the opposite sign, so the default score is
    :math:`|C - 1/2|` in :math:`[0, 1/2]`; ``signed=True`` gives :math:`C - 1/2` (positive:
    higher values mean earlier events). A constant feature scores 0.

    Use it with :class:`~sklearn.feature_selection.SelectKBest` or
    ``SelectPercentile`` (``functools.partial(concordance_score, signed=True)`` for the signed
    version, which then keeps only features whose high values mean high risk).

    Parameters
    ----------
    X : array-like of shape (n_patients, n_features)
        Finite feature values.
    y : structured ndarray
        Survival outcomes (``sksurv.util.Surv.from_arrays``), with at least one event.
    signed : bool, default=False
        Return :math:`C - 1/2` instead of :math:`|C - 1/2|`.

    Returns
    -------
    scores : ndarray of shape (n_features,)

    Raises
    ------
    ValueError
        If no pair of patients is comparable, or a value is NaN/infinite (naming the feature
        and the patient).

    See Also
    --------
    cox_score_test, survseg.evaluation.concordance_index

    Examples
    --------
    >>> from sklearn.feature_selection import SelectKBest
    >>> from sksurv.datasets import load_whas500
    >>> from survseg.feature_selection import concordance_score
    >>> X, y = load_whas500()
    >>> X = X[["age", "bmi", "hr", "sysbp", "diasbp"]]
    >>> SelectKBest(concordance_score, k=2).fit(X, y).get_feature_names_out()
    array(['age', 'bmi'], dtype=object)
    """
    from sksurv.metrics import concordance_index_censored

    X, event, time = _check_inputs(X, y)
    if not event.any():
        raise ValueError("the concordance index needs at least one event in y.")
    scores = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        try:
            c = concordance_index_censored(event, time, X[:, j])[0]
        except ValueError as exc:  # sksurv's NoComparablePairException
            raise ValueError(
                f"no comparable pair of patients in y: C is undefined ({exc})."
            ) from exc
        scores[j] = c - 0.5
    return scores if signed else np.abs(scores)


class _RiskSetSums:
    """Sorted data and event-time groups, to evaluate univariate Cox derivatives quickly."""

    def __init__(self, X, event, time):
        order = np.argsort(time, kind="mergesort")
        self.x = X[order]
        ev = event[order]
        _, first = np.unique(time[order], return_index=True)
        d = np.add.reduceat(ev.astype(np.int64), first)
        keep = d > 0  # distinct times with at least one event
        self.first = first
        self.keep = keep
        self.d = d[keep].astype(np.float64)
        self.ev = ev
        # sum of x over the patients with an event at each event time
        self.dx = np.add.reduceat(self.x * ev[:, None], first, axis=0)[keep]

    def _group(self, a):
        """Risk-set sums (time >= t_j) and death-set sums at each event time."""
        risk = np.cumsum(a[::-1], axis=0)[::-1][self.first][self.keep]
        death = np.add.reduceat(a * self.ev[:, None], self.first, axis=0)[self.keep]
        return risk, death

    def derivatives(self, beta, ties):
        """Log partial likelihood, score and information per feature at ``beta`` (n_features,)."""
        eta = self.x * beta
        shift = eta.max(axis=0)
        w = np.exp(eta - shift)
        r0, d0 = self._group(w)
        r1, d1 = self._group(w * self.x)
        r2, d2 = self._group(w * self.x**2)
        d = self.d[:, None]
        loglik = (beta * self.dx).sum(axis=0) - d.sum() * shift
        if ties == "breslow":
            m1, m2 = r1 / r0, r2 / r0
            loglik = loglik - (d * np.log(r0)).sum(axis=0)
            score = (self.dx - d * m1).sum(axis=0)
            info = (d * (m2 - m1**2)).sum(axis=0)
            return loglik, score, info
        score = self.dx.sum(axis=0).copy()
        info = np.zeros_like(score)
        for rank in range(int(self.d.max())):  # Efron: the rank-th of d_j tied events
            active = (self.d > rank)[:, None]
            f = np.where(active, rank / d, 0.0)
            w0 = r0 - f * d0
            w0 = np.where(active, w0, 1.0)
            m1 = (r1 - f * d1) / w0
            m2 = (r2 - f * d2) / w0
            loglik = loglik - np.where(active, np.log(w0), 0.0).sum(axis=0)
            score = score - np.where(active, m1, 0.0).sum(axis=0)
            info = info + np.where(active, m2 - m1**2, 0.0).sum(axis=0)
        return loglik, score, info


def _standardise(X):
    """Centre and scale columns (Cox tests do not depend on either); constant columns flagged."""
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    constant = sd <= 1e-12 * np.maximum(1.0, np.abs(mean))
    return (X - mean) / np.where(constant, 1.0, sd), sd, constant


def cox_score_test(X, y, *, ties="efron"):
    r"""Score test of :math:`\beta = 0` in a univariate Cox model, for each feature.

    :math:`\chi^2 = U(0)^2 / I(0)` with :math:`\ell`, :math:`U` and :math:`I` the partial
    log-likelihood and its derivatives (see :mod:`survseg.feature_selection`), referred to
    :math:`\chi^2_1`. It needs no model fit, so it is fast on thousands of radiomics
    features, and is the log-rank test for a binary feature (without tied event times).
    A constant feature gets statistic 0 and p-value 1.

    Returns ``(statistics, p_values)``, the form :class:`~sklearn.feature_selection.SelectKBest`,
    ``SelectPercentile``, ``SelectFpr``, ``SelectFdr`` and ``SelectFwe`` take.

    Parameters
    ----------
    X : array-like of shape (n_patients, n_features)
        Finite feature values.
    y : structured ndarray
        Survival outcomes, with at least one event.
    ties : {"efron", "breslow"}, default="efron"
        Handling of tied event times (scikit-survival's and lifelines' default is Efron).

    Returns
    -------
    statistics : ndarray of shape (n_features,)
    p_values : ndarray of shape (n_features,)

    See Also
    --------
    univariate_cox : Wald and likelihood-ratio tests too (fits the models).
    CoxPValueSelector

    Examples
    --------
    >>> from sklearn.feature_selection import SelectFdr
    >>> from sksurv.datasets import load_whas500
    >>> from survseg.feature_selection import cox_score_test
    >>> X, y = load_whas500()
    >>> X = X[["age", "bmi", "hr", "sysbp", "diasbp"]]
    >>> SelectFdr(cox_score_test, alpha=0.01).fit(X, y).get_feature_names_out()
    array(['age', 'bmi', 'hr', 'diasbp'], dtype=object)
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow'; got {ties!r}.")
    X, event, time = _check_inputs(X, y)
    if not event.any():
        raise ValueError("the Cox score test needs at least one event in y.")
    Z, _, constant = _standardise(X)
    _, score, info = _RiskSetSums(Z, event, time).derivatives(np.zeros(X.shape[1]), ties)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(constant | (info <= 0), 0.0, score**2 / info)
    return stat, chi2.sf(stat, 1)


class UnivariateCox:
    """Per-feature univariate Cox fits (what :func:`univariate_cox` returns).

    Attributes
    ----------
    coef : ndarray
        Log hazard ratio per unit of each feature (NaN for a constant feature).
    se : ndarray
        Its standard error, :math:`I(\\hat\\beta)^{-1/2}`.
    wald, wald_p, likelihood_ratio, likelihood_ratio_p, score, score_p : ndarray
        The three test statistics and their :math:`\\chi^2_1` p-values.
    converged : ndarray of bool
        ``False`` where Newton's method stopped at ``max_iter`` (e.g. a feature that
        separates events perfectly: :math:`\\hat\\beta \\to \\pm\\infty`).
    """

    def __init__(self, coef, se, wald, likelihood_ratio, score, converged):
        self.coef = coef
        self.se = se
        self.wald, self.wald_p = wald, chi2.sf(wald, 1)
        self.likelihood_ratio = likelihood_ratio
        self.likelihood_ratio_p = chi2.sf(likelihood_ratio, 1)
        self.score, self.score_p = score, chi2.sf(score, 1)
        self.converged = converged


def univariate_cox(X, y, *, ties="efron", max_iter=100, tol=1e-9):
    r"""Fit one Cox model per feature and test :math:`\beta = 0` three ways.

    Newton-Raphson with step halving on the partial log-likelihood of each standardised
    feature, all features at once; the coefficients are converted back to the feature's
    units. Gives the same coefficients as
    :class:`sksurv.linear_model.CoxPHSurvivalAnalysis` fitted on each column.

    Parameters
    ----------
    X : array-like of shape (n_patients, n_features)
    y : structured ndarray
    ties : {"efron", "breslow"}, default="efron"
    max_iter : int, default=100
    tol : float, default=1e-9
        Stop when no log-likelihood improves by more than ``tol``.

    Returns
    -------
    UnivariateCox
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow'; got {ties!r}.")
    X, event, time = _check_inputs(X, y)
    if not event.any():
        raise ValueError("a Cox model needs at least one event in y.")
    Z, sd, constant = _standardise(X)
    sums = _RiskSetSums(Z, event, time)
    beta = np.zeros(X.shape[1])
    ll0, u0, i0 = sums.derivatives(beta, ties)
    ll, u, info = ll0, u0, i0
    converged = constant.copy()
    for _ in range(max_iter):
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(converged | (info <= 0), 0.0, u / info)
        new = beta + step
        ll_new, u_new, i_new = sums.derivatives(new, ties)
        for _halve in range(30):  # step halving where the likelihood went down
            worse = ll_new < ll - 1e-12
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
            new = beta + step
            ll_new, u_new, i_new = sums.derivatives(new, ties)
        gain = ll_new - ll
        beta, ll, u, info = new, ll_new, u_new, i_new
        converged |= (np.abs(gain) <= tol) & (np.abs(step) <= 1e-6 * (1 + np.abs(beta)))
        if converged.all():
            break
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(constant | (i0 <= 0), 0.0, u0**2 / i0)
        wald = np.where(constant, 0.0, beta**2 * info)
        se = np.where(constant, np.nan, 1.0 / np.sqrt(info) / np.where(constant, 1.0, sd))
        coef = np.where(constant, np.nan, beta / np.where(constant, 1.0, sd))
    lr = np.maximum(2.0 * (ll - ll0), 0.0)
    return UnivariateCox(coef, se, wald, lr, score, converged)


class CoxPValueSelector(SelectorMixin, BaseEstimator):
    r"""Keep the features whose univariate Cox model is significant.

    Each feature is tested alone (:math:`H_0: \beta_j = 0` in
    :math:`h(t \mid x_j) = h_0(t) e^{\beta_j x_j}`) on the training data; the features with
    p-value :math:`\le` ``alpha`` after the ``correction`` are kept. With
    ``correction="fdr_bh"`` the kept set is Benjamini-Hochberg's: the :math:`k` smallest
    p-values where :math:`k = \max\{i : p_{(i)} \le \alpha i / m\}`; with ``"bonferroni"``,
    :math:`p_j \le \alpha / m`.

    If fewer than ``min_features`` features pass, the ``min_features`` with the smallest
    p-values are kept (with a warning), so that a survival model after it always has an
    input on every cross-validation fold; ``min_features=0`` keeps none instead.

    Parameters
    ----------
    alpha : float in (0, 1], default=0.05
        Significance level.
    test : {"score", "wald", "likelihood_ratio"}, default="score"
        Which test's p-value (see :mod:`survseg.feature_selection`). The score test needs no
        fit; Wald and likelihood-ratio fit one Cox model per feature.
    ties : {"efron", "breslow"}, default="efron"
    correction : {None, "bonferroni", "fdr_bh"}, default=None
        Multiple-testing correction across features.
    min_features : int >= 0, default=1
        Keep at least this many features (those with the smallest p-values).

    Attributes
    ----------
    scores_ : ndarray of shape (n_features_in_,)
        The test statistic of each feature (:math:`\chi^2_1`).
    pvalues_ : ndarray of shape (n_features_in_,)
        Uncorrected p-values.
    coef_ : ndarray of shape (n_features_in_,)
        Univariate log hazard ratios (only for ``test="wald"`` or ``"likelihood_ratio"``,
        else ``None``).
    support_ : ndarray of bool of shape (n_features_in_,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` has column names.

    See Also
    --------
    cox_score_test, univariate_cox, concordance_score

    Examples
    --------
    >>> from sksurv.datasets import load_whas500
    >>> from survseg.feature_selection import CoxPValueSelector
    >>> X, y = load_whas500()
    >>> X = X[["age", "bmi", "hr", "sysbp", "diasbp"]]
    >>> sel = CoxPValueSelector(alpha=0.001, test="wald").fit(X, y)
    >>> sel.get_feature_names_out()
    array(['age', 'bmi', 'hr', 'diasbp'], dtype=object)
    """

    _parameter_constraints = {
        "alpha": [Interval(numbers.Real, 0, 1, closed="right")],
        "test": [StrOptions({"score", "wald", "likelihood_ratio"})],
        "ties": [StrOptions({"efron", "breslow"})],
        "correction": [None, StrOptions({"bonferroni", "fdr_bh"})],
        "min_features": [Interval(numbers.Integral, 0, None, closed="left")],
    }

    def __init__(self, alpha=0.05, *, test="score", ties="efron", correction=None, min_features=1):
        self.alpha = alpha
        self.test = test
        self.ties = ties
        self.correction = correction
        self.min_features = min_features

    def fit(self, X, y):
        """Test every feature on ``(X, y)`` and choose the ones to keep.

        Parameters
        ----------
        X : array-like of shape (n_patients, n_features)
            Finite values (impute first).
        y : structured ndarray
            Survival outcomes with at least one event.

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
        names = getattr(X, "columns", None)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2)
        _check_finite(X, names)
        if self.test == "score":
            scores, pvalues = cox_score_test(X, y, ties=self.ties)
            coef = None
        else:
            fit = univariate_cox(X, y, ties=self.ties)
            scores, pvalues = (
                (fit.wald, fit.wald_p)
                if self.test == "wald"
                else (fit.likelihood_ratio, fit.likelihood_ratio_p)
            )
            coef = fit.coef
        support = _significant(pvalues, self.alpha, self.correction)
        k = min(self.min_features, X.shape[1])
        if support.sum() < k:
            warnings.warn(
                f"{int(support.sum())} feature(s) with p <= {self.alpha} "
                f"({self.correction or 'uncorrected'}); keeping the {k} with the smallest "
                "p-values (min_features).",
                UserWarning,
                stacklevel=2,
            )
            support = np.zeros(X.shape[1], dtype=bool)
            support[np.argsort(pvalues, kind="stable")[:k]] = True
        self.scores_, self.pvalues_, self.coef_, self.support_ = scores, pvalues, coef, support
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def _significant(p, alpha, correction):
    m = len(p)
    if correction is None:
        return p <= alpha
    if correction == "bonferroni":
        return p <= alpha / m
    order = np.argsort(p, kind="stable")
    below = p[order] <= alpha * np.arange(1, m + 1) / m
    keep = np.zeros(m, dtype=bool)
    if below.any():
        keep[order[: np.flatnonzero(below).max() + 1]] = True
    return keep
