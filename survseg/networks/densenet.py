r"""A 3D DenseNet feature extractor: the cascaded survival network (CSN) of DeepMTS.

Layout (Meng et al. 2022, Sec. 3.3 and Fig. 4; defaults from the authors' code)::

    stem:        conv 3x3x3 / stride 2, no padding, 24 ch -> dropout -> max-pool 3 / stride 2
    dense block: L bottleneck layers, each  BN-ReLU-conv1x1(64)-drop-BN-ReLU-conv3x3(16)-drop,
                 whose output is concatenated to its input (growth rate 16)
    transition:  BN-ReLU-conv1x1(c_k)-drop, then average-pool 2 (not after the last block)
    features:    every transition output -> BN -> ReLU -> global average pool

With blocks of 4, 8 and 16 layers and transitions to 16, 32 and 64 channels this gives
16 + 32 + 64 = 112 features.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BottleneckLayer", "DenseBlock", "TransitionBlock", "DenseNet3d"]


def _check_positive(name: str, values) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints; got {values}.")
    return values


def _check_rate(name: str, p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {p}.")
    return float(p)


class BottleneckLayer(nn.Module):
    """``BN-ReLU-conv1x1-dropout-BN-ReLU-conv3x3-dropout``, concatenated to its input.

    Parameters
    ----------
    in_channels : int
    growth_rate : int
        Channels added (output of the 3x3x3 convolution).
    bottleneck_channels : int
        Width of the 1x1x1 convolution.
    dropout : float
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int = 16,
        bottleneck_channels: int = 64,
        dropout: float = 0.05,
    ):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, bottleneck_channels, 1),
            nn.Dropout(dropout),
            nn.BatchNorm3d(bottleneck_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(bottleneck_channels, growth_rate, 3, padding=1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class DenseBlock(nn.Sequential):
    """``n_layers`` densely connected :class:`BottleneckLayer`\\ s.

    The output has ``in_channels + n_layers * growth_rate`` channels.
    """

    def __init__(
        self,
        in_channels: int,
        n_layers: int,
        growth_rate: int = 16,
        bottleneck_channels: int = 64,
        dropout: float = 0.05,
    ):
        if n_layers < 1:
            raise ValueError(f"a dense block needs n_layers >= 1; got {n_layers}.")
        super().__init__(
            *[
                BottleneckLayer(
                    in_channels + i * growth_rate, growth_rate, bottleneck_channels, dropout
                )
                for i in range(n_layers)
            ]
        )
        self.out_channels = in_channels + n_layers * growth_rate


class TransitionBlock(nn.Sequential):
    """``BN-ReLU-conv1x1(out_channels)-dropout`` (the pooling is applied by the caller)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.05):
        super().__init__(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, out_channels, 1),
            nn.Dropout(dropout),
        )


class _GlobalFeatures(nn.Sequential):
    """``BN -> ReLU -> global average pool -> (N, C)``."""

    def __init__(self, channels: int):
        super().__init__(
            nn.BatchNorm3d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool3d(1), nn.Flatten(1)
        )


class DenseNet3d(nn.Module):
    """Multi-scale 3D DenseNet feature extractor (the DeepMTS cascaded survival network).

    Parameters
    ----------
    in_channels : int, default=3
        Input channels (DeepMTS: PET, CT and the tumour probability map).
    stem_channels : int, default=24
        Width of the stride-2 stem convolution.
    block_layers : sequence of int, default=(4, 8, 16)
        Bottleneck layers per dense block.
    transition_channels : sequence of int, default=(16, 32, 64)
        Output width of the transition after each dense block; their sum is the number of
        features.
    growth_rate : int, default=16
    bottleneck_channels : int, default=64
    dropout : float, default=0.05
        Dropout after the stem and inside every bottleneck and transition.

    Attributes
    ----------
    n_features : int
        ``sum(transition_channels)``.
    feature_widths : tuple of int
        Features per transition (``transition_channels``).
    min_input_size : int
        Smallest spatial extent (per axis) the pooling chain accepts.

    Notes
    -----
    ``forward(x)`` returns the ``(N, n_features)`` concatenation of the globally pooled
    transition outputs, coarsest last.
    """

    def __init__(
        self,
        in_channels: int = 3,
        stem_channels: int = 24,
        block_layers=(4, 8, 16),
        transition_channels=(16, 32, 64),
        growth_rate: int = 16,
        bottleneck_channels: int = 64,
        dropout: float = 0.05,
    ):
        super().__init__()
        block_layers = _check_positive("block_layers", block_layers)
        transition_channels = _check_positive("transition_channels", transition_channels)
        if len(block_layers) != len(transition_channels):
            raise ValueError(
                f"block_layers {block_layers} and transition_channels {transition_channels} "
                "must have the same length (one transition per dense block)."
            )
        _check_positive(
            "in_channels, stem_channels, growth_rate, bottleneck_channels",
            (in_channels, stem_channels, growth_rate, bottleneck_channels),
        )
        dropout = _check_rate("dropout", dropout)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_channels, 3, stride=2),
            nn.Dropout(dropout),
            nn.MaxPool3d(3, stride=2),
        )
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        self.features = nn.ModuleList()
        channels = stem_channels
        for n_layers, out in zip(block_layers, transition_channels, strict=True):
            block = DenseBlock(channels, n_layers, growth_rate, bottleneck_channels, dropout)
            self.blocks.append(block)
            self.transitions.append(TransitionBlock(block.out_channels, out, dropout))
            self.features.append(_GlobalFeatures(out))
            channels = out
        self.pool = nn.AvgPool3d(2)
        self.feature_widths = transition_channels
        self.n_features = sum(transition_channels)
        self.min_input_size = self._min_size(len(block_layers))

    @staticmethod
    def _min_size(n_blocks: int) -> int:
        """Smallest n with stem (k3 s2) -> max-pool (k3 s2) -> (n_blocks - 1) avg-pools >= 1."""
        m = 2 ** (n_blocks - 1)  # needed after the max-pool
        m = 2 * (m - 1) + 3  # before the max-pool
        return 2 * (m - 1) + 3  # before the stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a (N, C, D, H, W) tensor; got shape {tuple(x.shape)}.")
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} is too small for this DenseNet: each axis "
                f"needs at least {self.min_input_size} voxels (stride-2 stem, max-pool and "
                f"{len(self.blocks) - 1} average-pools)."
            )
        x = self.stem(x)
        feats = []
        for k, (block, transition, head) in enumerate(
            zip(self.blocks, self.transitions, self.features, strict=True)
        ):
            x = transition(block(x))
            feats.append(head(x))
            if k < len(self.blocks) - 1:
                x = self.pool(x)
        return torch.cat(feats, dim=1)
