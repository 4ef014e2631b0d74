"""Preprocessing of PET/CT for survseg: composable steps on SimpleITK images, and the whole
pipeline over a cohort (:func:`preprocess`).

Steps (each usable alone): :func:`resample_to_spacing`, :func:`resample_to_reference`,
:func:`register_rigid`, :func:`box_around_point` / :func:`mask_centroid` /
:func:`crop_or_pad`, :func:`zscore`, :func:`window`. Geometry records (:class:`CaseGeometry`)
lead predictions back to each patient's original space (:func:`to_original_space`).

Writing a predicted mask in the patient's original space::

    from survseg.data.io import write_image
    from survseg.datasets import load_hecktor
    from survseg.preprocess import to_original_space

    X, y, ids, geometries = load_hecktor(root, return_geometry=True)
    masks = model.predict_mask(X)                    # (n, z, y, x) on the preprocessed grids
    for mask, pid, geometry in zip(masks, ids, geometries):
        write_image(to_original_space(mask, geometry), f"{pid}.nii.gz")  # on the CT grid
"""

from .crop import box_around_point, crop_grid, crop_or_pad, mask_centroid
from .geometry import CaseGeometry, Grid, to_image, to_original_space
from .intensity import window, zscore
from .pipeline import (
    Preprocessed,
    Preprocessing,
    PreprocessingError,
    preprocess,
    preprocess_case,
)
from .register import register_rigid
from .resample import grid_for_spacing, resample_to_reference, resample_to_spacing

__all__ = [
    "CaseGeometry",
    "Grid",
    "Preprocessed",
    "Preprocessing",
    "PreprocessingError",
    "box_around_point",
    "crop_grid",
    "crop_or_pad",
    "grid_for_spacing",
    "mask_centroid",
    "preprocess",
    "preprocess_case",
    "register_rigid",
    "resample_to_reference",
    "resample_to_spacing",
    "to_image",
    "to_original_space",
    "window",
    "zscore",
]
