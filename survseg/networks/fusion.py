r"""AdaMSS's Ada-fusion encoder: per-modality branches, a fused branch and fusion gates.

The encoder of Meng et al. (2024), Sec. 3.2, and the three empirical fusion strategies of
their Table III ablation:

* ``"adaptive"`` (the paper's data-driven fusion): one branch per modality
  (:math:`B_{PET}`, :math:`B_{CT}`, ...) and a fused branch :math:`B_{Fuse}` on the
  concatenated images. After block :math:`i` of :math:`B_{Fuse}`, a :class:`FusionGate`
  mixes :math:`F^i_{pc} = \mathrm{conv}_3([F^i_{pet}, F^i_{ct}])` with :math:`F^i_{fuse}`;
  its output feeds block :math:`i+1` of :math:`B_{Fuse}` and the decoder's skip connection.
* ``"early"``: :math:`B_{Fuse}` alone (the per-modality branches and gates removed).
* ``"late"``: the per-modality branches alone; their features, concatenated, are the skips.
* ``"intermediate"``: both, gates removed, :math:`F^i_{pc} + F^i_{fuse}` instead.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU, ResidualBlock

__all__ = ["FusionGate", "AdaFusionEncoder", "FUSION_MODES"]

FUSION_MODES = ("adaptive", "early", "late", "intermediate")


class FusionGate(nn.Module):
    r"""Voxel-wise soft choice between two feature maps of the same shape.

    .. math::

        z = [F_{fuse}, F_{pc}],\quad a = W_a * z,\quad b = W_b * z,\quad
        w_{fuse} = \frac{e^a}{e^a + e^b} = \sigma(a - b),\quad w_{pc} = 1 - w_{fuse},

        F_{\mathcal{F}} = w_{fuse} F_{fuse} + w_{pc} F_{pc},

    with :math:`W_a, W_b` two 1x1x1 convolutions (:math:`2c \to c`, no normalisation), so
    the weights are per channel and per voxel. The two-way softmax is evaluated as a sigmoid
    of the logit difference, which cannot overflow (the authors' explicit ``exp`` can). Both
    convolutions start at zero (weights and biases), so every gate starts at 0.5 / 0.5.

    Parameters
    ----------
    channels : int
        Channels :math:`c` of each input.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1; got {channels}.")
        self.fuse_logit = nn.Conv3d(2 * channels, channels, kernel_size=1)
        self.pc_logit = nn.Conv3d(2 * channels, channels, kernel_size=1)
        for conv in (self.fuse_logit, self.pc_logit):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, f_fuse: torch.Tensor, f_pc: torch.Tensor):
        """Return ``(fused features, w_fuse)``; ``w_pc`` is ``1 - w_fuse``."""
        z = torch.cat([f_fuse, f_pc], dim=1)
        w_fuse = torch.sigmoid(self.fuse_logit(z) - self.pc_logit(z))
        return w_fuse * f_fuse + (1.0 - w_fuse) * f_pc, w_fuse


def _branch(in_channels: int, channels, n_convs) -> nn.ModuleList:
    blocks, prev = [], in_channels
    for c, n in zip(channels, n_convs):
        blocks.append(ResidualBlock(prev, c, n))
        prev = c
    return nn.ModuleList(blocks)


class AdaFusionEncoder(nn.Module):
    """Multi-branch residual encoder with a choice of fusion strategy (see module docstring).

    Parameters
    ----------
    n_modalities : int
        Number of input images (channels of the input tensor), e.g. 2 for PET/CT. With one
        modality every mode is still built literally (``"early"`` is a plain single-branch
        encoder, the paper's "Only PET" / "Only CT" rows).
    single_channels : sequence of int
        Output channels per level of each per-modality branch (paper: 8, 16, 32, 64, 128).
    fuse_channels : sequence of int
        Output channels per level of the fused branch (paper: 16, 32, 64, 128, 256).
    n_convs : sequence of int
        3x3x3 convolutions per residual block, per level (paper: 2, 3, 3, 4, 4).
    fusion : {"adaptive", "early", "late", "intermediate"}

    Attributes
    ----------
    skip_channels : tuple of int
        Channels of the features handed to the decoder at each level.
    """

    def __init__(
        self,
        n_modalities: int = 2,
        single_channels=(8, 16, 32, 64, 128),
        fuse_channels=(16, 32, 64, 128, 256),
        n_convs=(2, 3, 3, 4, 4),
        fusion: str = "adaptive",
    ):
        super().__init__()
        single_channels, fuse_channels, n_convs = (
            tuple(int(v) for v in single_channels),
            tuple(int(v) for v in fuse_channels),
            tuple(int(v) for v in n_convs),
        )
        if fusion not in FUSION_MODES:
            raise ValueError(f"fusion must be one of {FUSION_MODES}; got {fusion!r}.")
        if n_modalities < 1:
            raise ValueError(f"n_modalities must be >= 1; got {n_modalities}.")
        n_levels = len(n_convs)
        if n_levels < 2:
            raise ValueError(f"need at least 2 levels; n_convs has {n_levels} entries.")
        for name, seq in (("single_channels", single_channels), ("fuse_channels", fuse_channels)):
            if len(seq) != n_levels:
                raise ValueError(
                    f"{name} has {len(seq)} levels but n_convs has {n_levels}; give one value per level."
                )
            if min(seq) < 1:
                raise ValueError(f"{name} must be positive; got {seq}.")
        self.n_modalities = n_modalities
        self.fusion = fusion
        self.n_levels = n_levels
        uses_single = fusion != "early"
        uses_fuse = fusion != "late"
        if uses_single:
            self.single = nn.ModuleList(
                [_branch(1, single_channels, n_convs) for _ in range(n_modalities)]
            )
        if uses_fuse:
            self.fuse = _branch(n_modalities, fuse_channels, n_convs)
        if uses_single and uses_fuse:
            self.merge = nn.ModuleList(
                [ConvBNReLU(n_modalities * s, f, 3) for s, f in zip(single_channels, fuse_channels)]
            )
        if fusion == "adaptive":
            self.gates = nn.ModuleList([FusionGate(f) for f in fuse_channels])
        self.pool = nn.MaxPool3d(2)
        self.skip_channels = (
            tuple(n_modalities * s for s in single_channels) if fusion == "late" else fuse_channels
        )

    def forward(self, images: torch.Tensor):
        """Encode ``images`` of shape (N, n_modalities, D, H, W).

        Returns
        -------
        skips : list of Tensor
            Features of each level, finest first (the last one is the bottleneck).
        gate_weights : list of Tensor or None
            :math:`w_{fuse}` of each fusion gate (shape of that level's features), finest
            first; ``None`` unless ``fusion="adaptive"``.
        """
        single = None
        if self.fusion != "early":
            # each per-modality branch runs on its own image, level by level
            single, feats = [], [images[:, m : m + 1] for m in range(self.n_modalities)]
            for level in range(self.n_levels):
                if level:
                    feats = [self.pool(f) for f in feats]
                feats = [branch[level](f) for branch, f in zip(self.single, feats)]
                single.append(torch.cat(feats, dim=1))
        if self.fusion == "late":
            return single, None
        skips, gate_weights, x = [], [], images
        for level in range(self.n_levels):
            f_fuse = self.fuse[level](self.pool(x) if level else x)
            if self.fusion == "early":
                x = f_fuse
            else:
                f_pc = self.merge[level](single[level])
                if self.fusion == "intermediate":
                    x = f_fuse + f_pc
                else:
                    x, w_fuse = self.gates[level](f_fuse, f_pc)
                    gate_weights.append(w_fuse)
            skips.append(x)
        return skips, (gate_weights if self.fusion == "adaptive" else None)
