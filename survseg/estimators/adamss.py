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

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.cohort import volume_shape
from ..data.validation import check_cohort, check_survival
from ..losses.discrete_time import (
    encode_survival,
    predicted_time,
    survival_at_edges,
    time_bin_edges,
)
from ..training import make_generators, seeded, train
from ..training.device import seed_from
from ._adamss_inference import _AdaMSSInference
from ._adamss_params import PAPER_AUGMENTATION, _AdaMSSParams
from ._adamss_radiomics import _AdaMSSTabular
from ._adamss_stages import _LOSS_SCORES, _AdaMSSStages, _Fit, transfer_pretrained_weights
from ._deep import DeepSurvivalBase

__all__ = ["AdaMSSRegressor", "transfer_pretrained_weights", "PAPER_AUGMENTATION"]


# The private parts, one concern each: _adamss_params (parameter checks, crop, augmentation,
# validation split), _adamss_stages (stage I / II and multi-task training), _adamss_radiomics
# (radiomics of predicted masks, selection, tabular inputs), _adamss_inference (forward passes).
class AdaMSSRegressor(
    _AdaMSSParams, _AdaMSSStages, _AdaMSSTabular, _AdaMSSInference, DeepSurvivalBase
):
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
    monitor : {"c_index", "nll"} or None, default="c_index"
        Validation score that picks the kept iteration of the survival stage (stage I always
        keeps its best validation Dice). ``"c_index"``: Harrell's C of the validation
        patients (for ``"mtl"``, its mean with the Dice), as the paper does. ``"nll"``: the
        discrete-time negative log-likelihood of the validation patients (for ``"mtl"``,
        plus :math:`1 - \\text{Dice}`), the smoother choice when they are few (a C-index
        over ten patients moves by several hundredths per discordant pair).
        ``None``: the last iteration.
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
        monitor="c_index",
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
        self.monitor = monitor
        self.mask_threshold = mask_threshold
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.verbose = verbose

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

    # ``_run`` stays in this module with the ``train`` it calls: benchmarks/adamss_training.py
    # times the stages by patching ``survseg.estimators.adamss.train``.
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
            monitor=monitor if validate is not None else None,
            mode="min" if monitor in _LOSS_SCORES else "max", amp=self.amp,
            verbose=self.verbose, desc=desc,
        )  # fmt: skip

    # ------------------------------------------------------------------ prediction
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
