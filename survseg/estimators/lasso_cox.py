r"""LassoCoxCV: the LASSO-penalised Cox model with its penalty chosen by inner cross-validation."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold, check_cv
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..base import SurvivalMixin
from ..data.validation import check_survival

__all__ = ["LassoCoxCV"]


class LassoCoxCV(SurvivalMixin, BaseEstimator):
    r"""Cox model with an L1 (LASSO) penalty whose strength is chosen by cross-validated C-index.

    Minimises, over :math:`\beta`,

    .. math::

        -\frac{1}{n}\,\ell(\beta) + \alpha \Big(r \lVert\beta\rVert_1
            + \tfrac{1-r}{2} \lVert\beta\rVert_2^2\Big)

    with :math:`\ell` the Cox partial log-likelihood (Breslow ties) and :math:`r` =
    ``l1_ratio`` (1 = LASSO, as in the papers), using scikit-survival's
    ``CoxnetSurvivalAnalysis`` (coordinate descent along a path of :math:`\alpha`).

    ``fit`` first computes the path on all of the training data, then, for each of ``cv``
    folds (stratified by event so every fold has events), refits the path on the other folds
    and scores every :math:`\alpha` on the held-out fold. The :math:`\alpha` with the best
    score is kept (among ties, the largest, i.e. the sparsest model); predictions use the
    all-data path at that :math:`\alpha`.

    Two scores are offered. ``"cindex"``: Harrell's C on each held-out fold, averaged over
    the folds that have a comparable pair (a small fold whose only event is its longest time
    has none and is skipped). ``"partial_likelihood"``: the cross-validated partial
    likelihood of Verweij and van Houwelingen [3]_ (glmnet's ``grouped`` Cox deviance),

    .. math::

        \mathrm{CVPL}(\alpha) = \sum_k \Big[\ell\big(\hat\beta_{-k}(\alpha)\big)
            - \ell_{-k}\big(\hat\beta_{-k}(\alpha)\big)\Big],

    where :math:`\hat\beta_{-k}` is fitted without fold :math:`k`, :math:`\ell` is the
    log partial likelihood of all patients and :math:`\ell_{-k}` that of the patients
    outside fold :math:`k`. Each fold's term uses the full risk sets, so it stays defined
    and stable when folds hold very few events, as in small radiomics cohorts.

    Parameters
    ----------
    n_alphas : int, default=100
        Length of the automatic :math:`\alpha` path.
    alpha_min_ratio : float or "auto", default=0.01
        Smallest :math:`\alpha` of the path relative to the largest ("auto" is
        scikit-survival's rule: 1e-4 when n_samples > n_features, else 1e-2). The default
        stops the path at 1e-2: with the few events of a radiomics cohort the nearly
        unpenalised end of the path does not converge, and inner CV never picks it.
    alphas : array-like, optional
        Explicit :math:`\alpha` values instead of the automatic path.
    l1_ratio : float in (0, 1], default=1.0
        Elastic-net mixing; 1 is the LASSO.
    cv : int, CV splitter or iterable of (train, test) indices, default=5
        Inner folds. An int gives ``StratifiedKFold(cv, shuffle=True,
        random_state=random_state)`` on the event indicator; with fewer events than ``cv``
        it is lowered to the number of events (with a warning), so every fold has one.
    scoring : {"cindex", "partial_likelihood"}, default="cindex"
        How a penalty is scored on the held-out folds (see above).
    max_iter : int, default=100000
        Coordinate-descent iterations per path.
    tol : float, default=1e-7
        Convergence tolerance.
    random_state : int, RandomState or None
        Seeds the inner fold shuffling.

    Attributes
    ----------
    alpha_ : float
        The chosen penalty.
    alphas_ : ndarray
        The path of penalties scored.
    cv_scores_ : ndarray of shape (n_alphas, n_folds)
        Held-out score of each penalty in each inner fold (NaN for a fold without a
        comparable pair when ``scoring="cindex"``).
    coef_ : ndarray of shape (n_features_in_,)
        Coefficients at ``alpha_`` (on the input scale).
    estimator_ : sksurv.linear_model.CoxnetSurvivalAnalysis
        The path fitted on all training data (with Breslow baseline hazards).
    unique_times_ : ndarray
        Event times of the training data (grid of ``return_array=True`` survival functions).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` is a DataFrame.

    See Also
    --------
    sksurv.linear_model.CoxnetSurvivalAnalysis
    survseg.estimators.RadiomicsCox : radiomics extraction + this model.

    References
    ----------
    .. [1] Tibshirani, "The lasso method for variable selection in the Cox model",
       Statistics in Medicine 16(4), 1997.
    .. [2] Simon et al., "Regularization paths for Cox's proportional hazards model via
       coordinate descent", Journal of Statistical Software 39(5), 2011.
    .. [3] Verweij and van Houwelingen, "Cross-validation in survival analysis", Statistics
       in Medicine 12(24), 1993.

    Examples
    --------
    >>> from sksurv.datasets import load_whas500
    >>> from survseg.estimators.lasso_cox import LassoCoxCV
    >>> X, y = load_whas500()
    >>> X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].astype(float)
    >>> model = LassoCoxCV(random_state=0).fit((X - X.mean()) / X.std(), y)  # doctest: +SKIP
    """

    _parameter_constraints = {
        "n_alphas": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha_min_ratio": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "alphas": [None, "array-like"],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="right")],
        "cv": ["cv_object"],
        "scoring": [StrOptions({"cindex", "partial_likelihood"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_alphas=100,
        alpha_min_ratio=0.01,
        alphas=None,
        l1_ratio=1.0,
        cv=5,
        scoring="cindex",
        max_iter=100000,
        tol=1e-7,
        random_state=None,
    ):
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.alphas = alphas
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.scoring = scoring
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _coxnet(self, alphas, baseline):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(
            n_alphas=self.n_alphas,
            alphas=alphas,
            alpha_min_ratio=self.alpha_min_ratio,
            l1_ratio=self.l1_ratio,
            max_iter=self.max_iter,
            tol=self.tol,
            fit_baseline_model=baseline,
        )

    def fit(self, X, y):
        """Fit the penalty path, choose ``alpha_`` by inner cross-validation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Standardised features (the penalty treats every coefficient alike).
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv``).

        Returns
        -------
        self
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        event, time = check_survival(y, X.shape[0])
        n_events = int(event.sum())
        if n_events < 2:
            raise ValueError(
                f"{n_events} event(s) in the training data: the penalty cannot be chosen by "
                "cross-validation (at least 2 events are needed)."
            )
        if self.cv is None or isinstance(self.cv, numbers.Integral):
            n_folds = 5 if self.cv is None else self.cv
            if n_events < self.cv:
                warnings.warn(
                    f"{n_events} events cannot be spread over cv={self.cv} inner folds; "
                    f"using {n_events} folds.",
                    UserWarning,
                    stacklevel=2,
                )
                n_folds = n_events
            splitter = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
        else:  # a splitter or an iterable of (train, test) index pairs
            splitter = check_cv(self.cv)
        alphas = None if self.alphas is None else np.asarray(self.alphas, dtype=np.float64)
        y = _surv(event, time)
        self.estimator_ = self._coxnet(alphas, baseline=True).fit(X, y)
        self.alphas_ = np.asarray(self.estimator_.alphas_)

        scores = []
        for train, test in splitter.split(X, event):
            with warnings.catch_warnings():
                # an all-zero path on one inner fold is a fact of that fold, not a user problem
                warnings.filterwarnings("ignore", message="all coefficients are zero")
                fold = self._coxnet(self.alphas_, baseline=False).fit(X[train], y[train])
            if self.scoring == "partial_likelihood":
                scores.append(
                    [
                        _log_partial_likelihood(fold.predict(X, alpha=a), event, time)
                        - _log_partial_likelihood(
                            fold.predict(X[train], alpha=a), event[train], time[train]
                        )
                        for a in self.alphas_
                    ]
                )
            else:
                scores.append(
                    [
                        _held_out_cindex(event[test], time[test], fold.predict(X[test], alpha=a))
                        for a in self.alphas_
                    ]
                )
        self.cv_scores_ = np.asarray(scores, dtype=np.float64).T
        usable = ~np.isnan(self.cv_scores_).all(axis=0)
        if not usable.any():
            raise ValueError(
                "no inner cross-validation fold has a comparable pair of patients, so the "
                "C-index cannot choose the penalty; use scoring='partial_likelihood' or fewer folds."
            )
        total = np.nanmean(self.cv_scores_[:, usable], axis=1)
        best = int(np.argmax(total))  # first max = largest alpha
        self.alpha_ = float(self.alphas_[best])
        self.coef_ = np.asarray(self.estimator_.coef_[:, best], dtype=np.float64)
        self.unique_times_ = self.estimator_._baseline_models[best].unique_times_
        return self

    def predict(self, X):
        """Risk score :math:`x^\\top \\beta` (higher = earlier event)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.estimator_.predict(X, alpha=self.alpha_)

    def predict_survival_function(self, X, return_array=False):
        """Survival functions (Breslow baseline): ``StepFunction``\\ s, or an array over
        ``unique_times_`` when ``return_array`` is true."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.estimator_.predict_survival_function(
            X, alpha=self.alpha_, return_array=return_array
        )

    def predict_cumulative_hazard_function(self, X, return_array=False):
        """Cumulative hazard functions (Breslow baseline), as :meth:`predict_survival_function`."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.estimator_.predict_cumulative_hazard_function(
            X, alpha=self.alpha_, return_array=return_array
        )


def _held_out_cindex(event, time, risk) -> float:
    """Harrell's C of one held-out fold; NaN when the fold has no comparable pair."""
    from sksurv.metrics import concordance_index_censored

    if not event.any():
        return np.nan
    try:
        return float(concordance_index_censored(event, time, risk)[0])
    except (ValueError, ZeroDivisionError):  # "Data has no comparable pairs"
        return np.nan


def _log_partial_likelihood(log_risk, event, time) -> float:
    """Breslow log partial likelihood :math:`\\ell` of ``log_risk`` (the shared Cox loss, summed)."""
    import torch

    from ..losses.cox import cox_partial_likelihood_loss

    loss = cox_partial_likelihood_loss(
        torch.as_tensor(np.asarray(log_risk), dtype=torch.float64),
        torch.as_tensor(np.asarray(event, dtype=bool)),
        torch.as_tensor(np.asarray(time, dtype=np.float64)),
        ties="breslow",
        reduction="sum",
    )
    return -float(loss)


def _surv(event, time):
    from sksurv.util import Surv

    return Surv.from_arrays(event, time)
