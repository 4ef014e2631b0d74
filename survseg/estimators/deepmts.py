r"""DeepMTSRegressor: joint tumour segmentation and Cox survival prediction from PET/CT.

One class with its own parts only (network inputs, losses, validation scores, predictions);
the training recipe is :mod:`survseg.training`'s. It is longer than 400 lines because its
docstring carries every parameter with its paper value and the paper-table mapping.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..data.cohort import volume_shape
from ..data.validation import (
    check_cohort,
    check_fitted_cohort,
    check_image_content,
    check_survival,
)
from ..evaluation.metrics import dice_score
from ..losses.cox import cox_partial_likelihood_loss
from ..losses.segmentation import region_dice_loss
from ..networks.deepmts import DeepMTS
from ..networks.heads import SEGMENTATION_STATISTICS, check_statistics
from ..training import (
    CohortBatches,
    Standardiser,
    assign_fitted,
    balanced_batches,
    bind_checkpoints,
    c_index_or_nan,
    check_intensity,
    forward_in_batches,
    head_l2_adam,
    image_tensor,
    make_generators,
    mask_tensor,
    monitor_key,
    preload_storage,
    random_batches,
    seed_from,
    seeded,
    step_schedule,
    train,
    validation_every,
    validation_split,
)
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

__all__ = ["DeepMTSRegressor"]

# Shape parameters of DeepMTS that ``network_params`` may set (the switches are estimator params).
_SHAPE_PARAMS = tuple(
    name
    for name, p in inspect.signature(DeepMTS.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY
    and name
    not in ("segmentation", "hard_sharing", "cascade", "backbone", "feature_convs", "n_regions")
)


def _has_survival_head(est) -> bool:
    if not est._survival:
        raise AttributeError(
            "this DeepMTSRegressor has no survival head (hard_sharing=False, cascade=False: the "
            "paper's Seg-Backbone); it only segments."
        )
    return True


class DeepMTSRegressor(SegmentationMixin, CoxSurvivalMixin, TransformerMixin, DeepSurvivalBase):
    r"""DeepMTS: deep multi-task survival model with tumour segmentation (Meng et al. 2022).

    A residual 3D U-Net segments the primary tumour from PET/CT; its encoder features
    (hard-sharing branch) and a 3D DenseNet fed with the images and the predicted tumour map
    (cascaded survival network) give a Cox log-risk. Trained end to end on

    .. math:: L = L_{\text{Dice}} + L_{\text{Cox}} + \lambda \lVert W_{FC} \rVert^2 ,

    the squared-denominator Dice loss (paper Eq. 2,
    :func:`survseg.losses.segmentation.dice_loss`), the Cox negative partial log-likelihood
    of the batch (Eq. 3, :func:`survseg.losses.cox.cox_partial_likelihood_loss`) and L2 on
    the FC kernels, applied as Adam weight decay on those parameters only.

    Parameters
    ----------
    modalities : sequence of str, default=("pet", "ct")
        Image fields of ``X`` fed to the network, as channels in this order. Volumes are
        ``(D, H, W)`` with W the left-right axis (the sagittal flip mirrors W).
    intensity : dict or None, default=None
        Per-patient intensity normalisation of the image fields, done on the device for every
        batch: ``{"pet": "zscore", "ct": "zscore"}`` is the paper's. Values: ``"zscore"``,
        ``"window"`` ([-1024, 1024] HU to [-1, 1]), ``("window", low, high)`` or ``None``.
        Leave ``None`` for cohorts already normalised by :func:`survseg.preprocess.preprocess`;
        set it for cohorts in physical units (SUV, HU) such as
        :func:`survseg.datasets.make_petct_cohort`.
    clinical : sequence of str or None, default=None
        Scalar fields of ``X`` concatenated before the risk layer (e.g. ``["tnm_stage"]``);
        z-scored with the training statistics.
    mask_field : str, default="mask"
        Field holding the tumour labels (needed by ``fit`` unless ``segmentation=False``).
    nodes_field : str or None, default="nodes"
        Field holding the lymph-node labels. When it is in ``X`` at ``fit`` (and
        ``segmentation=True``) the network segments two regions, tumour and nodes (two output
        channels, the Dice loss summed over the regions, as in the authors' AdaMSS code), and
        the cascade sees both probability maps; otherwise only the tumour (the paper).
        ``None``: the tumour only, even when the field is there. Patients without nodes
        (an all-zero mask) are valid.
    segmentation : bool, default=True
        Train the segmentation branch (multi-task). ``False`` gives the paper's
        single-task "Sur-" models.
    hard_sharing : bool, default=True
        Survival features from the backbone's encoder (FC-1).
    cascade : bool, default=True
        Survival features from the cascaded 3D DenseNet (FC-2).
    backbone : {"residual", "plain"}, default="residual"
        Residual blocks (DeepMTS) or a plain 3D U-Net (the paper's "U-net" baselines).
    feature_convs : bool, default=True
        1x1x1 conv-BN-ReLU before pooling the hard-sharing features (``False`` = "baseline
        MT-HS" of Table V).
    mask_input : bool, default=False
        Multiply the images by the manual mask (the paper's "using segmentation" Sur-
        models); the mask is then needed by ``predict`` too. Only with
        ``segmentation=False``.
    survival_inputs : {"pooled", "segmentation", "pooled+segmentation"}, \
            default="pooled"
        What the survival head sees. ``"segmentation"``: per segmented region, features of
        the network's own predicted probability map :math:`p_r` (detached, so the Cox loss
        cannot reshape the segmentation): :math:`\log(1 + V_r)`, :math:`\log(1 + U_r)` and
        :math:`U_r / V_r`, with :math:`V_r = v \sum_x p_r(x)` the soft volume in ml (:math:`v`
        the voxel volume from the cohort's ``spacing``, 1 mm^3 without one) and
        :math:`U_r = v \sum_x p_r(x)\,\mathrm{SUV}(x)` the soft total uptake on the
        *un-normalised* ``"pet"`` field (read next to the normalised images and augmented
        with them), or the statistics ``segmentation_statistics`` names. The hard-sharing
        and cascade branches are then not built.
        ``"pooled"``: the paper's globally average-pooled encoder / cascade features
        (``hard_sharing``, ``cascade``). ``"pooled+segmentation"``: both. Pooling over the
        whole volume dilutes a small lesion, and the pooled features hardly vary between
        patients; on development cohorts (150 patients, 32^3) the segmentation features
        learned much more (``benchmarks/heads/RESULTS.md``). Needs ``segmentation=True``
        and a ``"pet"`` modality unless ``"pooled"``.
    segmentation_statistics : sequence of str, \
            default=("log_volume", "log_uptake", "mean_suv")
        The per-region statistics of the predicted maps that ``survival_inputs`` other than
        ``"pooled"`` gives the head, in order; any of
        :data:`~survseg.networks.heads.PET_STATISTICS`: also ``"log_max_suv"`` (SUVmax) and
        ``"suv_cv"`` (the SUV coefficient of variation), with their formulas in
        :class:`~survseg.networks.heads.SegmentationFeatures`. The standard quantitative
        PET set (MTV, TLG, SUVmean, SUVmax, COV) is ``PET_STATISTICS``. On two development
        cohorts it changed a Cox model on DeepMTS's predicted maps by +0.016 and -0.005 of
        C-index (``benchmarks/heads/gap.py``): no clear gain, so the default stays.
    feature_scaling : {"standardize"} or None, default=None
        z-score each survival branch's features before its FC layer, :math:`(x - \mu) /
        \sigma`. The features change while the network trains end to end, so :math:`\mu,
        \sigma` are running statistics of the training batches (momentum 0.05, about the
        last 20 batches; the first batch sets them), used unchanged at prediction and saved
        with the network. ``None``: no scaling (the paper). The defaults are the paper's DeepMTS; on 50-400
        patients ``survival_inputs="segmentation", feature_scaling="standardize"`` learned
        more in the development runs of ``benchmarks/heads/``; with ``survival_head="cox"``
        as well, it beat tumour radiomics on evaluation seed 3 (``benchmarks/README.md``).
    survival_head : {"network", "cox"}, default="network"
        Where the risk comes from. ``"network"``: the network's own risk layer, trained end
        to end with the Cox loss of each batch (the paper). ``"cox"``: after training, the
        network is frozen and a ridge Cox model on its survival features (:meth:`transform`)
        and the ``clinical`` covariates, z-scored, is fitted on all patients of ``X`` at once
        (:mod:`survseg.estimators._cox_head`); :meth:`predict` then returns its log-risk.
        The batch Cox loss of a few hundred iterations hardly moves a risk layer on 50-400
        patients; on the development cohorts the refitted head on the same networks' features
        gained 0.08 of C-index (``benchmarks/README.md``). Validation scores in ``history_``
        (and the kept checkpoint) are still those of the network's head.
    cox_alpha : float, default=100.0
        Ridge penalty :math:`\alpha` of ``survival_head="cox"``
        (``sksurv.linear_model.CoxPHSurvivalAnalysis(alpha)``, on z-scored features). Strong
        on purpose: with 30-100 events the ranking of shrunk coefficients generalises better.
        On development seeds 1, 11 and 21 (150 patients), the same networks with alpha 10 ->
        100 went from within-fold C 0.722 -> 0.740 (DeepMTS) and 0.733 -> 0.749 (AdaMSS) on
        average; on the true masks' features C is flat from 100 to 10^4
        (``benchmarks/heads/RESULTS.md``). It was 10.
    network_params : dict or None, default=None
        Layer shapes passed to :class:`survseg.networks.deepmts.DeepMTS` (``channels``,
        ``encoder_convs``, ``decoder_convs``, ``feature_channels``, ``dense_*``, ``fc_units``,
        ``fc_dropout``; the paper's values are the defaults) and ``seg_prior``, the initial
        tumour probability of the segmentation head (0.01; see
        :class:`~survseg.networks.deepmts.SegmentationBackbone`).
    max_iter : int, default=15000
        Training iterations (batches).
    batch_size : int, default=8
    balanced : bool, default=True
        Each batch holds ``batch_size // 2`` patients with an event and the rest censored,
        never a patient twice. A group smaller than its quota (say 3 training events for
        4 + 4) goes whole into every batch, so batches are smaller than ``batch_size``, with
        a warning naming the counts (:func:`~survseg.training.balanced_batches`); with no
        censored patient, batches are all events. ``False`` (or no survival
        head): random batches; a batch without an event then contributes a zero Cox loss.
    lr : float, default=1e-4
        Adam's initial learning rate.
    lr_milestones : sequence of float, default=(1/6, 1/3, 2/3)
        Fractions of ``max_iter`` at which the learning rate steps down (the paper's 2,500th,
        5,000th and 10,000th of 15,000 iterations), so a short run keeps the paper's shape.
    lr_factors : sequence of float, default=(0.5, 0.1, 0.01)
        Learning rate after each milestone, as a fraction of ``lr`` (1e-4 -> 5e-5 -> 1e-5 ->
        1e-6).
    head_l2 : float, default=0.1
        The paper's :math:`\lambda` of :math:`\lambda \lVert W_{FC} \rVert^2` on the FC kernels
        (Keras ``l2(0.1)``), applied as Adam weight decay :math:`2\lambda` on them only.
    ties : {"breslow", "efron"}, default="breslow"
        Tie handling of the Cox loss (Breslow is the paper's Eq. 3).
    seg_loss_weight : float, default=1.0
        Weight of the Dice loss relative to the Cox loss.
    max_translation : float, default=10
        Augmentation: random shift of up to this many voxels per axis.
    max_rotation : float, default=5
        Augmentation: random rotation of up to this many degrees about each axis.
    flip : bool, default=True
        Augmentation: random left-right (sagittal) flip.
    validation_fraction : float, default=0
        Hold out this fraction of the patients (``round(fraction * n)``, stratified by event):
        validation scores are recorded in ``history_`` and the best checkpoint (see
        ``monitor``) is kept. ``0``: no validation, the last iteration is kept.
    validate_every : int or None, default=None
        Validation interval in iterations (default 2 % of ``max_iter``).
    monitor : {"c_index", "loss", "dice"} or None, default="c_index"
        Validation score that selects the kept checkpoint: highest C-index (``val_c_index``),
        lowest Cox loss (``val_loss``) or highest Dice (``val_dice``); ``None`` keeps the last
        iteration. Without a survival head "c_index" falls back to "dice". The C-index of a
        small validation split is noisy; the Cox loss is a smoother criterion.
    mask_threshold : float, default=0.5
        Probability above which :meth:`predict_mask` calls a voxel part of a region.
    random_state : int, RandomState or None, default=None
        Seeds network initialisation, dropout, batch sampling, augmentation and the split.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    amp : {"auto", True, False}, default="auto"
        Mixed precision (CUDA only); "auto" = on when training on CUDA.
    channels_last : bool, default=False
        Use the ``channels_last_3d`` memory format (can speed up convolutions on GPUs).
    preload : {"auto", True, False}, default="auto"
        Whether the training volumes are read and intensity-normalised once at the start of
        ``fit`` and kept in memory: ``True`` on the device; ``False`` not kept, each batch's
        patients read from ``X`` (a memory-mapped cohort is then never resident) and
        normalised on the device; "auto" = preloaded on a GPU when they take less than a
        fifth of its memory, else in CPU memory when they take at most
        :data:`survseg.training.PRELOAD_BUDGET` (512 MiB as float32 images and uint8 masks),
        else read per batch. Both ways give the same batches and the same model.
    verbose : int, default=0
        ``> 0`` shows a progress bar with the loss and the latest validation scores.
    predict_batch_size : int, default=4
        Patients per forward pass at validation and prediction.
    callbacks : list of callables or None, default=None
        Each called as ``callback(stage, iteration, row)`` after every training iteration
        (``row``: that iteration's history entries); raising stops ``fit``, which then leaves
        the estimator as it was. A :class:`~survseg.training.Checkpoint` saves the training
        state every ``every`` iterations and resumes an interrupted fit.

    Attributes
    ----------
    network_ : survseg.networks.deepmts.DeepMTS
        The trained network (best checkpoint when validating).
    history_ : pandas.DataFrame
        Per iteration: ``stage``, ``iteration``, ``lr``, ``loss``, ``cox_loss``,
        ``dice_loss`` (summed over the regions); at validation iterations ``val_c_index``,
        ``val_loss`` (Cox loss of the validation patients), ``val_dice`` (tumour),
        ``val_dice_loss`` and, with two regions, ``val_dice_nodes`` (mean Dice of the
        validation patients that have nodes; NaN when none has).
    regions_ : tuple of str
        The segmented regions, in output-channel order: ``("tumour",)`` or
        ``("tumour", "nodes")`` (``()`` with ``segmentation=False``).
    best_iteration_ : dict
        ``{stage: iteration of the kept weights}``; the stage is ``"multitask"``,
        ``"survival"`` (``segmentation=False``) or ``"segmentation"`` (no survival head).
    n_features_out_ : int
        Deep features given by :meth:`transform` (236 at the defaults).
    intensity_ : dict
        The parsed ``intensity`` (``{field: (method, arguments)}``).
    tabular_mean_, tabular_scale_ : ndarray
        Standardisation of the clinical covariates (training statistics).
    image_shape_ : tuple of int
    head_mean_, head_scale_, head_coef_ : ndarray or None
        The ``survival_head="cox"`` model (z-scoring and coefficients over :meth:`transform`'s
        columns then the clinical covariates); ``None`` with the network's head.
    baseline_model_ : sksurv.linear_model.coxph.BreslowEstimator
        Breslow baseline hazard on the training risks.
    unique_times_ : ndarray

    Notes
    -----
    The paper's models (Tables II-V) by parameters:

    ==============================  ===============================================
    DeepMTS                         defaults
    MT-HS                           ``cascade=False``
    MT-CasNet                       ``hard_sharing=False``
    Seg-Backbone                    ``hard_sharing=False, cascade=False``
    Sur-HS (no segmentation)        ``segmentation=False, cascade=False``
    Sur-HS (using segmentation)     the same with ``mask_input=True``
    Sur-CasNet (no segmentation)    ``segmentation=False, hard_sharing=False``
    Sur-CasNet (using segmentation) the same with ``mask_input=True``
    U-net / ... (U-net) versions    ``backbone="plain"`` with the switches above
    MT-HS (Baseline)                ``cascade=False, feature_convs=False``
    Deep features + Lasso-Cox etc.  ``Pipeline([("deep", DeepMTSRegressor()), ...])``
    5-fold ensemble (Sec. 4.7)      ``FoldEnsemble(DeepMTSRegressor(), cv=5)``
    ==============================  ===============================================

    The sizes must suit the network: divisible by 16 with the segmentation branch (the
    paper's 128x128x112 is) and at least 19 voxels per axis with the cascade.

    References
    ----------
    M. Meng, B. Gu, L. Bi, S. Song, D. D. Feng, J. Kim, "DeepMTS: Deep multi-task learning
    for survival prediction in patients with advanced nasopharyngeal carcinoma using
    pretreatment PET/CT", IEEE J. Biomed. Health Inform. 26(9):4497-4507, 2022.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from survseg.estimators.deepmts import DeepMTSRegressor
    >>> scores = cross_val_score(DeepMTSRegressor(), X, y, cv=5)  # doctest: +SKIP
    """

    _parameter_constraints = {
        **DEEP_PARAMETER_CONSTRAINTS,
        "clinical": [None, list, tuple],
        "segmentation": ["boolean"],
        "survival_inputs": [StrOptions({"segmentation", "pooled", "pooled+segmentation"})],
        "segmentation_statistics": [list, tuple],
        "feature_scaling": [None, StrOptions({"standardize"})],
        "survival_head": [StrOptions({"network", "cox"})],
        "cox_alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "hard_sharing": ["boolean"],
        "cascade": ["boolean"],
        "backbone": [StrOptions({"residual", "plain"})],
        "feature_convs": ["boolean"],
        "mask_input": ["boolean"],
        "nodes_field": [None, str],
        "balanced": ["boolean"],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "lr_factors": [list, tuple],
        "ties": [StrOptions({"breslow", "efron"})],
        "seg_loss_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "max_translation": [Interval(numbers.Real, 0, None, closed="left")],
        "max_rotation": [Interval(numbers.Real, 0, None, closed="left")],
        "flip": ["boolean"],
        "channels_last": ["boolean"],
        "preload": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(
        self,
        *,
        modalities=("pet", "ct"),
        intensity=None,
        clinical=None,
        mask_field="mask",
        nodes_field="nodes",
        segmentation=True,
        hard_sharing=True,
        cascade=True,
        backbone="residual",
        feature_convs=True,
        mask_input=False,
        survival_inputs="pooled",
        segmentation_statistics=SEGMENTATION_STATISTICS,
        feature_scaling=None,
        survival_head="network",
        cox_alpha=100.0,
        network_params=None,
        max_iter=15000,
        batch_size=8,
        balanced=True,
        lr=1e-4,
        lr_milestones=(1 / 6, 1 / 3, 2 / 3),
        lr_factors=(0.5, 0.1, 0.01),
        head_l2=0.1,
        ties="breslow",
        seg_loss_weight=1.0,
        max_translation=10.0,
        max_rotation=5.0,
        flip=True,
        validation_fraction=0.0,
        validate_every=None,
        monitor="c_index",
        mask_threshold=0.5,
        random_state=None,
        device="auto",
        amp="auto",
        channels_last=False,
        preload="auto",
        verbose=0,
        predict_batch_size=4,
        callbacks=None,
    ):
        self.modalities = modalities
        self.intensity = intensity
        self.clinical = clinical
        self.mask_field = mask_field
        self.nodes_field = nodes_field
        self.segmentation = segmentation
        self.hard_sharing = hard_sharing
        self.cascade = cascade
        self.backbone = backbone
        self.feature_convs = feature_convs
        self.mask_input = mask_input
        self.survival_inputs = survival_inputs
        self.segmentation_statistics = segmentation_statistics
        self.feature_scaling = feature_scaling
        self.survival_head = survival_head
        self.cox_alpha = cox_alpha
        self.network_params = network_params
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.balanced = balanced
        self.lr = lr
        self.lr_milestones = lr_milestones
        self.lr_factors = lr_factors
        self.head_l2 = head_l2
        self.ties = ties
        self.seg_loss_weight = seg_loss_weight
        self.max_translation = max_translation
        self.max_rotation = max_rotation
        self.flip = flip
        self.validation_fraction = validation_fraction
        self.validate_every = validate_every
        self.monitor = monitor
        self.mask_threshold = mask_threshold
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.preload = preload
        self.verbose = verbose
        self.predict_batch_size = predict_batch_size
        self.callbacks = callbacks

    # ------------------------------------------------------------------ parameters
    @property
    def _survival(self) -> bool:
        if self.survival_inputs != "pooled":
            return True
        return bool(self.hard_sharing or self.cascade)

    def _branches(self) -> dict:
        """The network's survival switches for ``survival_inputs``."""
        pooled = self.survival_inputs != "segmentation"
        return dict(
            hard_sharing=bool(self.hard_sharing and pooled),
            cascade=bool(self.cascade and pooled),
            segmentation_features=self.survival_inputs != "pooled",
            segmentation_statistics=tuple(self.segmentation_statistics),
            feature_scaling=self.feature_scaling == "standardize",
        )

    @property
    def _uses_suv(self) -> bool:
        return self.survival_inputs != "pooled"

    def _check_params(self) -> dict:
        """sklearn's constraints, then what they cannot express; returns the network shape."""
        self._validate_params()
        modalities = self._modality_names()
        if self.balanced and self._survival and self.batch_size < 2:
            raise ValueError("balanced batches need batch_size >= 2 (an event and a censored).")
        if self.clinical is not None and isinstance(self.clinical, str):
            raise ValueError(
                f"clinical must be a list of field names; got the string {self.clinical!r}."
            )
        if not (self.segmentation or self._survival):
            raise ValueError(
                "segmentation, hard_sharing and cascade are all False: nothing to train."
            )
        if self.mask_input and self.segmentation:
            raise ValueError(
                "mask_input=True feeds the manual mask to the network (the paper's 'using "
                "segmentation' Sur- models); it needs segmentation=False."
            )
        if self._uses_suv and not self.segmentation:
            raise ValueError(
                f"survival_inputs={self.survival_inputs!r} reads the survival features off the "
                "predicted maps, which needs segmentation=True; the paper's single-task Sur- "
                "models are survival_inputs='pooled'."
            )
        check_statistics(self.segmentation_statistics, "segmentation_statistics")
        if self._uses_suv and "pet" not in modalities:
            raise ValueError(
                f"survival_inputs={self.survival_inputs!r} measures uptake in the 'pet' "
                f"modality (SUV); modalities are {list(modalities)}."
            )
        if self.monitor == "loss" and not self._survival:
            raise ValueError("monitor='loss' (the Cox loss) needs a survival head.")
        if self.monitor == "dice" and not self.segmentation:
            raise ValueError("monitor='dice' needs segmentation=True.")
        params = dict(self.network_params or {})
        unknown = sorted(set(params) - set(_SHAPE_PARAMS))
        if unknown:
            raise ValueError(f"unknown network_params {unknown}; allowed: {list(_SHAPE_PARAMS)}.")
        check_intensity(self.intensity, modalities)
        return params

    @property
    def _stage(self) -> str:
        if not self._survival:
            return "segmentation"
        return "multitask" if self.segmentation else "survival"

    # ------------------------------------------------------------------ inputs
    def _check_X(self, X, require_mask):
        check_cohort(
            X,
            modalities=list(self._modality_names()),
            require_mask=require_mask,
            mask_field=self.mask_field,
            clinical=list(self.clinical or ()),
        )
        # a blank tumour region, then a constant image, each named with its patients
        check_image_content(
            X, self._modality_names(), mask_field=self.mask_field if require_mask else None
        )
        return X

    def _clinical(self, X, rows=None) -> np.ndarray:
        """Raw clinical values, ``(n, n_clinical)`` float64."""
        fields = list(self.clinical or ())
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        if not fields:
            return np.zeros((len(rows), 0))
        # field by field: X[rows] would copy every image of the rows
        return np.stack([np.asarray(X[c][rows], dtype=np.float64) for c in fields], axis=1)

    def _net_inputs(self, images, masks, clinical, suv=None, voxel_ml=None):
        if suv is not None:  # the network wants the raw PET and the voxel volumes
            return self._image_inputs(images, masks), clinical, suv, voxel_ml
        return self._image_inputs(images, masks), clinical

    def _image_inputs(self, images, masks):
        if self.mask_input:  # image x (augmented) manual mask
            images = images * masks
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        return images

    def _outputs(self, net, X, intensity, scaler, want_seg=False, rows=None):
        """Forward passes over the patients ``rows`` of ``X`` (default all), a batch read at a
        time: ``(log_risk, features, region logits (n, R, D, H, W))``."""
        device = next(net.parameters()).device
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        clinical = scaler.transform(self._clinical(X, rows)) if len(scaler.mean) else None
        modalities = list(self._modality_names())
        vox_ml = torch.from_numpy(voxel_ml(X)[rows])

        def fn(idx):
            patients = rows[idx]
            images = image_tensor(X, modalities, patients, device=device, intensity=intensity)
            masks = None
            if self.mask_input:
                masks = mask_tensor(X, [self.mask_field], patients, device=device).float()
            clin = None if clinical is None else torch.from_numpy(clinical[idx]).to(device)
            suv = vox = None
            if net.seg_features is not None:
                suv = image_tensor(X, ["pet"], patients, device=device)
                vox = vox_ml[idx].to(device)
            with autocast(device, self.amp):
                out = net(*self._net_inputs(images, masks, clin, suv, vox))
            n = images.shape[0]
            risk = out.log_risk.float() if out.log_risk is not None else images.new_zeros(n)
            seg = out.seg_logits.float() if want_seg else images.new_zeros(n)
            return risk, out.features.float(), seg

        net.eval()
        return forward_in_batches(fn, len(rows), self.predict_batch_size)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train the network on a cohort.

        ``fit`` is atomic: the fitted state is assigned at the end, so an error, a divergence
        or an interruption leaves the estimator as it was.

        Parameters
        ----------
        X : cohort (structured ndarray)
            With the ``modalities`` image fields, the ``mask_field`` labels (unless
            ``segmentation=False``) and the ``clinical`` fields.
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv.from_arrays``).

        Returns
        -------
        self

        Raises
        ------
        FloatingPointError
            When training diverges (the message names the iteration).
        """
        net_params = self._check_params()
        modalities = self._modality_names()
        survival = self._survival
        need_mask = self.segmentation or self.mask_input
        self._check_X(X, need_mask)
        regions, mask_fields = self._regions(X)
        event, time = check_survival(y, len(X), require_events=survival)
        device = self._device()
        seed = seed_from(self.random_state)
        intensity = check_intensity(self.intensity, modalities)
        train_idx, val_idx = validation_split(
            event, self.validation_fraction, seed, need_events=survival
        )
        callbacks = bind_checkpoints(self.callbacks, self, X, y, device)
        scaler = Standardiser.fit(self._clinical(X, train_idx))
        tabular = scaler.transform(self._clinical(X, train_idx)) if len(scaler.mean) else None

        with seeded(seed, device):
            net = self._build_network(len(scaler.mean), regions, net_params).to(device)
            problems = net.size_problems(volume_shape(X))
            if problems:  # before any volume is read or any iteration run
                raise ValueError(
                    f"volumes of shape {volume_shape(X)} (D, H, W) cannot pass "
                    f"{type(self).__name__}'s network: " + "; ".join(problems) + ". Crop or "
                    "pad the volumes (the paper uses 128x128x112) or change network_params."
                )
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last_3d)
            optimizer = head_l2_adam(net, net.head_weights(), self.lr, self.head_l2)
            scheduler = step_schedule(optimizer, self.lr_milestones, self.lr_factors, self.max_iter)
            rng, gen = make_generators(seed, device)
            data = CohortBatches(
                X,
                train_idx,
                modalities,
                device=device,
                intensity=intensity,
                mask_field=mask_fields if need_mask else None,
                raw_fields=["pet"] if self._uses_suv else (),
                tabular=tabular,
                augment=dict(
                    max_translation=self.max_translation,
                    max_rotation=self.max_rotation,
                    flip_axes=(-1,) if self.flip else (),
                ),
                generator=gen,
                storage=preload_storage(self.preload),
            )
            if self.balanced and survival:
                n_ev = self.batch_size // 2
                sampler = balanced_batches(event[train_idx], n_ev, self.batch_size - n_ev, rng)
            else:
                sampler = random_batches(len(train_idx), self.batch_size, rng)
            ev = torch.as_tensor(event[train_idx], device=device)
            tm = torch.as_tensor(time[train_idx], device=device)
            vox = torch.as_tensor(voxel_ml(X)[train_idx], device=device)
            batches = (data.batch(local) for local in sampler)
            monitor = "dice" if self.monitor == "c_index" and not survival else self.monitor
            key, mode = monitor_key(monitor)
            validate = None
            if len(val_idx):
                validate = self._validator(
                    X, val_idx, event, time, device, intensity, scaler, mask_fields
                )
            result = train(
                net,
                batches,
                lambda module, batch: self._loss(module, batch, ev, tm, vox),
                optimizer,
                max_iter=self.max_iter,
                device=device,
                scheduler=scheduler,
                validate=validate,
                validate_every=validation_every(self.validate_every, self.max_iter),
                monitor=None if validate is None else key,
                mode=mode,
                amp=self._amp(device),
                verbose=self.verbose,
                desc=self._stage,
                callbacks=callbacks,
                random_sources=(rng, gen, sampler),
            )
        state = dict(
            network_=net,
            history_=result.history.assign(stage=self._stage),
            best_iteration_={self._stage: result.best_iteration},
            n_features_out_=net.n_features,
            intensity_=intensity,
            tabular_mean_=scaler.mean,
            tabular_scale_=scaler.scale,
            image_shape_=volume_shape(X),
            regions_=regions,
        )
        if survival:
            risk, features, _ = self._outputs(net, X, intensity, scaler)
            risk = risk.astype(np.float64)
            head = dict(head_mean_=None, head_scale_=None, head_coef_=None)
            if self.survival_head == "cox":
                features = np.hstack([features, self._clinical(X)])
                head = fit_cox_head(features, event, time, self.cox_alpha)
                risk = cox_head_risk(head, features)
            state.update(head)
            state.update(self._baseline(risk, event, time))
        return assign_fitted(self, state)

    def _build_network(self, n_tabular, regions, net_params) -> DeepMTS:
        return DeepMTS(
            len(self._modality_names()),
            n_tabular,
            segmentation=self.segmentation,
            backbone=self.backbone,
            **self._branches(),
            feature_convs=self.feature_convs,
            n_regions=max(len(regions), 1),
            **net_params,
        )

    def _networks_from_fitted(self) -> dict:
        net_params = dict(self.network_params or {})
        return {"network_": self._build_network(len(self.tabular_mean_), self.regions_, net_params)}

    def _loss(self, module, batch, event, time, voxel_ml):
        images, suv, vox = batch.images, None, None
        if module.seg_features is not None:  # the raw PET rides as the last channel
            images, suv = images[:, :-1], images[:, -1:]
            vox = voxel_ml[batch.index]
        out = module(*self._net_inputs(images, batch.masks, batch.tabular, suv, vox))
        parts = {}
        total = 0.0
        if out.log_risk is not None:
            parts["cox_loss"] = cox_partial_likelihood_loss(
                out.log_risk.float(), event[batch.index], time[batch.index], ties=self.ties
            )
            total = total + parts["cox_loss"]
        if out.seg_logits is not None:
            parts["dice_loss"] = self._dice_loss(out.seg_logits, batch.masks)
            total = total + self.seg_loss_weight * parts["dice_loss"]
        return {"loss": total, **parts}

    @staticmethod
    def _dice_loss(logits, masks, reduction="mean"):
        """Squared-denominator Dice loss summed over the regions, averaged over patients
        (:func:`~survseg.losses.segmentation.region_dice_loss`; the tumour channel is the
        paper's Eq. 2 unchanged)."""
        return region_dice_loss(logits, masks, squared=True, reduction=reduction)

    def _regions(self, X):
        """``(region names, mask fields)`` the network segments, read from ``X`` at fit."""
        if not self.segmentation:
            return (), [self.mask_field]
        return segmented_regions(X, self.mask_field, self.nodes_field)

    def _validator(self, X, val_idx, event, time, device, intensity, scaler, mask_fields):
        """Validation scores of the held-out patients (whole volumes, no augmentation)."""
        ev, tm = event[val_idx], time[val_idx]
        truth = None  # uint8 (n, R, D, H, W); X[val_idx] would copy every field of the rows
        if self.segmentation:
            truth = mask_tensor(X, mask_fields, val_idx).numpy()

        def validate(module):
            risk, _, logits = self._outputs(
                module, X, intensity, scaler, self.segmentation, rows=val_idx
            )
            scores = {}
            if self._survival:
                scores["val_c_index"] = c_index_or_nan(ev, tm, risk)
                scores["val_loss"] = float(
                    cox_partial_likelihood_loss(
                        torch.from_numpy(risk).double(),
                        torch.as_tensor(ev),
                        torch.as_tensor(tm),
                        ties=self.ties,
                    )
                )
            if self.segmentation:
                scores["val_dice"] = float(np.mean(dice_score(truth[:, 0], logits[:, 0] > 0)))
                if truth.shape[1] > 1:
                    scores["val_dice_nodes"] = mean_dice(truth[:, 1], logits[:, 1] > 0)
                masks = torch.from_numpy(truth).float()
                per_patient = self._dice_loss(torch.from_numpy(logits), masks, reduction="none")
                scores["val_dice_loss"] = float(per_patient.mean())
            return scores

        return validate

    # ------------------------------------------------------------------ predict
    def _forward(self, X, want_seg=False):
        check_is_fitted(self, "network_")
        check_fitted_cohort(self, X)  # fields and volume size as at fit (issue 15)
        self._check_X(X, self.mask_input)
        scaler = Standardiser(self.tabular_mean_, self.tabular_scale_)
        return self._outputs(self._network(), X, self.intensity_, scaler, want_seg)

    @available_if(_has_survival_head)
    def predict(self, X):
        """Predicted log-risk (higher = earlier event), shape ``(n_patients,)``: the
        network's, or the refitted Cox head's (``survival_head="cox"``)."""
        risk, features, _ = self._forward(X)
        if not has_cox_head(self):
            return risk.astype(np.float64)
        return cox_head_risk(vars(self), np.hstack([features, self._clinical(X)]))

    @available_if(_has_survival_head)
    def score(self, X, y, sample_weight=None):
        """Harrell's concordance index of :meth:`predict` (see ``SurvivalMixin.score``)."""
        return super().score(X, y, sample_weight=sample_weight)

    @available_if(_has_survival_head)
    def predict_survival_function(self, X, return_array=False):
        """Survival functions through the Breslow baseline hazard (sksurv ``StepFunction``\\ s)."""
        return super().predict_survival_function(X, return_array=return_array)

    @available_if(_has_survival_head)
    def predict_cumulative_hazard_function(self, X, return_array=False):
        """Cumulative hazard functions through the Breslow baseline hazard."""
        return super().predict_cumulative_hazard_function(X, return_array=return_array)

    def _can_segment(self) -> bool:
        if not self.segmentation:
            raise AttributeError("this DeepMTSRegressor was built with segmentation=False.")
        return True

    def _region_probabilities(self, X) -> np.ndarray:
        """The U-Net's sigmoid probabilities of every region, ``(n, R, D, H, W)``."""
        logits = torch.from_numpy(self._forward(X, want_seg=True)[2])
        return torch.sigmoid(logits).numpy()

    @available_if(_has_survival_head)
    def transform(self, X):
        """The survival branches' input features, unscaled: hard-sharing then cascade (124 +
        112 = 236 with ``survival_inputs="pooled"``), then the segmentation features
        (``segmentation_statistics`` per region).

        A pandas DataFrame with :meth:`get_feature_names_out` columns after
        ``set_output(transform="pandas")`` (as in :func:`make_survival_pipeline`), so deep
        features + Lasso-Cox / RSF / DeepSurv (the paper's Table II) are pipelines.
        """
        return self._forward(X)[1].astype(np.float64)

    @available_if(_has_survival_head)
    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s columns: ``hs<level>_<k>``, ``csn<level>_<k>`` and
        ``<region>_<statistic>`` for each ``segmentation_statistics``."""
        check_is_fitted(self, "network_")
        net = self.network_
        names = []
        if net.fc_shared is not None:
            names += [
                f"hs{level + 1}_{k}"
                for level, w in enumerate(net.backbone.feature_widths)
                for k in range(w)
            ]
        if net.fc_cascade is not None:
            names += [
                f"csn{level + 1}_{k}"
                for level, w in enumerate(net.cascade.feature_widths)
                for k in range(w)
            ]
        if net.seg_features is not None:
            names += [
                f"{region}_{what}"
                for region in self.regions_
                for what in net.seg_features.statistics
            ]
        return np.asarray(names, dtype=object)
