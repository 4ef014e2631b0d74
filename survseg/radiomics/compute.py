"""One pyradiomics extraction: numpy volumes -> SimpleITK images -> feature vector.

These functions run in joblib workers, so they take and return plain picklable objects.
Arrays are in the cohort's ``(D, H, W)`` = ``(z, y, x)`` order; SimpleITK wants the spacing in
``(x, y, z)`` order, so it is reversed when the image is built.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

__all__ = ["to_sitk", "mask_bounding_box", "crop_box", "quiet_radiomics", "extract"]


def to_sitk(array: np.ndarray, spacing):
    """A SimpleITK image of a ``(D, H, W)`` array with voxel ``spacing`` given as ``(D, H, W)``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    return image


def mask_bounding_box(mask: np.ndarray):
    """``(lower, upper)`` inclusive voxel bounds of the non-zero voxels, or ``None`` if empty."""
    lower, upper = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lower.append(int(hit[0]))
        upper.append(int(hit[-1]))
    return lower, upper


def crop_box(shape, box, pad: int) -> tuple[slice, ...]:
    """Slices of the bounding ``box`` grown by ``pad`` voxels, clipped to ``shape``.

    The same region as pyradiomics' ``preCrop`` (``cropToTumorMask`` with ``padDistance``), so
    cropping here first gives pyradiomics the image it would have cropped itself, and a
    worker receives kilobytes instead of a whole volume.
    """
    lower, upper = box
    return tuple(
        slice(max(lo - pad, 0), min(hi + pad, n - 1) + 1)
        for lo, hi, n in zip(lower, upper, shape, strict=True)
    )


@contextlib.contextmanager
def quiet_radiomics():
    """Silence pyradiomics' INFO/WARNING logging and its warnings for one block, then restore.

    Its logger is at INFO by default: formatting thousands of records per patient costs time
    and fills the console with notes such as deprecated-feature warnings for features that
    were asked for on purpose.
    """
    logger = logging.getLogger("radiomics")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def extract(image: np.ndarray, mask: np.ndarray, spacing, config: dict):
    """Run pyradiomics on one image and mask.

    Parameters
    ----------
    image : ndarray of shape (D, H, W)
    mask : ndarray of shape (D, H, W), values in {0, 1}
    spacing : sequence of 3 floats, ``(D, H, W)`` order, in mm
    config : dict
        ``settings`` (pyradiomics settings), ``image_types`` (pyradiomics image type ->
        custom arguments) and ``classes`` (feature class -> feature names).

    Returns
    -------
    names : list of str
        pyradiomics names (``"original_glcm_Contrast"``, ``"wavelet-LLH_firstorder_Mean"``).
    values : ndarray of float64
    error : str or None
        pyradiomics' message when it rejects the mask (e.g. a single-voxel ROI); then
        ``names`` and ``values`` are empty.
    """
    from radiomics import featureextractor

    with quiet_radiomics():
        extractor = featureextractor.RadiomicsFeatureExtractor(**config["settings"])
        extractor.disableAllImageTypes()
        extractor.enableImageTypes(**{k: dict(v) for k, v in config["image_types"].items()})
        extractor.disableAllFeatures()
        extractor.enableFeaturesByName(**{k: list(v) for k, v in config["classes"].items()})
        try:
            result = extractor.execute(
                to_sitk(image.astype(np.float32, copy=False), spacing),
                to_sitk(mask.astype(np.uint8, copy=False), spacing),
                label=1,
            )
        except ValueError as exc:  # pyradiomics' mask checks (too small, 1D ROI, ...)
            return [], np.empty(0), str(exc)
    names = [k for k in result if not k.startswith("diagnostics_")]
    # GLCM's MCC comes from eigenvalues and can carry a round-off imaginary part: keep the real one.
    values = np.array([np.real(result[k]) for k in names], dtype=np.float64)
    return names, values, None
