"""Where preprocessed voxels sit in the patient: grids, per-patient geometry records, and the
way back from a cohort array to a SimpleITK image in the patient's original space.

Conventions: SimpleITK sizes, spacings, origins and indices are in ``(x, y, z)`` order; the
numpy arrays of a cohort are in ``(z, y, x)`` order (``sitk.GetArrayFromImage``), i.e.
``(D, H, W)``. A point is a physical position in mm in the scanner's (LPS) frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["Grid", "CaseGeometry", "to_image", "to_original_space"]


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Grid:
    """A voxel grid in physical space.

    Attributes
    ----------
    size : tuple of 3 int
        Number of voxels along x, y, z.
    spacing : tuple of 3 float
        Voxel size in mm along x, y, z.
    origin : tuple of 3 float
        Physical position (mm) of the centre of voxel ``(0, 0, 0)``.
    direction : tuple of 9 float
        Row-major 3x3 matrix whose columns are the x, y, z axes in physical space.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def from_image(cls, image: sitk.Image) -> Grid:
        """The grid of a SimpleITK image."""
        return cls(
            tuple(int(s) for s in image.GetSize()),
            _floats(image.GetSpacing()),
            _floats(image.GetOrigin()),
            _floats(image.GetDirection()),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)`` of an image on this grid."""
        return tuple(reversed(self.size))

    def image(self, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
        """A blank (zero) image on this grid, e.g. a reference for ``sitk.Resample``."""
        image = sitk.Image([int(s) for s in self.size], pixel_type)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def index_to_point(self, index) -> np.ndarray:
        """Physical point of a (possibly fractional) ``(x, y, z)`` index."""
        matrix = np.reshape(self.direction, (3, 3))
        return np.asarray(self.origin) + matrix @ (np.asarray(index, float) * self.spacing)

    def point_to_index(self, point) -> np.ndarray:
        """Continuous ``(x, y, z)`` index of a physical point."""
        matrix = np.reshape(self.direction, (3, 3))
        return np.linalg.solve(matrix, np.asarray(point, float) - self.origin) / self.spacing

    def center(self) -> np.ndarray:
        """Physical point at the centre of the grid."""
        return self.index_to_point((np.asarray(self.size) - 1) / 2.0)


@dataclass(frozen=True)
class CaseGeometry:
    """How one patient's preprocessed arrays relate to the patient's original image.

    Attributes
    ----------
    grid : Grid
        The grid of the preprocessed arrays (after resampling, registration and cropping).
    original : Grid
        The grid of the patient's original reference image (the CT as read).
    transform : tuple of 6 float or None
        Rigid registration as :class:`SimpleITK.Euler3DTransform` parameters
        ``(angle_x, angle_y, angle_z, t_x, t_y, t_z)`` (radians, mm), mapping points of the
        preprocessed (template) space to the patient's original space; ``None`` when no
        registration was done (both spaces are then the same physical space).
    transform_center : tuple of 3 float or None
        Centre of rotation of ``transform`` (mm).
    """

    grid: Grid
    original: Grid
    transform: tuple[float, ...] | None = None
    transform_center: tuple[float, float, float] | None = None

    def sitk_transform(self) -> sitk.Transform:
        """The registration as a SimpleITK transform (identity when there was none)."""
        if self.transform is None:
            return sitk.Transform(3, sitk.sitkIdentity)
        euler = sitk.Euler3DTransform()
        euler.SetCenter(self.transform_center)
        euler.SetParameters(self.transform)
        return euler


def to_image(array, geometry: Grid | CaseGeometry) -> sitk.Image:
    """Put a cohort array back on its grid as a SimpleITK image.

    Parameters
    ----------
    array : array-like of shape (z, y, x)
        E.g. ``X['pet'][i]`` or a predicted mask of patient ``i``.
    geometry : Grid or CaseGeometry
        The patient's geometry (its ``grid`` is used).

    Returns
    -------
    image : SimpleITK.Image
        With the spacing, origin and direction of the preprocessed grid; a boolean array
        becomes ``uint8``.
    """
    grid = geometry.grid if isinstance(geometry, CaseGeometry) else geometry
    array = np.asarray(array)
    if array.shape != grid.shape:
        raise ValueError(
            f"array of shape {array.shape} does not fit the grid of shape {grid.shape} (z, y, x)."
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction)
    return image


def to_original_space(
    array,
    geometry: CaseGeometry,
    reference_image: sitk.Image | None = None,
    *,
    interpolator: int = sitk.sitkNearestNeighbor,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample a preprocessed-space array (e.g. a predicted mask) onto the patient's original grid.

    The array is placed on ``geometry.grid`` (:func:`to_image`), then resampled onto the
    original CT grid (or ``reference_image``'s grid) through the inverse of the registration,
    so that it overlays the patient's original images. Voxels outside the preprocessed box
    get ``default_value``.

    Parameters
    ----------
    array : array-like of shape (z, y, x)
    geometry : CaseGeometry
        Returned for that patient by :func:`survseg.preprocess.preprocess` or the loaders.
    reference_image : SimpleITK.Image, optional
        Any image in the patient's original space (e.g. the CT or PET as read); its grid is
        the target. Default: the original CT grid recorded in ``geometry``.
    interpolator : int
        SimpleITK interpolator; nearest neighbour (the default) keeps labels intact.
    default_value : float

    Returns
    -------
    image : SimpleITK.Image
        Same pixel type as ``array`` (``uint8`` for a boolean mask), on the target grid; write
        it with :func:`survseg.data.io.write_image`.

    Examples
    --------
    >>> from survseg.preprocess import to_original_space          # doctest: +SKIP
    >>> mask = to_original_space(predicted[i], geometries[i])     # doctest: +SKIP
    >>> write_image(mask, f"{patient_ids[i]}_mask.nii.gz")        # doctest: +SKIP
    """
    if not isinstance(geometry, CaseGeometry):
        raise TypeError(f"geometry must be a CaseGeometry, got {type(geometry).__name__}.")
    image = to_image(array, geometry)
    reference = geometry.original.image() if reference_image is None else reference_image
    # Resample maps reference (original) points to input (preprocessed) points: the inverse
    # of the registration, which maps preprocessed points to original ones.
    inverse = geometry.sitk_transform().GetInverse()
    return sitk.Resample(image, reference, inverse, interpolator, default_value, image.GetPixelID())
