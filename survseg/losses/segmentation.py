r"""Segmentation losses: soft Dice and sigmoid focal loss (thin wrappers around MONAI).

Both take raw logits (or probabilities for Dice) of shape ``(N, C, *spatial)``, one binary
label channel per output channel, and compute in float32 so they are safe under mixed
precision (float64 inputs stay float64).
"""

from __future__ import annotations

from functools import lru_cache

import torch

__all__ = ["dice_loss", "focal_loss", "region_dice_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check(input: torch.Tensor, target: torch.Tensor, reduction: str):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}.")
    if input.ndim < 3:
        raise ValueError(
            f"input must be (N, C, *spatial) with at least one spatial axis; got shape {tuple(input.shape)}."
        )
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"target shape {tuple(target.shape)} differs from input shape {tuple(input.shape)}; "
            "give one label channel per output channel."
        )
    dtype = torch.promote_types(input.dtype, torch.float32)  # half inputs -> float32
    return input.to(dtype), target.to(device=input.device, dtype=dtype)


@lru_cache(maxsize=16)
def _monai_dice(squared: bool, batch: bool, smooth_nr: float, smooth_dr: float):
    from monai.losses import DiceLoss

    return DiceLoss(
        sigmoid=False,
        squared_pred=squared,
        batch=batch,
        reduction="none",
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
    )


def dice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    logits: bool = True,
    squared: bool = False,
    batch: bool = False,
    reduction: str = "mean",
    smooth_nr: float = 0.0,
    smooth_dr: float = 1e-5,
) -> torch.Tensor:
    r"""Soft Dice loss per sample and channel (``monai.losses.DiceLoss``).

    With :math:`p_i` the predicted probability and :math:`g_i \in \{0, 1\}` the label of
    voxel :math:`i`,

    .. math::

        L = 1 - \frac{2 \sum_i p_i g_i + s_{nr}}{\sum_i p_i^{k} + \sum_i g_i^{k} + s_{dr}},
        \qquad k = 2 \text{ if squared else } 1 .

    With ``squared=True`` and no smoothing this is DeepMTS's Eq. 2,
    :math:`L_{seg} = -2\sum p_i g_i / (\sum p_i^2 + \sum g_i^2)`, shifted by the constant 1
    (same gradient; 0 at a perfect prediction). ``squared=False`` is the usual soft Dice
    (AdaMSS).

    Parameters
    ----------
    input : Tensor (N, C, *spatial)
        Logits (``logits=True``, passed through a sigmoid) or probabilities in [0, 1].
    target : Tensor (N, C, *spatial)
        Binary labels (any dtype).
    logits : bool, default=True
    squared : bool, default=False
        Square the terms of the denominator (Milletari's V-Net Dice, DeepMTS Eq. 2).
    batch : bool, default=False
        Sum over the whole batch before dividing (one Dice per channel) instead of one Dice
        per sample and channel.
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"none"`` returns the ``(N, C)`` losses (``(1, C)`` with ``batch=True``).
    smooth_nr, smooth_dr : float
        Added to the numerator and the denominator. The defaults (0, 1e-5) avoid 0/0 only.

    Returns
    -------
    Tensor

    Notes
    -----
    An empty label with an (almost) empty prediction gives a loss of 1 whose gradient is
    zero: that sample neither helps nor hurts. Set ``smooth_nr = smooth_dr`` to score it 0
    instead, or ``batch=True`` to pool it with the rest of the batch.
    """
    input, target = _check(input, target, reduction)
    if smooth_nr < 0 or smooth_dr <= 0:
        raise ValueError(f"need smooth_nr >= 0 and smooth_dr > 0; got {smooth_nr}, {smooth_dr}.")
    prob = torch.sigmoid(input) if logits else input
    loss = _monai_dice(bool(squared), bool(batch), float(smooth_nr), float(smooth_dr))(prob, target)
    loss = loss.reshape(loss.shape[0], loss.shape[1])
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def region_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    squared: bool = False,
    node_smoothing: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Soft Dice loss summed over the segmented regions (channel 0 the tumour, then the nodes).

    The patient's loss is :math:`\sum_r L_r`. The tumour channel is :func:`dice_loss`
    unchanged (smoothing 0 / 1e-5; with ``squared=True`` DeepMTS's Eq. 2). Every further
    channel (the lymph nodes) adds ``node_smoothing`` :math:`s` to numerator and denominator,

    .. math:: L_r = 1 - \frac{2 \sum_i p_i g_i + s}{\sum_i p_i^{k} + \sum_i g_i^{k} + s},

    which matters for the many patients without nodes. With :math:`s = 0` (the authors'
    AdaMSS code: MONAI's ``DiceLoss`` on both channels) an empty label gives the constant 1
    with no gradient, so false-positive nodes are penalised by another term only (AdaMSS's
    focal loss). With :math:`s = 1` a node-free patient scores :math:`1 - 1 / (\sum_i p_i^k
    + 1)`, 0 for an empty prediction, which pushes every voxel of that patient down; with
    small nodes this push can outweigh the patients that have nodes (measured on a tiny
    AdaMSS: the node probability at node voxels fell from 0.004 to 0.0006 in 60 iterations
    with :math:`s = 1` and rose to 0.999 with :math:`s = 0` plus the focal loss).

    Parameters
    ----------
    logits, target : Tensor (N, R, *spatial)
    squared : bool, default=False
    node_smoothing : float >= 0, default=1.0
        :math:`s`; 0 uses :func:`dice_loss`'s (0, 1e-5) on the node channels too.
    reduction : {"mean", "none"}, default="mean"
        Mean over the patients, or the ``(N,)`` per-patient sums.

    Returns
    -------
    Tensor
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}.")
    if not node_smoothing >= 0:
        raise ValueError(f"node_smoothing must be >= 0; got {node_smoothing}.")
    per = dice_loss(logits[:, :1], target[:, :1], squared=squared, reduction="none")
    if logits.shape[1] > 1:
        smooth = (
            dict(smooth_nr=float(node_smoothing), smooth_dr=float(node_smoothing))
            if node_smoothing > 0
            else {}
        )
        rest = dice_loss(logits[:, 1:], target[:, 1:], squared=squared, reduction="none", **smooth)
        per = torch.cat([per, rest], dim=1)
    per = per.sum(dim=1)
    return per.mean() if reduction == "mean" else per


@lru_cache(maxsize=16)
def _monai_focal(alpha: float | None, gamma: float):
    from monai.losses import FocalLoss

    return FocalLoss(alpha=alpha, gamma=gamma, use_softmax=False, reduction="none")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Sigmoid focal loss (Lin et al. 2017; ``monai.losses.FocalLoss``).

    .. math::

        \mathrm{FL}_i = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad
        p_t = \begin{cases} p_i & g_i = 1 \\ 1 - p_i & g_i = 0 \end{cases}, \quad
        \alpha_t = \begin{cases} \alpha & g_i = 1 \\ 1 - \alpha & g_i = 0 \end{cases}

    with :math:`p_i = \sigma(x_i)`; ``alpha=None`` drops :math:`\alpha_t`.

    Parameters
    ----------
    logits : Tensor (N, C, *spatial)
    target : Tensor (N, C, *spatial)
        Binary labels.
    alpha : float in [0, 1] or None, default=0.25
    gamma : float >= 0, default=2.0
    reduction : {"mean", "sum", "none"}, default="mean"
        Mean or sum over every voxel; ``"none"`` returns the ``(N, C)`` voxel means.

    Returns
    -------
    Tensor
    """
    logits, target = _check(logits, target, reduction)
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None; got {alpha}.")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0; got {gamma}.")
    loss = _monai_focal(None if alpha is None else float(alpha), float(gamma))(logits, target)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss.flatten(2).mean(dim=2)
