import numpy as np
import pytest
import SimpleITK as sitk

from survseg.preprocess import grid_for_spacing, resample_to_reference, resample_to_spacing
from tests.preprocess.conftest import OBLIQUE, sample


def ramp(x, y, z):
    """A linear function of the physical point: linear interpolation reproduces it exactly."""
    return 3.0 * x - 2.0 * y + 0.5 * z + 100.0


def test_resample_to_spacing_geometry():
    image = sample(ramp, (10, 9, 8), (0.8, 1.1, 2.5), (-3.0, 4.0, 12.0), OBLIQUE)
    out = resample_to_spacing(image, 1.0)
    assert out.GetSpacing() == (1.0, 1.0, 1.0)
    assert out.GetOrigin() == image.GetOrigin() and out.GetDirection() == image.GetDirection()
    assert out.GetSize() == (8, 10, 20)  # round(10*0.8), round(9*1.1), round(8*2.5)
    assert out.GetPixelID() == image.GetPixelID()
    anisotropic = resample_to_spacing(image, (2.0, 1.0, 0.5))
    assert anisotropic.GetSpacing() == (2.0, 1.0, 0.5) and anisotropic.GetSize() == (4, 10, 40)


def test_linear_resampling_reproduces_a_linear_function():
    # PET on its own grid, resampled onto an oblique CT grid inside the PET field of view.
    pet = sample(ramp, (20, 20, 20), (3.0, 3.0, 3.0), (-30.0, -30.0, -30.0))
    ct_grid = sample(lambda x, y, z: x * 0, (9, 8, 7), (1.7, 1.3, 2.2), (-5.0, -4.0, -6.0), OBLIQUE)
    out = resample_to_reference(pet, ct_grid)
    expected = sitk.GetArrayFromImage(
        sample(ramp, (9, 8, 7), (1.7, 1.3, 2.2), (-5.0, -4.0, -6.0), OBLIQUE)
    )
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected, rtol=1e-5, atol=1e-3)
    assert out.GetOrigin() == ct_grid.GetOrigin() and out.GetSpacing() == ct_grid.GetSpacing()


def test_bright_voxel_lands_where_simpleitk_says():
    image = sitk.Image([15, 14, 13], sitk.sitkFloat32)
    image.SetSpacing((1.2, 0.9, 2.0))
    image.SetOrigin((5.0, -7.0, 3.0))
    image.SetDirection(OBLIQUE)
    image[6, 8, 4] = 1000.0
    point = image.TransformIndexToPhysicalPoint((6, 8, 4))
    out = resample_to_spacing(image, 0.5, interpolator="nearest")
    expected = out.TransformPhysicalPointToIndex(point)
    array = sitk.GetArrayFromImage(out)
    assert array[expected[2], expected[1], expected[0]] == 1000.0
    # the bright region's centre of mass is the point itself
    found = np.argwhere(array == 1000.0).mean(axis=0)[::-1]  # (x, y, z)
    np.testing.assert_allclose(out.TransformContinuousIndexToPhysicalPoint(found), point, atol=0.5)


def test_nearest_keeps_labels_and_default_value_pads():
    labels = sitk.GetImageFromArray(
        np.random.default_rng(0).integers(0, 3, (6, 7, 8)).astype(np.uint8)
    )
    out = resample_to_spacing(labels, 0.4, interpolator="nearest")
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2}
    assert out.GetPixelID() == sitk.sitkUInt8
    ct = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32))
    bigger = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    bigger.SetOrigin((-2.0, -2.0, -2.0))
    out = sitk.GetArrayFromImage(resample_to_reference(ct, bigger, default_value=-1024))
    assert out[0, 0, 0] == -1024 and out[4, 4, 4] == 0


def test_grid_for_spacing_and_bad_parameters():
    image = sitk.Image([10, 10, 10], sitk.sitkFloat32)
    assert grid_for_spacing(image, 2.5).size == (4, 4, 4)
    with pytest.raises(ValueError, match="spacing must be positive"):
        resample_to_spacing(image, 0.0)
    with pytest.raises(ValueError, match="interpolator must be one of"):
        resample_to_spacing(image, 1.0, interpolator="cubic")
