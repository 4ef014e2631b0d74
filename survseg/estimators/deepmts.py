r"""DeepMTSRegressor: joint tumour segmentation and Cox survival prediction from PET/CT."""

from __future__ import annotations

import inspect
import numbers

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..data.cohort import volume_shape
from ..data.validation import check_cohort, check_fitted_cohort, check_survival
from ..evaluation.metrics import concordance_index, dice_score
from ..losses.cox import cox_partial_likelihood_loss
from ..losses.segmentation import dice_loss
from ..networks.deepmts import DeepMTS
from ..training import (
    balanced_batches,
    make_generators,
    random_affine,
    random_batches,
    scaled_step_lr,
    seeded,
    train,
)
from ..training.device import seed_from
from ._cox import CoxSurvivalMixin
from ._deep import DeepSurvivalBase, image_tensor

__all__ = ["DeepMTSRegressor"]

# DeepMTS's step schedule (Sec. 4.7): 1e-4 -> 5e-5 -> 1e-5 -> 1e-6 at 2.5k, 5k, 10k of 15k.
_PAPER_ITER = 15000
# Shape parameters of DeepMTS that ``network_params`` may set (the switches are estimator params).
_SHAPE_PARAMS = tuple(
    name
    for name, p in inspect.signature(DeepMTS.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY
    and name not in ("segmentation", "hard_sharing", "cascade", "backbone", "feature_convs")
)


def _has_survival_head(est) -> bool:
    if not (est.hard_sharing or est.cascade):
        raise AttributeError(
            "this DeepMTSRegressor has no survival head (hard_sharing=False, cascade=False: the "
            "paper's Seg-Backbone); it only segments."
        )
    return True


def _segments(est) -> bool:
    if not est.segmentation:
        raise AttributeError("this DeepMTSRegressor was built with segmentation=False.")
    return True


class DeepMTSRegressor(CoxSurvivalMixin, TransformerMixin, DeepSurvivalBase):
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
        Each batch holds ``batch_size // 2`` patients with an event and the rest censored
        (drawn with replacement from a group that is too small). ``False`` (or no survival
        head): random batches; a batch without an event then contributes a zero Cox loss.
    learning_rate : float, default=1e-4
    lr_milestones : sequence of int, default=(2500, 5000, 10000)
        Iterations of a 15,000-iteration run at which the learning rate drops; scaled by
        ``max_iter / 15000`` so a short run keeps the paper's shape.
    lr_factors : sequence of float, default=(0.5, 0.1, 0.01)
        Learning rate after each milestone, as a fraction of ``learning_rate``.
    weight_decay : float, default=0.2
        L2 on the FC kernels (Adam's coupled weight decay: the gradient gains
        ``weight_decay * w``, i.e. a penalty :math:`\tfrac{\lambda}{2}\lVert w\rVert^2`).
        The default is the paper's :math:`0.1\,\lVert W\rVert^2` (Keras ``l2(0.1)``).
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
    validation_fraction : float or None, default=None
        Hold out this fraction of the patients (stratified by event): validation metrics are
        recorded in ``history_`` and the best checkpoint (see ``monitor``) is kept.
    validate_every : int or None, default=None
        Validation interval in iterations (default ``max_iter // 20``).
    monitor : {"c_index", "cox_loss", "dice"} or None, default="c_index"
        Validation metric that selects the kept checkpoint: highest C-index, lowest Cox loss
        or highest Dice; ``None`` keeps the last iteration. Without a survival head
        "c_index" falls back to "dice". The C-index of a small validation split is noisy;
        the Cox loss is a smoother criterion.
    random_state : int, RandomState or None, default=None
        Seeds network initialisation, dropout, batch sampling, augmentation and the split.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    amp : {"auto", True, False}, default="auto"
        Mixed precision (CUDA only); "auto" = on when training on CUDA.
    channels_last : bool, default=False
        Use the ``channels_last_3d`` memory format (can speed up convolutions on GPUs).
    preload : {"auto", True, False}, default="auto"
        Copy the training volumes to the device once instead of reading each batch from
        ``X``; "auto" = on CUDA when they take less than a fifth of the GPU memory.
    verbose : int, default=0
        ``> 0`` shows a progress bar.
    predict_batch_size : int, default=4

    Attributes
    ----------
    network_ : survseg.networks.deepmts.DeepMTS
        The trained network (best checkpoint when validating).
    history_ : pandas.DataFrame
        Per iteration: ``lr``, ``loss``, ``cox_loss``, ``dice_loss``; at validation iterations
        ``val_c_index``, ``val_cox_loss``, ``val_dice``, ``val_dice_loss``.
    best_iteration_ : int
    n_features_out_ : int
        Deep features given by :meth:`transform` (236 at the defaults).
    clinical_mean_, clinical_scale_ : ndarray
        Standardisation of the clinical covariates.
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

    def __init__(
        self,
        *,
        modalities=("pet", "ct"),
        intensity=None,
        clinical=None,
        mask_field="mask",
        segmentation=True,
        hard_sharing=True,
        cascade=True,
        backbone="residual",
        feature_convs=True,
        mask_input=False,
        network_params=None,
        max_iter=15000,
        batch_size=8,
        balanced=True,
        learning_rate=1e-4,
        lr_milestones=(2500, 5000, 10000),
        lr_factors=(0.5, 0.1, 0.01),
        weight_decay=0.2,
        ties="breslow",
        seg_loss_weight=1.0,
        max_translation=10.0,
        max_rotation=5.0,
        flip=True,
        validation_fraction=None,
        validate_every=None,
        monitor="c_index",
        random_state=None,
        device="auto",
        amp="auto",
        channels_last=False,
        preload="auto",
        verbose=0,
        predict_batch_size=4,
    ):
        self.modalities = modalities
        self.intensity = intensity
        self.clinical = clinical
        self.mask_field = mask_field
        self.segmentation = segmentation
        self.hard_sharing = hard_sharing
        self.cascade = cascade
        self.backbone = backbone
        self.feature_convs = feature_convs
        self.mask_input = mask_input
        self.network_params = network_params
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.balanced = balanced
        self.learning_rate = learning_rate
        self.lr_milestones = lr_milestones
        self.lr_factors = lr_factors
        self.weight_decay = weight_decay
        self.ties = ties
        self.seg_loss_weight = seg_loss_weight
        self.max_translation = max_translation
        self.max_rotation = max_rotation
        self.flip = flip
        self.validation_fraction = validation_fraction
        self.validate_every = validate_every
        self.monitor = monitor
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.preload = preload
        self.verbose = verbose
        self.predict_batch_size = predict_batch_size

    # ------------------------------------------------------------------ validation
    def _validate_params(self):
        def positive_int(name, low=1):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
                raise ValueError(f"{name} must be an int >= {low}; got {v!r}.")

        def non_negative(name):
            v = getattr(self, name)
            if (
                not isinstance(v, numbers.Real)
                or isinstance(v, bool)
                or not np.isfinite(v)
                or v < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}.")

        positive_int("max_iter")
        positive_int("batch_size", 2 if self.balanced else 1)
        positive_int("predict_batch_size")
        if self.validate_every is not None:
            positive_int("validate_every")
        for name in ("weight_decay", "seg_loss_weight", "max_translation", "max_rotation"):
            non_negative(name)
        if not isinstance(self.learning_rate, numbers.Real) or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}.")
        if isinstance(self.modalities, str) or len(self.modalities) == 0:
            raise ValueError(
                f"modalities must be a non-empty sequence of field names; got {self.modalities!r}."
            )
        self._intensity()  # raises on a bad intensity parameter
        if self.clinical is not None and isinstance(self.clinical, str):
            raise ValueError(
                f"clinical must be a list of field names; got the string {self.clinical!r}."
            )
        if self.backbone not in ("residual", "plain"):
            raise ValueError(f"backbone must be 'residual' or 'plain'; got {self.backbone!r}.")
        if self.ties not in ("breslow", "efron"):
            raise ValueError(f"ties must be 'breslow' or 'efron'; got {self.ties!r}.")
        if not (self.segmentation or self.hard_sharing or self.cascade):
            raise ValueError(
                "segmentation, hard_sharing and cascade are all False: nothing to train."
            )
        if self.mask_input and self.segmentation:
            raise ValueError(
                "mask_input=True feeds the manual mask to the network (the paper's 'using "
                "segmentation' Sur- models); it needs segmentation=False."
            )
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1) or None; got {self.validation_fraction!r}."
            )
        if len(self.lr_milestones) != len(self.lr_factors):
            raise ValueError(
                f"lr_milestones {tuple(self.lr_milestones)} and lr_factors "
                f"{tuple(self.lr_factors)} must have the same length."
            )
        if list(self.lr_milestones) != sorted(self.lr_milestones) or any(
            m <= 0 for m in self.lr_milestones
        ):
            raise ValueError(
                f"lr_milestones must be positive and increasing; got {tuple(self.lr_milestones)}."
            )
        if self.monitor not in ("c_index", "cox_loss", "dice", None):
            raise ValueError(
                f"monitor must be 'c_index', 'cox_loss', 'dice' or None; got {self.monitor!r}."
            )
        if self.monitor == "cox_loss" and not (self.hard_sharing or self.cascade):
            raise ValueError("monitor='cox_loss' needs a survival head (hard_sharing or cascade).")
        if self.monitor == "dice" and not self.segmentation:
            raise ValueError("monitor='dice' needs segmentation=True.")
        if self.amp not in ("auto", True, False):
            raise ValueError(f"amp must be 'auto', True or False; got {self.amp!r}.")
        if self.preload not in ("auto", True, False):
            raise ValueError(f"preload must be 'auto', True or False; got {self.preload!r}.")
        params = dict(self.network_params or {})
        unknown = sorted(set(params) - set(_SHAPE_PARAMS))
        if unknown:
            raise ValueError(f"unknown network_params {unknown}; allowed: {list(_SHAPE_PARAMS)}.")
        return params

    # ------------------------------------------------------------------ data
    def _clinical_tensor(self, X, index, device):
        if not self.n_clinical_:
            return None
        rows = X[np.asarray(index)]
        values = np.stack([np.asarray(rows[c], dtype=np.float64) for c in self.clinical], axis=1)
        values = (values - self.clinical_mean_) / self.clinical_scale_
        return torch.as_tensor(values, dtype=torch.float32, device=device)

    def _inputs(self, X, images, index, device):
        """Network inputs for patients ``index``: (images [x mask], clinical)."""
        if self.mask_input:
            images = images * image_tensor(X, [self.mask_field], index, device=device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        return images, self._clinical_tensor(X, index, device)

    def _autocast(self, device):
        on = device.type == "cuda" and self.amp in ("auto", True)
        if not on:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(
            "cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        )

    def _check_X(self, X, require_mask):
        return check_cohort(
            X,
            modalities=list(self.modalities),
            require_mask=require_mask,
            mask_field=self.mask_field,
            clinical=list(self.clinical or ()),
        )

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train the network on a cohort.

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
        """
        net_params = self._validate_params()
        survival = self.hard_sharing or self.cascade
        need_mask = self.segmentation or self.mask_input
        self._check_X(X, need_mask)
        event, time = check_survival(y, len(X), require_events=survival)
        device = self._device()
        amp = device.type == "cuda" and self.amp in ("auto", True)
        seed = seed_from(self.random_state)

        train_idx = np.arange(len(X))
        val_idx = None
        if self.validation_fraction is not None:
            train_idx, val_idx = train_test_split(
                train_idx,
                test_size=self.validation_fraction,
                random_state=seed % (2**31),
                stratify=event if min(event.sum(), (~event).sum()) >= 2 else None,
            )
            train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
            if survival and (not event[val_idx].any() or not event[train_idx].any()):
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no event in the "
                    "training or the validation part; use a larger cohort or fraction."
                )

        clin = list(self.clinical or ())
        self.n_clinical_ = len(clin)
        if clin:
            values = np.stack([np.asarray(X[c], dtype=np.float64)[train_idx] for c in clin], axis=1)
            self.clinical_mean_ = values.mean(axis=0)
            scale = values.std(axis=0)
            self.clinical_scale_ = np.where(scale > 0, scale, 1.0)
        else:
            self.clinical_mean_ = self.clinical_scale_ = np.zeros(0)
        self.image_shape_ = volume_shape(X)

        with seeded(seed, device):
            net = DeepMTS(
                len(self.modalities),
                self.n_clinical_,
                segmentation=self.segmentation,
                hard_sharing=self.hard_sharing,
                cascade=self.cascade,
                backbone=self.backbone,
                feature_convs=self.feature_convs,
                **net_params,
            ).to(device)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last_3d)
            self.network_kwargs_ = net_params
            self.network_ = net
            decay = {id(p) for p in net.head_weights()}
            groups = [
                {
                    "params": [p for p in net.parameters() if id(p) in decay],
                    "weight_decay": self.weight_decay,
                },
                {
                    "params": [p for p in net.parameters() if id(p) not in decay],
                    "weight_decay": 0.0,
                },
            ]
            optimizer = torch.optim.Adam(groups, lr=self.learning_rate)
            lrs = [self.learning_rate] + [self.learning_rate * f for f in self.lr_factors]
            scheduler = scaled_step_lr(
                optimizer, lrs, list(self.lr_milestones), _PAPER_ITER, self.max_iter
            )
            rng, gen = make_generators(seed, device)
            batches = self._batches(X, train_idx, event, time, device, rng, gen)
            validate = None if val_idx is None else self._validator(X, val_idx, event, time, device)
            monitor = "dice" if self.monitor == "c_index" and not survival else self.monitor
            key, mode = {
                "c_index": ("val_c_index", "max"),
                "cox_loss": ("val_cox_loss", "min"),
                "dice": ("val_dice", "max"),
                None: (None, "max"),
            }[monitor]
            result = train(
                net,
                batches,
                self._loss,
                optimizer,
                max_iter=self.max_iter,
                device=device,
                scheduler=scheduler,
                validate=validate,
                validate_every=self.validate_every,
                monitor=None if validate is None else key,
                mode=mode,
                amp=amp,
                verbose=self.verbose,
                desc="DeepMTS",
            )
        self.history_ = result.history
        self.best_iteration_ = result.best_iteration
        self.n_features_out_ = net.n_features
        if survival:
            risk = self.predict(X)
            self._fit_baseline(risk, event, time)
        return self

    def _use_preload(self, X, n, device) -> bool:
        if self.preload != "auto":
            return bool(self.preload)
        if device.type != "cuda":
            return False
        n_vol = len(self.modalities) + int(self.segmentation or self.mask_input)
        need = n * n_vol * int(np.prod(volume_shape(X))) * 4
        return need < 0.2 * torch.cuda.get_device_properties(device).total_memory

    def _batches(self, X, train_idx, event, time, device, rng, gen):
        """Endless augmented batches (dicts of device tensors) over the training patients."""
        with_mask = self.segmentation or self.mask_input
        fields = list(self.modalities) + ([self.mask_field] if with_mask else [])
        if self.balanced and (self.hard_sharing or self.cascade):
            n_ev = self.batch_size // 2
            sampler = balanced_batches(event[train_idx], n_ev, self.batch_size - n_ev, rng)
        else:
            sampler = random_batches(len(train_idx), self.batch_size, rng)
        cache = None
        if self._use_preload(X, len(train_idx), device):
            cache = image_tensor(X, fields, train_idx, device=device, intensity=self._intensity())
        ev = torch.as_tensor(event[train_idx], device=device)
        tm = torch.as_tensor(time[train_idx], device=device)
        n_img = len(self.modalities)
        for local in sampler:
            index = train_idx[local]
            vols = (
                cache[torch.as_tensor(local, device=device)]
                if cache is not None
                else image_tensor(X, fields, index, device=device, intensity=self._intensity())
            )
            images, masks = vols[:, :n_img], (vols[:, n_img:] if with_mask else None)
            images, masks = random_affine(
                images,
                masks,
                max_translation=self.max_translation,
                max_rotation=self.max_rotation,
                flip_axes=(-1,) if self.flip else (),
                generator=gen,
            )
            if self.mask_input:  # image x (augmented) manual mask
                images = images * masks
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last_3d)
            sel = torch.as_tensor(local, device=device)
            yield {
                "images": images,
                "masks": masks if self.segmentation else None,
                "clinical": self._clinical_tensor(X, index, device),
                "event": ev[sel],
                "time": tm[sel],
            }

    def _loss(self, module, batch):
        out = module(batch["images"], batch["clinical"])
        parts = {}
        total = 0.0
        if out.log_risk is not None:
            parts["cox_loss"] = cox_partial_likelihood_loss(
                out.log_risk.float(), batch["event"], batch["time"], ties=self.ties
            )
            total = total + parts["cox_loss"]
        if out.seg_logits is not None:
            parts["dice_loss"] = dice_loss(out.seg_logits, batch["masks"], squared=True)
            total = total + self.seg_loss_weight * parts["dice_loss"]
        return {"loss": total, **parts}

    def _validator(self, X, val_idx, event, time, device):
        """Validation metrics on the held-out patients (whole split, no augmentation)."""
        Xv, ev, tm = X[val_idx], event[val_idx], time[val_idx]
        y_val = np.empty(len(val_idx), dtype=[("event", bool), ("time", float)])
        y_val["event"], y_val["time"] = ev, tm

        def validate(module):
            risks, dices, dice_losses = [], [], []
            for start in range(0, len(Xv), self.predict_batch_size):
                idx = np.arange(start, min(start + self.predict_batch_size, len(Xv)))
                images, clin = self._inputs(
                    Xv,
                    image_tensor(
                        Xv, self.modalities, idx, device=device, intensity=self._intensity()
                    ),
                    idx,
                    device,
                )
                with self._autocast(device):
                    out = module(images, clin)
                if out.log_risk is not None:
                    risks.append(out.log_risk.float().cpu())
                if out.seg_logits is not None:
                    masks = image_tensor(Xv, [self.mask_field], idx, device=device)
                    dice_losses.append(
                        dice_loss(out.seg_logits, masks, squared=True, reduction="none").cpu()
                    )
                    pred = (out.seg_logits[:, 0] > 0).cpu().numpy()
                    dices.append(dice_score(np.asarray(Xv[self.mask_field][idx]), pred))
            scores = {}
            if risks:
                risk = torch.cat(risks)
                scores["val_c_index"] = concordance_index(y_val, risk.numpy())
                scores["val_cox_loss"] = float(
                    cox_partial_likelihood_loss(
                        risk.double(), torch.as_tensor(ev), torch.as_tensor(tm), ties=self.ties
                    )
                )
            if dices:
                scores["val_dice"] = float(np.mean(np.concatenate(dices)))
                scores["val_dice_loss"] = float(torch.cat(dice_losses).mean())
            return scores

        return validate

    # ------------------------------------------------------------------ predict
    def _forward(self, X, want_prob=False):
        """Run the fitted network over ``X``: returns (log_risk, features, probability)."""
        check_is_fitted(self, "network_")
        check_fitted_cohort(self, X)  # fields and volume size as at fit (issue 15)
        self._check_X(X, self.mask_input)
        net = self._network()
        device = self._device()

        def fn(images, idx):
            images, clin = self._inputs(X, images, idx, device)
            with self._autocast(device):
                out = net(images, clin)
            n = images.shape[0]
            risk = out.log_risk.float() if out.log_risk is not None else images.new_zeros(n)
            prob = torch.sigmoid(out.seg_logits.float())[:, 0] if want_prob else images.new_zeros(n)
            return risk, out.features.float(), prob

        return self._predict_in_batches(fn, X, list(self.modalities), self.predict_batch_size)

    @available_if(_has_survival_head)
    def predict(self, X):
        """Predicted log-risk (higher = earlier event), shape ``(n_patients,)``."""
        return self._forward(X)[0].astype(np.float64)

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

    @available_if(_segments)
    def predict_proba_mask(self, X):
        """Tumour probability map, ``(n_patients, D, H, W)`` float32 in [0, 1]."""
        return self._forward(X, want_prob=True)[2]

    @available_if(_segments)
    def predict_mask(self, X, threshold=0.5):
        """Binary tumour mask (probability > ``threshold``), ``(n_patients, D, H, W)`` uint8."""
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1); got {threshold}.")
        return (self.predict_proba_mask(X) > threshold).astype(np.uint8)

    @available_if(_has_survival_head)
    def transform(self, X):
        """The deep features (hard-sharing then cascade; 124 + 112 = 236 at the defaults).

        A pandas DataFrame with :meth:`get_feature_names_out` columns after
        ``set_output(transform="pandas")`` (as in :func:`make_survival_pipeline`), so deep
        features + Lasso-Cox / RSF / DeepSurv (the paper's Table II) are pipelines.
        """
        return self._forward(X)[1].astype(np.float64)

    @available_if(_has_survival_head)
    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s columns: ``hs<level>_<k>`` and ``csn<level>_<k>``."""
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
        return np.asarray(names, dtype=object)
