"""Cropping to a fixed-size box, with padding where the box leaves the image.

A box is given by its start index and size in voxels, SimpleITK ``(x, y, z)`` order. The
DeepMTS paper crops 128x128x112 voxels at a fixed position of registered images; AdaMSS crops
160x160x160 voxels centred on the tumour.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .geometry import Grid

__all__ = ["box_around_point", "mask_centroid", "crop_or_pad", "crop_grid"]


def _size(size) -> np.ndarray:
    size = np.asarray(size)
    if size.shape != (3,) or not np.issubdtype(size.dtype, np.integer) or (size < 1).any():
        raise ValueError(f"box size must be 3 positive integers (x, y, z); got {size.tolist()}.")
    return size.astype(int)


def box_around_point(image: sitk.Image | Grid, point, size) -> tuple[int, int, int]:
    """Start index of the box of ``size`` voxels whose centre is nearest to ``point``.

    Parameters
    ----------
    image : SimpleITK.Image or Grid
        The grid the box lives on.
    point : array-like of 3 float
        Physical point (mm) to centre the box on.
    size : tuple of 3 int
        Box size in voxels ``(x, y, z)``.

    Returns
    -------
    start : tuple of 3 int
        May be negative or run past the image: :func:`crop_or_pad` pads.
    """
    grid = image if isinstance(image, Grid) else Grid.from_image(image)
    size = _size(size)
    centre = grid.point_to_index(point)
    # Box centre index is start + (size - 1) / 2. Round half up (an even size puts the centre
    # between two voxels); the 1e-6 keeps exact halves from flipping with round-off.
    return tuple(int(v) for v in np.floor(centre - (size - 1) / 2.0 + 0.5 + 1e-6))


def mask_centroid(mask: sitk.Image) -> np.ndarray:
    """Physical centroid (mm) of the non-zero voxels of a mask.

    Raises
    ------
    ValueError
        The mask is empty.
    """
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(binary)
    if not stats.HasLabel(1):
        raise ValueError("the mask is empty: there is no tumour to centre the box on.")
    return np.asarray(stats.GetCentroid(1))


def crop_grid(image: sitk.Image | Grid, start, size) -> Grid:
    """The grid of the box ``[start, start + size)`` of ``image``'s grid (may leave the image)."""
    grid = image if isinstance(image, Grid) else Grid.from_image(image)
    size = _size(size)
    origin = grid.index_to_point(np.asarray(start, dtype=float))
    return Grid(
        tuple(int(s) for s in size), grid.spacing, tuple(float(v) for v in origin), grid.direction
    )


def crop_or_pad(image: sitk.Image, start, size, *, pad_value: float = 0.0) -> sitk.Image:
    """Extract the box ``[start, start + size)`` of voxels, padding where it leaves the image.

    Parameters
    ----------
    image : SimpleITK.Image
    start : tuple of 3 int
        Index ``(x, y, z)`` of the box's first voxel in ``image``; may be negative.
    size : tuple of 3 int
        Box size in voxels ``(x, y, z)``.
    pad_value : float
        Value of voxels outside the image: -1024 (air) for CT, 0 for PET and masks.

    Returns
    -------
    box : SimpleITK.Image
        Same pixel type, spacing and direction; its origin is the physical position of
        ``start``, so every voxel keeps its physical position.
    """
    size = _size(size)
    start = np.asarray(start, dtype=int)
    if start.shape != (3,):
        raise ValueError(f"start must be 3 integers (x, y, z); got {start.tolist()}.")
    lower = np.maximum(0, -start)
    upper = np.maximum(0, start + size - np.asarray(image.GetSize()))
    if lower.any() or upper.any():
        # SimpleITK moves the origin with the lower padding: physical positions are kept.
        image = sitk.ConstantPad(image, [int(v) for v in lower], [int(v) for v in upper], pad_value)
    return sitk.RegionOfInterest(image, [int(v) for v in size], [int(v) for v in start + lower])
