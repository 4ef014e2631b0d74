r"""Survival heads for small cohorts: segmentation-derived features, fixed scaling, risk memory bank.

A prototype (issue 14 item 4) of the pieces that let a deep survival head learn from 50-400
patients; see ``benchmarks/heads/RESULTS.md`` for the measurements behind each piece.

- :class:`SegmentationFeatures` turns predicted probability maps into the quantities a
  clinician would read off them: per region (tumour, nodes, ...) the soft volume
  :math:`V_r = v \sum_x p_r(x)` (ml), the soft total uptake :math:`U_r = v \sum_x p_r(x)\,
  \mathrm{SUV}(x)` (SUV ml, "total lesion glycolysis") and the probability-weighted mean SUV
  :math:`U_r / V_r`, with :math:`v` the voxel volume in ml. Volumes and uptakes enter as
  :math:`\log(1 + \cdot)`. Unlike global average pooling of encoder features, these do not
  shrink with the field of view around a small lesion.
- :class:`FeatureStandardizer` is a fixed affine map :math:`(x - \mu) / \sigma` whose
  statistics are set once from the training patients, so that every head input has unit
  scale whatever the backbone's pooled activations are (no batch statistics at batch 8).
- :class:`RiskHead` is ``[dropout] -> Linear`` (or a one-hidden-layer MLP) from
  ``[features, clinical]`` to one log-risk.
- :class:`RiskMemoryBank` keeps the last detached log-risk of every training patient, so a
  batch of 2-8 patients is scored against the risk set of the *whole* training set:

  .. math::

      \ell_B(\eta) = -\frac{1}{|E_B|}\sum_{i \in E_B}\Big[\eta_i - \log\Big(
          \sum_{j \in B,\,T_j \ge T_i} e^{\eta_j}
          + \sum_{j \notin B,\,T_j \ge T_i} e^{\tilde\eta_j}\Big)\Big],

  with :math:`E_B` the batch's events and :math:`\tilde\eta_j` the bank's (detached) values.
  With an up-to-date bank its gradient with respect to the batch's risks is that of the
  full-cohort partial likelihood restricted to the batch's events, instead of the partial
  likelihood of a 2-8-patient "cohort". Tied times use Efron's or Breslow's approximation as
  in :func:`survseg.losses.cox.cox_partial_likelihood_loss`, which this reuses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..losses.cox import cox_partial_likelihood_loss

__all__ = [
    "SEGMENTATION_STATISTICS",
    "PET_STATISTICS",
    "check_statistics",
    "SegmentationFeatures",
    "FeatureStandardizer",
    "RiskHead",
    "RiskMemoryBank",
]

#: The default per-region statistics: log soft volume, log soft total uptake, mean SUV.
SEGMENTATION_STATISTICS = ("log_volume", "log_uptake", "mean_suv")
#: The standard quantitative PET set (MTV, TLG, SUVmean, SUVmax, and the SUV coefficient of
#: variation as a first-order heterogeneity measure), every statistic
#: :class:`SegmentationFeatures` knows.
PET_STATISTICS = ("log_volume", "log_uptake", "mean_suv", "log_max_suv", "suv_cv")


def check_statistics(statistics, name: str = "statistics") -> tuple:
    """``statistics`` as a tuple of distinct :data:`PET_STATISTICS` names, or a ValueError."""
    values = (statistics,) if isinstance(statistics, str) else tuple(statistics)
    unknown = [s for s in values if s not in PET_STATISTICS]
    if unknown or not values or len(set(values)) < len(values):
        raise ValueError(
            f"{name} must be distinct names from {list(PET_STATISTICS)}; got {statistics!r}."
        )
    return values


class SegmentationFeatures(nn.Module):
    r"""PET statistics of each predicted region: soft volume, uptake, mean, peak, spread.

    Parameters
    ----------
    voxel_ml : float, default=1.0
        Volume of one voxel in ml (``spacing_x * spacing_y * spacing_z / 1000`` for mm);
        ``forward``'s ``voxel_ml`` (one per patient) overrides it.
    detach : bool, default=True
        Stop the survival loss's gradient at the probability maps, so that the survival head
        cannot change the segmentation (e.g. inflate a region to raise a risk); the maps are
        then learned from the segmentation loss only.
    statistics : sequence of str, default=SEGMENTATION_STATISTICS
        Which statistics, in this order, for every region; any of :data:`PET_STATISTICS`.

    Notes
    -----
    ``forward(prob, suv, voxel_ml=None)`` with ``prob`` (N, R, D, H, W) in [0, 1], ``suv``
    (N, 1, D, H, W) and optionally ``voxel_ml`` (N,) returns (N, S R), the S statistics of
    region 1, then of region 2, ... With :math:`p = p_r(x)`, :math:`s = \mathrm{SUV}(x)` and
    :math:`v` the voxel volume (ml):

    - ``log_volume``: :math:`\log(1 + V_r)`, :math:`V_r = v \sum_x p` (the metabolic tumour
      volume, MTV, of a soft mask);
    - ``log_uptake``: :math:`\log(1 + U_r)`, :math:`U_r = v \sum_x p\, s` (total lesion
      glycolysis, TLG);
    - ``mean_suv``: :math:`U_r / \max(V_r, v)` (SUVmean);
    - ``log_max_suv``: :math:`\log(1 + \max_x p\, s)` (SUVmax of the voxels the region
      surely holds: a hot voxel of probability 0.1 counts a tenth);
    - ``suv_cv``: :math:`\min(\sum_x p, 1)\, \sigma_r / \max(\mu_r, 10^{-3})` with
      :math:`\mu_r, \sigma_r^2` the :math:`p`-weighted mean and variance of :math:`s` (the
      coefficient of variation, a first-order heterogeneity measure; the first factor takes
      it to 0 for a region of less than one voxel's probability).

    A region with no probability anywhere gives 0 for every statistic.
    """

    def __init__(
        self, voxel_ml: float = 1.0, detach: bool = True, statistics=SEGMENTATION_STATISTICS
    ):
        super().__init__()
        if not voxel_ml > 0:
            raise ValueError(f"voxel_ml must be > 0; got {voxel_ml}.")
        self.voxel_ml = float(voxel_ml)
        self.detach = bool(detach)
        self.statistics = check_statistics(statistics)

    def forward(self, prob: torch.Tensor, suv: torch.Tensor, voxel_ml=None) -> torch.Tensor:
        if prob.ndim != 5 or suv.ndim != 5 or suv.shape[1] != 1:
            raise ValueError(
                f"prob must be (N, R, D, H, W) and suv (N, 1, D, H, W); got "
                f"{tuple(prob.shape)} and {tuple(suv.shape)}."
            )
        if prob.shape[0] != suv.shape[0] or prob.shape[2:] != suv.shape[2:]:
            raise ValueError(
                f"prob {tuple(prob.shape)} and suv {tuple(suv.shape)} differ in batch or size."
            )
        if self.detach:
            prob = prob.detach()
        v = self.voxel_ml
        if voxel_ml is not None:
            v = torch.as_tensor(voxel_ml, dtype=prob.dtype, device=prob.device).reshape(-1, 1)
            if v.shape[0] != prob.shape[0] or not (v > 0).all():
                raise ValueError(f"voxel_ml must be {prob.shape[0]} positive volumes.")
        dims = (2, 3, 4)
        weight = prob.sum(dim=dims)  # (N, R), in voxels
        weighted = prob * suv
        weighted_sum = weighted.sum(dim=dims)
        volume, uptake = weight * v, weighted_sum * v
        out = {
            "log_volume": lambda: torch.log1p(volume),
            "log_uptake": lambda: torch.log1p(uptake),
            "mean_suv": lambda: uptake / torch.maximum(volume, v * torch.ones_like(volume)),
            "log_max_suv": lambda: torch.log1p(weighted.amax(dim=dims)),
            "suv_cv": lambda: self._cv(prob, suv, weight, weighted_sum),
        }
        return torch.stack([out[s]() for s in self.statistics], dim=2).flatten(1)

    @staticmethod
    def _cv(prob, suv, weight, weighted_sum):
        norm = torch.clamp(weight, min=1e-6)
        mean = weighted_sum / norm
        centred = suv - mean[:, :, None, None, None]
        var = (prob * centred**2).sum(dim=(2, 3, 4)) / norm
        cv = torch.sqrt(var + 1e-12) / torch.clamp(mean, min=1e-3)
        # fades to 0 below one voxel's worth of probability: no region, no spread
        return cv * torch.clamp(weight, max=1.0)


class FeatureStandardizer(nn.Module):
    r""":math:`(x - \mu) / \sigma` with :math:`\mu, \sigma` fixed from training patients.

    Parameters
    ----------
    n_features : int
    momentum : float in (0, 1] or None, default=None
        ``None``: fixed statistics, set by :meth:`set_statistics`. A number: running
        statistics for features that change while they are used (a network trained end to
        end): in training mode each batch updates
        :math:`\mu \leftarrow (1 - m)\mu + m\,\bar x_B` and
        :math:`\sigma^2 \leftarrow (1 - m)\sigma^2 + m\,s_B^2` (the first batch sets them)
        *before* normalising, and the batch is normalised with these running values, never
        with its own statistics alone (unlike BatchNorm), so train and eval apply one map.

    Notes
    -----
    Call :meth:`set_statistics` with the (N, F) features of the training patients before
    training the head; until then it is the identity. Constant features get
    :math:`\sigma = 1`. The statistics are buffers: saved with the module, not trained.
    """

    def __init__(self, n_features: int, momentum: float | None = None):
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1; got {n_features}.")
        if momentum is not None and not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1] or None; got {momentum}.")
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        if momentum is not None:  # batches seen, saved with the module
            self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _update(self, x: torch.Tensor) -> None:
        x = x.detach().to(self.mean.dtype)
        mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        if self.n_updates == 0:
            self.mean.copy_(mean)
            self.scale.copy_(torch.sqrt(var + 1e-6))
        else:
            m = self.momentum
            self.mean.mul_(1 - m).add_(m * mean)
            self.scale.copy_(torch.sqrt((1 - m) * self.scale**2 + m * var + 1e-6))
        self.n_updates += 1

    @torch.no_grad()
    def set_statistics(self, x: torch.Tensor) -> FeatureStandardizer:
        x = torch.as_tensor(x, dtype=self.mean.dtype, device=self.mean.device)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0] or x.shape[0] < 2:
            raise ValueError(f"need (N >= 2, {self.mean.shape[0]}) features; got {tuple(x.shape)}.")
        if not torch.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values.")
        sd = x.std(dim=0)
        self.mean.copy_(x.mean(dim=0))
        self.scale.copy_(torch.where(sd > 1e-8, sd, torch.ones_like(sd)))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.momentum is not None and self.training and x.shape[0] > 1:
            self._update(x)
        return (x - self.mean.to(x.dtype)) / self.scale.to(x.dtype)


class RiskHead(nn.Module):
    """``[features, clinical] -> [dropout] -> Linear (-> ReLU -> dropout -> Linear)`` = log-risk.

    Parameters
    ----------
    in_features : int
        Image-derived features (after scaling).
    n_clinical : int, default=0
        Clinical covariates concatenated to them (already scaled).
    hidden : int, default=0
        Width of one hidden layer; 0 = a linear Cox head (the small-data default).
    dropout : float in [0, 1), default=0.0
        Dropout before each linear layer (DeepMTS uses 0.5).
    """

    def __init__(self, in_features: int, n_clinical: int = 0, hidden: int = 0, dropout=0.0):
        super().__init__()
        if in_features + n_clinical < 1:
            raise ValueError("the head needs at least one input.")
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0; got {hidden}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.n_clinical = int(n_clinical)
        n_in = in_features + n_clinical
        if hidden:
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(n_in, hidden), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(hidden, 1),
            )  # fmt: skip
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, 1))
        nn.init.zeros_(self.net[-1].weight)  # start at equal risks: no random initial ranking
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor, clinical: torch.Tensor | None = None):
        if self.n_clinical:
            if clinical is None or clinical.shape != (features.shape[0], self.n_clinical):
                got = None if clinical is None else tuple(clinical.shape)
                raise ValueError(
                    f"clinical must have shape ({features.shape[0]}, {self.n_clinical}); got {got}."
                )
            features = torch.cat([features, clinical.to(features.dtype)], dim=1)
        return self.net(features).squeeze(1)


class RiskMemoryBank:
    """Detached log-risks of every training patient, for whole-cohort Cox risk sets.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        Times and event indicators of all training patients (positions 0..n-1).
    ties : {"efron", "breslow"}, default="efron"
    initial : float, default=0.0
        Starting log-risk of patients not seen yet (0 matches a head initialised at zero).

    Examples
    --------
    >>> bank = RiskMemoryBank(time, event)
    >>> eta = model(x[idx])
    >>> loss = bank.loss(eta, idx)        # batch scored against the whole training set
    >>> loss.backward(); bank.update(idx, eta)
    """

    def __init__(self, time, event, *, ties: str = "efron", initial: float = 0.0):
        self.time = torch.as_tensor(np.ascontiguousarray(time, dtype=np.float64))
        self.event = torch.as_tensor(np.ascontiguousarray(event, dtype=bool))
        if self.time.ndim != 1 or self.time.shape != self.event.shape or len(self.time) < 2:
            raise ValueError("time and event must be 1-D, of one length >= 2.")
        self.ties = ties
        self.log_risk = torch.full((len(self.time),), float(initial), dtype=torch.float64)

    def _index(self, index) -> torch.Tensor:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
        if len(index) != len(torch.unique(index)):
            raise ValueError("a batch must not hold a patient twice.")
        if len(index) and (index.min() < 0 or index.max() >= len(self.time)):
            raise ValueError(f"patient index outside 0..{len(self.time) - 1}.")
        return index

    def loss(self, log_risk: torch.Tensor, index) -> torch.Tensor:
        """Cox loss of the batch's events against the whole training set's risk sets."""
        index = self._index(index)
        eta = log_risk.reshape(-1)
        if eta.shape[0] != len(index):
            raise ValueError(f"{eta.shape[0]} log-risks for {len(index)} patients.")
        others = torch.ones(len(self.time), dtype=torch.bool)
        others[index] = False
        bank = self.log_risk[others].to(eta.dtype).to(eta.device)
        all_eta = torch.cat([eta, bank])
        event = torch.cat([self.event[index], torch.zeros(int(others.sum()), dtype=torch.bool)])
        time = torch.cat([self.time[index], self.time[others]]).to(eta.device)
        return cox_partial_likelihood_loss(all_eta, event, time, ties=self.ties)

    @torch.no_grad()
    def update(self, index, log_risk: torch.Tensor) -> None:
        """Store the batch's current log-risks."""
        self.log_risk[self._index(index)] = log_risk.detach().reshape(-1).double().cpu()
