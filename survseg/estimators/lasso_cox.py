r"""LassoCoxCV: the LASSO-penalised Cox model with its penalty chosen by inner cross-validation."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
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
    and scores every :math:`\alpha` by Harrell's C on the held-out fold. The :math:`\alpha`
    with the best mean C is kept (among ties, the largest, i.e. the sparsest model);
    predictions use the all-data path at that :math:`\alpha`.

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
    cv : int or CV splitter, default=5
        Inner folds. An int gives ``StratifiedKFold(cv, shuffle=True,
        random_state=random_state)`` on the event indicator.
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
        Held-out C-index of each penalty in each inner fold.
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
        "cv": [Interval(numbers.Integral, 2, None, closed="left"), HasMethods(["split"])],
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
        max_iter=100000,
        tol=1e-7,
        random_state=None,
    ):
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.alphas = alphas
        self.l1_ratio = l1_ratio
        self.cv = cv
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
        from sksurv.metrics import concordance_index_censored

        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        event, time = check_survival(y, X.shape[0])
        if isinstance(self.cv, numbers.Integral):
            if event.sum() < self.cv:
                raise ValueError(
                    f"{int(event.sum())} events cannot be spread over cv={self.cv} inner folds; "
                    "lower cv or add patients."
                )
            splitter = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        else:
            splitter = self.cv
        alphas = None if self.alphas is None else np.asarray(self.alphas, dtype=np.float64)
        y = _surv(event, time)
        self.estimator_ = self._coxnet(alphas, baseline=True).fit(X, y)
        self.alphas_ = np.asarray(self.estimator_.alphas_)

        scores = []
        for train, test in splitter.split(X, event):
            if not event[test].any():
                raise ValueError("an inner cross-validation fold has no event; lower cv.")
            with warnings.catch_warnings():
                # an all-zero path on one inner fold is a fact of that fold, not a user problem
                warnings.filterwarnings("ignore", message="all coefficients are zero")
                fold = self._coxnet(self.alphas_, baseline=False).fit(X[train], y[train])
            scores.append(
                [
                    concordance_index_censored(
                        event[test], time[test], fold.predict(X[test], alpha=a)
                    )[0]
                    for a in self.alphas_
                ]
            )
        self.cv_scores_ = np.asarray(scores).T
        best = int(np.argmax(self.cv_scores_.mean(axis=1)))  # first max = largest alpha
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


def _surv(event, time):
    from sksurv.util import Surv

    return Surv.from_arrays(event, time)
