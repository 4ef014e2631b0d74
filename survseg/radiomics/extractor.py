"""RadiomicsExtractor: a scikit-learn transformer from a cohort to a table of pyradiomics features."""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import pandas as pd
from joblib import Memory, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._parallel import parallel_run
from ..data.cohort import SPACING_FIELD, cohort_spacing, image_fields
from ..data.errors import PatientError, PatientWarning
from ..data.mapped import release_pages
from ..data.validation import check_cohort, check_fitted_cohort, cohort_signature
from .backends import BACKENDS, check_backend, extract_unit
from .cache import MEMORY_CACHE, DiskCache, content_key
from .compute import (
    BURDEN_FEATURES,
    BURDEN_IMAGE_FEATURES,
    crop_box,
    extract,
    mask_bounding_box,
    node_burden,
    shell_masks,
)
from .settings import IMAGE_TYPES, resolve_bin_width, resolve_feature_classes, resolve_image_types

__all__ = ["RadiomicsExtractor"]

# Settings that have their own parameter; passing them in ``settings`` would be ambiguous.
_OWN_PARAMETERS = {
    "binWidth": "bin_width",
    "resampledPixelSpacing": "resampling",
    "preCrop": "pre_crop",
    "label": "the mask parameter (masks are binary; label 1 is the tumour)",
    "additionalInfo": "nothing (diagnostics are not features)",
    "voxelBased": "nothing (segment-based extraction only)",
    "force2D": "nothing (3D extraction only)",
}
_FEW_BINS = 5  # fewer grey levels than this inside a typical ROI: texture features degenerate
_NAME_PHANTOM_SIZE = 16
_REGIONS = ("tumour", "nodes")


def _run_unit(index, image, mask, spacing, config):
    """joblib task: one (patient, modality) or (patient, shape) extraction."""
    names, values, error = extract_unit(image, mask, spacing, config)
    return index, names, values, error


class RadiomicsExtractor(TransformerMixin, BaseEstimator):
    r"""Extract pyradiomics features of the tumour, the lymph nodes and peritumoral shells.

    ``transform(X)`` returns a pandas DataFrame with one row per patient and one column per
    feature, named ``<modality>_<image type>_<class>_<feature>``
    (``"pet_wavelet-LLH_glcm_Contrast"``) and ``shape_<feature>`` (``"shape_VoxelVolume"``)
    for the tumour's shape features, which depend only on the mask and are extracted once per
    patient. Columns of the other regions start with the region's name
    (``"nodes_ct_original_firstorder_Mean"``, ``"nodes_shape_VoxelVolume"``,
    ``"shell3mm_pet_original_glcm_Contrast"``); the tumour's keep the papers' names, so
    tumour-only models read as before.

    The regions (``regions`` and ``shells``) are

    - ``"tumour"``: the primary tumour (``mask``);
    - ``"nodes"``: the lymph nodes (``nodes``), all of a patient's nodes as one region, plus
      the node-burden features ``nodes_burden_Present``, ``_Count`` (connected components),
      ``_Volume`` and ``_LargestVolume`` (mm³) and, per modality, ``nodes_burden_<m>_Integral``
      (:math:`\sum_{\text{nodes}} I \, \Delta V`: total uptake for a PET in SUV) and
      ``nodes_burden_<m>_Maximum`` (SUVmax), see :func:`~survseg.radiomics.compute.node_burden`;
    - ``"shell<d>mm"`` for each ``d`` of ``shells``: the voxels within ``d`` mm of the tumour
      mask, the mask excluded (:func:`~survseg.radiomics.compute.shell_masks`); first-order
      and texture classes only (a shell's shape is the tumour's).

    **Patients without nodes** are valid: every ``nodes_*`` feature is 0 for them, and
    ``nodes_burden_Present`` = 0 tells them apart, so no feature is undefined. Node regions
    that pyradiomics rejects although not empty (a single voxel, a line of voxels) get NaN
    for the pyradiomics features (imputed downstream, e.g. by :class:`RadiomicsCox`) and a
    warning; their burden features are always defined.

    The default is the papers' set on the tumour (DeepMTS Sec. 4.3, AdaMSS Appendix A):
    first-order (19), GLCM (24), GLRLM (16), GLSZM (16) and NGTDM (5) on the original image
    and its 8 wavelet decompositions, per modality, plus 16 shape features: 1,456 features for
    PET/CT. See :mod:`survseg.radiomics.settings` for how the 19th first-order and the
    15th/16th shape features are chosen.

    Features do not depend on the training data, so ``fit`` only validates the settings and
    fixes the output columns; ``transform`` extracts. Results are cached by content (image and
    mask bytes, spacing, settings), so in cross-validation a patient is extracted once however
    many folds and clones see it.

    Parameters
    ----------
    modalities : sequence of str, optional
        Image fields to extract from; ``None`` means every image field of ``X`` at ``fit``.
    mask : str or callable, default="mask"
        Where the tumour masks come from: the name of a mask field of ``X``, or a callable
        ``mask(X) -> ndarray (n_patients, D, H, W)`` of {0, 1} values (e.g. a segmentation
        model's predicted masks).
    regions : sequence of {"tumour", "nodes"}, default=("tumour",)
        The regions to describe, in column order.
    nodes : str or callable, default="nodes"
        Where the lymph-node masks come from (used when ``"nodes"`` is in ``regions``): a
        mask field of ``X`` or a callable, as ``mask``. All-zero masks are patients without
        nodes.
    shells : sequence of float, default=()
        Outer radii (mm) of peritumoral shells described as extra regions, e.g. ``(3, 6)``.
    feature_classes : None, sequence of str or dict, default=None
        ``None``: the papers' set. A sequence of pyradiomics class names (``"firstorder"``,
        ``"glcm"``, ``"glrlm"``, ``"glszm"``, ``"ngtdm"``, ``"gldm"``, ``"shape"``) with their
        default features, or a dict ``{class: None | [feature, ...]}``.
    image_types : None, sequence of str or dict, default=("original", "wavelet")
        Images the non-shape classes are computed on (``None``: the papers' original +
        wavelet): ``"original"``, ``"wavelet"`` (8
        decompositions), ``"log"`` (needs ``{"log": {"sigma": [...]}}``), ``"square"``,
        ``"squareroot"``, ``"logarithm"``, ``"exponential"``, ``"gradient"``, ``"lbp3d"``. A
        dict maps a name to pyradiomics arguments for that filter.
    bin_width : None, float or dict, default=None
        Grey-level bin width. ``None``: 25 on the original image and 10 on filtered images (the
        authors' parameter file; sensible for CT in HU, too coarse for PET in SUV). A number,
        a dict per image type (``{"original": 25, "wavelet": 10}``), or a dict per modality
        (``{"pet": 0.25, "ct": {"original": 25, "wavelet": 10}}``). A warning is issued when a
        modality's ROIs span fewer than 5 bins.
    spacing : None, float or sequence of 3 floats, default=None
        Voxel spacing of ``X`` in mm, in ``(D, H, W)`` order (the array axes). It is given to
        pyradiomics, so shape features are physical (a 2 mm grid gives 8 mm³ per voxel).
        ``None``: the cohort's own per-patient ``'spacing'`` field (:func:`survseg.volumes`,
        the loaders and ``survseg preprocess`` record it), or 1 mm with a warning for a
        cohort without one. A value given here must agree with the cohort's field where it
        has one (a conflict, e.g. spacing given in (x, y, z) order, is an error).
    resampling : None or sequence of 3 floats, default=None
        Resample images (B-spline) and masks (nearest) to this spacing, ``(D, H, W)`` order in
        mm, before extraction (pyradiomics' ``resampledPixelSpacing``).
    pre_crop : bool, default=True
        Crop to the mask's bounding box (plus pyradiomics' ``padDistance``, 5 voxels) before
        filtering: identical features, several times faster. Ignored when resampling. With
        ``settings={"normalize": True}`` the image is handed over whole, so that pyradiomics
        normalises over the whole image before it crops (features stay identical).
    settings : dict, optional
        Further pyradiomics settings (e.g. ``{"normalize": True}``, ``{"binCount": 64}``,
        ``{"wavelet": "haar"}``). Settings that have their own parameter here are refused.
    empty_mask : {"raise", "nan"}, default="raise"
        What to do when a patient's tumour mask (or a shell) is empty or pyradiomics rejects
        it (e.g. a single voxel): raise a ``ValueError`` naming the patient and the region,
        or give that patient NaN features and warn. Node regions never raise: no nodes gives
        0 features, a node region pyradiomics rejects gives NaN and a warning.
    n_jobs : int, optional
        Parallel extraction processes (joblib); ``None`` means 1, ``-1`` all cores. Work is
        split per (patient, modality).
    verbose : int, default=0
        ``> 0`` shows a progress bar.
    cache : bool, default=True
        Reuse features from the process-wide in-memory cache
        (:func:`survseg.radiomics.clear_cache` empties it).
    memory : None, str, path or joblib.Memory, optional
        Directory for an on-disk cache shared across processes and sessions (for a
        ``joblib.Memory``, its ``location``).
    backend : {"pyradiomics", "fastrad"}, default="pyradiomics"
        What computes the features: pyradiomics on the CPU, or the optional fastrad package
        (PyTorch; on a CUDA device when there is one) for the per-modality features (shape
        stays with pyradiomics). fastrad covers the original image only, with a fixed bin
        width and no resampling; other settings are refused at ``fit``. Same column names
        either way; see :mod:`survseg.radiomics.backends`.

    Attributes
    ----------
    modalities_ : tuple of str
        The modalities features are extracted from.
    regions_ : tuple of str
        The regions described, in column order (``"tumour"``, ``"nodes"``, ``"shell3mm"``...).
    feature_names_out_ : ndarray of str
        Output column names.
    spacing_ : tuple of 3 floats or None
        The voxel spacing, ``(D, H, W)`` order, mm: the ``spacing`` parameter, else the
        training cohort's when all its patients share one; ``None`` when it varies per
        patient (each patient is then measured with its own).
    cohort_signature_ : dict
        The fields read at fit (:func:`survseg.data.validation.cohort_signature`); cohorts
        given to ``transform`` must have them (any volume size: features are in mm).
    config_ : dict
        The resolved pyradiomics configuration per modality (and ``"shape"``).

    See Also
    --------
    survseg.radiomics.CorrelationFilter : the papers' redundancy reduction.
    survseg.estimators.RadiomicsCox : radiomics + Lasso-Cox as one estimator.

    References
    ----------
    .. [1] van Griethuysen et al., "Computational Radiomics System to Decode the Radiographic
       Phenotype", Cancer Research 77(21), 2017.
    .. [2] Meng et al., "DeepMTS", IEEE JBHI 2022, Sec. 4.3.
    .. [3] Rebaud et al., "Simplicity is all you need: out-of-the-box nnUNet followed by
       binary-weighted radiomic model for segmentation and outcome prediction in head and
       neck PET/CT", HECKTOR 2022, LNCS 13626 (2023): the prognosis winner, on radiomics
       of the tumour and the lymph nodes.

    Examples
    --------
    >>> from survseg.radiomics import RadiomicsExtractor
    >>> ext = RadiomicsExtractor(feature_classes=["firstorder", "shape"], image_types=["original"],
    ...                          bin_width=0.25)                           # doctest: +SKIP
    >>> features = ext.fit_transform(X)                                    # doctest: +SKIP
    >>> two = RadiomicsExtractor(regions=("tumour", "nodes"), shells=(3, 6))  # doctest: +SKIP
    """

    _parameter_constraints = {
        "modalities": [None, str, list, tuple],
        "mask": [str, callable],
        "regions": [list, tuple],
        "nodes": [str, callable],
        "shells": [list, tuple, np.ndarray],
        "feature_classes": [None, list, tuple, dict],
        "image_types": [None, str, list, tuple, dict],
        "bin_width": [None, Interval(numbers.Real, 0, None, closed="neither"), dict],
        "spacing": [
            None,
            Interval(numbers.Real, 0, None, closed="neither"),
            list,
            tuple,
            np.ndarray,
        ],
        "resampling": [None, list, tuple, np.ndarray],
        "pre_crop": ["boolean"],
        "settings": [None, dict],
        "empty_mask": [StrOptions({"raise", "nan"})],
        "n_jobs": [None, numbers.Integral],
        "verbose": ["verbose"],
        "cache": ["boolean"],
        "memory": [None, str, os.PathLike, Memory],
        "backend": [StrOptions(set(BACKENDS))],
    }

    def __init__(
        self,
        modalities=None,
        *,
        mask="mask",
        regions=("tumour",),
        nodes="nodes",
        shells=(),
        feature_classes=None,
        image_types=("original", "wavelet"),
        bin_width=None,
        spacing=None,
        resampling=None,
        pre_crop=True,
        settings=None,
        empty_mask="raise",
        n_jobs=None,
        verbose=0,
        cache=True,
        memory=None,
        backend="pyradiomics",
    ):
        self.modalities = modalities
        self.mask = mask
        self.regions = regions
        self.nodes = nodes
        self.shells = shells
        self.feature_classes = feature_classes
        self.image_types = image_types
        self.bin_width = bin_width
        self.spacing = spacing
        self.resampling = resampling
        self.pre_crop = pre_crop
        self.settings = settings
        self.empty_mask = empty_mask
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.cache = cache
        self.memory = memory
        self.backend = backend

    # ------------------------------------------------------------------ configuration
    @staticmethod
    def _triple(value, name) -> tuple[float, float, float]:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if arr.shape == (1,):
            arr = np.repeat(arr, 3)
        if arr.shape != (3,) or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
            raise ValueError(
                f"{name} must be a positive number or 3 positive numbers in (D, H, W) order; "
                f"got {value!r}."
            )
        return tuple(float(v) for v in arr)

    def _given(self) -> tuple[float, float, float]:
        return self._triple(self.spacing, "spacing")

    def _patient_spacing(self, X, given=None) -> np.ndarray | None:
        """``(n, 3)`` spacing per patient (mm, D, H, W): the cohort's field, checked against
        ``given``; ``given`` alone for a cohort without the field; ``None`` if neither."""
        rows = cohort_spacing(X)
        if rows is None:
            return (
                None if given is None else np.tile(np.asarray(given, dtype=np.float64), (len(X), 1))
            )
        if given is not None:
            off = ~np.isclose(rows, given, rtol=1e-6, atol=0).all(axis=1)
            if off.any():
                i = int(np.flatnonzero(off)[0])
                hint = (
                    " (it is the cohort's in reverse: give spacing in (D, H, W) order, "
                    "not SimpleITK's (x, y, z))"
                    if np.allclose(rows[i][::-1], given, rtol=1e-6, atol=0)
                    else ""
                )
                raise PatientError(
                    f"spacing={list(given)} conflicts with the cohort's own voxel spacing "
                    f"{rows[i].tolist()} (mm, D, H, W) for {{patient}}{hint}; drop the "
                    "spacing parameter to use the cohort's.",
                    patient=i,
                )
        return rows

    def _resolve_modalities(self, X) -> tuple[str, ...]:
        if self.modalities is None:
            field = self.mask if isinstance(self.mask, str) else None
            return tuple(f for f in image_fields(X) if f != field)
        mods = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        if not mods:
            raise ValueError("modalities is empty: name at least one image field.")
        if len(set(mods)) != len(mods):
            raise ValueError(f"modalities lists a field twice: {list(mods)}.")
        return mods

    def _resolve_regions(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        regions = (self.regions,) if isinstance(self.regions, str) else tuple(self.regions)
        unknown = [r for r in regions if r not in _REGIONS]
        if unknown:
            raise ValueError(
                f"regions must be among {list(_REGIONS)} (shells have their own parameter, "
                f"shells=(3, 6)); got {unknown}."
            )
        if not regions and not len(self.shells):
            raise ValueError("regions is empty and there are no shells: nothing to describe.")
        if len(set(regions)) != len(regions):
            raise ValueError(f"regions lists a region twice: {list(regions)}.")
        try:
            shells = tuple(float(d) for d in np.ravel(np.asarray(self.shells, dtype=float)))
        except (TypeError, ValueError):
            shells = None
        if shells is None or not all(np.isfinite(d) and d > 0 for d in shells):
            raise ValueError(
                f"shells must be positive distances in mm, e.g. (3, 6); got {self.shells!r}."
            )
        if len(set(shells)) != len(shells):
            raise ValueError(f"shells lists a distance twice: {list(self.shells)}.")
        return regions, shells

    @staticmethod
    def _shell_name(distance: float) -> str:
        return f"shell{distance:g}mm"

    def _build_config(self, modalities) -> dict:
        classes = resolve_feature_classes(self.feature_classes)
        image_types = resolve_image_types(self.image_types)
        widths = resolve_bin_width(self.bin_width, modalities, list(image_types))
        extra = dict(self.settings or {})
        clash = {k: v for k, v in _OWN_PARAMETERS.items() if k in extra}
        if clash:
            raise ValueError(
                "settings must not contain "
                + "; ".join(f"{k!r} (use {v})" for k, v in clash.items())
                + "."
            )
        base = {"label": 1, "additionalInfo": False, "padDistance": 5}
        base.update(extra)
        if self.resampling is not None:
            res = self._triple(self.resampling, "resampling")
            base["resampledPixelSpacing"] = list(reversed(res))  # pyradiomics wants (x, y, z)
            base.setdefault("interpolator", "sitkBSpline")
            base["preCrop"] = False
        else:
            base["preCrop"] = bool(self.pre_crop)
        texture = {c: list(f) for c, f in classes.items() if c != "shape"}
        config = {}
        if texture:
            for m in modalities:
                types = {
                    IMAGE_TYPES[t]: {**args, "binWidth": widths[m][t]}
                    for t, args in image_types.items()
                }
                config[m] = {
                    "settings": {**base, "binWidth": widths[m]["original"]},
                    "image_types": types,
                    "classes": texture,
                }
        if "shape" in classes:
            config["shape"] = {
                "settings": dict(base),
                "image_types": {"Original": {}},
                "classes": {"shape": list(classes["shape"])},
            }
        return config

    def _disk_cache(self):
        if self.memory is None:
            return None
        location = self.memory.location if isinstance(self.memory, Memory) else self.memory
        if location is None:
            return None
        return DiskCache(os.path.join(os.fspath(location), "survseg_radiomics"))

    # ------------------------------------------------------------------ fit / transform
    def fit(self, X, y=None):
        """Validate the settings and fix the output columns (no extraction).

        Parameters
        ----------
        X : cohort (structured ndarray)
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        modalities = self._resolve_modalities(X)
        regions, shells = self._resolve_regions()
        self._check_cohort(X, modalities=modalities, check_values=False, regions=regions)
        spacing = self._patient_spacing(X, None if self.spacing is None else self._given())
        if spacing is None:
            self.spacing_ = (1.0, 1.0, 1.0)
            warnings.warn(
                "X carries no voxel spacing ('spacing' field) and spacing=None: features are "
                "measured on a 1 mm grid. Build X with spacing=... (mm, D, H, W) or pass "
                "spacing= to the extractor.",
                UserWarning,
                stacklevel=2,
            )
        elif self.spacing is not None:
            self.spacing_ = self._given()
        else:
            same = np.allclose(spacing, spacing[0], rtol=1e-6, atol=0)
            self.spacing_ = tuple(float(v) for v in spacing[0]) if same else None
        finest = float(np.min(spacing)) if spacing is not None else min(self.spacing_)
        thin = [d for d in shells if d < finest]
        if thin:
            raise ValueError(
                f"shells {thin} mm are thinner than the smallest voxel size "
                f"{finest:g} mm: they would hold no voxel. Give shells of at least one voxel."
            )
        fields = list(modalities)
        if self._needs_tumour(regions) and isinstance(self.mask, str):
            fields.append(self.mask)
        if "nodes" in regions and isinstance(self.nodes, str):
            fields.append(self.nodes)
        if SPACING_FIELD in X.dtype.names and self.spacing is None:
            fields.append(SPACING_FIELD)
        self.cohort_signature_ = cohort_signature(X, fields)
        config = check_backend(self.backend, self._build_config(modalities))
        self.modalities_ = modalities
        self.config_ = config
        self.shells_ = shells
        self.regions_ = regions + tuple(self._shell_name(d) for d in shells)
        unit_names = self._names_from_phantom(config)
        names = []
        for region in self.regions_:
            for unit in self._region_units(region):
                names += [self._prefix(region) + n for n in unit_names[unit]]
            if region == "nodes":
                names += [f"nodes_burden_{n}" for n in BURDEN_FEATURES]
                names += [
                    f"nodes_burden_{m}_{n}" for m in modalities for n in BURDEN_IMAGE_FEATURES
                ]
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    def _region_units(self, region) -> list[str]:
        """Extraction units of a region: its modalities, and "shape" except for shells."""
        shell = region.startswith("shell")
        return [u for u in self.config_ if not (shell and u == "shape")]

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : ignored
            The input is a cohort, not a feature table.
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def transform(self, X):
        """Extract the features of every patient of ``X``.

        Parameters
        ----------
        X : cohort (structured ndarray)
            Must hold the fitted modalities (and the mask field when ``mask`` is a name).

        Returns
        -------
        features : pandas.DataFrame of shape (n_patients, n_features)
        """
        check_is_fitted(self, "feature_names_out_")
        check_fitted_cohort(self, X, optional=(), check_shape=False)
        regions = tuple(r for r in self.regions_ if r in _REGIONS)
        self._check_cohort(X, check_values=True, regions=regions)
        tumour = self._masks(X, self.mask, "mask") if self._needs_tumour(regions) else None
        nodes = self._masks(X, self.nodes, "nodes") if "nodes" in regions else None
        values = self._extract(X, tumour, nodes)
        return pd.DataFrame(values, columns=list(self.feature_names_out_))

    # ------------------------------------------------------------------ internals
    def _needs_tumour(self, regions) -> bool:
        return "tumour" in regions or bool(len(self.shells))

    def _check_cohort(self, X, modalities=None, check_values=True, regions=("tumour",)):
        """Images finite, mask fields present; empty masks are left to the empty_mask policy."""
        sources = []
        if self._needs_tumour(regions):
            sources.append(("mask", self.mask, "tumour masks"))
        if "nodes" in regions:
            sources.append(("nodes", self.nodes, "lymph-node masks"))
        field = self.mask if isinstance(self.mask, str) else "mask"
        check_cohort(
            X,
            modalities=modalities or self.modalities_,
            require_mask=self._needs_tumour(regions)
            and isinstance(self.mask, str)
            and not check_values,
            mask_field=field,
            check_values=check_values,
        )
        for param, source, what in sources:
            if not isinstance(source, str):
                continue
            if source not in X.dtype.names:
                raise ValueError(
                    f"X has no {source!r} field to take the {what} from (its fields are "
                    f"{list(X.dtype.names)}); set {param}= to another field or a callable."
                )
            sub = X.dtype.fields[source][0]
            # named by the user as a mask: its role is given, so only its type is checked
            if len(sub.shape) != 3 or sub.base.kind not in "biu":
                raise TypeError(
                    f"the {what} field {source!r} has dtype {X.dtype.fields[source][0]}; "
                    "expected a 3D uint8 sub-array with values in {0, 1}."
                )

    def _masks(self, X, source, param):
        """A mask source: a field view, or the callable's validated output."""
        if isinstance(source, str):
            return X[source]
        masks = np.asarray(source(X))
        spatial = X.dtype.fields[self.modalities_[0]][0].shape
        if masks.shape != (len(X), *spatial):
            raise ValueError(
                f"the {param} callable returned shape {masks.shape}; expected "
                f"{(len(X), *spatial)} (one mask per patient, same grid as the images)."
            )
        if masks.dtype != bool and not np.isin(np.unique(masks), (0, 1)).all():
            raise ValueError(f"the {param} callable must return binary masks (values 0 and 1).")
        return masks.astype(np.uint8, copy=False)

    def _region_masks(self, tumour, nodes, i, spacing) -> dict:
        """Every region's mask of patient ``i`` (shells from the tumour mask)."""
        out = {}
        if tumour is not None:
            t = np.asarray(tumour[i])
            if ((t != 0) & (t != 1)).any():
                raise PatientError(
                    "the tumour mask of {patient} is not binary (values other than 0/1).",
                    patient=i,
                )
            out["tumour"] = t
            for d, shell in zip(self.shells_, shell_masks(t, spacing, self.shells_), strict=True):
                out[self._shell_name(d)] = shell
        if nodes is not None:
            n = np.asarray(nodes[i])
            if ((n != 0) & (n != 1)).any():
                raise PatientError(
                    "the lymph-node mask of {patient} is not binary (values other than 0/1).",
                    patient=i,
                )
            out["nodes"] = n
        return out

    def _unit_arrays(self, X, mask, i, unit):
        """(image, mask) of one unit, cropped as pyradiomics' preCrop would."""
        mask = np.asarray(mask)
        image = mask.astype(np.float32) if unit == "shape" else np.asarray(X[unit][i], np.float32)
        settings = self.config_[unit]["settings"]
        # pyradiomics normalises over the whole image before its own crop: cropping here first
        # would normalise over the box instead
        if settings.get("preCrop") and not settings.get("normalize"):
            box = mask_bounding_box(mask)
            if box is not None:
                region = crop_box(mask.shape, box, int(settings.get("padDistance", 5)))
                mask, image = mask[region], image[region]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask, dtype=np.uint8)

    def _fail(self, i, region, unit, reason, failures):
        where = "the shape features" if unit == "shape" else f"modality {unit!r}"
        if self.empty_mask == "raise" and region != "nodes":
            raise PatientError(
                f"cannot extract radiomics features for {{patient}}: {reason} ({where} of "
                f"region {region!r}). Fix the mask, drop the patient, or pass "
                "empty_mask='nan' to get NaN features for it.",
                patient=i,
            )
        failures.append((i, region, reason))

    def _extract(self, X, tumour, nodes) -> np.ndarray:
        import radiomics

        version = radiomics.__version__
        memory_cache = MEMORY_CACHE if self.cache else None
        disk_cache = self._disk_cache()
        columns = {name: j for j, name in enumerate(self.feature_names_out_)}
        out = np.full((len(X), len(columns)), np.nan)
        failures, todo, keys = [], [], {}
        few_bins = {u: [] for u in self.config_ if u != "shape"}
        burden_columns = [j for name, j in columns.items() if name.startswith("nodes_burden_")]
        given = None if self.spacing is None else self._given()
        spacing = self._patient_spacing(X, given)
        if spacing is None:  # fitted on a cohort without spacing, spacing=None: 1 mm
            spacing = np.tile(np.asarray(self.spacing_, dtype=np.float64), (len(X), 1))
        spacing = [tuple(float(v) for v in row) for row in spacing]

        node_columns = [
            j
            for name, j in columns.items()
            if name.startswith("nodes_") and j not in burden_columns
        ]
        # Pass 1: hash every unit, serve what the caches hold, list what must be extracted.
        for i in range(len(X)):
            masks = self._region_masks(tumour, nodes, i, spacing[i])
            for region in self.regions_:
                mask = masks[region]
                if region == "nodes":  # defined for every patient, 0 without nodes
                    images = {m: X[m][i] for m in self.modalities_}
                    for name, value in node_burden(mask, images, spacing[i]).items():
                        out[i, columns[f"nodes_burden_{name}"]] = value
                if not mask.any():
                    if region == "nodes":  # no nodes: the node features are defined as 0
                        out[i, node_columns] = 0.0
                        continue
                    empty_tumour = region == "tumour" or not masks["tumour"].any()
                    reason = "the mask is empty" if empty_tumour else "the shell is empty"
                    for unit in self._region_units(region):
                        self._fail(i, region, unit, reason, failures)
                    continue
                for unit in self._region_units(region):
                    image, m = self._unit_arrays(X, mask, i, unit)
                    if unit != "shape" and region == "tumour":
                        few_bins[unit].append(self._n_bins(image, m, unit))
                    key = content_key(
                        [image, m],
                        {"config": self.config_[unit], "spacing": spacing[i], "v": version},
                    )
                    hit = memory_cache.get(key) if memory_cache is not None else None
                    if hit is None and disk_cache is not None:
                        hit = disk_cache.get(key)
                        if hit is not None and memory_cache is not None:
                            memory_cache.put(key, *hit)
                    if hit is not None:
                        self._store(out, columns, i, region, unit, *hit)
                    else:
                        keys[(i, region, unit)] = key
                        todo.append((i, region, unit))
            release_pages(X)  # this patient's pages of a memory-mapped cohort
        self._warn_few_bins(few_bins)

        # Pass 2: extract the misses in parallel, re-reading (and re-cropping) each unit;
        # a patient's region masks (shells: a distance transform) are made once.
        if todo:
            current = {}

            def unit_arrays(i, region, unit):
                if current.get("i") != i:
                    release_pages(X)  # the previous patient's pages of a memory-mapped cohort
                    current.clear()
                    current.update(i=i, masks=self._region_masks(tumour, nodes, i, spacing[i]))
                return self._unit_arrays(X, current["masks"][region], i, unit)

            tasks = (
                delayed(_run_unit)(
                    (i, region, unit),
                    *unit_arrays(i, region, unit),
                    spacing[i],
                    self.config_[unit],
                )
                for i, region, unit in todo
            )
            results = parallel_run(tasks, n_jobs=self.n_jobs, return_as="generator_unordered")
            bar = tqdm(results, total=len(todo), desc="radiomics", disable=not self.verbose)
            for (i, region, unit), names, values, error in bar:
                if error is not None:
                    self._fail(i, region, unit, f"pyradiomics rejected the mask: {error}", failures)
                    continue
                if memory_cache is not None:
                    memory_cache.put(keys[(i, region, unit)], names, values)
                if disk_cache is not None:
                    disk_cache.put(keys[(i, region, unit)], names, values)
                self._store(out, columns, i, region, unit, names, values)
        if failures:
            warnings.warn(_failure_summary(failures), stacklevel=3)
        return out

    @staticmethod
    def _prefix(region) -> str:
        """Column prefix of a region: none for the tumour (the papers' names), else its name."""
        return "" if region in ("tumour", "") else f"{region}_"

    @classmethod
    def _column(cls, region, unit, name) -> str:
        if unit == "shape":
            return cls._prefix(region) + "shape_" + name.split("_shape_", 1)[1]
        return f"{cls._prefix(region)}{unit}_{name}"

    def _store(self, out, columns, i, region, unit, names, values):
        idx = [columns.get(self._column(region, unit, n)) for n in names]
        if any(j is None for j in idx):
            unknown = [n for n, j in zip(names, idx, strict=True) if j is None]
            raise RuntimeError(f"pyradiomics returned features not fixed at fit: {unknown[:5]}.")
        out[i, idx] = values

    def _n_bins(self, image, mask, unit) -> float:
        settings = self.config_[unit]["settings"]
        if (
            settings.get("binCount") is not None
            or "Original" not in self.config_[unit]["image_types"]
        ):
            return np.inf
        roi = image[mask > 0]
        return float(roi.max() - roi.min()) / settings["binWidth"] + 1.0

    def _warn_few_bins(self, few_bins) -> None:
        for unit, counts in few_bins.items():
            if counts and np.median(counts) < _FEW_BINS:
                width = self.config_[unit]["settings"]["binWidth"]
                warnings.warn(
                    f"with bin width {width:g}, the {unit!r} tumours span a median of "
                    f"{np.median(counts):.1f} grey levels: texture features are nearly constant. "
                    f"Set a bin width that fits {unit!r}'s intensity scale, e.g. "
                    f"bin_width={{{unit!r}: ...}} (pyradiomics suggests 30-130 bins).",
                    UserWarning,
                    stacklevel=4,
                )

    def _names_from_phantom(self, config) -> dict:
        """Output columns per unit (without the region prefix), read off one extraction on a
        small synthetic case.

        pyradiomics names its outputs as it computes them (wavelet sub-band names depend on
        the wavelet settings), so the reliable way to know them is to run it once. The
        result is cached per configuration.
        """
        phantom_spacing = self.spacing_ or (1.0, 1.0, 1.0)
        key = content_key([], {"names": config, "spacing": phantom_spacing})
        hit = _NAME_CACHE.get(key)
        if hit is not None:
            return {unit: list(names) for unit, names in hit.items()}
        n = _NAME_PHANTOM_SIZE
        grid = np.indices((n, n, n)) - (n - 1) / 2
        mask = (np.sqrt((grid**2).sum(axis=0)) <= n / 3).astype(np.uint8)
        names = {}
        for unit, cfg in config.items():
            # Two grey levels one bin apart: every class is defined and extraction is instant
            # (a noisy phantom with a fine bin width would build huge texture matrices).
            width = cfg["settings"].get("binWidth", 1.0)
            image = (mask * width + np.indices((n, n, n))[0] % 2 * width).astype(np.float32)
            got, _, error = extract(image, mask, phantom_spacing, cfg)
            if error is not None:
                raise ValueError(
                    f"these extraction settings fail on a {n}^3 test case with a "
                    f"{int(mask.sum())}-voxel spherical ROI: {error}"
                )
            names[unit] = tuple(self._column("", unit, g) for g in got)
        _NAME_CACHE[key] = names
        return {unit: list(v) for unit, v in names.items()}


_NAME_CACHE: dict = {}


def _failure_summary(failures) -> PatientWarning:
    """One warning for all failed extractions of a transform, grouped by region and reason.

    A predicted node region of a voxel or two fails for every modality and the shape
    features alike; listing each extraction would make one warning per fit pages long. The
    patients are rows of the ``X`` given, renamed by whoever sliced it (see
    :mod:`survseg.data.errors`).
    """
    groups: dict = {}
    for i, region, reason in failures:
        groups.setdefault((region, reason.split("\n")[0][:160].rstrip(". ")), set()).add(i)
    parts, rows = [], {}
    for k, ((region, reason), patients) in enumerate(groups.items()):
        parts.append(f"region {region!r} ({reason}): {{g{k}}}")
        rows[f"g{k}"] = sorted(patients)
    n = len({i for i, _, _ in failures})
    return PatientWarning(
        f"radiomics features set to NaN for {len(failures)} extraction(s) of {n} "
        f"patient{'s' if n > 1 else ''}; " + "; ".join(parts) + ".",
        **rows,
    )
