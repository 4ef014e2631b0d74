r"""Building blocks shared by the DeepMTS and AdaMSS networks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "ResidualBlock", "PlainBlock"]


class ConvBNReLU(nn.Sequential):
    """``Conv3d(kernel, padding='same', bias) -> BatchNorm3d -> ReLU``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    r"""Residual block of ``n_convs`` 3x3x3 convolutions (the papers' "n x m" block).

    .. math::

        r = \mathrm{conv}_{1}(x), \quad y_1 = \mathrm{conv}_{3}(x) + r, \quad
        y_{k+1} = \mathrm{conv}_{3}(y_k) + y_k \;(k = 1..n-1)

    where :math:`\mathrm{conv}_k` is conv-BN-ReLU: the first convolution has a 1x1x1
    projection shortcut, the rest identity shortcuts, and each add follows the ReLU.

    Parameters
    ----------
    in_channels, out_channels : int
    n_convs : int
        Number of 3x3x3 convolutions (>= 1).
    """

    def __init__(self, in_channels: int, out_channels: int, n_convs: int = 2):
        super().__init__()
        if n_convs < 1:
            raise ValueError(f"n_convs must be >= 1; got {n_convs}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be >= 1; got {in_channels}, {out_channels}.")
        self.shortcut = ConvBNReLU(in_channels, out_channels, kernel_size=1)
        self.convs = nn.ModuleList(
            [
                ConvBNReLU(in_channels if i == 0 else out_channels, out_channels)
                for i in range(n_convs)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convs[0](x) + self.shortcut(x)
        for conv in self.convs[1:]:
            y = conv(y) + y
        return y


class PlainBlock(nn.Sequential):
    """``n_convs`` conv-BN-ReLU layers without shortcuts (the plain 3D U-Net ablation)."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int = 2):
        if n_convs < 1:
            raise ValueError(f"n_convs must be >= 1; got {n_convs}.")
        super().__init__(
            *[
                ConvBNReLU(in_channels if i == 0 else out_channels, out_channels)
                for i in range(n_convs)
            ]
        )
