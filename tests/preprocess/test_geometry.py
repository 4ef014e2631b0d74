import numpy as np
import pytest
import SimpleITK as sitk

from survseg.preprocess import CaseGeometry, Grid, to_image, to_original_space
from survseg.preprocess.crop import crop_grid
from tests.preprocess.conftest import OBLIQUE


def oblique_image():
    image = sitk.Image([7, 6, 5], sitk.sitkFloat32)
    image.SetSpacing((0.7, 1.3, 2.1))
    image.SetOrigin((10.0, -4.0, 33.0))
    image.SetDirection(OBLIQUE)
    return image


def test_grid_maps_points_like_simpleitk():
    image = oblique_image()
    grid = Grid.from_image(image)
    assert grid.shape == (5, 6, 7)
    for index in [(0, 0, 0), (6, 5, 4), (2.5, 1.25, 3.75)]:
        expected = image.TransformContinuousIndexToPhysicalPoint(index)
        np.testing.assert_allclose(grid.index_to_point(index), expected, atol=1e-9)
        np.testing.assert_allclose(grid.point_to_index(expected), index, atol=1e-9)
    np.testing.assert_allclose(
        grid.center(), image.TransformContinuousIndexToPhysicalPoint((3, 2.5, 2))
    )
    blank = grid.image(sitk.sitkUInt8)
    assert Grid.from_image(blank) == grid and blank.GetPixelID() == sitk.sitkUInt8


def test_to_image_puts_array_on_grid():
    grid = Grid.from_image(oblique_image())
    array = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    image = to_image(array, grid)
    assert Grid.from_image(image) == grid
    assert image[3, 2, 4] == array[4, 2, 3]  # SimpleITK (x, y, z) vs numpy (z, y, x)
    assert to_image(array > 100, grid).GetPixelID() == sitk.sitkUInt8
    with pytest.raises(ValueError, match=r"does not fit the grid of shape \(5, 6, 7\)"):
        to_image(array[:, :, :6], grid)


def test_to_original_space_inverts_a_crop():
    original = oblique_image()
    labels = np.zeros((5, 6, 7), dtype=np.uint8)
    labels[1:4, 2:5, 3:6] = 1
    box = crop_grid(original, start=(2, 1, 0), size=(5, 5, 4))
    geometry = CaseGeometry(grid=box, original=Grid.from_image(original))
    cropped = labels[0:4, 1:6, 2:7]  # the same box by numpy slicing (z, y, x)
    back = to_original_space(cropped, geometry)
    assert Grid.from_image(back) == Grid.from_image(original)
    assert back.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)


def test_to_original_space_undoes_the_registration():
    # Template space = patient space moved by t: the transform maps template -> patient points.
    original = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    original.SetSpacing((2.0, 2.0, 2.0))
    t = np.array([4.0, -6.0, 2.0])
    geometry = CaseGeometry(
        grid=Grid.from_image(original),
        original=Grid.from_image(original),
        transform=(0.0, 0.0, 0.0, *t),
        transform_center=(0.0, 0.0, 0.0),
    )
    mask = np.zeros((20, 20, 20), dtype=np.uint8)
    mask[5, 6, 7] = 1  # at template point (14, 12, 10) mm -> patient point (18, 6, 12)
    back = sitk.GetArrayFromImage(to_original_space(mask, geometry))
    assert np.argwhere(back).tolist() == [[6, 3, 9]]
    with pytest.raises(TypeError, match="CaseGeometry"):
        to_original_space(mask, Grid.from_image(original))
