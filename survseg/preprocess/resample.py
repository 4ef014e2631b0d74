"""Resampling: to a new voxel spacing, or onto another image's grid (optionally through a
transform). Linear interpolation for intensities, nearest neighbour for labels."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .geometry import Grid

__all__ = ["INTERPOLATORS", "grid_for_spacing", "resample_to_spacing", "resample_to_reference"]

#: Interpolator names accepted by the resampling functions.
INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def _interpolator(name: str) -> int:
    try:
        return INTERPOLATORS[name]
    except KeyError:
        raise ValueError(
            f"interpolator must be one of {sorted(INTERPOLATORS)}; got {name!r}."
        ) from None


def _spacing(spacing) -> np.ndarray:
    values = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"spacing must be positive (mm); got {spacing!r}.")
    return values


def grid_for_spacing(image: sitk.Image | Grid, spacing=1.0) -> Grid:
    """The grid :func:`resample_to_spacing` resamples ``image`` onto (no voxels computed).

    Same origin and direction; size ``round(size * old_spacing / spacing)`` per axis (at
    least 1), so the new grid covers the old field of view to within one new voxel.
    """
    grid = image if isinstance(image, Grid) else Grid.from_image(image)
    new_spacing = _spacing(spacing)
    extent = np.asarray(grid.size, dtype=float) * np.asarray(grid.spacing)
    new_size = np.maximum(np.round(extent / new_spacing), 1).astype(int)
    return Grid(
        tuple(int(s) for s in new_size),
        tuple(float(s) for s in new_spacing),
        grid.origin,
        grid.direction,
    )


def resample_to_spacing(
    image: sitk.Image,
    spacing: float | tuple[float, float, float] = 1.0,
    *,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample an image to a new voxel spacing over the same physical extent.

    The origin (centre of the first voxel) and direction are kept; the new size is
    ``round(size * old_spacing / spacing)`` along each axis, so the new grid covers the old
    field of view to within one new voxel.

    Parameters
    ----------
    image : SimpleITK.Image
    spacing : float or tuple of 3 float
        Target spacing in mm, ``(x, y, z)``; a number means isotropic voxels.
    interpolator : {'linear', 'nearest', 'bspline'}
        ``'linear'`` for images, ``'nearest'`` for label masks.
    default_value : float
        Value of voxels that fall outside the input (e.g. -1024 for CT).

    Returns
    -------
    image : SimpleITK.Image
        Same pixel type as the input.
    """
    return resample_to_reference(
        image,
        grid_for_spacing(image, spacing),
        interpolator=interpolator,
        default_value=default_value,
    )


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image | Grid,
    *,
    transform: sitk.Transform | None = None,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample an image onto the grid of ``reference`` (e.g. PET or a mask onto the CT grid).

    Parameters
    ----------
    image : SimpleITK.Image
    reference : SimpleITK.Image or Grid
        Gives size, spacing, origin and direction of the output; its voxels are not used.
    transform : SimpleITK.Transform, optional
        Maps points of the reference space to points of ``image``'s space (as returned by
        :func:`survseg.preprocess.register_rigid` with the reference as fixed image).
        Default: identity (both images are in the same physical space).
    interpolator : {'linear', 'nearest', 'bspline'}
    default_value : float
        Value of voxels that fall outside ``image`` (e.g. outside the PET field of view).

    Returns
    -------
    image : SimpleITK.Image
        Same pixel type as ``image``, on the reference grid.
    """
    grid = reference if isinstance(reference, Grid) else Grid.from_image(reference)
    return sitk.Resample(
        image,
        list(grid.size),
        transform if transform is not None else sitk.Transform(),
        _interpolator(interpolator),
        grid.origin,
        grid.spacing,
        grid.direction,
        default_value,
        image.GetPixelID(),
    )
