r"""DeepMTS: joint tumour segmentation and survival prediction from PET/CT.

Meng et al., "DeepMTS: Deep multi-task learning for survival prediction in patients with
advanced nasopharyngeal carcinoma using pretreatment PET/CT", IEEE JBHI 26(9), 2022.

The network, top to bottom (paper Fig. 2)::

    images (PET, CT) ──► segmentation backbone ──► tumour logit ──► sigmoid = probability map
                          │ encoder blocks E1..E5                          │
                          │   1x1 conv-BN-ReLU-GAP  (124 features)         │
                          ▼                                                ▼
                       dropout-FC-1(64)-ReLU      cat(images, probability) ──► 3D DenseNet
                          │                                  (112 features) dropout-FC-2(64)-ReLU
                          └──────────── cat(FC-1, FC-2, clinical) ──► dropout-FC-3(1) = log-risk

Every box can be switched off to build the paper's ablations (Tables III-V); see
:class:`DeepMTS`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .blocks import ConvBNReLU, PlainBlock, ResidualBlock
from .densenet import DenseNet3d, _check_positive, _check_rate
from .heads import SEGMENTATION_STATISTICS, FeatureStandardizer, SegmentationFeatures

__all__ = ["DeepMTSOutput", "SegmentationBackbone", "DeepMTS"]

_BLOCKS = {"residual": ResidualBlock, "plain": PlainBlock}


class DeepMTSOutput(NamedTuple):
    """What :class:`DeepMTS` returns.

    Attributes
    ----------
    seg_logits : Tensor (N, n_regions, D, H, W) or None
        One logit per voxel and region (channel 0 the tumour, channel 1 the lymph nodes when
        ``n_regions=2``; ``sigmoid`` gives each region's probability map); ``None`` without
        the segmentation branch.
    log_risk : Tensor (N,) or None
        Predicted log-risk (higher = earlier event); ``None`` without a survival head.
    features : Tensor (N, F)
        Deep features before the FC layers: hard-sharing features then cascade features
        (``F = 0`` without a survival head).
    """

    seg_logits: torch.Tensor | None
    log_risk: torch.Tensor | None
    features: torch.Tensor


class SegmentationBackbone(nn.Module):
    r"""The DeepMTS segmentation backbone: a residual (or plain) 3D U-Net whose encoder is the
    hard-sharing branch.

    Encoder block :math:`E_k` is a "n x m" block (:class:`~survseg.networks.blocks.ResidualBlock`
    or :class:`~survseg.networks.blocks.PlainBlock`) with ``channels[k]`` channels and
    ``encoder_convs[k]`` 3x3x3 convolutions, followed by a 2x max-pool. Decoder block
    :math:`D_k` takes ``cat(upsample_nearest(x), E_k)`` and has ``channels[k]`` channels. A
    1x1x1 convolution gives one logit per voxel and region (a two-class softmax is the sigmoid
    of the logit difference, so one channel per region is equivalent). With two regions
    (tumour and nodes) each has its own sigmoid: the regions are scored independently, as
    multi-label outputs.

    Hard-sharing features: ``GAP(ReLU(BN(conv1x1(E_k))))`` with ``feature_channels[k]``
    channels, concatenated over the levels (124 at the defaults); with
    ``feature_channels=None`` the blocks are pooled directly (the "baseline MT-HS" of
    Sec. 5.4, 248 features at the defaults).

    Parameters
    ----------
    in_channels : int, default=2
    channels : sequence of int, default=(8, 16, 32, 64, 128)
        Width of each level, finest first.
    encoder_convs : sequence of int, default=(2, 2, 3, 3, 4)
        3x3x3 convolutions per encoder block.
    decoder_convs : sequence of int, default=(3, 3, 2, 2)
        3x3x3 convolutions per decoder block, coarsest first (D4, D3, D2, D1).
    feature_channels : sequence of int or None, default=(4, 8, 16, 32, 64)
        Width of the 1x1x1 feature convolution per encoder level; ``None`` = no convolution.
    block : {"residual", "plain"}, default="residual"
        Residual blocks (DeepMTS) or plain conv-BN-ReLU stacks (the 3D U-Net baseline).
    decoder : bool, default=True
        Build the upsampling segmentation branch (``False``: encoder only, as in Sur-HS).
    hard_sharing : bool, default=True
        Compute the hard-sharing survival features.
    n_regions : int, default=1
        Segmented regions, one output channel each: 1 = the primary tumour (the paper), 2 =
        tumour and metastatic lymph nodes (HECKTOR's GTVp and GTVn).
    seg_prior : float in (0, 1) or None, default=0.01
        Initial tumour probability: the segmentation head's bias starts at
        :math:`\log(\pi / (1 - \pi))` (the prior initialisation of Lin et al.'s focal-loss
        paper). Tumours fill a small fraction of the volume; starting at 0.5 everywhere makes
        the squared-denominator Dice gradient tiny next to the Cox gradient and the
        segmentation barely moves in joint training. ``None``: PyTorch's default
        initialisation. Not specified by the DeepMTS paper.

    Attributes
    ----------
    n_features : int
        Number of hard-sharing features.
    feature_widths : tuple of int
        Hard-sharing features per encoder level.

    Notes
    -----
    With the decoder, each spatial size must be divisible by ``2 ** (len(channels) - 1)``
    (16 at the defaults; the paper's 128x128x112 is); crop or pad the volumes first.
    """

    def __init__(
        self,
        in_channels: int = 2,
        channels=(8, 16, 32, 64, 128),
        encoder_convs=(2, 2, 3, 3, 4),
        decoder_convs=(3, 3, 2, 2),
        feature_channels=(4, 8, 16, 32, 64),
        block: str = "residual",
        decoder: bool = True,
        hard_sharing: bool = True,
        seg_prior: float | None = 0.01,
        n_regions: int = 1,
    ):
        super().__init__()
        channels = _check_positive("channels", channels)
        _check_positive("n_regions", (n_regions,))
        self.n_regions = int(n_regions)
        if seg_prior is not None and not 0 < seg_prior < 1:
            raise ValueError(f"seg_prior must be in (0, 1) or None; got {seg_prior}.")
        encoder_convs = _check_positive("encoder_convs", encoder_convs)
        _check_positive("in_channels", (in_channels,))
        if len(encoder_convs) != len(channels):
            raise ValueError(
                f"encoder_convs {encoder_convs} needs one entry per level of channels {channels}."
            )
        if block not in _BLOCKS:
            raise ValueError(f"block must be 'residual' or 'plain'; got {block!r}.")
        if not decoder and not hard_sharing:
            raise ValueError(
                "a backbone with neither decoder nor hard-sharing features computes nothing."
            )
        make = _BLOCKS[block]
        self.divisor = 2 ** (len(channels) - 1)
        self.encoder = nn.ModuleList()
        prev = in_channels
        for c, n in zip(channels, encoder_convs, strict=True):
            self.encoder.append(make(prev, c, n))
            prev = c
        self.pool = nn.MaxPool3d(2)

        self.decoder = None
        if decoder:
            decoder_convs = _check_positive("decoder_convs", decoder_convs)
            if len(decoder_convs) != len(channels) - 1:
                raise ValueError(
                    f"decoder_convs {decoder_convs} needs {len(channels) - 1} entries "
                    f"(one per level below the deepest of channels {channels})."
                )
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.decoder = nn.ModuleList()
            prev = channels[-1]
            for c, n in zip(channels[-2::-1], decoder_convs, strict=True):
                self.decoder.append(make(prev + c, c, n))
                prev = c
            self.seg_head = nn.Conv3d(channels[0], self.n_regions, 1)
            if seg_prior is not None:
                nn.init.constant_(self.seg_head.bias, math.log(seg_prior / (1 - seg_prior)))

        self.feature_convs = None
        self.feature_widths = ()  # features per encoder level
        if hard_sharing:
            if feature_channels is None:
                self.feature_widths = channels
            else:
                feature_channels = _check_positive("feature_channels", feature_channels)
                if len(feature_channels) != len(channels):
                    raise ValueError(
                        f"feature_channels {feature_channels} needs one entry per level of "
                        f"channels {channels}."
                    )
                self.feature_convs = nn.ModuleList(
                    [
                        ConvBNReLU(c, f, kernel_size=1)
                        for c, f in zip(channels, feature_channels, strict=True)
                    ]
                )
                self.feature_widths = feature_channels
        self.n_features = sum(self.feature_widths)
        self.hard_sharing = hard_sharing

    def _check_size(self, x: torch.Tensor) -> None:
        if x.ndim != 5:
            raise ValueError(f"expected a (N, C, D, H, W) tensor; got shape {tuple(x.shape)}.")
        size = tuple(x.shape[2:])
        if self.decoder is not None and any(s % self.divisor for s in size):
            raise ValueError(
                f"spatial size {size} must be divisible by {self.divisor} for a U-Net with "
                f"{len(self.encoder)} levels; crop or pad the volumes (the paper uses 128x128x112)."
            )
        if min(size) < self.divisor:
            raise ValueError(
                f"spatial size {size} is too small for {len(self.encoder)} levels: each axis "
                f"needs at least {self.divisor} voxels."
            )

    def forward(self, x: torch.Tensor):
        """Return ``(seg_logits or None, hard-sharing features (N, n_features) or None)``."""
        self._check_size(x)
        skips = []
        for k, block in enumerate(self.encoder):
            if k:
                x = self.pool(x)
            x = block(x)
            skips.append(x)

        features = None
        if self.hard_sharing:
            if self.feature_convs is None:
                pooled = [s.mean(dim=(2, 3, 4)) for s in skips]
            else:
                pooled = [
                    conv(s).mean(dim=(2, 3, 4))
                    for conv, s in zip(self.feature_convs, skips, strict=True)
                ]
            features = torch.cat(pooled, dim=1)

        logits = None
        if self.decoder is not None:
            for block, skip in zip(self.decoder, skips[-2::-1], strict=True):
                x = block(torch.cat([self.up(x), skip], dim=1))
            logits = self.seg_head(x)
        return logits, features


class _FC(nn.Sequential):
    """``dropout -> Linear -> ReLU`` (FC-1 and FC-2)."""

    def __init__(self, in_features: int, units: int, dropout: float):
        super().__init__(nn.Dropout(dropout), nn.Linear(in_features, units), nn.ReLU(inplace=True))


class DeepMTS(nn.Module):
    r"""The DeepMTS network and the ablations of the paper's Tables III-V.

    Parameters
    ----------
    in_channels : int, default=2
        Image channels (PET and CT).
    n_clinical : int, default=0
        Clinical covariates concatenated before the risk layer FC-3.
    segmentation : bool, default=True
        Build the upsampling segmentation branch (and feed its probability map to the
        cascade). ``False`` gives the single-task "Sur-" models.
    hard_sharing : bool, default=True
        Use the encoder (hard-sharing) features for survival (FC-1).
    cascade : bool, default=True
        Use the cascaded 3D DenseNet for survival (FC-2).
    backbone : {"residual", "plain"}, default="residual"
        Residual blocks (DeepMTS) or a plain 3D U-Net (the paper's "U-net" baselines).
    feature_convs : bool, default=True
        1x1x1 conv-BN-ReLU before pooling the hard-sharing features; ``False`` is the
        "baseline MT-HS" of Table V.
    channels, encoder_convs, decoder_convs, feature_channels :
        Backbone shape, see :class:`SegmentationBackbone`.
    dense_stem_channels, dense_block_layers, dense_transition_channels, dense_growth_rate,
    dense_bottleneck_channels, dense_dropout :
        Cascade shape, see :class:`~survseg.networks.densenet.DenseNet3d`.
    fc_units : int, default=64
        Width of FC-1 and FC-2.
    fc_dropout : float, default=0.5
        Dropout before every FC layer.
    seg_prior : float or None, default=0.01
        Initial tumour probability, see :class:`SegmentationBackbone`.
    n_regions : int, default=1
        Segmented regions (1 = tumour, 2 = tumour and lymph nodes), see
        :class:`SegmentationBackbone`. The cascade sees every region's probability map.
    segmentation_features : bool, default=False
        A third survival branch on the predicted maps (detached): per region
        :math:`\log(1 + V_r)`, :math:`\log(1 + U_r)` and :math:`U_r / V_r` with :math:`V_r =
        v\sum p_r` the soft volume (ml) and :math:`U_r = v\sum p_r\,\mathrm{SUV}` the soft
        total uptake (:class:`~survseg.networks.heads.SegmentationFeatures`), then
        dropout-FC(``fc_units``)-ReLU into FC-3. Needs ``segmentation`` and ``forward``'s
        ``suv``. Not in the paper.
    segmentation_statistics : sequence of str, default=SEGMENTATION_STATISTICS
        Which per-region statistics that branch computes (any of
        :data:`~survseg.networks.heads.PET_STATISTICS`, e.g. adding SUVmax and the SUV
        coefficient of variation).
    feature_scaling : bool, default=False
        z-score each branch's features before its FC layer with running training statistics
        (:class:`~survseg.networks.heads.FeatureStandardizer` with ``scaling_momentum``):
        the pooled features have a spread of a few hundredths, too small for the head to
        learn from under the paper's L2 and dropout. ``False``: the paper.
    scaling_momentum : float, default=0.05
        Momentum of the running statistics (about the last ``1 / momentum`` batches).

    Notes
    -----
    The paper's models as switches (``segmentation``, ``hard_sharing``, ``cascade``):

    ==========================  =====================================================
    DeepMTS                     True, True, True
    MT-HS                       True, True, False
    MT-CasNet                   True, False, True
    Seg-Backbone                True, False, False (no survival head: ``log_risk`` None)
    Sur-HS                      False, True, False
    Sur-CasNet                  False, False, True
    "U-net" versions            ``backbone="plain"``
    baseline MT-HS              MT-HS with ``feature_convs=False``
    ==========================  =====================================================

    The "using segmentation" Sur- models multiply the images by the manual mask: that is
    done on the input, not in the network.

    ``forward(images, clinical=None)`` returns a :class:`DeepMTSOutput`.
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_clinical: int = 0,
        *,
        segmentation: bool = True,
        hard_sharing: bool = True,
        cascade: bool = True,
        backbone: str = "residual",
        feature_convs: bool = True,
        channels=(8, 16, 32, 64, 128),
        encoder_convs=(2, 2, 3, 3, 4),
        decoder_convs=(3, 3, 2, 2),
        feature_channels=(4, 8, 16, 32, 64),
        dense_stem_channels: int = 24,
        dense_block_layers=(4, 8, 16),
        dense_transition_channels=(16, 32, 64),
        dense_growth_rate: int = 16,
        dense_bottleneck_channels: int = 64,
        dense_dropout: float = 0.05,
        fc_units: int = 64,
        fc_dropout: float = 0.5,
        seg_prior: float | None = 0.01,
        n_regions: int = 1,
        segmentation_features: bool = False,
        segmentation_statistics=SEGMENTATION_STATISTICS,
        feature_scaling: bool = False,
        scaling_momentum: float = 0.05,
    ):
        super().__init__()
        if segmentation_features and not segmentation:
            raise ValueError(
                "segmentation_features are computed from the predicted maps: they need "
                "segmentation=True."
            )
        if n_clinical < 0:
            raise ValueError(f"n_clinical must be >= 0; got {n_clinical}.")
        survival = hard_sharing or cascade or segmentation_features
        if not (segmentation or survival):
            raise ValueError(
                "segmentation, hard_sharing and cascade are all off: nothing to build."
            )
        if not survival and n_clinical:
            raise ValueError(
                "clinical covariates need a survival head: switch on hard_sharing or cascade."
            )
        _check_positive("fc_units", (fc_units,))
        fc_dropout = _check_rate("fc_dropout", fc_dropout)
        self.n_clinical = int(n_clinical)
        self.segmentation = bool(segmentation)

        self.backbone = None
        if segmentation or hard_sharing:
            self.backbone = SegmentationBackbone(
                in_channels,
                channels,
                encoder_convs,
                decoder_convs,
                feature_channels if feature_convs else None,
                backbone,
                decoder=segmentation,
                hard_sharing=hard_sharing,
                seg_prior=seg_prior,
                n_regions=n_regions,
            )
        self.cascade = None
        if cascade:
            self.cascade = DenseNet3d(
                in_channels + int(segmentation) * int(n_regions),
                dense_stem_channels,
                dense_block_layers,
                dense_transition_channels,
                dense_growth_rate,
                dense_bottleneck_channels,
                dense_dropout,
            )
        self.fc_shared = (
            _FC(self.backbone.n_features, fc_units, fc_dropout) if hard_sharing else None
        )
        self.fc_cascade = _FC(self.cascade.n_features, fc_units, fc_dropout) if cascade else None
        n_branches = int(hard_sharing) + int(cascade) + int(segmentation_features)
        n_head = fc_units * n_branches + self.n_clinical
        self.fc_risk = None
        if survival:
            self.fc_risk = nn.Sequential(nn.Dropout(fc_dropout), nn.Linear(n_head, 1))
        self.n_features = (self.backbone.n_features if hard_sharing else 0) + (
            self.cascade.n_features if cascade else 0
        )
        # issue 14: built after the paper's modules, so the paper's initialisation is unchanged
        self.seg_features = self.fc_seg = None
        self.n_seg_features = 0
        if segmentation_features:
            self.seg_features = SegmentationFeatures(
                detach=True, statistics=segmentation_statistics
            )
            self.n_seg_features = len(self.seg_features.statistics) * int(n_regions)
            self.fc_seg = _FC(self.n_seg_features, fc_units, fc_dropout)
            self.n_features += self.n_seg_features
        self.scale_shared = self.scale_cascade = self.scale_seg = None
        if feature_scaling:
            if hard_sharing:
                self.scale_shared = FeatureStandardizer(self.backbone.n_features, scaling_momentum)
            if cascade:
                self.scale_cascade = FeatureStandardizer(self.cascade.n_features, scaling_momentum)
            if segmentation_features:
                self.scale_seg = FeatureStandardizer(self.n_seg_features, scaling_momentum)

    def size_problems(self, size) -> list[str]:
        r"""The rules a volume of spatial ``size`` (D, H, W) breaks; ``[]`` when it fits.

        With the decoder the U-Net needs every axis divisible by :math:`2^{L-1}` (``L =
        len(channels)`` levels; 16 at the defaults); without it, at least :math:`2^{L-1}`
        voxels. The DenseNet cascade needs every axis at least
        :attr:`DenseNet3d.min_input_size` voxels (19 for three dense blocks, 35 for four).
        """
        size = tuple(int(s) for s in size)
        problems = []
        if self.backbone is not None:
            d, n = self.backbone.divisor, len(self.backbone.encoder)
            if self.backbone.decoder is not None and any(s % d for s in size):
                problems.append(
                    f"the U-Net's {n} levels (len(channels)) need every axis divisible by "
                    f"{d} (2**{n - 1})"
                )
            elif min(size) < d:
                problems.append(
                    f"the encoder's {n} levels (len(channels)) need every axis at least "
                    f"{d} (2**{n - 1}) voxels"
                )
        if self.cascade is not None and min(size) < self.cascade.min_input_size:
            problems.append(
                f"the DenseNet cascade ({len(self.cascade.blocks)} dense blocks: a stride-2 "
                f"stem, a max-pool and {len(self.cascade.blocks) - 1} average-pools) needs every "
                f"axis at least {self.cascade.min_input_size} voxels"
            )
        return problems

    def head_weights(self) -> list[nn.Parameter]:
        """The FC kernels (weights, not biases) that the paper regularises with L2."""
        layers = [
            m
            for fc in (self.fc_shared, self.fc_cascade, self.fc_seg, self.fc_risk)
            if fc is not None
            for m in fc
            if isinstance(m, nn.Linear)
        ]
        return [layer.weight for layer in layers]

    @staticmethod
    def _scaled(scaler, x):
        return x if scaler is None else scaler(x)

    def forward(
        self,
        images: torch.Tensor,
        clinical: torch.Tensor | None = None,
        suv: torch.Tensor | None = None,
        voxel_ml: torch.Tensor | None = None,
    ) -> DeepMTSOutput:
        """``suv`` (N, 1, D, H, W), the un-normalised PET, and ``voxel_ml`` (N,) are needed
        with ``segmentation_features`` only; ``features`` then ends with the S R segmentation
        features (before scaling)."""
        n = images.shape[0]
        if self.seg_features is not None and suv is None:
            raise ValueError("segmentation_features need the un-normalised PET as suv.")
        if self.n_clinical:
            if clinical is None or tuple(clinical.shape) != (n, self.n_clinical):
                got = None if clinical is None else tuple(clinical.shape)
                raise ValueError(f"clinical must have shape ({n}, {self.n_clinical}); got {got}.")
        elif clinical is not None and clinical.numel():
            raise ValueError("clinical covariates given to a network built with n_clinical=0.")

        logits, shared = self.backbone(images) if self.backbone is not None else (None, None)
        deep, head = [], []
        if self.fc_shared is not None:
            deep.append(shared)
            head.append(self.fc_shared(self._scaled(self.scale_shared, shared)))
        if self.cascade is not None:
            # cascade: the soft region maps join the images; gradients flow into the backbone
            x = images if logits is None else torch.cat([images, torch.sigmoid(logits)], dim=1)
            cascaded = self.cascade(x)
            deep.append(cascaded)
            head.append(self.fc_cascade(self._scaled(self.scale_cascade, cascaded)))
        if self.seg_features is not None:
            region = self.seg_features(torch.sigmoid(logits.float()), suv.float(), voxel_ml)
            deep.append(region.to(logits.dtype))
            head.append(self.fc_seg(self._scaled(self.scale_seg, region)).to(logits.dtype))
        log_risk = None
        if self.fc_risk is not None:
            if self.n_clinical:
                head.append(clinical.to(head[0].dtype))
            log_risk = self.fc_risk(torch.cat(head, dim=1)).squeeze(1)
        features = torch.cat(deep, dim=1) if deep else images.new_zeros(n, 0)
        return DeepMTSOutput(logits, log_risk, features)
