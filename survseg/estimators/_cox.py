"""Survival functions for Cox-type models through a Breslow baseline hazard."""

from __future__ import annotations

import numpy as np

__all__ = ["CoxSurvivalMixin"]


class CoxSurvivalMixin:
    r"""Adds ``predict_survival_function`` / ``predict_cumulative_hazard_function``.

    With the training log-risks :math:`\eta_i`, Breslow's estimator of the baseline cumulative
    hazard is :math:`\hat H_0(t) = \sum_{t_i \le t} d_i / \sum_{j \in R(t_i)} e^{\eta_j}`, and
    a new patient's survival is :math:`S(t \mid x) = \exp(-\hat H_0(t)\, e^{\eta(x)})`
    (``sksurv.linear_model.coxph.BreslowEstimator``).

    The host estimator adds :meth:`_baseline` of its training risks to its fitted state at the
    end of ``fit`` and implements ``predict`` returning :math:`\eta`.
    """

    @staticmethod
    def _baseline(risk, event, time) -> dict:
        """Fitted state ``baseline_model_`` and ``unique_times_`` of the training risks."""
        from sksurv.linear_model.coxph import BreslowEstimator

        model = BreslowEstimator().fit(np.asarray(risk, float), event, time)
        return {"baseline_model_": model, "unique_times_": model.unique_times_}

    def predict_cumulative_hazard_function(self, X, return_array: bool = False):
        """Cumulative hazard per patient: sksurv ``StepFunction``\\ s, or an array over
        ``unique_times_`` when ``return_array`` is true."""
        fns = self.baseline_model_.get_cumulative_hazard_function(self.predict(X))
        return np.vstack([fn(self.unique_times_) for fn in fns]) if return_array else fns

    def predict_survival_function(self, X, return_array: bool = False):
        """Survival function per patient: sksurv ``StepFunction``\\ s, or an array over
        ``unique_times_`` when ``return_array`` is true."""
        fns = self.baseline_model_.get_survival_function(self.predict(X))
        return np.vstack([fn(self.unique_times_) for fn in fns]) if return_array else fns
