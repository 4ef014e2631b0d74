r"""The AdaMSS network: Ada-fusion encoder, attention-gated Ada-focus decoder, two heads.

Meng et al. (2024), Sec. 3.1-3.3. One module serves both training stages:

* segmentation head: 1x1x1 convolution of the last decoder block (logits; a sigmoid gives
  the tumour probability);
* survival head: global average pooling of every decoder block, concatenated with
  ``n_extra_features`` tabular inputs (selected radiomics features and clinical
  covariates), then dropout -> FC -> ReLU -> dropout -> FC to ``n_intervals`` logits
  :math:`l_j`; :math:`p_j = \sigma(l_j)` is the conditional probability of surviving
  interval :math:`j` given survival to its start.

The L2 penalty the paper puts on the two FC weights is applied by the optimiser
(weight decay on :meth:`AdaMSS.head_weights`), not inside the network.

References
----------
Meng M, Gu B, Fulham M, Song S, Feng D, Bi L, Kim J. Adaptive segmentation-to-survival
learning for survival prediction from multi-modality medical images. npj Precision
Oncology 8, 232 (2024).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .attention import AttentionGate
from .blocks import ResidualBlock
from .fusion import AdaFusionEncoder
from .heads import FeatureStandardizer

__all__ = ["AdaMSS", "AdaMSSOutput", "AdaFocusDecoder", "SurvivalHead"]


class AdaMSSOutput(NamedTuple):
    """What :meth:`AdaMSS.forward` returns; fields not computed are ``None``.

    Attributes
    ----------
    seg_logits : Tensor (N, seg_channels, D, H, W) or None
        Segmentation logits (``sigmoid`` = tumour probability).
    survival_logits : Tensor (N, n_intervals) or None
        Logits of the conditional interval survival probabilities.
    fusion_weights : list of Tensor or None
        :math:`w_{fuse}` maps of the fusion gates, finest level first (adaptive fusion only).
    attention_maps : list of Tensor or None
        Attention maps :math:`\\alpha` (N, 1, ...) of the decoder's gates, finest level first.
    """

    seg_logits: torch.Tensor | None
    survival_logits: torch.Tensor | None
    fusion_weights: list | None = None
    attention_maps: list | None = None

    @property
    def survival_probabilities(self) -> torch.Tensor | None:
        """Conditional survival probability per interval, :math:`\\sigma(l_j)`."""
        return None if self.survival_logits is None else torch.sigmoid(self.survival_logits)


class AdaFocusDecoder(nn.Module):
    """Residual decoder with an :class:`AttentionGate` on every skip connection.

    Level ``i`` (coarse to fine): ``g`` = the coarser features, ``x`` = skip ``i``;
    ``RB_i([AG(x, g), up_2(g)])`` with nearest-neighbour upsampling.

    Parameters
    ----------
    skip_channels : sequence of int
        Channels of the encoder features per level, finest first (last = bottleneck).
    n_convs : sequence of int
        Convolutions per decoder block, finest first (one fewer entry than ``skip_channels``).
    channels : sequence of int, optional
        Output channels of the decoder blocks, finest first; defaults to ``skip_channels[:-1]``.
    """

    def __init__(self, skip_channels, n_convs, channels=None):
        super().__init__()
        skip_channels = tuple(skip_channels)
        channels = tuple(skip_channels[:-1] if channels is None else channels)
        if len(channels) != len(skip_channels) - 1 or len(n_convs) != len(channels):
            raise ValueError(
                f"decoder needs one block per skip level: {len(skip_channels) - 1} levels, "
                f"got {len(channels)} channel counts and {len(n_convs)} conv counts."
            )
        gates, blocks = [], []
        for level in range(len(channels)):
            coarser = skip_channels[-1] if level == len(channels) - 1 else channels[level + 1]
            gates.append(AttentionGate(skip_channels[level], coarser))
            blocks.append(
                ResidualBlock(skip_channels[level] + coarser, channels[level], n_convs[level])
            )
        self.gates = nn.ModuleList(gates)
        self.blocks = nn.ModuleList(blocks)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.channels = channels

    def forward(self, skips):
        """Return ``(block outputs, attention maps)``, both lists finest first."""
        g = skips[-1]
        outputs, maps = [None] * len(self.blocks), [None] * len(self.blocks)
        for level in reversed(range(len(self.blocks))):
            gated, maps[level] = self.gates[level](skips[level], g)
            g = self.blocks[level](torch.cat([gated, self.up(g)], dim=1))
            outputs[level] = g
        return outputs, maps


class SurvivalHead(nn.Module):
    """``dropout -> FC(hidden) -> ReLU -> dropout -> FC(n_intervals)`` on pooled + tabular features."""

    def __init__(self, in_features: int, hidden_features: int, n_intervals: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, n_intervals),
        )

    def forward(self, x):
        return self.net(x)


class AdaMSS(nn.Module):
    r"""Adaptive multi-modality segmentation-to-survival network (Meng et al., 2024).

    Parameters
    ----------
    n_modalities : int, default=2
        Number of input images, stacked as channels (PET/CT; 1 for PET-only; 3+ e.g. MRI).
    n_intervals : int, default=10
        Number of discrete survival intervals :math:`N`.
    n_extra_features : int, default=0
        Tabular features (radiomics + clinical) concatenated to the pooled deep features.
        When positive, ``forward`` requires them; when zero, passing any raises.
    single_channels : sequence of int, default=(8, 16, 32, 64, 128)
        Channels per level of each per-modality encoder branch.
    fuse_channels : sequence of int, default=(16, 32, 64, 128, 256)
        Channels per level of the fused encoder branch.
    n_convs : sequence of int, default=(2, 3, 3, 4, 4)
        Convolutions per encoder block; the decoder mirrors them, (4, 3, 3, 2) coarse to fine.
    fusion : {"adaptive", "early", "late", "intermediate"}, default="adaptive"
        See :mod:`survseg.networks.fusion`.
    seg_channels : int, default=1
        Segmentation output channels (the authors use 2: primary tumour and lymph nodes).
    hidden_features : int, default=128
        Width of the survival head's hidden layer.
    dropout : float, default=0.5
        Dropout before each FC layer of the survival head.
    pooled_features : bool, default=True
        Feed the globally average-pooled decoder features to the survival head (the
        paper). ``False``: the head sees the ``n_extra_features`` tabular inputs only (e.g.
        features of a segmentation network's predicted maps), and ``task="survival"`` does
        not run the encoder and decoder.
    feature_scaling : bool, default=False
        z-score the pooled features before the head, :math:`(x - \mu) / \sigma`, with
        running statistics of the training batches
        (:class:`~survseg.networks.heads.FeatureStandardizer`, momentum
        ``scaling_momentum``; the first batch sets them), used unchanged in eval mode.
    scaling_momentum : float, default=0.05

    Notes
    -----
    The spatial size of the input must be divisible by :math:`2^{L-1}` (16 for the paper's
    five levels). At the defaults the network has about 18.4 M parameters.
    """

    def __init__(
        self,
        n_modalities: int = 2,
        n_intervals: int = 10,
        n_extra_features: int = 0,
        single_channels=(8, 16, 32, 64, 128),
        fuse_channels=(16, 32, 64, 128, 256),
        n_convs=(2, 3, 3, 4, 4),
        fusion: str = "adaptive",
        seg_channels: int = 1,
        hidden_features: int = 128,
        dropout: float = 0.5,
        pooled_features: bool = True,
        feature_scaling: bool = False,
        scaling_momentum: float = 0.05,
    ):
        super().__init__()
        if n_intervals < 1:
            raise ValueError(f"n_intervals must be >= 1; got {n_intervals}.")
        if n_extra_features < 0:
            raise ValueError(f"n_extra_features must be >= 0; got {n_extra_features}.")
        if seg_channels < 1 or hidden_features < 1:
            raise ValueError("seg_channels and hidden_features must be >= 1.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.n_modalities = n_modalities
        self.n_intervals = n_intervals
        self.n_extra_features = n_extra_features
        self.encoder = AdaFusionEncoder(
            n_modalities, single_channels, fuse_channels, n_convs, fusion
        )
        self.decoder = AdaFocusDecoder(self.encoder.skip_channels, tuple(n_convs)[:-1])
        if not pooled_features and n_extra_features < 1:
            raise ValueError("pooled_features=False needs n_extra_features >= 1 (head inputs).")
        self.seg_head = nn.Conv3d(self.decoder.channels[0], seg_channels, kernel_size=1)
        self.pooled_features = bool(pooled_features)
        n_pooled = sum(self.decoder.channels) if pooled_features else 0
        self.scale_pooled = (
            FeatureStandardizer(n_pooled, scaling_momentum)
            if feature_scaling and pooled_features
            else None
        )
        self.survival_head = SurvivalHead(
            n_pooled + n_extra_features, hidden_features, n_intervals, dropout
        )
        self.size_multiple = 2 ** (self.encoder.n_levels - 1)

    def head_weights(self) -> list:
        """The two FC weight matrices of the survival head (the paper's L2-penalised weights)."""
        return [m.weight for m in self.survival_head.net if isinstance(m, nn.Linear)]

    def _check_inputs(self, images, extra, need_extra):
        if images.ndim != 5 or images.shape[1] != self.n_modalities:
            raise ValueError(
                f"images must have shape (N, {self.n_modalities}, D, H, W); got {tuple(images.shape)}."
            )
        bad = [s for s in images.shape[2:] if s % self.size_multiple]
        if bad:
            raise ValueError(
                f"spatial size {tuple(images.shape[2:])} must be divisible by {self.size_multiple} "
                f"({self.encoder.n_levels} levels); crop or pad the volumes."
            )
        if not need_extra:
            return
        if self.n_extra_features and extra is None:
            raise ValueError(
                f"this network was built with n_extra_features={self.n_extra_features}: pass "
                "the radiomics/clinical features as `extra`."
            )
        if not self.n_extra_features and extra is not None:
            raise ValueError(
                "extra features were passed but the network has n_extra_features=0; they "
                "would be ignored. Build it with n_extra_features=extra.shape[1]."
            )
        if extra is not None and tuple(extra.shape) != (images.shape[0], self.n_extra_features):
            raise ValueError(
                f"extra must have shape ({images.shape[0]}, {self.n_extra_features}); got "
                f"{tuple(extra.shape)}."
            )

    def forward(
        self,
        images: torch.Tensor,
        extra: torch.Tensor | None = None,
        *,
        task: str = "both",
        return_fusion_weights: bool = False,
        return_attention: bool = False,
    ) -> AdaMSSOutput:
        """Run the network.

        Parameters
        ----------
        images : Tensor (N, n_modalities, D, H, W)
        extra : Tensor (N, n_extra_features), optional
            Selected radiomics features and clinical covariates (already standardised).
        task : {"both", "segmentation", "survival"}
            Which heads to evaluate (``"segmentation"`` needs no ``extra``).
        return_fusion_weights, return_attention : bool
            Also return the fusion-gate weights / decoder attention maps.

        Returns
        -------
        AdaMSSOutput
        """
        if task not in ("both", "segmentation", "survival"):
            raise ValueError(f"task must be 'both', 'segmentation' or 'survival'; got {task!r}.")
        self._check_inputs(images, extra, need_extra=task != "segmentation")
        gate_weights = maps = decoded = None
        if task != "survival" or self.pooled_features or return_fusion_weights or return_attention:
            skips, gate_weights = self.encoder(images)
            decoded, maps = self.decoder(skips)
        seg = self.seg_head(decoded[0]) if task != "survival" else None
        surv = None
        if task != "segmentation":
            parts = []
            if self.pooled_features:
                pooled = torch.cat([d.mean(dim=(2, 3, 4)) for d in decoded], dim=1)
                if self.scale_pooled is not None:
                    pooled = self.scale_pooled(pooled.float()).to(pooled.dtype)
                parts.append(pooled)
            if extra is not None:
                parts.append(extra.to(images.dtype if not parts else parts[0].dtype))
            surv = self.survival_head(torch.cat(parts, dim=1))
        return AdaMSSOutput(
            seg_logits=seg,
            survival_logits=surv,
            fusion_weights=gate_weights if return_fusion_weights else None,
            attention_maps=maps if return_attention else None,
        )
