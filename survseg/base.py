"""The survival-estimator mixin: ``score`` is Harrell's concordance index, as in scikit-survival."""

from __future__ import annotations

__all__ = ["SurvivalMixin"]


class SurvivalMixin:
    """Mixin for survival estimators whose ``predict`` returns a risk score.

    A higher risk means an earlier event. Place it left of ``BaseEstimator``.
    """

    _estimator_type = "survival"

    def score(self, X, y, sample_weight=None):
        """Harrell's concordance index of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : cohort or array-like
            What ``predict`` accepts.
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv``).
        sample_weight : None
            Accepted for scikit-learn metadata routing; must be ``None``.

        Returns
        -------
        cindex : float
        """
        if sample_weight is not None:
            raise ValueError("sample weights are not supported by the concordance index.")
        from .evaluation.metrics import concordance_index

        return concordance_index(y, self.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
