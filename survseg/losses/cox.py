r"""Cox negative partial log-likelihood, with Breslow or Efron handling of tied event times.

Written once here and used by DeepSurv, DeepMTS and the Cox tests. For distinct event times
:math:`t_1 < \dots < t_K`, with :math:`D_k` the :math:`d_k` patients who have their event at
:math:`t_k` and :math:`R_k = \{j : T_j \ge t_k\}` the risk set,

.. math::

    \ell_{\text{Breslow}}(\eta) = \sum_k \Big[\sum_{i \in D_k} \eta_i
        - d_k \log \sum_{j \in R_k} e^{\eta_j}\Big],

    \ell_{\text{Efron}}(\eta) = \sum_k \Big[\sum_{i \in D_k} \eta_i
        - \sum_{l=0}^{d_k - 1} \log\Big(\sum_{j \in R_k} e^{\eta_j}
        - \tfrac{l}{d_k} \sum_{i \in D_k} e^{\eta_i}\Big)\Big].

The loss is :math:`-\ell`, summed or averaged over the events. Everything is computed in log
space (``logcumsumexp``), so large log-risks do not overflow.
"""

from __future__ import annotations

import torch

__all__ = ["cox_partial_likelihood_loss"]


def cox_partial_likelihood_loss(
    log_risk: torch.Tensor,
    event: torch.Tensor,
    time: torch.Tensor,
    *,
    ties: str = "efron",
    reduction: str = "mean",
) -> torch.Tensor:
    """Negative Cox partial log-likelihood of the predicted log-risks.

    Parameters
    ----------
    log_risk : Tensor of shape (n,) or (n, 1)
        Network output :math:`\\eta` (log hazard ratio; higher = earlier event).
    event : Tensor of shape (n,)
        Event indicator (bool or 0/1).
    time : Tensor of shape (n,)
        Event or censoring times.
    ties : {"efron", "breslow"}
        Approximation for tied event times (scikit-survival's ``CoxPHSurvivalAnalysis``
        default is Breslow; Efron is more accurate with many ties).
    reduction : {"mean", "sum"}
        ``"mean"`` divides the summed loss by the number of events :math:`\\sum_i \\delta_i`,
        with either tie method, so that it is the average per event and does not depend on
        how the events are grouped into times. torchsurv's ``neg_partial_log_likelihood``
        averages one term per *distinct event time* with Efron ties (one per event with
        Breslow or without ties): the two agree unless events share a time, where
        torchsurv's Efron mean is the sum divided by the number of distinct event times.

    Returns
    -------
    loss : scalar Tensor
        For a batch with no event the partial likelihood is empty: the loss is an exact zero
        that is still connected to the graph (zero gradients), never NaN.
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow'; got {ties!r}.")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}.")
    eta = log_risk.reshape(-1)
    if eta.shape[0] != event.reshape(-1).shape[0] or eta.shape[0] != time.reshape(-1).shape[0]:
        raise ValueError(
            f"log_risk ({eta.shape[0]}), event ({event.numel()}) and time ({time.numel()}) "
            "must have the same length."
        )
    event = event.reshape(-1).to(device=eta.device, dtype=torch.bool)
    time = time.reshape(-1).to(device=eta.device)
    n_events = event.sum()
    if n_events == 0:
        return eta.sum() * 0.0

    # Sort by decreasing time: the risk set of position i is then positions 0..(end of i's tie group).
    order = torch.argsort(time, descending=True, stable=True)
    eta, event, time = eta[order], event[order], time[order]
    _, group, counts = torch.unique_consecutive(time, return_inverse=True, return_counts=True)
    group_end = torch.cumsum(counts, 0) - 1
    log_risk_set = torch.logcumsumexp(eta, 0)[group_end][group]  # log sum_{R_k} e^eta, per patient

    if ties == "breslow":
        log_lik = (eta - log_risk_set)[event].sum()
    else:
        n_groups = counts.shape[0]
        ev_eta = torch.where(event, eta, torch.full_like(eta, -torch.inf))
        # log sum_{D_k} e^eta per tie group (stable: shift by the group's max)
        gmax = torch.full((n_groups,), -torch.inf, dtype=eta.dtype, device=eta.device)
        gmax = gmax.scatter_reduce(0, group, ev_eta, reduce="amax")
        shift = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax)).detach()
        gsum = torch.zeros(n_groups, dtype=eta.dtype, device=eta.device)
        gsum = gsum.index_add(0, group, torch.exp(ev_eta - shift[group]))
        log_tied = torch.log(gsum.clamp_min(torch.finfo(eta.dtype).tiny)) + shift
        # rank l = 0..d_k-1 of each event inside its tie group
        d_k = torch.zeros(n_groups, dtype=eta.dtype, device=eta.device).index_add(
            0, group, event.to(eta.dtype)
        )
        cum = torch.cumsum(event.to(eta.dtype), 0)
        before_group = torch.cat([cum.new_zeros(1), cum])[group_end - counts + 1]
        rank = cum - before_group[group] - 1
        frac = rank / d_k[group].clamp_min(1)
        ratio = torch.exp(log_tied[group] - log_risk_set)  # <= 1
        log_denom = log_risk_set + torch.log1p(-(frac * ratio).clamp_max(1 - 1e-12))
        log_lik = (eta - log_denom)[event].sum()

    loss = -log_lik
    return loss / n_events.to(loss.dtype) if reduction == "mean" else loss
