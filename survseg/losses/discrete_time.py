r"""Discrete-time survival likelihood (Gensheimer & Narasimhan, 2019), as used by AdaMSS.

Follow-up is cut into :math:`N` intervals :math:`[b_{j-1}, b_j)`, :math:`j = 1..N`, with
widths :math:`T_j = b_j - b_{j-1}`. A network outputs logits :math:`l_j`;
:math:`p_j = \sigma(l_j)` is the conditional probability of surviving interval :math:`j`
given survival to its start, so the survival function at the interval ends is

.. math::

    S(b_k) = \prod_{j \le k} p_j .

**Targets.** For each patient two 0/1 vectors (:func:`encode_survival`):

* an event at time :math:`t` in interval :math:`k`: :math:`s_j = 1` for :math:`j < k`
  (intervals survived), :math:`f_k = 1` (the interval of failure);
* a censoring at :math:`t`: :math:`s_j = 1` for the intervals whose midpoint
  :math:`t` reached (credit for half an interval or more), :math:`f = 0`.

**Loss** (AdaMSS Eq. 1):

.. math::

    \mathcal{L} = -\sum_{j=1}^N \Big[\log\big(1 + s_j (p_j - 1)\big)
        + \log\big(1 - f_j p_j\big)\Big]
      = -\sum_j \big[s_j \log p_j + f_j \log (1 - p_j)\big],

which is the logistic-hazard likelihood with hazard :math:`h_j = 1 - p_j`. It is computed
from the logits with ``logsigmoid`` (:math:`\log p = \log\sigma(l)`,
:math:`\log(1 - p) = \log\sigma(-l)`), so no :math:`\epsilon` clamp is needed: the
authors' ``max(., 1e-5)`` only changes the value where :math:`p < 10^{-5}`, and there it
also kills the gradient.

**Predicted time** (AdaMSS Eq. 2): :math:`\hat T = \sum_{k=1}^N S(b_k)\, T_k`, a
restricted mean survival time over :math:`[0, b_N]` evaluated with the survival at each
interval's end.

References
----------
Gensheimer MF, Narasimhan B. A scalable discrete-time survival model for neural networks.
PeerJ 7:e6257 (2019).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "time_bin_edges",
    "encode_survival",
    "discrete_time_nll",
    "survival_at_edges",
    "predicted_time",
]


def time_bin_edges(time, n_intervals: int = 10) -> np.ndarray:
    """Interval edges that spread the given times evenly over ``n_intervals`` intervals.

    :math:`b_0 = 0`, :math:`b_j` = the :math:`j/N` quantile of ``time`` (all patients,
    events and censored alike, as in the paper), :math:`b_N = \\max(t)`.

    Parameters
    ----------
    time : array-like of shape (n,)
        Non-negative training times.
    n_intervals : int

    Returns
    -------
    edges : ndarray of shape (n_intervals + 1,), strictly increasing

    Raises
    ------
    ValueError
        When ties make two quantiles coincide (an empty interval).
    """
    time = np.asarray(time, dtype=np.float64).ravel()
    if n_intervals < 1:
        raise ValueError(f"n_intervals must be >= 1; got {n_intervals}.")
    if time.size == 0 or not np.isfinite(time).all() or (time < 0).any():
        raise ValueError("time must be a non-empty array of finite, non-negative values.")
    if time.max() <= 0:
        raise ValueError("all times are zero: cannot build time intervals.")
    edges = np.quantile(time, np.linspace(0.0, 1.0, n_intervals + 1))
    edges[0] = 0.0
    if not np.all(np.diff(edges) > 0):
        raise ValueError(
            f"tied times make some of the {n_intervals} interval edges coincide "
            f"(quantiles {np.round(edges, 6).tolist()}); use fewer intervals (the data have "
            f"{len(np.unique(time[time > 0]))} distinct positive times)."
        )
    return edges


def encode_survival(time, event, edges):
    """Survival targets :math:`(s, f)` of the discrete-time likelihood.

    Parameters
    ----------
    time : array-like of shape (n,)
    event : array-like of bool, shape (n,)
    edges : array-like of shape (N + 1,)
        Strictly increasing interval edges :math:`b_0 < \\dots < b_N`.

    Returns
    -------
    s : ndarray of float32, shape (n, N)
        1 for each interval the patient is known to have survived.
    f : ndarray of float32, shape (n, N)
        1 at the interval of the event (uncensored patients only).

    Notes
    -----
    Intervals are half-open, :math:`[b_{j-1}, b_j)`, except that an event at exactly
    :math:`b_N` (the largest training time) falls in the last interval. An event after
    :math:`b_N` (possible for test patients) counts as surviving every interval; a
    censoring counts an interval as survived when :math:`t \\ge` its midpoint.
    """
    time = np.asarray(time, dtype=np.float64).ravel()
    event = np.asarray(event, dtype=bool).ravel()
    edges = np.asarray(edges, dtype=np.float64).ravel()
    if time.shape != event.shape:
        raise ValueError(f"time ({time.size}) and event ({event.size}) differ in length.")
    if edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be strictly increasing with at least two values.")
    n_int = edges.size - 1
    upper, mid = edges[1:], 0.5 * (edges[:-1] + edges[1:])
    # interval index of each time: the first j with t < b_j (the last one for t == b_N)
    k = np.searchsorted(upper, time, side="right")
    k = np.where(time == edges[-1], n_int - 1, k)
    s_event = np.arange(n_int)[None, :] < k[:, None]
    s_cens = time[:, None] >= mid[None, :]
    s = np.where(event[:, None], s_event, s_cens)
    f = np.zeros((time.size, n_int), dtype=bool)
    inside = event & (k < n_int)
    f[np.flatnonzero(inside), k[inside]] = True
    return s.astype(np.float32), f.astype(np.float32)


def discrete_time_nll(
    logits: torch.Tensor, s: torch.Tensor, f: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    r"""Negative log-likelihood of AdaMSS Eq. 1 (see the module docstring).

    Parameters
    ----------
    logits : Tensor (n, N)
        :math:`l_j`, with :math:`p_j = \sigma(l_j)` the conditional survival probabilities.
    s, f : Tensor (n, N)
        Targets from :func:`encode_survival`.
    reduction : {"mean", "sum", "none"}
        Per patient the loss is the sum over intervals; ``"mean"`` averages over patients,
        ``"none"`` returns the (n,) per-patient values.

    Returns
    -------
    Tensor
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
    if logits.ndim != 2 or s.shape != logits.shape or f.shape != logits.shape:
        raise ValueError(
            f"logits, s and f must share one (n, N) shape; got {tuple(logits.shape)}, "
            f"{tuple(s.shape)}, {tuple(f.shape)}."
        )
    s, f = s.to(logits.dtype), f.to(logits.dtype)
    per_patient = -(s * F.logsigmoid(logits) + f * F.logsigmoid(-logits)).sum(dim=1)
    if reduction == "none":
        return per_patient
    return per_patient.sum() if reduction == "sum" else per_patient.mean()


def survival_at_edges(p) -> np.ndarray:
    r"""Survival :math:`S(b_k) = \prod_{j \le k} p_j` at the interval ends, shape (n, N)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"p must be (n, N); got shape {p.shape}.")
    return np.cumprod(p, axis=1)


def predicted_time(p, edges) -> np.ndarray:
    r"""AdaMSS Eq. 2: :math:`\hat T = \sum_k S(b_k)\,(b_k - b_{k-1})`, shape (n,)."""
    edges = np.asarray(edges, dtype=np.float64).ravel()
    surv = survival_at_edges(p)
    if surv.shape[1] != edges.size - 1:
        raise ValueError(f"p has {surv.shape[1]} intervals but edges define {edges.size - 1}.")
    return surv @ np.diff(edges)
