"""RadiomicsExtractor: a scikit-learn transformer from a cohort to a table of pyradiomics features."""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..data.cohort import image_fields
from ..data.validation import check_cohort
from .backends import BACKENDS, check_backend, extract_unit
from .cache import MEMORY_CACHE, DiskCache, content_key
from .compute import crop_box, extract, mask_bounding_box
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


def _run_unit(index, image, mask, spacing, config):
    """joblib task: one (patient, modality) or (patient, shape) extraction."""
    names, values, error = extract_unit(image, mask, spacing, config)
    return index, names, values, error


class RadiomicsExtractor(TransformerMixin, BaseEstimator):
    r"""Extract pyradiomics features from every patient of a cohort.

    ``transform(X)`` returns a pandas DataFrame with one row per patient and one column per
    feature, named ``<modality>_<image type>_<class>_<feature>`` (``"pet_wavelet-LLH_glcm_Contrast"``,
    ``"ct_original_firstorder_Mean"``) and ``shape_<feature>`` (``"shape_VoxelVolume"``) for the
    shape features, which depend only on the mask and are extracted once per patient.

    The default is the papers' set (DeepMTS Sec. 4.3, AdaMSS Appendix A): first-order (19),
    GLCM (24), GLRLM (16), GLSZM (16) and NGTDM (5) on the original image and its 8 wavelet
    decompositions, per modality, plus 16 shape features: 1,456 features for PET/CT. See
    :mod:`survseg.radiomics.settings` for how the 19th first-order and the 15th/16th shape
    features are chosen.

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
    spacing : float or sequence of 3 floats, default=1.0
        Voxel spacing of ``X`` in mm, in ``(D, H, W)`` order (the array axes). It is given to
        pyradiomics, so shape features are physical (a 2 mm grid gives 8 mm³ per voxel).
    resampling : None or sequence of 3 floats, default=None
        Resample images (B-spline) and masks (nearest) to this spacing, ``(D, H, W)`` order in
        mm, before extraction (pyradiomics' ``resampledPixelSpacing``).
    pre_crop : bool, default=True
        Crop to the mask's bounding box (plus pyradiomics' ``padDistance``, 5 voxels) before
        filtering: identical features, several times faster. Ignored when resampling.
    settings : dict, optional
        Further pyradiomics settings (e.g. ``{"normalize": True}``, ``{"binCount": 64}``,
        ``{"wavelet": "haar"}``). Settings that have their own parameter here are refused.
    empty_mask : {"raise", "nan"}, default="raise"
        What to do when a patient's mask is empty or pyradiomics rejects it (e.g. a single
        voxel): raise a ``ValueError`` naming the patient, or give that patient NaN features
        and warn.
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
    feature_names_out_ : ndarray of str
        Output column names.
    spacing_ : tuple of 3 floats
        The voxel spacing used, ``(D, H, W)`` order, mm.
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

    Examples
    --------
    >>> from survseg.radiomics import RadiomicsExtractor
    >>> ext = RadiomicsExtractor(feature_classes=["firstorder", "shape"], image_types=["original"],
    ...                          bin_width=0.25)                           # doctest: +SKIP
    >>> features = ext.fit_transform(X)                                    # doctest: +SKIP
    """

    _parameter_constraints = {
        "modalities": [None, str, list, tuple],
        "mask": [str, callable],
        "feature_classes": [None, list, tuple, dict],
        "image_types": [None, str, list, tuple, dict],
        "bin_width": [None, Interval(numbers.Real, 0, None, closed="neither"), dict],
        "spacing": [Interval(numbers.Real, 0, None, closed="neither"), list, tuple, np.ndarray],
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
        feature_classes=None,
        image_types=("original", "wavelet"),
        bin_width=None,
        spacing=1.0,
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

    def _resolve_modalities(self, X) -> tuple[str, ...]:
        if self.modalities is None:
            return tuple(image_fields(X))
        mods = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        if not mods:
            raise ValueError("modalities is empty: name at least one image field.")
        if len(set(mods)) != len(mods):
            raise ValueError(f"modalities lists a field twice: {list(mods)}.")
        return mods

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
        self._check_cohort(X, modalities=modalities, check_values=False)
        self.spacing_ = self._triple(self.spacing, "spacing")
        config = check_backend(self.backend, self._build_config(modalities))
        self.modalities_ = modalities
        self.config_ = config
        self.feature_names_out_ = np.asarray(self._names_from_phantom(config), dtype=object)
        return self

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
        self._check_cohort(X, check_values=True)
        masks = self._masks(X)
        values = self._extract(X, masks)
        return pd.DataFrame(values, columns=list(self.feature_names_out_))

    # ------------------------------------------------------------------ internals
    def _check_cohort(self, X, modalities=None, check_values=True):
        """Images finite, mask field present; empty masks are left to the empty_mask policy."""
        field = self.mask if isinstance(self.mask, str) else "mask"
        check_cohort(
            X,
            modalities=modalities or self.modalities_,
            require_mask=isinstance(self.mask, str) and not check_values,
            mask_field=field,
            check_values=check_values,
        )
        if isinstance(self.mask, str) and field not in X.dtype.names:
            raise ValueError(
                f"X has no {field!r} field to take the tumour masks from "
                f"(its fields are {list(X.dtype.names)})."
            )

    def _masks(self, X):
        """The mask source: a field view, or the callable's validated output."""
        if isinstance(self.mask, str):
            return X[self.mask]
        masks = np.asarray(self.mask(X))
        spatial = X.dtype.fields[self.modalities_[0]][0].shape
        if masks.shape != (len(X), *spatial):
            raise ValueError(
                f"the mask callable returned shape {masks.shape}; expected "
                f"{(len(X), *spatial)} (one mask per patient, same grid as the images)."
            )
        if masks.dtype != bool and not np.isin(np.unique(masks), (0, 1)).all():
            raise ValueError("the mask callable must return binary masks (values 0 and 1).")
        return masks.astype(np.uint8, copy=False)

    def _unit_arrays(self, X, masks, i, unit):
        """(image, mask) of one unit, cropped as pyradiomics' preCrop would."""
        mask = np.asarray(masks[i])
        image = mask.astype(np.float32) if unit == "shape" else np.asarray(X[unit][i])
        settings = self.config_[unit]["settings"]
        if settings.get("preCrop"):
            box = mask_bounding_box(mask)
            if box is not None:
                region = crop_box(mask.shape, box, int(settings.get("padDistance", 5)))
                mask, image = mask[region], image[region]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask, dtype=np.uint8)

    def _fail(self, i, unit, reason, failures):
        where = "the shape features" if unit == "shape" else f"modality {unit!r}"
        message = f"patient {i}: {reason} ({where})"
        if self.empty_mask == "raise":
            raise ValueError(
                f"cannot extract radiomics features for {message}. Fix the mask, drop the "
                "patient, or pass empty_mask='nan' to get NaN features for it."
            )
        failures.append(message)

    def _extract(self, X, masks) -> np.ndarray:
        import radiomics

        units = list(self.config_)
        version = radiomics.__version__
        memory_cache = MEMORY_CACHE if self.cache else None
        disk_cache = self._disk_cache()
        columns = {name: j for j, name in enumerate(self.feature_names_out_)}
        out = np.full((len(X), len(columns)), np.nan)
        failures, todo, keys = [], [], {}
        few_bins = {u: [] for u in units if u != "shape"}

        # Pass 1: hash every unit, serve what the caches hold, list what must be extracted.
        for i in range(len(X)):
            mask = np.asarray(masks[i])
            if (mask > 1).any():
                raise ValueError(f"the mask of patient {i} is not binary (values other than 0/1).")
            empty = not mask.any()
            for unit in units:
                if empty:
                    self._fail(i, unit, "the mask is empty", failures)
                    continue
                image, m = self._unit_arrays(X, masks, i, unit)
                if unit != "shape":
                    few_bins[unit].append(self._n_bins(image, m, unit))
                key = content_key(
                    [image, m],
                    {"config": self.config_[unit], "spacing": self.spacing_, "v": version},
                )
                hit = memory_cache.get(key) if memory_cache is not None else None
                if hit is None and disk_cache is not None:
                    hit = disk_cache.get(key)
                    if hit is not None and memory_cache is not None:
                        memory_cache.put(key, *hit)
                if hit is not None:
                    self._store(out, columns, i, unit, *hit)
                else:
                    keys[(i, unit)] = key
                    todo.append((i, unit))
        self._warn_few_bins(few_bins)

        # Pass 2: extract the misses in parallel, re-reading (and re-cropping) each unit.
        if todo:
            tasks = (
                delayed(_run_unit)(
                    (i, unit),
                    *self._unit_arrays(X, masks, i, unit),
                    self.spacing_,
                    self.config_[unit],
                )
                for i, unit in todo
            )
            results = Parallel(n_jobs=self.n_jobs, return_as="generator_unordered")(tasks)
            bar = tqdm(results, total=len(todo), desc="radiomics", disable=not self.verbose)
            for (i, unit), names, values, error in bar:
                if error is not None:
                    self._fail(i, unit, f"pyradiomics rejected the mask: {error}", failures)
                    continue
                if memory_cache is not None:
                    memory_cache.put(keys[(i, unit)], names, values)
                if disk_cache is not None:
                    disk_cache.put(keys[(i, unit)], names, values)
                self._store(out, columns, i, unit, names, values)
        if failures:
            warnings.warn(
                f"radiomics features set to NaN for {len(failures)} extraction(s): "
                + "; ".join(failures[:10])
                + ("; ..." if len(failures) > 10 else "")
                + ".",
                UserWarning,
                stacklevel=3,
            )
        return out

    @staticmethod
    def _column(unit, name) -> str:
        if unit == "shape":
            return "shape_" + name.split("_shape_", 1)[1]
        return f"{unit}_{name}"

    def _store(self, out, columns, i, unit, names, values):
        idx = [columns.get(self._column(unit, n)) for n in names]
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

    def _names_from_phantom(self, config) -> list[str]:
        """Output columns, read off one extraction on a small synthetic case.

        pyradiomics names its outputs as it computes them (wavelet sub-band names depend on
        the wavelet settings), so the reliable way to know them is to run it once. The
        result is cached per configuration.
        """
        key = content_key([], {"names": config, "spacing": self.spacing_})
        hit = _NAME_CACHE.get(key)
        if hit is not None:
            return list(hit)
        n = _NAME_PHANTOM_SIZE
        grid = np.indices((n, n, n)) - (n - 1) / 2
        mask = (np.sqrt((grid**2).sum(axis=0)) <= n / 3).astype(np.uint8)
        names = []
        for unit, cfg in config.items():
            # Two grey levels one bin apart: every class is defined and extraction is instant
            # (a noisy phantom with a fine bin width would build huge texture matrices).
            width = cfg["settings"].get("binWidth", 1.0)
            image = (mask * width + np.indices((n, n, n))[0] % 2 * width).astype(np.float32)
            got, _, error = extract(image, mask, self.spacing_, cfg)
            if error is not None:
                raise ValueError(
                    f"these extraction settings fail on a {n}^3 test case with a "
                    f"{int(mask.sum())}-voxel spherical ROI: {error}"
                )
            names += [self._column(unit, g) for g in got]
        _NAME_CACHE[key] = tuple(names)
        return names


_NAME_CACHE: dict = {}
