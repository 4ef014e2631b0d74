r"""CorrelationFilter: the papers' removal of redundant features by Spearman correlation."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["CorrelationFilter", "spearman_matrix"]


def spearman_matrix(X) -> np.ndarray:
    r"""Spearman correlation between the columns of ``X``.

    The Pearson correlation of the column ranks (ties get their average rank), as
    ``scipy.stats.spearmanr``. A constant column has no defined correlation: its entries are
    set to 0 (and its diagonal to 1).
    """
    X = np.asarray(X, dtype=np.float64)
    ranks = rankdata(X, axis=0)
    ranks -= ranks.mean(axis=0)
    norm = np.sqrt((ranks**2).sum(axis=0))
    constant = norm == 0
    ranks[:, ~constant] /= norm[~constant]
    corr = ranks.T @ ranks
    np.clip(corr, -1.0, 1.0, out=corr)
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


class CorrelationFilter(SelectorMixin, BaseEstimator):
    r"""Drop features strongly rank-correlated with a feature already kept.

    Features are visited in a fixed order; a feature is kept unless
    :math:`|\rho_S(x_j, x_k)| > \text{threshold}` for some feature :math:`x_k` kept before it,
    where :math:`\rho_S` is Spearman's correlation on the training data. This is the
    redundancy reduction of DeepMTS (Sec. 4.4) and AdaMSS (Appendix A), both with threshold
    0.7. Neither paper says which feature of a correlated pair survives; here that is set by
    ``order``:

    * ``"column"`` (default): the input column order, so the first feature of a correlated
      group is kept. Deterministic and needs no outcome.
    * ``"concordance"``: features with a stronger univariate association with survival
      (larger :math:`|C - 0.5|`, Harrell's C of the feature as a risk score on the training
      data) are visited first; ties keep column order. Needs ``y`` in ``fit``.

    Fit it on the training fold only (inside a ``Pipeline``) so the test fold does not leak
    into the selection.

    Parameters
    ----------
    threshold : float in [0, 1], default=0.7
        Features with absolute Spearman correlation strictly above it are redundant.
    order : {"column", "concordance"}, default="column"
        Which feature of a correlated group is kept (see above).

    Attributes
    ----------
    support_ : ndarray of bool of shape (n_features_in_,)
        Kept features.
    order_ : ndarray of int
        The order in which features were visited.
    redundant_with_ : ndarray of int of shape (n_features_in_,)
        For a dropped feature, the index of the kept feature it is most correlated with;
        -1 for kept features.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` is a DataFrame.

    See Also
    --------
    survseg.radiomics.RadiomicsExtractor
    scipy.stats.spearmanr

    Examples
    --------
    >>> import numpy as np
    >>> from survseg.radiomics import CorrelationFilter
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 50))
    >>> X = np.column_stack([a, a**3, b])          # a**3 has the same ranks as a
    >>> CorrelationFilter(threshold=0.7).fit(X).get_support()
    array([ True, False,  True])
    """

    _parameter_constraints = {
        "threshold": [Interval(numbers.Real, 0, 1, closed="both")],
        "order": [StrOptions({"column", "concordance"})],
    }

    def __init__(self, threshold=0.7, order="column"):
        self.threshold = threshold
        self.order = order

    def fit(self, X, y=None):
        """Choose the features to keep.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite values (impute first).
        y : structured survival array, optional
            Needed for ``order="concordance"``; ignored otherwise.

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        order = np.arange(X.shape[1])
        if self.order == "concordance":
            order = self._concordance_order(X, y)
        corr = np.abs(spearman_matrix(X))
        keep = np.zeros(X.shape[1], dtype=bool)
        redundant_with = np.full(X.shape[1], -1)
        kept = []
        for j in order:
            if kept:
                c = corr[j, kept]
                best = int(np.argmax(c))
                if c[best] > self.threshold:
                    redundant_with[j] = kept[best]
                    continue
            kept.append(j)
            keep[j] = True
        self.support_ = keep
        self.order_ = order
        self.redundant_with_ = redundant_with
        return self

    @staticmethod
    def _concordance_order(X, y):
        from sksurv.metrics import concordance_index_censored

        from ..data.validation import check_survival

        if y is None:
            raise ValueError('order="concordance" needs the survival outcomes y in fit.')
        event, time = check_survival(y, X.shape[0])
        strength = np.array(
            [
                abs(concordance_index_censored(event, time, X[:, j])[0] - 0.5)
                for j in range(X.shape[1])
            ]
        )
        return np.argsort(-strength, kind="stable")

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
