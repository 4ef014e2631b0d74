r"""AdaMSSRegressor: adaptive multi-modality segmentation-to-survival learning (Meng et al., 2024).

Training (``learning_strategy="ssl"``, the paper's Sec. 3.4 and 4.2):

1. **Stage I** - the network learns to segment the tumour (Dice + focal loss).
2. **Radiomics** (``radiomics=True``) - pyradiomics features of the stage-I *predicted*
   masks of the training patients, z-scored, de-correlated (Spearman filter) and selected by
   a Lasso-Cox model, all fitted on the training data only.
3. **Stage II** - a network whose encoder and decoder start from the best stage-I weights
   (copied explicitly and strictly) learns survival with the discrete-time likelihood
   (Eq. 1) over ``n_intervals`` intervals whose edges (``time_bins_``) spread the training
   times evenly; the selected radiomics features and clinical covariates join the pooled
   decoder features in the survival head.

Each stage keeps the weights that scored best on an internal validation split (Dice for
stage I, Harrell's C for stage II, their mean for the multi-task network).

A learning strategy is data: a tuple of :class:`_Stage` records (what the stage learns, which
earlier stage's weights start it, whether it fine-tunes) that one loop in ``fit`` runs.

This module holds the whole estimator with its private helpers (sksurv's ``coxph.py`` keeps
its optimiser next to its estimator the same way), which is why it is longer than 400 lines:
the generic training parts live in :mod:`survseg.training`; what stays here is AdaMSS's own
(stages, losses, validation scores, radiomics of predicted masks, predictions).

Every variant of the paper's tables is a parameter setting:

=============================  ====================================================================
Paper row                      Parameters
=============================  ====================================================================
Table I  AdaMSS                defaults, ``clinical=[...]``
Table I  No-radio              ``radiomics=False``
Table I  No-clinic             ``clinical=None``
Table I  No-both               ``radiomics=False, clinical=None``
Table II STL                   ``learning_strategy="stl"`` (segmentation = :meth:`predict_mask`)
Table II MTL                   ``learning_strategy="mtl", radiomics=False``
Table II SSL                   ``learning_strategy="ssl"``
Table III Only PET / Only CT   ``modalities=("pet",)`` / ``("ct",)`` with ``fusion="early"``
Table III Early / Late fusion  ``fusion="early"`` / ``fusion="late"``
Table III Intermediate         ``fusion="intermediate"``
Table III Data-driven          ``fusion="adaptive"``
Table IV                       :meth:`fusion_weights` (``stage="segmentation"`` / ``"survival"``)
=============================  ====================================================================

(The ablations of Tables II and III were run without radiomics.)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .. import training
from ..data.cohort import SPACING_FIELD, clinical_frame, volume_shape
from ..data.mapped import release_pages
from ..data.validation import (
    check_cohort,
    check_fitted_cohort,
    check_image_content,
    check_survival,
    cohort_signature,
)
from ..evaluation.metrics import dice_score
from ..losses.discrete_time import (
    discrete_time_nll,
    encode_survival,
    predicted_time,
    survival_at_edges,
    time_bin_edges,
)
from ..losses.segmentation import focal_loss, region_dice_loss
from ..networks.adamss import AdaMSS
from ..networks.heads import SEGMENTATION_STATISTICS, SegmentationFeatures, check_statistics
from ._cox import CoxSurvivalMixin
from ._cox_head import cox_head_risk, fit_cox_head, has_cox_head
from ._deep import (
    DEEP_PARAMETER_CONSTRAINTS,
    DeepSurvivalBase,
    autocast,
    mean_dice,
    segmented_regions,
    voxel_ml,
)
from ._segmentation import SegmentationMixin

__all__ = ["AdaMSSRegressor", "transfer_pretrained_weights", "PAPER_AUGMENTATION"]

#: The authors' affine augmentation: translation +-10 % of the size, zoom 0.9-1.1, shear and
#: rotation +-10 degrees (translations are given here as a fraction of each axis).
PAPER_AUGMENTATION = {
    "max_translation": 0.1,
    "max_rotation": 10.0,
    "scale": (0.9, 1.1),
    "max_shear": 10.0,
}
_CROP_RATIO = 112 / 160  # the paper's random crop relative to its volume
_NETWORK_PARAMS = (
    "single_channels",
    "fuse_channels",
    "n_convs",
    "hidden_features",
    "dropout",
)
_PAPER_NETWORK = dict(
    single_channels=(8, 16, 32, 64, 128),
    fuse_channels=(16, 32, 64, 128, 256),
    n_convs=(2, 3, 3, 4, 4),
    hidden_features=128,
    dropout=0.5,
)


@dataclass(frozen=True)
class _Stage:
    """One training stage of a learning strategy."""

    name: str  # "segmentation", "survival" or "multitask"
    segment: bool  # Dice + focal loss on the masks
    survive: bool  # discrete-time likelihood with the tabular inputs
    init_from: str | None = None  # stage whose encoder/decoder weights start this one

    @property
    def fine_tunes(self) -> bool:
        return self.init_from is not None


#: The learning strategies of the paper's Table II as data: the stages ``fit`` runs in order.
STRATEGIES = {
    "ssl": (
        _Stage("segmentation", segment=True, survive=False),
        _Stage("survival", segment=False, survive=True, init_from="segmentation"),
    ),
    "stl": (
        _Stage("segmentation", segment=True, survive=False),
        _Stage("survival", segment=False, survive=True),
    ),
    "mtl": (_Stage("multitask", segment=True, survive=True),),
}


def transfer_pretrained_weights(source: AdaMSS, target: AdaMSS) -> None:
    """Copy the encoder, decoder and segmentation head of ``source`` into ``target``.

    Strict: every tensor must match in name and shape (the two networks must share their
    image architecture), so no layer is silently left at its random initialisation (the
    authors' ``strict=False`` left their stage-II decoder random). The survival head of
    ``target`` is not touched: its input width depends on the stage-II tabular features.
    """
    for part in ("encoder", "decoder", "seg_head"):
        getattr(target, part).load_state_dict(getattr(source, part).state_dict(), strict=True)


def _per_stage(value, stage: _Stage, name: str):
    """The value of a per-stage parameter for ``stage``: ``lr`` is a float (every stage) or a
    pair (stage I, stage II); ``lr_factors`` a sequence of floats (every stage) or a pair of
    them. Stage II's entry is for a network that fine-tunes; the others take stage I's."""
    scalar = isinstance(value, numbers.Real)
    if name == "lr_factors":
        scalar = isinstance(value, list | tuple) and all(isinstance(v, numbers.Real) for v in value)
    if scalar:
        return value
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[1] if stage.fine_tunes else value[0]
    raise ValueError(
        f"{name} must be one value for every stage or a pair (stage I, stage II); got {value!r}."
    )


def _discrete_time_head(est) -> bool:
    """The discrete-time outputs exist unless the fitted head is a Cox model."""
    return not has_cox_head(est)


class AdaMSSRegressor(SegmentationMixin, DeepSurvivalBase):
    """AdaMSS survival model with tumour segmentation, as a scikit-learn estimator.

    Parameters
    ----------
    modalities : sequence of str, default=("pet", "ct")
        Image fields of ``X`` fed to the network (one encoder branch each); any number >= 1.
    intensity : dict or None, default=None
        Per-patient intensity normalisation of the image fields, done on the device for every
        batch: ``{"pet": "zscore", "ct": "window"}`` is the paper's (PET z-score, CT
        [-1024, 1024] HU to [-1, 1]). Values: ``"zscore"``, ``"window"``,
        ``("window", low, high)`` or ``None``. Leave ``None`` for cohorts already normalised by
        :func:`survseg.preprocess.preprocess`; set it for cohorts in physical units (SUV, HU)
        such as :func:`survseg.datasets.make_petct_cohort`. Radiomics are extracted from the
        images as given.
    mask_field : str, default="mask"
        Tumour-mask field used as the segmentation target at ``fit``.
    nodes_field : str or None, default="nodes"
        Field holding the lymph-node labels. When it is in ``X`` at ``fit`` the network
        segments two regions, tumour and nodes (two output channels, as the authors' code
        does with HECKTOR's labels 1 = GTVp and 2 = GTVn), the segmentation loss is summed
        over the regions, and the stage-II radiomics describe both predicted regions plus
        the node burden; otherwise only the tumour (the paper's setting). ``None``: the
        tumour only, even when the field is there. Patients without nodes (an all-zero
        mask) are valid. Same meaning as :class:`~survseg.estimators.DeepMTSRegressor`'s.
    clinical : list of str or None, default=None
        Clinical fields of ``X`` (numeric) joined to the survival head, z-scored on the
        training data.
    learning_strategy : {"ssl", "mtl", "stl"}, default="ssl"
        ``"ssl"``: stage I segmentation, then stage II survival initialised from stage I.
        ``"stl"``: the same two networks, but stage II starts from random weights.
        ``"mtl"``: one network trained on Dice + focal + survival losses at once (no
        stage I, so no radiomics).
    fusion : {"adaptive", "early", "late", "intermediate"}, default="adaptive"
        PET/CT fusion strategy of the encoder (:mod:`survseg.networks.fusion`).
    radiomics : bool, default=True
        Extract radiomics features from the stage-I predicted masks and select some for the
        survival head.
    extractor : RadiomicsExtractor or None, default=None
        The radiomics extraction (:class:`survseg.radiomics.RadiomicsExtractor`), configured
        as RadiomicsCox's is, so ``extractor__spacing`` or ``extractor__bin_width`` reach it;
        AdaMSS sets its ``modalities``, its ``mask`` (the stage-I predicted masks) and
        ``empty_mask="nan"`` (the training mean for a mask pyradiomics rejects). ``None``:
        ``RadiomicsExtractor(settings={"binCount": 32})``, the papers' 1,456-feature set with a
        fixed 32 grey-level bins, since AdaMSS's inputs are normalised images on which the
        authors' bin widths (25 / 10) would put a whole tumour into one bin. On a CPU,
        ``RadiomicsExtractor(feature_classes=["firstorder", "glcm", "shape"],
        image_types=["original"])`` is about 20 times faster.
    correlation_threshold : float, default=0.7
        Features with Spearman :math:`|\\rho|` above it with a kept feature are dropped.
    max_radiomics_features : int or None, default=10
        At most this many features are kept: the smallest penalty of the Lasso-Cox path that
        selects no more than this many. ``None``: the penalty with the best inner
        cross-validated C-index (:class:`~survseg.estimators.lasso_cox.LassoCoxCV`), which with
        a few dozen training patients is noisy and often keeps no feature.
    radiomics_cv : int >= 2 or None, default=None
        Where the training patients' radiomics masks come from. ``None`` (the paper): the
        stage-I network's predictions on the training patients themselves, which it was
        fitted to, so their masks are cleaner than those of new patients and the Lasso-Cox
        and the survival head learn from features that new patients do not have (on the
        synthetic cohort radiomics lowered the C-index, 0.483 vs 0.591, see the docs).
        ``k``: cross-fitted masks: the training patients are split into ``k`` folds
        (stratified by event) and each fold's masks are predicted by a stage-I network
        trained, as stage I is, on the other folds; the validation patients and new patients
        get the full stage-I network's masks. Cost: ``k`` extra stage-I trainings
        (:math:`k` times ``max_iter_segmentation`` more iterations, so stage I takes
        :math:`k + 1` times as long) and one more copy of the training volumes in memory
        while each runs; prediction costs nothing more. Their histories are not recorded.
        Only with ``radiomics=True`` and a stage I (not ``"mtl"``).
    survival_inputs : {"pooled", "segmentation", "pooled+segmentation"}, default="pooled"
        What the survival head sees besides the radiomics and clinical inputs.
        ``"pooled"``: the paper's globally average-pooled decoder features.
        ``"segmentation"``: per segmented region (``regions_``), features of the stage-I
        network's predicted probability map :math:`p_r` (the map :meth:`predict_proba_mask`
        gives): :math:`\\log(1 + V_r)`, :math:`\\log(1 + U_r)` and :math:`U_r / V_r`, with
        :math:`V_r = v \\sum_x p_r(x)` the soft volume in ml (:math:`v` the voxel volume from
        the cohort's ``spacing``, 1 mm^3 without one) and :math:`U_r = v \\sum_x p_r(x)\\,
        \\mathrm{SUV}(x)` the soft total uptake on the *un-normalised* ``"pet"`` field
        (:class:`~survseg.networks.heads.SegmentationFeatures`). They are computed once per
        patient on the whole volume (stage I is fixed during stage II, as for the radiomics),
        so random crops cannot cut a lesion out of them; the stage-II network then trains
        only its head. ``"pooled+segmentation"``: both. Same meaning as
        :class:`~survseg.estimators.DeepMTSRegressor`'s; needs a stage I (not ``"mtl"``) and a
        ``"pet"`` modality unless ``"pooled"``. Pooling over the whole volume dilutes a small
        lesion; on DeepMTS's development cohorts the segmentation features learned much more
        (``benchmarks/heads/RESULTS.md``); with ``survival_head="cox"`` AdaMSS beat tumour
        radiomics on evaluation seed 3 (``benchmarks/README.md``).
    segmentation_statistics : sequence of str, \
            default=("log_volume", "log_uptake", "mean_suv")
        Which statistics of each region's map, in order; as
        :class:`~survseg.estimators.DeepMTSRegressor`'s (any of
        :data:`~survseg.networks.heads.PET_STATISTICS`).
    feature_scaling : {"standardize"} or None, default=None
        z-score the head's image-derived inputs, :math:`(x - \\mu) / \\sigma`: the pooled
        decoder features with running statistics of the training batches (momentum 0.05, the
        first batch sets them; they change while the network trains), the segmentation
        features with the training patients' statistics (they are fixed). ``None``: no
        scaling (the paper; the pooled features then have standard deviations around 0.2).
        The radiomics and clinical inputs are always z-scored on the training data.
    survival_head : {"network", "cox"}, default="network"
        Where the risk comes from. ``"network"``: stage II's discrete-time head (the paper).
        ``"cox"``: no stage II; after stage I, a ridge Cox model on the stage-I survival
        inputs (the segmentation features of ``survival_inputs="segmentation"``, the selected
        radiomics, the clinical covariates), z-scored, is fitted on all patients of ``X`` at
        once (:mod:`survseg.estimators._cox_head`). :meth:`predict` returns its log-risk and
        the survival functions come from its Breslow baseline hazard; the discrete-time
        outputs (:meth:`predict_time`, :meth:`predict_interval_probabilities`) do not exist.
        A head trained by SGD on batches of two patients barely learns on 50-400 patients
        (issue 14; the same finding as :class:`~survseg.estimators.DeepMTSRegressor`'s).
        Needs a stage I (``"ssl"`` or ``"stl"``) and ``survival_inputs="segmentation"``
        (the pooled decoder features exist only inside a trained stage-II network).
    cox_alpha : float, default=100.0
        Ridge penalty :math:`\alpha` of ``survival_head="cox"``
        (``sksurv.linear_model.CoxPHSurvivalAnalysis(alpha)``, on z-scored features). Strong
        on purpose: with 30-100 events the ranking of shrunk coefficients generalises better.
        On development seeds 1, 11 and 21 (150 patients), the same networks with alpha 10 ->
        100 went from within-fold C 0.722 -> 0.740 (DeepMTS) and 0.733 -> 0.749 (AdaMSS) on
        average; on the true masks' features C is flat from 100 to 10^4
        (``benchmarks/heads/RESULTS.md``). It was 10.
    n_intervals : int, default=10
        Number of discrete survival intervals :math:`N`.
    network_params : dict or None, default=None
        Shape of :class:`survseg.networks.AdaMSS`: ``single_channels``, ``fuse_channels``,
        ``n_convs`` (widths and depths per level; paper (8, 16, 32, 64, 128),
        (16, 32, 64, 128, 256), (2, 3, 3, 4, 4)), ``hidden_features`` (128, the survival
        head's hidden layer) and ``dropout`` (0.5, before each layer of the survival head);
        the segmentation outputs are the ``regions_`` (see ``nodes_field``). Volumes must be
        divisible by
        :math:`2^{L-1}` (16 for five levels).
    head_l2 : float, default=0.1
        The paper's :math:`\\lambda` of the L2 penalty :math:`\\lambda \\lVert W \rVert^2` on the
        two survival-head weight matrices (applied as Adam weight decay :math:`2\\lambda`).
    max_iter : int, default=10000
        Iterations per stage.
    max_iter_segmentation, max_iter_survival : int, optional
        Stage-specific overrides of ``max_iter`` (``"mtl"`` uses ``max_iter_survival``).
    batch_size : int, default=2
        Patients per iteration. Survival batches hold half events, half censored patients,
        never a patient twice: a group smaller than its half goes whole into every batch
        (smaller batches, with a warning naming the counts; see
        :func:`~survseg.training.balanced_batches`).
    lr : float or (float, float), default=(1e-4, 5e-5)
        Initial learning rate of each stage: stage I, stage II. The stage II rate is the one
        of a network that fine-tunes stage I's weights (``"ssl"``); a network trained from
        random weights (stage I, the stage II of ``"stl"``, the ``"mtl"`` network) takes the
        first. A float: every stage.
    lr_milestones : sequence of float, default=(0.4, 0.8)
        Fractions of a stage's iterations where the learning rate steps down (the paper's
        4,000th and 8,000th of 10,000).
    lr_factors : sequence of float, or a pair of them, default=((0.5, 0.1), (0.2, 0.02))
        Learning rate after each milestone as a fraction of the stage's ``lr`` (stage I:
        1e-4 -> 5e-5 -> 1e-5; stage II: 5e-5 -> 1e-5 -> 1e-6), per stage as ``lr``.
    focal_alpha, focal_gamma : float, default=0.25, 2.0
        Focal-loss parameters (the paper's); ``focal_alpha`` weights the foreground voxels,
        ``1 - focal_alpha`` the background. With node labels at CPU widths and a few hundred
        iterations, 0.75 keeps the small node region from staying unlearned
        (``survseg.registry.ADAMSS_SMALL_DATA_HEAD``).
    crop_size : "auto", int, sequence of 3 int or None, default="auto"
        Random training crop. ``"auto"``: 112/160 of each axis (the paper's 112^3 of 160^3),
        rounded to a multiple of :math:`2^{L-1}`. ``None``: no cropping. Prediction and
        validation always use the whole volume.
    augmentation : dict, False or None, default=None
        Keyword arguments of :func:`survseg.training.random_affine`, except that
        ``max_translation`` is a fraction of each axis. ``None``: :data:`PAPER_AUGMENTATION`;
        ``False``: none.
    validation_fraction : float, default=0.2
        Share of the patients (stratified by event) held out to pick the best iteration of
        each stage. ``0`` keeps the last iteration.
    validate_every : int, optional
        Iterations between validations; default 2 % of the stage (the paper's 200 of 10,000).
    monitor : {"c_index", "loss", "dice"} or None, default="c_index"
        Validation score that picks the kept iteration of the survival stage (stage I's is
        ``segmentation_monitor``). ``"c_index"``: Harrell's C of the validation
        patients (``val_c_index``; for ``"mtl"`` its mean with the Dice,
        ``val_dice_c_index``), as the paper does. ``"loss"``: the discrete-time negative
        log-likelihood of the validation patients (``val_loss``; for ``"mtl"`` plus
        :math:`1 - \text{Dice}`), the smoother choice when they are few (a C-index over ten
        patients moves by several hundredths per discordant pair). ``"dice"`` (``"mtl"``
        only): the validation Dice. ``None``: the last iteration.
    segmentation_monitor : {"tumour", "mean"}, default="tumour"
        Validation Dice that picks stage I's kept iteration. ``"tumour"``: the tumour's
        (``val_dice``), also when the nodes are segmented too. ``"mean"``: with the nodes, the
        mean of the two regions' Dice (``val_dice_mean``; the tumour's alone when no
        validation patient has nodes), as MONAI's ``DiceMetric`` averages the classes; with
        the tumour only it is ``val_dice``. ``"mean"`` keeps a node channel that learns after
        the tumour's Dice has peaked: on a development cohort of the demo (24^3, batches of
        4, ``lr=(3e-3, 5e-4)``, 200 iterations) ``"tumour"`` kept iteration 112 of 200, at a validation node Dice
        of about 0.1 instead of the last iteration's 0.48 (``benchmarks/README.md``).
    mask_threshold : float, default=0.5
        Probability above which a voxel is tumour.
    predict_batch_size : int, default=2
        Patients per forward pass at prediction and validation.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, batch sampling, augmentation and dropout.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    amp : {"auto", True, False}, default=False
        Mixed-precision training on CUDA ("auto": on when training on CUDA).
    preload : {"auto", True, False}, default="auto"
        Whether the training volumes are read and intensity-normalised once at the start of
        ``fit`` and kept in memory: ``True`` on the device; ``False`` not kept, each batch's
        patients read from ``X`` (a memory-mapped cohort is then never resident); "auto" =
        preloaded on a GPU when they take less than a fifth of its memory, else in CPU memory
        when they take at most :data:`survseg.training.PRELOAD_BUDGET`, else read per batch.
        Both ways give the same batches and the same model (as in DeepMTS).
    verbose : int, default=0
        ``> 0``: progress bars of each stage's training (loss and the latest validation
        scores) and of the radiomics extraction from the predicted masks.
    callbacks : list of callables or None, default=None
        Each called as ``callback(stage, iteration, row)`` after every training iteration of
        every stage (``row``: that iteration's history entries); raising stops ``fit``, which
        then leaves the estimator as it was. A :class:`~survseg.training.Checkpoint` saves
        the training state of every stage and resumes an interrupted fit.

    Attributes
    ----------
    network_ : survseg.networks.AdaMSS
        The survival network (stage II, or the multi-task network).
    segmentation_network_ : survseg.networks.AdaMSS
        The network that predicts masks (stage I; the same object as ``network_`` for
        ``"mtl"``).
    time_bins_ : ndarray of shape (n_intervals + 1,)
        Interval edges :math:`0 = b_0 < \\dots < b_N = \\max t`; :math:`b_j` is the
        :math:`j/N` quantile of the training times.
    radiomics_features_ : list of str
        Selected radiomics features (empty without radiomics).
    tabular_features_ : list of str
        Tabular inputs of the survival head: the segmentation features
        (``<region>_<statistic>`` for each ``segmentation_statistics``; with
        ``survival_inputs`` other than ``"pooled"``), the selected radiomics, then clinical.
    regions_ : tuple of str
        The segmented regions, in output-channel order: ``("tumour",)`` or
        ``("tumour", "nodes")``.
    tabular_mean_, tabular_scale_ : ndarray
        Their standardisation (training statistics).
    intensity_ : dict
        The parsed ``intensity``.
    cohort_signature_ : dict
        The fields fit read (images, mask, clinical, the spacing when radiomics measure in
        mm) and the training volume size (:func:`~survseg.data.validation.cohort_signature`):
        predict refuses a cohort without those fields (the mask excepted) or of another
        volume size, as the network learned its pooled features at that size.
    unique_times_ : ndarray
        The times of the arrays of ``predict_survival_function`` and
        ``predict_cumulative_hazard_function`` with ``return_array=True``: ``time_bins_``.
    history_ : pandas.DataFrame
        Per-iteration losses (``dice_loss`` and ``focal_loss`` summed over the regions),
        learning rates and validation scores (``val_dice`` of the tumour,
        ``val_dice_nodes`` over the validation patients that have nodes (two regions only;
        NaN when none has), ``val_dice_mean`` (their mean, see ``segmentation_monitor``),
        ``val_c_index``, ``val_nll``, ``val_loss``, ``val_dice_c_index``), with a ``stage``
        column.
    best_iteration_ : dict
        Stage name -> iteration of the kept weights.

    See Also
    --------
    survseg.networks.AdaMSS : the network.
    survseg.losses.discrete_time : the likelihood and the interval encoding.

    References
    ----------
    .. [1] Meng M, Gu B, Fulham M, Song S, Feng D, Bi L, Kim J. Adaptive
       segmentation-to-survival learning for survival prediction from multi-modality medical
       images. npj Precision Oncology 8, 232 (2024).
    .. [2] Gensheimer MF, Narasimhan B. A scalable discrete-time survival model for neural
       networks. PeerJ 7:e6257 (2019).

    Examples
    --------
    >>> from survseg.datasets import make_petct_cohort                     # doctest: +SKIP
    >>> from survseg.estimators import AdaMSSRegressor                     # doctest: +SKIP
    >>> X, y = make_petct_cohort(40, shape=(32, 32, 32), random_state=0)  # doctest: +SKIP
    >>> est = AdaMSSRegressor(max_iter=200, radiomics=False).fit(X, y)    # doctest: +SKIP
    >>> risk = est.predict(X)                                              # doctest: +SKIP
    """

    _parameter_constraints = {
        **DEEP_PARAMETER_CONSTRAINTS,
        "clinical": [None, list, tuple],
        "nodes_field": [None, str],
        "segmentation_monitor": [StrOptions({"tumour", "mean"})],
        "learning_strategy": [StrOptions(set(STRATEGIES))],
        "fusion": [StrOptions({"adaptive", "early", "late", "intermediate"})],
        "radiomics": ["boolean"],
        "extractor": [None, HasMethods(["fit", "transform"])],
        "correlation_threshold": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_radiomics_features": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "radiomics_cv": [None, Interval(numbers.Integral, 2, None, closed="left")],
        "survival_inputs": [StrOptions({"pooled", "segmentation", "pooled+segmentation"})],
        "segmentation_statistics": [list, tuple],
        "feature_scaling": [None, StrOptions({"standardize"})],
        "survival_head": [StrOptions({"network", "cox"})],
        "cox_alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "n_intervals": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_segmentation": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_survival": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither"), list, tuple],
        "lr_factors": [list, tuple],
        "focal_alpha": [Interval(numbers.Real, 0, 1, closed="both")],
        "focal_gamma": [Interval(numbers.Real, 0, None, closed="left")],
        "crop_size": [
            None,
            StrOptions({"auto"}),
            Interval(numbers.Integral, 1, None, closed="left"),
            list,
            tuple,
        ],
        "augmentation": [None, dict, "boolean"],
        "preload": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(
        self,
        *,
        modalities=("pet", "ct"),
        intensity=None,
        mask_field="mask",
        nodes_field="nodes",
        clinical=None,
        learning_strategy="ssl",
        fusion="adaptive",
        radiomics=True,
        extractor=None,
        correlation_threshold=0.7,
        max_radiomics_features=10,
        radiomics_cv=None,
        survival_inputs="pooled",
        segmentation_statistics=SEGMENTATION_STATISTICS,
        feature_scaling=None,
        survival_head="network",
        cox_alpha=100.0,
        n_intervals=10,
        network_params=None,
        head_l2=0.1,
        max_iter=10_000,
        max_iter_segmentation=None,
        max_iter_survival=None,
        batch_size=2,
        lr=(1e-4, 5e-5),
        lr_milestones=(0.4, 0.8),
        lr_factors=((0.5, 0.1), (0.2, 0.02)),
        focal_alpha=0.25,
        focal_gamma=2.0,
        crop_size="auto",
        augmentation=None,
        validation_fraction=0.2,
        validate_every=None,
        monitor="c_index",
        segmentation_monitor="tumour",
        mask_threshold=0.5,
        predict_batch_size=2,
        random_state=None,
        device="auto",
        amp=False,
        preload="auto",
        verbose=0,
        callbacks=None,
    ):
        self.modalities = modalities
        self.intensity = intensity
        self.mask_field = mask_field
        self.nodes_field = nodes_field
        self.clinical = clinical
        self.learning_strategy = learning_strategy
        self.fusion = fusion
        self.radiomics = radiomics
        self.extractor = extractor
        self.correlation_threshold = correlation_threshold
        self.max_radiomics_features = max_radiomics_features
        self.radiomics_cv = radiomics_cv
        self.survival_inputs = survival_inputs
        self.segmentation_statistics = segmentation_statistics
        self.feature_scaling = feature_scaling
        self.survival_head = survival_head
        self.cox_alpha = cox_alpha
        self.n_intervals = n_intervals
        self.network_params = network_params
        self.head_l2 = head_l2
        self.max_iter = max_iter
        self.max_iter_segmentation = max_iter_segmentation
        self.max_iter_survival = max_iter_survival
        self.batch_size = batch_size
        self.lr = lr
        self.lr_milestones = lr_milestones
        self.lr_factors = lr_factors
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.crop_size = crop_size
        self.augmentation = augmentation
        self.validation_fraction = validation_fraction
        self.validate_every = validate_every
        self.monitor = monitor
        self.segmentation_monitor = segmentation_monitor
        self.mask_threshold = mask_threshold
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.preload = preload
        self.verbose = verbose
        self.callbacks = callbacks

    # ------------------------------------------------------------------ parameters
    def _check_params(self):
        self._validate_params()
        if self.learning_strategy == "mtl" and self.radiomics:
            raise ValueError(
                "learning_strategy='mtl' trains one network on both tasks from the start, so "
                "there are no stage-I masks to extract radiomics from: set radiomics=False "
                "(the paper's learning-strategy ablation ran without radiomics)."
            )
        if self.monitor == "dice" and self.learning_strategy != "mtl":
            raise ValueError(
                "monitor='dice' picks the kept iteration of a network that segments; the "
                f"survival stage of learning_strategy={self.learning_strategy!r} does not "
                "(stage I always keeps its best validation Dice)."
            )
        modalities = self._modality_names()
        if self.radiomics_cv is not None and not self.radiomics:
            raise ValueError(
                "radiomics_cv cross-fits the masks the radiomics are extracted from; it needs "
                "radiomics=True."
            )
        if self._seg_features and self.learning_strategy == "mtl":
            raise ValueError(
                f"survival_inputs={self.survival_inputs!r} reads the stage-I network's predicted "
                "maps; learning_strategy='mtl' has no stage I (use 'ssl' or 'stl', or "
                "survival_inputs='pooled')."
            )
        if self.survival_head == "cox" and (
            self.learning_strategy == "mtl" or self.survival_inputs != "segmentation"
        ):
            raise ValueError(
                "survival_head='cox' fits a Cox model on the stage-I survival inputs instead of "
                "training stage II: it needs learning_strategy 'ssl' or 'stl' (got "
                f"{self.learning_strategy!r}) and survival_inputs='segmentation' (got "
                f"{self.survival_inputs!r}; pooled decoder features exist only in a stage-II "
                "network)."
            )
        check_statistics(self.segmentation_statistics, "segmentation_statistics")
        if self._seg_features and "pet" not in modalities:
            raise ValueError(
                f"survival_inputs={self.survival_inputs!r} measures uptake in the 'pet' "
                f"modality (SUV); modalities are {list(modalities)}."
            )
        training.check_intensity(self.intensity, modalities)
        unknown = sorted(set(self.network_params or {}) - set(_NETWORK_PARAMS))
        if "seg_channels" in unknown:
            raise ValueError(
                "network_params['seg_channels'] is not a parameter: the segmentation outputs "
                "are the regions found at fit (the tumour, and the lymph nodes when "
                "nodes_field is in X)."
            )
        if unknown:
            raise ValueError(f"unknown network_params {unknown}; allowed: {list(_NETWORK_PARAMS)}.")
        n_lr = len(self.lr_milestones)
        for stage in (_Stage("I", True, False), _Stage("II", False, True, "I")):
            lr = _per_stage(self.lr, stage, "lr")
            factors = _per_stage(self.lr_factors, stage, "lr_factors")
            if not isinstance(lr, numbers.Real) or not lr > 0:
                raise ValueError(f"lr must hold positive learning rates; got {self.lr!r}.")
            if len(factors) != n_lr or any(not f > 0 for f in factors):
                raise ValueError(
                    f"lr_factors must hold {n_lr} positive factors per stage (one per "
                    f"lr_milestones); got {self.lr_factors!r}."
                )
        ms = [float(m) for m in self.lr_milestones]
        if any(not 0 < m < 1 for m in ms) or ms != sorted(ms):
            raise ValueError(f"lr_milestones must be increasing fractions in (0, 1); got {ms}.")
        if self.radiomics and self.extractor is not None:
            from ..radiomics import RadiomicsExtractor

            if not isinstance(self.extractor, RadiomicsExtractor):
                raise ValueError(
                    "extractor must be a RadiomicsExtractor (AdaMSS sets its modalities and "
                    f"mask to its own predicted masks); got {type(self.extractor).__name__}."
                )
        return modalities

    @property
    def _seg_features(self) -> bool:
        return self.survival_inputs != "pooled"

    def _network_kwargs(self) -> dict:
        return {**_PAPER_NETWORK, **(self.network_params or {})}

    def _crop(self, shape, multiple):
        if self.crop_size is None:
            return tuple(shape)
        if isinstance(self.crop_size, str):  # "auto"
            crop = [
                max(multiple, min(s, multiple * round(s * _CROP_RATIO / multiple))) for s in shape
            ]
        else:
            crop = (
                [self.crop_size] * 3
                if isinstance(self.crop_size, numbers.Integral)
                else list(self.crop_size)
            )
            if len(crop) != 3 or any(c > s or c % multiple for c, s in zip(crop, shape)):
                raise ValueError(
                    f"crop_size {self.crop_size!r} must be 3 sizes (or one) no larger than the "
                    f"volume {tuple(shape)} (D, H, W) and divisible by {multiple}, as the "
                    f"network's {multiple.bit_length()} levels (len(n_convs)) need {multiple} "
                    f"(2**{multiple.bit_length() - 1})."
                )
        return tuple(int(c) for c in crop)

    def _augment(self, shape):
        if self.augmentation is False:
            return None
        if self.augmentation is True or self.augmentation is None:
            params = dict(PAPER_AUGMENTATION)
        else:
            params = dict(self.augmentation)
        allowed = {"max_translation", "max_rotation", "scale", "max_shear", "flip_axes"}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(
                f"augmentation has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}."
            )
        t = np.broadcast_to(np.asarray(params.get("max_translation", 0.0), float), (3,))
        params["max_translation"] = tuple(float(v) for v in t * np.asarray(shape))
        return params

    def _stage_iter(self, stage: _Stage) -> int:
        override = (
            self.max_iter_segmentation if stage.name == "segmentation" else self.max_iter_survival
        )
        return override or self.max_iter

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train the stages of ``learning_strategy`` (see the module docstring).

        Nothing is assigned to the estimator before the last stage has ended: a failing stage,
        a divergence or an interruption leaves it as it was.

        Parameters
        ----------
        X : cohort (structured ndarray)
            Image fields named by ``modalities``, the ``mask_field`` tumour masks and the
            ``clinical`` fields. May be memory-mapped: the training volumes are read once.
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv.from_arrays``), with at least one event.

        Returns
        -------
        self
        """
        modalities = self._check_params()
        clinical = list(self.clinical or [])
        check_cohort(
            X,
            modalities=modalities,
            require_mask=True,
            mask_field=self.mask_field,
            clinical=clinical,
        )
        event, time = check_survival(y, len(X))
        regions, mask_fields = segmented_regions(X, self.mask_field, self.nodes_field)
        shape = volume_shape(X)
        levels = len(self._network_kwargs()["n_convs"])
        multiple = 2 ** (levels - 1)
        if any(s % multiple for s in shape):
            raise ValueError(
                f"volumes of shape {shape} (D, H, W) cannot pass the {levels} levels of AdaMSS "
                f"(len(n_convs)): every axis must be divisible by {multiple} (2**{levels - 1}), "
                f"so at least {multiple} voxels; crop or pad them (the paper uses 160^3) or "
                "change network_params."
            )
        crop = self._crop(shape, multiple)  # checked here, before any training
        # a blank tumour region, then a constant image, each named with its patients
        check_image_content(X, modalities, mask_field=self.mask_field)
        device = self._device()
        seed = training.seed_from(self.random_state)
        intensity = training.check_intensity(self.intensity, modalities)
        bins = time_bin_edges(time, self.n_intervals)
        s, f = encode_survival(time, event, bins)
        train_idx, val_idx = training.validation_split(
            event, self.validation_fraction, seed, need_events=False
        )
        fit = _FitState(
            X=X, modalities=modalities, clinical=clinical, intensity=intensity, bins=bins,
            event=event, time=time, s=torch.from_numpy(s).to(device),
            f=torch.from_numpy(f).to(device), train_idx=train_idx, val_idx=val_idx,
            device=device, regions=regions, mask_fields=mask_fields,
        )  # fmt: skip
        nets, histories, best = {}, [], {}
        fit.callbacks = training.bind_checkpoints(self.callbacks, self, X, y, device)
        with training.seeded(seed, device):
            rng, gen = training.make_generators(seed, device)
            fit.batch_kw = dict(
                device=device, intensity=intensity, mask_field=mask_fields,
                augment=self._augment(shape), crop=crop, generator=gen,
                storage=training.preload_storage(self.preload),
            )  # fmt: skip
            fit.rng = rng
            fit.data = training.CohortBatches(X, train_idx, modalities, **fit.batch_kw)
            fit.val_images = training.image_tensor(
                X, list(modalities), val_idx, device=device, intensity=intensity
            )
            stages = STRATEGIES[self.learning_strategy]
            if self.survival_head == "cox":  # stage I only; the Cox model is the head
                stages = stages[:1]
            for stage in stages:
                if stage.survive and fit.tabular is None:
                    seg_net = nets.get("segmentation")
                    self._fit_tabular(fit, seg_net)
                net, result = self._train_stage(stage, fit, nets, rng)
                nets[stage.name] = net
                histories.append(result.history.assign(stage=stage.name))
                best[stage.name] = result.best_iteration
            head = dict(head_mean_=None, head_scale_=None, head_coef_=None)
            if self.survival_head == "cox":  # on every patient of X, as DeepMTS's
                self._fit_tabular(fit, nets["segmentation"])
                head = fit_cox_head(fit.tabular_values, event, time, self.cox_alpha)
                risk = cox_head_risk(head, fit.tabular_values)
                head.update(CoxSurvivalMixin._baseline(risk, event, time))
        last = stages[-1].name
        seg = "multitask" if self.learning_strategy == "mtl" else "segmentation"
        state = dict(
                network_=nets[last],
                segmentation_network_=nets[seg],
                modalities_=modalities,
                clinical_=clinical,
                # what predict checks X against: the fields read and the volume size (issue 15)
                cohort_signature_=cohort_signature(X, self._read_fields(X, modalities, clinical)),
                intensity_=intensity,
                time_bins_=bins,
                unique_times_=bins.copy(),
                radiomics_features_=fit.radiomics_features,
                tabular_features_=fit.tabular_names,
                tabular_mean_=fit.scaler.mean,
                tabular_scale_=fit.scaler.scale,
                history_=pd.concat(histories, ignore_index=True),
                best_iteration_=best,
                regions_=regions,
        )  # fmt: skip
        state.update(head)  # the Cox head's unique_times_ are its event times
        return training.assign_fitted(self, state)

    def _read_fields(self, X, modalities, clinical) -> list:
        """The fields of ``X`` that fit reads: the images, the mask, the clinical covariates and
        the voxel spacing when radiomics measure in mm."""
        fields = [*modalities, self.mask_field, *clinical]
        if self.radiomics and SPACING_FIELD in X.dtype.names:
            fields.append(SPACING_FIELD)
        return fields

    def _build_network(self, n_regions, n_extra=0, survive=False) -> AdaMSS:
        kw = self._network_kwargs()
        if survive:  # the survival stage's head inputs
            kw.update(
                pooled_features=self.survival_inputs != "segmentation",
                feature_scaling=self.feature_scaling == "standardize",
            )
        return AdaMSS(
            n_modalities=len(self._modality_names()),
            n_intervals=self.n_intervals,
            n_extra_features=n_extra,
            fusion=self.fusion,
            seg_channels=n_regions,
            **kw,
        )

    def _networks_from_fitted(self) -> dict:
        """The fitted networks' shapes, for :meth:`from_weights`."""
        n_regions = len(self.regions_)
        if has_cox_head(self):  # Cox head: stage I only
            seg = self._build_network(n_regions)
            return {"network_": seg, "segmentation_network_": seg}
        net = self._build_network(n_regions, len(self.tabular_features_), survive=True)
        seg = net if self.learning_strategy == "mtl" else self._build_network(n_regions)
        return {"network_": net, "segmentation_network_": seg}

    def _train_stage(self, stage: _Stage, fit, nets, rng):
        """Build, initialise and train the network of one stage."""
        max_iter = self._stage_iter(stage)
        n_extra = len(fit.tabular_names) if stage.survive else 0
        net = self._build_network(len(fit.regions), n_extra, survive=stage.survive)
        if stage.init_from is not None:
            transfer_pretrained_weights(nets[stage.init_from], net)
        if stage.segment:
            self._init_segmentation_bias(net, fit)
        if stage.survive:
            self._init_survival_bias(net, fit)
        if stage.survive:
            n_ev = max(1, self.batch_size // 2)
            sampler = training.balanced_batches(
                fit.event[fit.train_idx], n_ev, self.batch_size - n_ev, rng
            )
        else:
            sampler = training.random_batches(len(fit.train_idx), self.batch_size, rng)
        batches = (fit.data.batch(i, with_masks=stage.segment) for i in sampler)
        net.to(fit.device)
        lr = float(_per_stage(self.lr, stage, "lr"))
        opt = training.head_l2_adam(net, net.head_weights(), lr, self.head_l2)
        sched = training.step_schedule(
            opt, self.lr_milestones, _per_stage(self.lr_factors, stage, "lr_factors"), max_iter
        )
        validate, key, mode = None, None, "max"
        if len(fit.val_idx):

            def validate(module):
                return self._val_scores(module, stage, fit)

            key, mode = self._monitor(stage)
        return net, training.train(
            net, batches, lambda module, batch: self._loss(module, batch, stage, fit), opt,
            max_iter=max_iter, device=fit.device, scheduler=sched, validate=validate,
            validate_every=training.validation_every(self.validate_every, max_iter), monitor=key,
            mode=mode, amp=self._amp(fit.device), verbose=self.verbose,
            desc=stage.name, callbacks=fit.callbacks,
            random_sources=(rng, fit.data.generator, sampler),
        )  # fmt: skip

    def _monitor(self, stage: _Stage):
        if not stage.survive:
            return ("val_dice_mean" if self.segmentation_monitor == "mean" else "val_dice"), "max"
        if stage.segment and self.monitor == "c_index":
            return "val_dice_c_index", "max"
        return training.monitor_key(self.monitor)

    def _loss(self, module, batch, stage: _Stage, fit):
        task = "both" if stage.segment and stage.survive else stage.name
        out = module(batch.images, batch.tabular if stage.survive else None, task=task)
        parts, total = {}, 0.0
        if stage.segment:
            parts["dice_loss"], parts["focal_loss"] = self._segmentation_loss(
                out.seg_logits, batch.masks
            )
            total = parts["dice_loss"] + parts["focal_loss"]
        if stage.survive:
            rows = batch.index
            # mean over patients and intervals: the authors' scaling, which sets the balance
            # against the L2 penalty of the head
            parts["nll"] = (
                discrete_time_nll(out.survival_logits.float(), fit.s_train[rows], fit.f_train[rows])
                / self.n_intervals
            )
            total = total + parts["nll"]
        return {"loss": total, **parts}

    def _segmentation_loss(self, logits, masks):
        r"""``(Dice, focal)`` losses summed over the regions, each averaged over patients.

        :math:`L_{seg} = \sum_r \big(L^{Dice}_r + L^{focal}_r\big)`: the soft Dice of each
        region as the authors' MONAI ``DiceLoss`` (smoothing 0 / 1e-5,
        :func:`~survseg.losses.segmentation.region_dice_loss` with ``node_smoothing=0``) and
        the focal loss's voxel mean per region. A patient without nodes has a constant node
        Dice term (no gradient); its false-positive nodes are penalised by the focal loss.
        With one region this is the paper's Dice + focal loss unchanged.
        """
        dice = region_dice_loss(logits, masks, node_smoothing=0.0)
        focal = focal_loss(
            logits, masks, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none"
        )
        return dice, focal.sum(dim=1).mean()

    def _val_scores(self, module, stage: _Stage, fit) -> dict:
        """Validation scores of one stage's network on the held-out patients (whole volumes)."""
        task = "both" if stage.segment and stage.survive else stage.name
        extra = fit.val_tabular if stage.survive else None

        def fn(idx):
            e = None if extra is None else extra[idx]
            out = module(fit.val_images[idx], e, task=task)
            n = len(idx)
            seg = out.seg_logits.float() if stage.segment else fit.val_images.new_zeros(n)
            surv = out.survival_logits.float() if stage.survive else fit.val_images.new_zeros(n)
            return seg, surv

        seg_logits, surv_logits = training.forward_in_batches(
            fn, len(fit.val_idx), self.predict_batch_size
        )
        scores = {}
        if stage.segment:
            pred = torch.sigmoid(torch.from_numpy(seg_logits)).numpy() > self.mask_threshold
            truth = np.asarray(fit.X[self.mask_field][fit.val_idx])
            scores["val_dice"] = float(np.mean(dice_score(truth, pred[:, 0])))
            if len(fit.regions) > 1:  # over the validation patients that have nodes
                nodes = np.asarray(fit.X[fit.mask_fields[1]][fit.val_idx])
                scores["val_dice_nodes"] = mean_dice(nodes, pred[:, 1])
            scores["val_dice_mean"] = float(
                np.nanmean([scores["val_dice"], scores.get("val_dice_nodes", np.nan)])
            )
        if stage.survive:
            logits = torch.from_numpy(surv_logits)
            rows = torch.as_tensor(fit.val_idx, device=fit.s.device)
            nll = discrete_time_nll(logits, fit.s[rows].cpu(), fit.f[rows].cpu())
            scores["val_nll"] = float(nll) / self.n_intervals  # the training loss's scaling
            risk = -predicted_time(torch.sigmoid(logits).numpy(), fit.bins)
            ev, t = fit.event[fit.val_idx], fit.time[fit.val_idx]
            scores["val_c_index"] = training.c_index_or_nan(ev, t, risk)
            scores["val_loss"] = scores["val_nll"]
        if stage.segment and stage.survive:  # multi-task: one model for both tasks
            scores["val_dice_c_index"] = 0.5 * (scores["val_dice"] + scores["val_c_index"])
            scores["val_loss"] = (1.0 - scores["val_dice"]) + scores["val_nll"]
        return scores

    def _init_segmentation_bias(self, net, fit):
        r"""Start the tumour head at the training foreground fraction instead of :math:`p = 0.5`.

        The head's bias is set to :math:`\operatorname{logit}(\pi)`, with :math:`\pi` the
        share of tumour voxels in the training masks (clipped to [1e-4, 0.5]; per region, the
        nodes' bias from the share of node voxels): the prior
        initialisation of RetinaNet's focal loss (Lin et al., 2017). At :math:`p = 0.5`
        everywhere, the background alone makes the soft Dice close to 0, and its
        gradient is too small for Adam to take the background down within a short schedule.
        """
        for channel, field in enumerate(fit.mask_fields):
            masks = fit.X[field]
            voxels = sum(int(np.count_nonzero(masks[i])) for i in fit.train_idx)
            pi = voxels / (len(fit.train_idx) * float(np.prod(masks.shape[1:])))
            pi = min(max(pi, 1e-4), 0.5)
            with torch.no_grad():
                net.seg_head.bias[channel].fill_(math.log(pi / (1.0 - pi)))
        release_pages(fit.X)  # the masks just read, of a memory-mapped cohort

    def _init_survival_bias(self, net, fit):
        r"""Start the survival head at the population curve instead of :math:`p_j = 0.5`.

        The output bias is set to the logit of the no-covariate maximum-likelihood estimate of
        the discrete-time model on the training patients, :math:`\hat p_j = 1 - d_j / r_j`
        (:math:`d_j = \sum_i f_{ij}` events in interval :math:`j`, :math:`r_j =
        \sum_i (s_{ij} + f_{ij})` patients contributing to it), clipped to [0.01, 0.99]. With
        ``N = 10`` intervals a logit of 0 would start every patient at :math:`S(b_N) = 2^{-10}`.
        """
        s, f = fit.s_train.double(), fit.f_train.double()
        at_risk = (s + f).sum(dim=0)
        p = 1.0 - f.sum(dim=0) / at_risk.clamp(min=1.0)
        p = torch.where(at_risk > 0, p, torch.full_like(p, 0.5)).clamp(0.01, 0.99)
        with torch.no_grad():
            net.survival_head.net[-1].bias.copy_(torch.logit(p).float())

    # ------------------------------------------------------------------ tabular inputs
    def _fit_tabular(self, fit, seg_net):
        """The survival head's tabular inputs: segmentation features of ``seg_net``'s maps,
        radiomics of its masks (selected on the training patients only) and clinical,
        standardised; sets ``fit.tabular`` (training rows) and ``fit.val_tabular``."""
        parts, names = [], []
        n_seg = 0
        if self._seg_features:
            parts.append(self._segmentation_features(seg_net, fit.X, fit.modalities, fit.intensity))
            names += self._segmentation_feature_names(fit.regions)
            n_seg = len(names)
        if self.radiomics and seg_net is not None:
            masks = self._region_masks(seg_net, fit.X, fit.modalities, fit.intensity, fit.regions)
            if self.radiomics_cv is not None:
                self._cross_fit_masks(fit, masks)
            table = self._radiomics_table(fit.X, masks, fit.modalities)
            rows = fit.train_idx
            fit.radiomics_features = self._select_radiomics(
                table.iloc[rows], fit.event[rows], fit.time[rows]
            )
            parts.append(table[fit.radiomics_features].to_numpy(np.float64))
            names += fit.radiomics_features
        if fit.clinical:
            parts.append(clinical_frame(fit.X, fit.clinical).to_numpy(np.float64))
            names += list(fit.clinical)
        fit.tabular_names = names
        values = np.hstack(parts) if parts else np.zeros((len(fit.X), 0))
        fit.scaler = training.Standardiser.fit(values[fit.train_idx])
        if n_seg and self.feature_scaling is None:  # the segmentation features unscaled
            fit.scaler.mean[:n_seg], fit.scaler.scale[:n_seg] = 0.0, 1.0
        fit.tabular_values = fit.scaler.transform(values)  # every patient of X
        if names and self.survival_head != "cox":  # the Cox head trains no survival stage
            z = torch.from_numpy(fit.tabular_values).to(fit.device)
            fit.data.tabular = z[torch.as_tensor(fit.train_idx, device=fit.device)]
            fit.val_tabular = z[torch.as_tensor(fit.val_idx, device=fit.device)]
        fit.tabular = names

    def _tabular(self, X):
        """Standardised tabular inputs of ``X`` (or ``None``)."""
        if not self.tabular_features_:
            return None
        parts = []
        if self._seg_features:
            parts.append(
                self._segmentation_features(
                    self._module("segmentation_network_"), X, self.modalities_, self.intensity_
                )
            )
        if self.radiomics_features_:
            table = self._radiomics_table(X)
            parts.append(table[self.radiomics_features_].to_numpy(np.float64))
        if self.clinical_:
            parts.append(clinical_frame(X, self.clinical_).to_numpy(np.float64))
        return training.Standardiser(self.tabular_mean_, self.tabular_scale_).transform(
            np.hstack(parts)
        )

    def _cross_fit_masks(self, fit, masks: dict) -> None:
        """Replace the training patients' ``masks`` by out-of-fold predictions, in place.

        The training patients are split into ``radiomics_cv`` folds (stratified by event);
        for each fold a stage-I network is trained, as stage I is, on the other folds (with
        the same validation patients picking its kept iteration) and predicts the fold's
        masks. The validation patients keep the full stage-I network's masks.
        """
        from sklearn.model_selection import StratifiedKFold

        stage = STRATEGIES["ssl"][0]  # stage I
        ev = fit.event[fit.train_idx]
        k = self.radiomics_cv
        if min(int(ev.sum()), int((~ev).sum())) >= k:
            splitter = StratifiedKFold(
                k, shuffle=True, random_state=int(fit.rng.integers(2**31 - 1))
            )
            folds = splitter.split(fit.train_idx, ev)
        else:  # too few events (or censored) to stratify
            from sklearn.model_selection import KFold

            splitter = KFold(k, shuffle=True, random_state=int(fit.rng.integers(2**31 - 1)))
            folds = splitter.split(fit.train_idx)
        for inner, held in folds:
            rows = fit.train_idx[inner]
            sub = _FitState(**{
                **{key: v for key, v in vars(fit).items() if key in _FIT_INPUTS},
                "train_idx": rows,
                # the user's callbacks (checkpoints) belong to the main fit, not to these
                "callbacks": None,
            })  # fmt: skip
            sub.data = training.CohortBatches(fit.X, rows, fit.modalities, **fit.batch_kw)
            net, _ = self._train_stage(stage, sub, {}, fit.rng)
            # rows, not fit.X[rows]: that would copy every field of the held-out patients
            fold_masks = self._region_masks(
                net, fit.X, fit.modalities, fit.intensity, fit.regions, rows=fit.train_idx[held]
            )
            for region, m in fold_masks.items():
                masks[region][fit.train_idx[held]] = m
            del sub.data

    def _segmentation_features(self, net, X, modalities, intensity) -> np.ndarray:
        """``(n, S R)`` ``segmentation_statistics`` of ``net``'s region maps on the whole
        volumes (:class:`~survseg.networks.heads.SegmentationFeatures`)."""
        device = next(net.parameters()).device
        features = SegmentationFeatures(detach=True, statistics=self.segmentation_statistics)
        vox = torch.from_numpy(voxel_ml(X))
        net.eval()

        def step(idx):
            images = training.image_tensor(
                X, list(modalities), idx, device=device, intensity=intensity
            )
            suv = training.image_tensor(X, ["pet"], idx, device=device)
            with autocast(device, self.amp):
                logits = net(images, task="segmentation").seg_logits
            return features(torch.sigmoid(logits.float()), suv.float(), vox[idx].to(device))

        out = training.forward_in_batches(step, len(X), self.predict_batch_size)
        return out.astype(np.float64)

    def _segmentation_feature_names(self, regions) -> list:
        return [f"{r}_{what}" for r in regions for what in self.segmentation_statistics]

    def _radiomics_extractor(self, masks: dict, modalities):
        """The configured extractor on the predicted ``masks`` ({region: (n, D, H, W)}):
        ``regions=("tumour", "nodes")`` (node burden included) when the nodes are segmented."""
        from ..radiomics import RadiomicsExtractor

        base = (
            RadiomicsExtractor(settings={"binCount": 32})
            if self.extractor is None
            else self.extractor
        )
        tumour = masks["tumour"]
        params = dict(modalities=list(modalities), mask=lambda _: tumour, empty_mask="nan")
        if "nodes" in masks:
            nodes = masks["nodes"]
            params.update(regions=("tumour", "nodes"), nodes=lambda _: nodes)
        else:
            params.update(regions=("tumour",))
        extractor = clone(base).set_params(**params)
        if self.verbose and "verbose" in extractor.get_params(deep=False):
            extractor.set_params(verbose=self.verbose)  # the extraction's progress bar
        return extractor

    def _radiomics_table(self, X, masks: dict | None = None, modalities=None) -> pd.DataFrame:
        """pyradiomics features of ``X`` (as given) inside the predicted region ``masks``
        (default: those the fitted segmentation network predicts)."""
        if masks is None:
            modalities = self.modalities_
            masks = self._region_masks(
                self._module("segmentation_network_"),
                X,
                modalities,
                self.intensity_,
                self.regions_,
            )
        return self._radiomics_extractor(masks, modalities).fit(X).transform(X)

    def _region_masks(self, net, X, modalities, intensity, regions, rows=None) -> dict:
        """``{region: masks}`` ``net`` predicts for radiomics on the patients ``rows`` of ``X``
        (default all): the tumour never empty (see :meth:`_masks`), the nodes as predicted
        (all zero = no nodes)."""
        prob = self._probabilities(net, X, modalities, intensity, rows=rows)
        return {
            region: self._masks(prob[:, c], nonempty=region == "tumour")
            for c, region in enumerate(regions)
        }

    def _select_radiomics(self, table, event, time) -> list:
        """z-score -> Spearman filter -> Lasso-Cox path, on the training patients only.

        Tumour features that pyradiomics could not compute for some training patient, and
        constant features, are dropped first; node features it could not compute (a tiny
        predicted node region) take the training mean (patients without nodes have 0). The Lasso penalty is the smallest on the path that keeps
        at most ``max_radiomics_features`` features (with a few dozen patients, choosing it
        by cross-validation is noisy), or with ``None`` the cross-validated one.
        """
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        from ..radiomics import CorrelationFilter

        values = table.to_numpy(np.float64)
        # a predicted node region pyradiomics rejects (a voxel or two) gets NaN features:
        # imputed by the training mean (0 after z-scoring, as at predict), not dropped
        nodes = np.asarray([str(c).startswith("nodes_") for c in table.columns])
        seen = np.isfinite(values).sum(axis=0) >= 2
        fill = nodes & seen & ~np.isfinite(values).all(axis=0)
        if fill.any():
            values = values.copy()
            values[:, fill] = np.where(
                np.isfinite(values[:, fill]), values[:, fill], np.nanmean(values[:, fill], axis=0)
            )
        usable = np.isfinite(values).all(axis=0) & (np.nanstd(values, axis=0) > 0)
        if not usable.any():
            return []
        cols = table.columns[usable]
        z = values[:, usable]
        z = (z - z.mean(axis=0)) / z.std(axis=0)
        kept = CorrelationFilter(threshold=self.correlation_threshold).fit(z).get_support()
        cols, z = cols[kept], z[:, kept]
        if not event.any():
            return []
        y = Surv.from_arrays(event, time)
        if self.max_radiomics_features is None:
            return [str(c) for c in cols[self._lasso_cv(z, y, event)]]
        coxnet = CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=100, alpha_min_ratio=0.01)
        coxnet.fit(z, y)
        nonzero = (np.abs(coxnet.coef_) > 0).sum(axis=0)  # per alpha, decreasing alphas
        over = np.flatnonzero(nonzero > self.max_radiomics_features)
        last = over[0] - 1 if over.size else len(nonzero) - 1
        if last < 0:
            return []
        chosen = np.abs(coxnet.coef_[:, last]) > 0
        return [str(c) for c in cols[chosen]]

    def _lasso_cv(self, z, y, event):
        """Non-zero coefficients of a Lasso-Cox whose penalty is picked by inner CV (C-index)."""
        from .lasso_cox import LassoCoxCV

        n_folds = min(5, int(event.sum()), int((~event).sum()))
        if n_folds < 2:
            raise ValueError(
                "max_radiomics_features=None picks the Lasso penalty by cross-validation, which "
                "needs at least 2 events and 2 censored training patients; give a number of "
                "features instead."
            )
        model = LassoCoxCV(cv=n_folds, random_state=training.seed_from(self.random_state)).fit(z, y)
        return np.abs(model.coef_) > 0

    # ------------------------------------------------------------------ forward passes
    def _run(self, net, X, modalities, intensity, fn, tabular=None, rows=None):
        """``fn(net, images, tabular) -> Tensor | tuple`` over the patients ``rows`` of ``X``
        (default all) in whole-volume batches, a batch read at a time; ``tabular`` holds
        one row per patient of ``X``."""
        device = next(net.parameters()).device
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        net.eval()

        def step(idx):
            patients = rows[idx]
            images = training.image_tensor(
                X, list(modalities), patients, device=device, intensity=intensity
            )
            e = None if tabular is None else torch.from_numpy(tabular[patients]).to(device)
            with autocast(device, self.amp):
                return fn(net, images, e)

        return training.forward_in_batches(step, len(rows), self.predict_batch_size)

    def _probabilities(self, net, X, modalities, intensity, rows=None):
        """Probability maps of every region of the patients ``rows`` (default all),
        ``(n, n_regions, D, H, W)`` float32."""
        return self._run(
            net, X, modalities, intensity,
            lambda n, images, e: torch.sigmoid(n(images, task="segmentation").seg_logits.float()),
            rows=rows,
        )  # fmt: skip

    def _masks(self, prob, nonempty):
        """Binary masks of one region's probabilities ``(n, D, H, W)``."""
        masks = (prob > self.mask_threshold).astype(np.uint8)
        if nonempty:
            # radiomics need a region: where nothing passes the threshold, take the voxels
            # within half of that patient's highest probability
            for i in np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1)):
                masks[i] = prob[i] >= 0.5 * prob[i].max()
        return masks

    def _check_X(self, X):
        check_is_fitted(self, "network_")
        # the fields and the volume size of fit (issue 15): the network trains on random crops
        # of the training volumes and predicts on whole volumes of that size
        check_fitted_cohort(self, X, optional=(self.mask_field,))
        check_cohort(X, modalities=self.modalities_, clinical=self.clinical_)
        check_image_content(X, self.modalities_)
        multiple = self.network_.size_multiple
        if any(s % multiple for s in volume_shape(X)):
            raise ValueError(f"volumes of shape {volume_shape(X)} must be divisible by {multiple}.")

    def _survival_probabilities(self, X):
        self._check_X(X)
        return self._run(
            self._network(), X, self.modalities_, self.intensity_,
            lambda n, images, e: torch.sigmoid(n(images, e, task="survival").survival_logits.float()),
            tabular=self._tabular(X),
        ).reshape(len(X), -1)  # fmt: skip

    def _stage_network(self, stage):
        if stage not in ("survival", "segmentation"):
            raise ValueError(f"stage must be 'survival' or 'segmentation'; got {stage!r}.")
        return self._module("network_" if stage == "survival" else "segmentation_network_")

    # ------------------------------------------------------------------ prediction
    @available_if(_discrete_time_head)
    def predict_interval_probabilities(self, X):
        """Conditional survival probability of each interval, :math:`p_j`, shape (n, N)."""
        return self._survival_probabilities(X)

    @available_if(_discrete_time_head)
    def predict_time(self, X):
        r"""Predicted survival time, AdaMSS Eq. 2: :math:`\hat T = \sum_k S(b_k)\,(b_k - b_{k-1})`.

        A restricted mean survival time over ``[0, time_bins_[-1]]``, in the units of ``y``.
        """
        return predicted_time(self._survival_probabilities(X), self.time_bins_)

    def predict(self, X):
        r"""Risk score: minus the predicted survival time of Eq. 2 (higher = earlier event).

        With :math:`p_j` the predicted conditional survival of interval :math:`j` and
        :math:`b` the ``time_bins_``, the risk is
        :math:`-\sum_k \big(\prod_{j \le k} p_j\big)(b_k - b_{k-1})`, which orders patients
        as the authors' C-index does.

        Parameters
        ----------
        X : cohort

        Returns
        -------
        risk : ndarray of shape (n_patients,)
        """
        if has_cox_head(self):
            self._check_X(X)
            return cox_head_risk(vars(self), self._tabular(X))
        return -self.predict_time(X)

    def _survival_values(self, X):
        surv = survival_at_edges(self._survival_probabilities(X))
        return np.hstack([np.ones((len(surv), 1)), surv])

    def predict_survival_function(self, X, return_array=False):
        r"""Survival curves :math:`S(t)`, constant on each interval.

        :math:`S(t) = \prod_{j \le k} p_j` for :math:`b_k \le t < b_{k+1}` (and 1 before
        :math:`b_1`): the probability of surviving every interval that ended by :math:`t`.

        Parameters
        ----------
        X : cohort
        return_array : bool, default=False
            Return an array of shape (n_patients, n_intervals + 1), the values at
            ``time_bins_``, instead of sksurv ``StepFunction`` objects (defined on
            ``[0, time_bins_[-1]]``).
        """
        from sksurv.functions import StepFunction

        if has_cox_head(self):
            return CoxSurvivalMixin.predict_survival_function(self, X, return_array)
        values = self._survival_values(X)
        if return_array:
            return values
        return np.array([StepFunction(self.time_bins_, v) for v in values], dtype=object)

    def predict_cumulative_hazard_function(self, X, return_array=False):
        r"""Cumulative hazard :math:`H(t) = -\log S(t)` of :meth:`predict_survival_function`,
        constant on each interval (values at ``unique_times_`` = ``time_bins_`` with
        ``return_array=True``, else sksurv ``StepFunction``\ s)."""
        from sksurv.functions import StepFunction

        if has_cox_head(self):
            return CoxSurvivalMixin.predict_cumulative_hazard_function(self, X, return_array)
        values = -np.log(self._survival_values(X))
        if return_array:
            return values
        return np.array([StepFunction(self.time_bins_, v) for v in values], dtype=object)

    def _region_probabilities(self, X) -> np.ndarray:
        """Probabilities of every region, ``(n, R, D, H, W)``: for ``"ssl"`` and ``"stl"``
        from the stage-I network (stage II is tuned for survival only), for ``"mtl"`` from
        the multi-task network."""
        self._check_X(X)
        return self._probabilities(
            self._module("segmentation_network_"), X, self.modalities_, self.intensity_
        )

    def fusion_weights(self, X, stage="survival", per_patient=False):
        r"""Mean fusion-gate weight :math:`w_{fuse}` of each encoder level (the paper's Table IV).

        Parameters
        ----------
        X : cohort
        stage : {"survival", "segmentation"}
            Network to inspect: the survival network (stage II) or the segmentation network
            (stage I). They are the same network for ``"mtl"``.
        per_patient : bool, default=False
            Return one row per patient instead of the mean over ``X``.

        Returns
        -------
        w_fuse : ndarray of shape (n_levels,) or (n_patients, n_levels)
            Mean over voxels and channels (and patients) of :math:`w_{fuse}` per level, finest
            first; :math:`w_{pc} = 1 - w_{fuse}`. 0.5 before training.
        """
        self._check_X(X)
        if self.fusion != "adaptive":
            raise ValueError(f"fusion={self.fusion!r} has no fusion gates; only 'adaptive' does.")

        def fn(net, images, e):
            gates = net(images, task="segmentation", return_fusion_weights=True).fusion_weights
            return torch.stack([g.float().mean(dim=(1, 2, 3, 4)) for g in gates], dim=1)

        w = self._run(self._stage_network(stage), X, self.modalities_, self.intensity_, fn)
        return w if per_patient else w.mean(axis=0)

    def attention_maps(self, X, stage="survival", upsample=True):
        r"""Attention maps :math:`\alpha` of the decoder's gates (the paper's Fig. 3).

        Parameters
        ----------
        X : cohort
        stage : {"survival", "segmentation"}
            Network to inspect (see :meth:`fusion_weights`).
        upsample : bool, default=True
            Resample every map to the volume size (trilinear), so it can be overlaid on the
            image; otherwise each stays at its level's resolution.

        Returns
        -------
        maps : list of ndarray
            One per attention gate, finest level first, each (n_patients, d, h, w) with
            values in (0, 1).
        """
        self._check_X(X)
        size = volume_shape(X)

        def fn(net, images, e):
            maps = net(images, e, task="segmentation", return_attention=True).attention_maps
            if upsample:
                maps = [
                    F.interpolate(a.float(), size=size, mode="trilinear", align_corners=False)
                    for a in maps
                ]
            return tuple(a[:, 0].float() for a in maps)

        out = self._run(self._stage_network(stage), X, self.modalities_, self.intensity_, fn)
        return list(out) if isinstance(out, tuple) else [out]


#: What a fold's ``_FitState`` copies from the main one (inputs, not results).
_FIT_INPUTS = (
    "X", "modalities", "clinical", "intensity", "bins", "event", "time", "s", "f", "val_idx",
    "device", "regions", "mask_fields", "val_images", "batch_kw", "rng",
)  # fmt: skip


class _FitState:
    """What the stages of one ``fit`` share (local to that call, never fitted state)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.tabular = None
        self.tabular_names = []
        self.radiomics_features = []
        self.scaler = training.Standardiser(np.zeros(0), np.zeros(0))
        self.val_tabular = None
        rows = torch.as_tensor(self.train_idx, device=self.s.device)
        self.s_train, self.f_train = self.s[rows], self.f[rows]
