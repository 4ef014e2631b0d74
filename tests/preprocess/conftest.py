"""Tiny PET/CT phantoms defined in physical space, so that any grid can sample them."""

import numpy as np
import SimpleITK as sitk

# An oblique direction: 30 degrees about z, then 10 degrees about x.
_RZ = np.array([[np.cos(0.52), -np.sin(0.52), 0], [np.sin(0.52), np.cos(0.52), 0], [0, 0, 1]])
_RX = np.array([[1, 0, 0], [0, np.cos(0.17), -np.sin(0.17)], [0, np.sin(0.17), np.cos(0.17)]])
OBLIQUE = tuple((_RX @ _RZ).ravel())

TUMOUR_CENTRE = np.array([4.0, -3.0, 2.0])  # mm
TUMOUR_RADIUS = 6.0
NODE_CENTRE = np.array([-9.0, 8.0, -6.0])
NODE_RADIUS = 4.0


def sample(function, size, spacing, origin, direction=None, dtype=np.float32):
    """Image on the grid (size/spacing/origin in x, y, z) with voxel = function(x, y, z) at the
    voxel centre's physical point."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    k, j, i = np.indices(tuple(reversed(size)), dtype=float)  # z, y, x index arrays
    idx = np.stack([i, j, k], axis=-1)
    matrix = np.reshape(image.GetDirection(), (3, 3))
    points = np.asarray(origin) + (idx * spacing) @ matrix.T
    out = sitk.GetImageFromArray(
        function(points[..., 0], points[..., 1], points[..., 2]).astype(dtype)
    )
    out.CopyInformation(image)
    return out


def _inside(x, y, z, centre, radius, shift):
    c = centre + shift
    return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius**2


def make_patient(shift=(0.0, 0.0, 0.0), seed=0, uptake=7.0, node=True):
    """CT (1.5 x 1.5 x 3 mm), PET (3 mm, another origin) and a label image on the CT grid with
    1 = tumour (PET uptake 1 + ``uptake``), 2 = lymph node; the whole anatomy moved by
    ``shift`` mm. ``node=False`` leaves label 2 out."""
    shift = np.asarray(shift, dtype=float)
    rng = np.random.default_rng(seed)

    def ct(x, y, z):
        body = ((x - shift[0]) / 16) ** 2 + ((y - shift[1]) / 14) ** 2 + (
            (z - shift[2]) / 17
        ) ** 2 <= 1
        bone = _inside(x, y, z, np.array([-5.0, -6.0, 5.0]), 4.0, shift)
        values = np.where(body, 40.0, -1000.0) + np.where(bone, 700.0, 0.0)
        values += np.where(_inside(x, y, z, TUMOUR_CENTRE, TUMOUR_RADIUS, shift), 30.0, 0.0)
        return values + rng.normal(0, 5, x.shape)

    def pet(x, y, z):
        body = ((x - shift[0]) / 16) ** 2 + ((y - shift[1]) / 14) ** 2 + (
            (z - shift[2]) / 17
        ) ** 2 <= 1
        return (
            np.where(body, 1.0, 0.0)
            + uptake * _inside(x, y, z, TUMOUR_CENTRE, TUMOUR_RADIUS, shift)
            + 3.0 * _inside(x, y, z, NODE_CENTRE, NODE_RADIUS, shift)
        )

    def labels(x, y, z):
        return 1 * _inside(x, y, z, TUMOUR_CENTRE, TUMOUR_RADIUS, shift) + 2 * node * _inside(
            x, y, z, NODE_CENTRE, NODE_RADIUS, shift
        )

    ct_grid = dict(size=(26, 24, 13), spacing=(1.5, 1.5, 3.0), origin=(-19.0, -17.5, -18.0))
    pet_grid = dict(size=(14, 13, 14), spacing=(3.0, 3.0, 3.0), origin=(-20.0, -19.0, -21.0))
    return {
        "ct": sample(ct, **ct_grid),
        "pet": sample(pet, **pet_grid),
        "mask": sample(labels, **ct_grid, dtype=np.uint8),
    }


def write_patient(folder, name, shift=(0.0, 0.0, 0.0), seed=0, suffix=".nii.gz", **kwargs):
    """Write a phantom patient's CT, PET and labels; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, image in make_patient(shift, seed, **kwargs).items():
        paths[key] = folder / f"{name}_{key}{suffix}"
        sitk.WriteImage(image, str(paths[key]))
    return paths
