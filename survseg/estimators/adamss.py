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
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..data.cohort import clinical_frame, volume_shape
from ..data.validation import check_cohort, check_survival
from ..evaluation.metrics import dice_score
from ..losses.discrete_time import (
    discrete_time_nll,
    encode_survival,
    predicted_time,
    survival_at_edges,
    time_bin_edges,
)
from ..losses.segmentation import dice_loss, focal_loss
from ..networks.adamss import AdaMSS
from ..training import (
    balanced_batches,
    make_generators,
    random_affine,
    random_batches,
    random_crop,
    scaled_step_lr,
    seeded,
    train,
)
from ..training.device import seed_from
from ._deep import DeepSurvivalBase, image_tensor

__all__ = ["AdaMSSRegressor", "transfer_pretrained_weights", "PAPER_AUGMENTATION"]

#: The authors' affine augmentation: translation +-10 % of the size, zoom 0.9-1.1, shear and
#: rotation +-10 degrees (translations are given here as a fraction of each axis).
PAPER_AUGMENTATION = {
    "max_translation": 0.1,
    "max_rotation": 10.0,
    "scale": (0.9, 1.1),
    "max_shear": 10.0,
}
_PAPER_ITER = 10_000  # the paper's iterations per stage; schedules and validation scale to max_iter
_PAPER_VALIDATE_EVERY = 200
_CROP_RATIO = 112 / 160  # the paper's random crop relative to its volume


def transfer_pretrained_weights(source: AdaMSS, target: AdaMSS) -> None:
    """Copy the encoder, decoder and segmentation head of ``source`` into ``target``.

    Strict: every tensor must match in name and shape (the two networks must share their
    image architecture), so no layer is silently left at its random initialisation (the
    authors' ``strict=False`` left their stage-II decoder random). The survival head of
    ``target`` is not touched: its input width depends on the stage-II tabular features.
    """
    for part in ("encoder", "decoder", "seg_head"):
        getattr(target, part).load_state_dict(getattr(source, part).state_dict(), strict=True)


@dataclass
class _Fit:
    """Everything a training stage needs (built once in ``fit``)."""

    X: np.ndarray
    modalities: tuple
    device: torch.device
    rng: np.random.Generator
    gen: torch.Generator
    train_idx: np.ndarray
    val_idx: np.ndarray
    crop: tuple
    augment: dict | None
    event: np.ndarray
    time: np.ndarray
    s: torch.Tensor
    f: torch.Tensor
    extra: torch.Tensor | None = None


class AdaMSSRegressor(DeepSurvivalBase):
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
    radiomics_params : dict, optional
        Parameters of :class:`survseg.radiomics.RadiomicsExtractor` (``feature_classes``,
        ``image_types``, ``bin_width``, ``spacing``, ``settings``, ``n_jobs``, ...). The
        default is the papers' 1,456-feature set with a fixed 32 grey-level bins
        (``settings={"binCount": 32}``), since AdaMSS's inputs are normalised images on which
        the authors' bin widths (25 / 10) would put a whole tumour into one bin. On a CPU,
        ``{"feature_classes": ["firstorder", "glcm", "shape"], "image_types": ["original"]}``
        is about 20 times faster.
    correlation_threshold : float, default=0.7
        Features with Spearman :math:`|\\rho|` above it with a kept feature are dropped.
    max_radiomics_features : int or None, default=10
        At most this many features are kept: the smallest penalty of the Lasso-Cox path that
        selects no more than this many. ``None``: the penalty with the best inner
        cross-validated C-index (:class:`~survseg.estimators.lasso_cox.LassoCoxCV`), which with
        a few dozen training patients is noisy and often keeps no feature.
    n_intervals : int, default=10
        Number of discrete survival intervals :math:`N`.
    single_channels, fuse_channels, n_convs : sequence of int
        Network widths and depths per level (paper: (8, 16, 32, 64, 128),
        (16, 32, 64, 128, 256), (2, 3, 3, 4, 4)); volumes must be divisible by
        :math:`2^{L-1}` (16 for five levels).
    hidden_features : int, default=128
        Width of the survival head's hidden layer.
    dropout : float, default=0.5
        Dropout before each layer of the survival head.
    l2 : float, default=0.1
        L2 penalty :math:`\\lambda \\lVert W \\rVert^2` on the two survival-head weight
        matrices (applied as Adam weight decay :math:`2\\lambda`, the same gradient).
    max_iter : int, default=10000
        Iterations per stage.
    max_iter_segmentation, max_iter_survival : int, optional
        Stage-specific overrides of ``max_iter`` (``"mtl"`` uses ``max_iter_survival``).
    batch_size : int, default=2
        Patients per iteration. Survival batches hold half events, half censored patients.
    stage1_lr : sequence of float, default=(1e-4, 5e-5, 1e-5)
        Learning rates of networks trained from random weights (stage I; the stage-II
        network of ``"stl"``; ``"mtl"``).
    stage2_lr : sequence of float, default=(5e-5, 1e-5, 1e-6)
        Learning rates of the fine-tuning stage II of ``"ssl"``.
    lr_milestones : sequence of float, default=(0.4, 0.8)
        Fractions of a stage's iterations where the next learning rate starts (the paper's
        4,000th and 8,000th of 10,000).
    focal_alpha, focal_gamma : float, default=0.25, 2.0
        Focal-loss parameters.
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
    mask_threshold : float, default=0.5
        Probability above which a voxel is tumour.
    predict_batch_size : int, default=2
        Patients per forward pass at prediction and validation.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, batch sampling, augmentation and dropout.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    amp : bool, default=False
        Mixed-precision training on CUDA.
    verbose : int, default=0
        ``> 0``: progress bars.

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
    extra_feature_names_ : list of str
        Tabular inputs of the survival head: selected radiomics, then clinical.
    history_ : pandas.DataFrame
        Per-iteration losses, learning rates and validation scores, with a ``stage`` column.
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
        "modalities": [list, tuple],
        "intensity": [dict, None],
        "mask_field": [str],
        "clinical": [None, list, tuple],
        "learning_strategy": [StrOptions({"ssl", "mtl", "stl"})],
        "fusion": [StrOptions({"adaptive", "early", "late", "intermediate"})],
        "radiomics": ["boolean"],
        "radiomics_params": [None, dict],
        "correlation_threshold": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_radiomics_features": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "n_intervals": [Interval(numbers.Integral, 1, None, closed="left")],
        "single_channels": [list, tuple],
        "fuse_channels": [list, tuple],
        "n_convs": [list, tuple],
        "hidden_features": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "l2": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_segmentation": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_survival": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "stage1_lr": [list, tuple],
        "stage2_lr": [list, tuple],
        "lr_milestones": [list, tuple],
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
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "validate_every": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "mask_threshold": [Interval(numbers.Real, 0, 1, closed="neither")],
        "predict_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "amp": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        modalities=("pet", "ct"),
        intensity=None,
        mask_field="mask",
        clinical=None,
        learning_strategy="ssl",
        fusion="adaptive",
        radiomics=True,
        radiomics_params=None,
        correlation_threshold=0.7,
        max_radiomics_features=10,
        n_intervals=10,
        single_channels=(8, 16, 32, 64, 128),
        fuse_channels=(16, 32, 64, 128, 256),
        n_convs=(2, 3, 3, 4, 4),
        hidden_features=128,
        dropout=0.5,
        l2=0.1,
        max_iter=10_000,
        max_iter_segmentation=None,
        max_iter_survival=None,
        batch_size=2,
        stage1_lr=(1e-4, 5e-5, 1e-5),
        stage2_lr=(5e-5, 1e-5, 1e-6),
        lr_milestones=(0.4, 0.8),
        focal_alpha=0.25,
        focal_gamma=2.0,
        crop_size="auto",
        augmentation=None,
        validation_fraction=0.2,
        validate_every=None,
        mask_threshold=0.5,
        predict_batch_size=2,
        random_state=None,
        device="auto",
        amp=False,
        verbose=0,
    ):
        self.modalities = modalities
        self.intensity = intensity
        self.mask_field = mask_field
        self.clinical = clinical
        self.learning_strategy = learning_strategy
        self.fusion = fusion
        self.radiomics = radiomics
        self.radiomics_params = radiomics_params
        self.correlation_threshold = correlation_threshold
        self.max_radiomics_features = max_radiomics_features
        self.n_intervals = n_intervals
        self.single_channels = single_channels
        self.fuse_channels = fuse_channels
        self.n_convs = n_convs
        self.hidden_features = hidden_features
        self.dropout = dropout
        self.l2 = l2
        self.max_iter = max_iter
        self.max_iter_segmentation = max_iter_segmentation
        self.max_iter_survival = max_iter_survival
        self.batch_size = batch_size
        self.stage1_lr = stage1_lr
        self.stage2_lr = stage2_lr
        self.lr_milestones = lr_milestones
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.crop_size = crop_size
        self.augmentation = augmentation
        self.validation_fraction = validation_fraction
        self.validate_every = validate_every
        self.mask_threshold = mask_threshold
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self):
        self._validate_params()
        if self.learning_strategy == "mtl" and self.radiomics:
            raise ValueError(
                "learning_strategy='mtl' trains one network on both tasks from the start, so "
                "there are no stage-I masks to extract radiomics from: set radiomics=False "
                "(the paper's learning-strategy ablation ran without radiomics)."
            )
        modalities = (
            (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        )
        if not modalities or len(set(modalities)) != len(modalities):
            raise ValueError(
                f"modalities must name distinct image fields; got {self.modalities!r}."
            )
        self._intensity()  # raises on a bad intensity parameter
        n_lr = len(self.lr_milestones) + 1
        for name in ("stage1_lr", "stage2_lr"):
            lrs = getattr(self, name)
            if len(lrs) != n_lr or any(not v > 0 for v in lrs):
                raise ValueError(
                    f"{name} must hold {n_lr} positive learning rates (one more than "
                    f"lr_milestones); got {lrs!r}."
                )
        ms = list(self.lr_milestones)
        if any(not 0 < m < 1 for m in ms) or ms != sorted(ms):
            raise ValueError(f"lr_milestones must be increasing fractions in (0, 1); got {ms}.")
        return modalities

    def _build_network(self, n_extra=0) -> AdaMSS:
        return AdaMSS(
            n_modalities=len(self.modalities_),
            n_intervals=self.n_intervals,
            n_extra_features=n_extra,
            single_channels=self.single_channels,
            fuse_channels=self.fuse_channels,
            n_convs=self.n_convs,
            fusion=self.fusion,
            seg_channels=1,
            hidden_features=self.hidden_features,
            dropout=self.dropout,
        )

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
                    f"volume {tuple(shape)} and divisible by {multiple}."
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

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train the segmentation and survival networks (see the module docstring).

        Parameters
        ----------
        X : cohort (structured ndarray)
            Image fields named by ``modalities``, the ``mask_field`` tumour masks and the
            ``clinical`` fields. May be memory-mapped: only batches are read.
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv.from_arrays``), with at least one event.

        Returns
        -------
        self
        """
        modalities = self._check_params()
        self.modalities_ = modalities
        clinical = list(self.clinical or [])
        check_cohort(
            X,
            modalities=modalities,
            require_mask=True,
            mask_field=self.mask_field,
            clinical=clinical,
        )
        event, time = check_survival(y, len(X))
        shape = volume_shape(X)
        multiple = 2 ** (len(self.n_convs) - 1)
        if any(s % multiple for s in shape):
            raise ValueError(
                f"volumes of shape {shape} cannot pass the {len(self.n_convs)} levels of AdaMSS: "
                f"every axis must be divisible by {multiple} (crop or pad them, e.g. to 160^3)."
            )
        device = self._device()
        seed = seed_from(self.random_state)
        self.time_bins_ = time_bin_edges(time, self.n_intervals)
        s, f = encode_survival(time, event, self.time_bins_)
        train_idx, val_idx = self._split(event, seed)
        self.clinical_ = clinical
        self.radiomics_features_ = []
        histories, self.best_iteration_ = [], {}
        with seeded(seed, device):
            rng, gen = make_generators(seed, device)
            ctx = _Fit(
                X=X, modalities=modalities, device=device, rng=rng, gen=gen,
                train_idx=train_idx, val_idx=val_idx, crop=self._crop(shape, multiple),
                augment=self._augment(shape), event=event, time=time,
                s=torch.from_numpy(s).to(device), f=torch.from_numpy(f).to(device),
            )  # fmt: skip
            if self.learning_strategy == "mtl":
                self._fit_tabular(X, ctx, radiomics=None)
                net, res = self._train_multitask(ctx)
                self.network_ = self.segmentation_network_ = net
                histories.append(res.history.assign(stage="multitask"))
                self.best_iteration_["multitask"] = res.best_iteration
            else:
                seg, res = self._train_segmentation(ctx)
                self.segmentation_network_ = seg
                histories.append(res.history.assign(stage="segmentation"))
                self.best_iteration_["segmentation"] = res.best_iteration
                table = self._radiomics_table(X) if self.radiomics else None
                self._fit_tabular(X, ctx, radiomics=table)
                init = seg if self.learning_strategy == "ssl" else None
                net, res = self._train_survival(ctx, init)
                self.network_ = net
                histories.append(res.history.assign(stage="survival"))
                self.best_iteration_["survival"] = res.best_iteration
        self.history_ = pd.concat(histories, ignore_index=True)
        return self

    def _split(self, event, seed):
        n = len(event)
        idx = np.arange(n)
        if self.validation_fraction == 0:
            return idx, idx[:0]
        n_val = max(1, int(round(self.validation_fraction * n)))
        if n - n_val < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n - n_val} training "
                f"patient(s) of {n}; use more patients or validation_fraction=0."
            )
        stratify = event if min(event.sum(), (~event).sum()) >= 2 else None
        train_idx, val_idx = train_test_split(
            idx, test_size=n_val, random_state=seed % (2**32), stratify=stratify
        )
        return np.sort(train_idx), np.sort(val_idx)

    # ------------------------------------------------------------------ tabular inputs
    def _fit_tabular(self, X, ctx, radiomics):
        """Select radiomics (training patients only) and standardise radiomics + clinical."""
        parts, names = [], []
        if radiomics is not None:
            rows = ctx.train_idx
            selected = self._select_radiomics(radiomics.iloc[rows], ctx.event[rows], ctx.time[rows])
            self.radiomics_features_ = selected
            parts.append(radiomics[selected].to_numpy(np.float64))
            names += selected
        if self.clinical_:
            parts.append(clinical_frame(X, self.clinical_).to_numpy(np.float64))
            names += list(self.clinical_)
        self.extra_feature_names_ = names
        if not names:
            self.extra_mean_ = self.extra_scale_ = np.zeros(0)
            ctx.extra = None
            return
        train = np.hstack(parts)[ctx.train_idx]
        self.extra_mean_ = np.nanmean(train, axis=0)
        scale = np.nanstd(train, axis=0)
        self.extra_scale_ = np.where(scale > 0, scale, 1.0)
        ctx.extra = torch.from_numpy(self._standardise(np.hstack(parts))).to(ctx.device)

    def _standardise(self, raw):
        z = (raw - self.extra_mean_) / self.extra_scale_
        # a radiomics feature pyradiomics could not compute (tiny predicted mask) -> the mean
        return np.nan_to_num(z, nan=0.0).astype(np.float32)

    def _extra(self, X):
        """Standardised tabular inputs of ``X`` (or ``None``)."""
        if not self.extra_feature_names_:
            return None
        parts = []
        if self.radiomics_features_:
            parts.append(self._radiomics_table(X)[self.radiomics_features_].to_numpy(np.float64))
        if self.clinical_:
            parts.append(clinical_frame(X, self.clinical_).to_numpy(np.float64))
        return self._standardise(np.hstack(parts))

    def _radiomics_extractor(self, masks):
        from ..radiomics import RadiomicsExtractor

        params = (
            {"settings": {"binCount": 32}}
            if self.radiomics_params is None
            else dict(self.radiomics_params)
        )
        clash = sorted({"mask", "modalities", "empty_mask"} & set(params))
        if clash:
            raise ValueError(
                f"radiomics_params must not set {clash}: AdaMSS extracts from its own predicted "
                "masks, on its modalities, and gives NaN (then the training mean) for a mask "
                "pyradiomics rejects."
            )
        return RadiomicsExtractor(
            modalities=list(self.modalities_), mask=lambda _: masks, empty_mask="nan", **params
        )

    def _radiomics_table(self, X) -> pd.DataFrame:
        """pyradiomics features of ``X`` inside the masks the segmentation network predicts."""
        masks = self._predicted_masks(X, nonempty=True)
        return self._radiomics_extractor(masks).fit(X).transform(X)

    def _select_radiomics(self, table, event, time) -> list:
        """z-score -> Spearman filter -> Lasso-Cox path, on the training patients only.

        Features that pyradiomics could not compute for some training patient, or that are
        constant, are dropped first. The Lasso penalty is the smallest on the path that keeps
        at most ``max_radiomics_features`` features (with a few dozen patients, choosing it
        by cross-validation is noisy), or with ``None`` the cross-validated one.
        """
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        from ..radiomics import CorrelationFilter

        values = table.to_numpy(np.float64)
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
        seed = seed_from(self.random_state)
        model = LassoCoxCV(cv=n_folds, random_state=seed).fit(z, y)
        return np.abs(model.coef_) > 0

    # ------------------------------------------------------------------ training stages
    def _optimizer(self, net, lrs, max_iter):
        head = {id(w) for w in net.head_weights()}
        groups = [
            {"params": [p for p in net.parameters() if id(p) not in head], "weight_decay": 0.0},
            {"params": net.head_weights(), "weight_decay": 2.0 * self.l2},
        ]
        opt = torch.optim.Adam(groups, lr=lrs[0])
        bounds = [m * _PAPER_ITER for m in self.lr_milestones]
        return opt, scaled_step_lr(opt, lrs, bounds, _PAPER_ITER, max_iter)

    def _validate_every(self, max_iter):
        if self.validate_every is not None:
            return self.validate_every
        return max(1, round(_PAPER_VALIDATE_EVERY * max_iter / _PAPER_ITER))

    def _batch(self, ctx, idx, with_mask):
        rows = ctx.train_idx[idx]
        images = image_tensor(ctx.X, ctx.modalities, rows, device=ctx.device, intensity=self._intensity())
        masks = None
        if with_mask:
            m = np.asarray(ctx.X[self.mask_field][rows], dtype=np.float32)
            masks = torch.from_numpy(m).unsqueeze(1).to(ctx.device)
        if ctx.augment is not None:
            images, masks = random_affine(images, masks, **ctx.augment, generator=ctx.gen)
        if ctx.crop != tuple(images.shape[2:]):
            cropped = random_crop(
                (images,) if masks is None else (images, masks), ctx.crop, ctx.gen
            )
            images, masks = cropped if masks is not None else (cropped[0], None)
        extra = None if ctx.extra is None else ctx.extra[rows]
        return rows, images, masks, extra

    def _seg_loss(self, logits, masks):
        dice = dice_loss(logits, masks)
        focal = focal_loss(logits, masks, alpha=self.focal_alpha, gamma=self.focal_gamma)
        return dice, focal

    def _surv_loss(self, logits, ctx, rows):
        # mean over patients and intervals: the authors' scaling, which sets the balance
        # against the L2 penalty of the head
        rows_t = torch.as_tensor(rows, device=ctx.device)
        return discrete_time_nll(logits.float(), ctx.s[rows_t], ctx.f[rows_t]) / self.n_intervals

    def _val_outputs(self, net, ctx, task):
        """Full-volume predictions for the validation patients (eval mode, no grad)."""
        seg, surv = [], []
        for start in range(0, len(ctx.val_idx), self.predict_batch_size):
            rows = ctx.val_idx[start : start + self.predict_batch_size]
            images = image_tensor(ctx.X, ctx.modalities, rows, device=ctx.device, intensity=self._intensity())
            extra = None if ctx.extra is None or task == "segmentation" else ctx.extra[rows]
            out = net(images, extra, task=task)
            if out.seg_logits is not None:
                seg.append(
                    (torch.sigmoid(out.seg_logits[:, 0].float()) > self.mask_threshold)
                    .cpu()
                    .numpy()
                )
            if out.survival_logits is not None:
                surv.append(torch.sigmoid(out.survival_logits.float()).cpu().numpy())
        return (np.concatenate(seg) if seg else None), (np.concatenate(surv) if surv else None)

    def _val_scores(self, ctx, seg, surv):
        scores = {}
        if seg is not None:
            truth = np.asarray(ctx.X[self.mask_field][ctx.val_idx])
            scores["dice"] = float(np.mean(dice_score(truth, seg)))
        if surv is not None:
            from sksurv.metrics import concordance_index_censored

            ev, t = ctx.event[ctx.val_idx], ctx.time[ctx.val_idx]
            risk = -predicted_time(surv, self.time_bins_)
            try:
                scores["cindex"] = float(concordance_index_censored(ev, t, risk)[0])
            except (ValueError, ZeroDivisionError):  # no event / no comparable pair
                scores["cindex"] = math.nan
        if seg is not None and surv is not None:  # multi-task: one model for both tasks
            scores["mean_dice_cindex"] = 0.5 * (scores["dice"] + scores["cindex"])
        return scores

    def _run(self, net, ctx, loss_fn, batches, lrs, max_iter, task, monitor, desc):
        net.to(ctx.device)
        opt, sched = self._optimizer(net, lrs, max_iter)
        validate = None
        if len(ctx.val_idx):

            def validate(module):
                return self._val_scores(ctx, *self._val_outputs(module, ctx, task))

        return train(
            net, batches, loss_fn, opt, max_iter=max_iter, device=ctx.device, scheduler=sched,
            validate=validate, validate_every=self._validate_every(max_iter),
            monitor=monitor if validate is not None else None, mode="max", amp=self.amp,
            verbose=self.verbose, desc=desc,
        )  # fmt: skip

    def _train_segmentation(self, ctx):
        max_iter = self.max_iter_segmentation or self.max_iter
        net = self._build_network()

        def loss_fn(module, idx):
            _, images, masks, _ = self._batch(ctx, idx, with_mask=True)
            dice, focal = self._seg_loss(module(images, task="segmentation").seg_logits, masks)
            return {"loss": dice + focal, "dice_loss": dice, "focal_loss": focal}

        batches = random_batches(len(ctx.train_idx), self.batch_size, ctx.rng)
        res = self._run(
            net,
            ctx,
            loss_fn,
            batches,
            self.stage1_lr,
            max_iter,
            "segmentation",
            "dice",
            "AdaMSS stage I (segmentation)",
        )
        return net, res

    def _init_survival_bias(self, net, ctx):
        r"""Start the survival head at the population curve instead of :math:`p_j = 0.5`.

        The output bias is set to the logit of the no-covariate maximum-likelihood estimate of
        the discrete-time model on the training patients, :math:`\hat p_j = 1 - d_j / r_j`
        (:math:`d_j = \sum_i f_{ij}` events in interval :math:`j`, :math:`r_j =
        \sum_i (s_{ij} + f_{ij})` patients contributing to it), clipped to [0.01, 0.99]. With
        ``N = 10`` intervals a logit of 0 would start every patient at :math:`S(b_N) = 2^{-10}`.
        """
        rows = torch.as_tensor(ctx.train_idx, device=ctx.device)
        s, f = ctx.s[rows].double(), ctx.f[rows].double()
        at_risk = (s + f).sum(dim=0)
        p = 1.0 - f.sum(dim=0) / at_risk.clamp(min=1.0)
        p = torch.where(at_risk > 0, p, torch.full_like(p, 0.5)).clamp(0.01, 0.99)
        with torch.no_grad():
            net.survival_head.net[-1].bias.copy_(torch.logit(p).float())

    def _survival_batches(self, ctx):
        n_ev = max(1, self.batch_size // 2)
        return balanced_batches(ctx.event[ctx.train_idx], n_ev, self.batch_size - n_ev, ctx.rng)

    def _train_survival(self, ctx, init):
        max_iter = self.max_iter_survival or self.max_iter
        net = self._build_network(0 if ctx.extra is None else ctx.extra.shape[1])
        if init is not None:
            transfer_pretrained_weights(init, net)
        self._init_survival_bias(net, ctx)

        def loss_fn(module, idx):
            rows, images, _, extra = self._batch(ctx, idx, with_mask=False)
            nll = self._surv_loss(module(images, extra, task="survival").survival_logits, ctx, rows)
            return {"loss": nll, "nll": nll}

        lrs = self.stage2_lr if init is not None else self.stage1_lr
        res = self._run(
            net,
            ctx,
            loss_fn,
            self._survival_batches(ctx),
            lrs,
            max_iter,
            "survival",
            "cindex",
            "AdaMSS stage II (survival)",
        )
        return net, res

    def _train_multitask(self, ctx):
        max_iter = self.max_iter_survival or self.max_iter
        net = self._build_network(0 if ctx.extra is None else ctx.extra.shape[1])
        self._init_survival_bias(net, ctx)

        def loss_fn(module, idx):
            rows, images, masks, extra = self._batch(ctx, idx, with_mask=True)
            out = module(images, extra)
            dice, focal = self._seg_loss(out.seg_logits, masks)
            nll = self._surv_loss(out.survival_logits, ctx, rows)
            return {"loss": dice + focal + nll, "dice_loss": dice, "focal_loss": focal, "nll": nll}

        res = self._run(
            net,
            ctx,
            loss_fn,
            self._survival_batches(ctx),
            self.stage1_lr,
            max_iter,
            "both",
            "mean_dice_cindex",
            "AdaMSS multi-task",
        )
        return net, res

    # ------------------------------------------------------------------ prediction
    def _module(self, name) -> AdaMSS:
        check_is_fitted(self, name)
        net = getattr(self, name)
        dev = self._device()
        if next(net.parameters()).device != dev:
            net.to(dev)
        return net.eval()

    def _check_X(self, X):
        check_is_fitted(self, "network_")
        check_cohort(X, modalities=self.modalities_, clinical=self.clinical_)
        multiple = self.network_.size_multiple
        if any(s % multiple for s in volume_shape(X)):
            raise ValueError(f"volumes of shape {volume_shape(X)} must be divisible by {multiple}.")

    def _run_network(self, name, X, fn, with_extra):
        """Apply ``fn(output, index) -> Tensor | tuple`` to full-volume forward passes over ``X``."""
        net = self._module(name)
        extra = self._extra(X) if with_extra else None
        dev = self._device()

        def step(images, idx):
            e = None if extra is None else torch.from_numpy(extra[idx]).to(dev)
            return fn(net, images, e)

        return self._predict_in_batches(step, X, list(self.modalities_))

    def _survival_probabilities(self, X):
        self._check_X(X)
        return self._run_network(
            "network_",
            X,
            lambda net, images, e: torch.sigmoid(
                net(images, e, task="survival").survival_logits.float()
            ),
            with_extra=True,
        ).reshape(len(X), -1)

    def predict_interval_probabilities(self, X):
        """Conditional survival probability of each interval, :math:`p_j`, shape (n, N)."""
        return self._survival_probabilities(X)

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
        return -self.predict_time(X)

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

        surv = survival_at_edges(self._survival_probabilities(X))
        values = np.hstack([np.ones((len(surv), 1)), surv])
        if return_array:
            return values
        return np.array([StepFunction(self.time_bins_, v) for v in values], dtype=object)

    def _probability_maps(self, X):
        return self._run_network(
            "segmentation_network_",
            X,
            lambda net, images, e: torch.sigmoid(
                net(images, task="segmentation").seg_logits[:, 0].float()
            ),
            with_extra=False,
        )

    def predict_proba_mask(self, X):
        """Tumour probability per voxel, shape (n_patients, D, H, W), float32."""
        self._check_X(X)
        return self._probability_maps(X)

    def predict_mask(self, X):
        """Tumour masks (probability > ``mask_threshold``), uint8 of shape (n_patients, D, H, W).

        For ``"ssl"`` and ``"stl"`` these come from the stage-I network (stage II is tuned
        for survival only), for ``"mtl"`` from the multi-task network.
        """
        self._check_X(X)
        return self._predicted_masks(X, nonempty=False)

    def _predicted_masks(self, X, nonempty):
        prob = self._probability_maps(X)
        masks = (prob > self.mask_threshold).astype(np.uint8)
        if nonempty:
            # radiomics need a region: where nothing passes the threshold, take the voxels
            # within half of that patient's highest probability
            for i in np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1)):
                masks[i] = prob[i] >= 0.5 * prob[i].max()
        return masks

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
        name = self._stage_network(stage)
        w = self._run_network(
            name,
            X,
            lambda net, images, e: torch.stack(
                [
                    g.float().mean(dim=(1, 2, 3, 4))
                    for g in net(
                        images, e, task="segmentation", return_fusion_weights=True
                    ).fusion_weights
                ],
                dim=1,
            ),
            with_extra=False,
        )
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
        name = self._stage_network(stage)
        size = volume_shape(X)

        def fn(net, images, e):
            maps = net(images, e, task="segmentation", return_attention=True).attention_maps
            if upsample:
                maps = [
                    F.interpolate(a.float(), size=size, mode="trilinear", align_corners=False)
                    for a in maps
                ]
            return tuple(a[:, 0].float() for a in maps)

        out = self._run_network(name, X, fn, with_extra=False)
        return list(out) if isinstance(out, tuple) else [out]

    def _stage_network(self, stage):
        if stage not in ("survival", "segmentation"):
            raise ValueError(f"stage must be 'survival' or 'segmentation'; got {stage!r}.")
        return "network_" if stage == "survival" else "segmentation_network_"
