import numpy as np
import pytest
import SimpleITK as sitk

from survseg.preprocess import window, zscore


def test_zscore_matches_hand_computation_and_keeps_geometry():
    values = np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 2)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((2.0, 3.0, 4.0))
    image.SetOrigin((1.0, 1.0, 1.0))
    out = zscore(image)
    # mean 3, population std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5)
    expected = (values - 3.0) / np.sqrt(3.5)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected, rtol=1e-6)
    assert out.GetPixelID() == sitk.sitkFloat32
    assert out.GetSpacing() == image.GetSpacing() and out.GetOrigin() == image.GetOrigin()
    np.testing.assert_allclose(zscore(values), expected, rtol=1e-6)  # arrays too


def test_zscore_over_a_mask():
    values = np.array([0.0, 0.0, 4.0, 8.0])
    out = zscore(values, mask=np.array([0, 0, 1, 1]))  # mean 6, std 2 over the mask
    np.testing.assert_allclose(out, [-3.0, -3.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="selects no voxel"):
        zscore(values, mask=np.zeros(4))


def test_zscore_of_a_constant_image_is_an_error():
    with pytest.raises(ValueError, match="constant .* standard deviation is 0"):
        zscore(np.full((2, 2, 2), 5.0))


def test_window_clips_and_maps_to_minus_one_one():
    hu = np.array([-3000.0, -1024.0, -512.0, 0.0, 512.0, 1024.0, 3000.0])
    # (clip(x, -1024, 1024) + 1024) / 2048 * 2 - 1 = clip(x) / 1024
    np.testing.assert_allclose(window(hu), [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(
        window(hu, -100.0, 300.0, (0.0, 1.0)), [0.0, 0.0, 0.0, 0.25, 1.0, 1.0, 1.0]
    )
    image = sitk.GetImageFromArray(hu.reshape(1, 1, 7).astype(np.int16))
    out = window(image)
    assert out.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(out).ravel(), [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]
    )
    with pytest.raises(ValueError, match="low < high"):
        window(hu, 10.0, 10.0)
