r"""Additive attention gate on a U-Net skip connection (Schlemper et al., 2019), as in AdaMSS."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    r"""Scale skip features :math:`x` by a voxel-wise attention map computed with gating :math:`g`.

    :math:`x` has :math:`c` channels at resolution :math:`r`; :math:`g` (the coarser decoder
    features) has :math:`c_g` channels at :math:`r/2`:

    .. math::

        g' = \mathrm{BN}(W_g * g), \quad
        x' = \mathrm{AvgPool}_2(\mathrm{BN}(W_x * x)), \quad
        \alpha = \mathrm{up}_2\big(\sigma(\mathrm{BN}(w_\psi * \mathrm{ReLU}(x' + g')))\big),
        \quad \hat x = \alpha \odot x,

    with 1x1x1 convolutions :math:`W_g: c_g \to c_i`, :math:`W_x: c \to c_i`,
    :math:`w_\psi: c_i \to 1` and trilinear upsampling back to :math:`x`'s size. One map
    :math:`\alpha \in (0, 1)` is shared by all channels of :math:`x`.

    Parameters
    ----------
    channels : int
        Channels :math:`c` of the skip features.
    gating_channels : int
        Channels :math:`c_g` of the gating features.
    inter_channels : int, optional
        :math:`c_i`; defaults to ``channels`` (the authors' choice).
    """

    def __init__(self, channels: int, gating_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = channels if inter_channels is None else inter_channels
        if min(channels, gating_channels, inter) < 1:
            raise ValueError(
                f"channel counts must be >= 1; got {channels}, {gating_channels}, {inter}."
            )
        # no conv biases: each conv feeds a BatchNorm, which removes a constant shift (its
        # gradient would be zero up to rounding)
        self.gate = nn.Sequential(
            nn.Conv3d(gating_channels, inter, 1, bias=False), nn.BatchNorm3d(inter)
        )
        self.skip = nn.Sequential(nn.Conv3d(channels, inter, 1, bias=False), nn.BatchNorm3d(inter))
        self.psi = nn.Sequential(nn.Conv3d(inter, 1, 1, bias=False), nn.BatchNorm3d(1))
        self.pool = nn.AvgPool3d(2)

    def forward(self, x: torch.Tensor, g: torch.Tensor):
        """Return ``(alpha * x, alpha)``; ``alpha`` has shape (N, 1, *x.shape[2:])."""
        x_low = self.pool(self.skip(x))
        if x_low.shape[2:] != g.shape[2:]:
            raise ValueError(
                f"gating features of size {tuple(g.shape[2:])} do not match half the skip size "
                f"{tuple(x.shape[2:])}."
            )
        alpha = torch.sigmoid(self.psi(F.relu(x_low + self.gate(g))))
        alpha = F.interpolate(alpha, size=x.shape[2:], mode="trilinear", align_corners=False)
        return x * alpha, alpha
