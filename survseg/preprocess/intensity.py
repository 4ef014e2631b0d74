r"""Intensity normalisation: per-patient z-score (PET, or CT in DeepMTS) and a CT window mapped
to [-1, 1] (AdaMSS).

Both accept a SimpleITK image (the result keeps its geometry) or a numpy array, and return
``float32``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["zscore", "window"]


def _apply(image, function):
    if isinstance(image, sitk.Image):
        out = sitk.GetImageFromArray(function(sitk.GetArrayFromImage(image).astype(np.float64)))
        out.CopyInformation(image)
        return out
    return function(np.asarray(image, dtype=np.float64))


def zscore(image, mask=None):
    r"""Standardise to zero mean and unit variance: :math:`(x - \mu) / \sigma`.

    Parameters
    ----------
    image : SimpleITK.Image or ndarray
    mask : SimpleITK.Image or ndarray, optional
        Voxels (non-zero) over which :math:`\mu` and :math:`\sigma` (population standard
        deviation) are computed; default all voxels. The whole image is transformed.

    Returns
    -------
    SimpleITK.Image or ndarray
        ``float32``.

    Raises
    ------
    ValueError
        The image (or masked region) is constant or empty, so :math:`\sigma = 0`.
    """
    if mask is not None:
        selected = (
            sitk.GetArrayFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask)
        ) != 0

    def function(values):
        region = values if mask is None else values[selected]
        if region.size == 0:
            raise ValueError("zscore: the mask selects no voxel.")
        mean, std = region.mean(), region.std()
        if not std > 0:
            raise ValueError(
                f"zscore: the image is constant ({mean:g}), so its standard "
                "deviation is 0 and it cannot be standardised."
            )
        return ((values - mean) / std).astype(np.float32)

    return _apply(image, function)


def window(image, low: float = -1024.0, high: float = 1024.0, out_range=(-1.0, 1.0)):
    r"""Clip to ``[low, high]`` and map linearly onto ``out_range``.

    :math:`y = a + (b - a)\,(\min(\max(x, low), high) - low) / (high - low)` with
    ``out_range = (a, b)``; the AdaMSS CT normalisation is the default, [-1024, 1024] HU to
    [-1, 1].

    Parameters
    ----------
    image : SimpleITK.Image or ndarray
    low, high : float
        The window, ``low < high``.
    out_range : tuple of 2 float

    Returns
    -------
    SimpleITK.Image or ndarray
        ``float32``.
    """
    if not low < high:
        raise ValueError(f"window needs low < high; got low={low}, high={high}.")
    a, b = (float(v) for v in out_range)

    def function(values):
        return (a + (b - a) * (np.clip(values, low, high) - low) / (high - low)).astype(np.float32)

    return _apply(image, function)
