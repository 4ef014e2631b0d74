import numpy as np
import pytest
import SimpleITK as sitk

from survseg.preprocess import box_around_point, crop_grid, crop_or_pad, mask_centroid
from tests.preprocess.conftest import OBLIQUE


def numbered_image():
    array = np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 2.0, 2.5))
    image.SetOrigin((-3.0, 4.0, 10.0))
    image.SetDirection(OBLIQUE)
    return image, array


def padded_slice(array, start, size, fill):
    """The box by numpy: pad generously with ``fill``, then slice (z, y, x)."""
    pad = 20
    big = np.pad(array, pad, constant_values=fill)
    (x, y, z), (sx, sy, sz) = start, size
    return big[z + pad : z + pad + sz, y + pad : y + pad + sy, x + pad : x + pad + sx]


@pytest.mark.parametrize("start", [(1, 2, 1), (-3, -2, -1), (5, 4, 3), (-2, 3, 4)])
def test_crop_or_pad_values_and_geometry(start):
    image, array = numbered_image()
    size = (6, 5, 4)
    box = crop_or_pad(image, start, size, pad_value=-1024.0)
    assert box.GetSize() == size
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(box), padded_slice(array, start, size, -1024.0)
    )
    # the box's first voxel sits where the original grid puts index `start`
    np.testing.assert_allclose(
        box.GetOrigin(), image.TransformContinuousIndexToPhysicalPoint(start), atol=1e-9
    )
    assert box.GetSpacing() == image.GetSpacing() and box.GetDirection() == image.GetDirection()
    expected = crop_grid(image, start, size)
    assert expected.size == size
    np.testing.assert_allclose(expected.origin, box.GetOrigin(), atol=1e-9)
    assert expected.spacing == box.GetSpacing() and expected.direction == box.GetDirection()


def test_crop_keeps_mask_dtype_and_pads_with_zero():
    mask = sitk.GetImageFromArray(np.ones((3, 3, 3), dtype=np.uint8))
    box = crop_or_pad(mask, (-1, -1, -1), (5, 5, 5))
    assert box.GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayFromImage(box).sum() == 27 and sitk.GetArrayFromImage(box)[0, 0, 0] == 0


def test_box_around_point_centres_the_box():
    image, _ = numbered_image()
    point = image.TransformIndexToPhysicalPoint((4, 3, 2))
    assert box_around_point(image, point, (5, 3, 1)) == (2, 2, 2)  # odd sizes: exact centre
    # even size 4: centre index start + 1.5; point 4 -> start 2.5, rounded half up to 3
    assert box_around_point(image, point, (4, 4, 4)) == (3, 2, 1)
    far = image.TransformIndexToPhysicalPoint((40, -9, 2))
    assert box_around_point(image, far, (3, 3, 3)) == (39, -10, 1)


def test_mask_centroid_is_the_physical_mean_of_the_voxels():
    image, _ = numbered_image()
    labels = np.zeros((6, 7, 8), dtype=np.uint8)
    labels[1:3, 2:6, 4:7] = 1
    labels[4, 5, 0] = 2  # any non-zero label counts
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(image)
    points = [
        image.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))
        for z, y, x in np.argwhere(labels)
    ]
    np.testing.assert_allclose(mask_centroid(mask), np.mean(points, axis=0), atol=1e-9)
    empty = sitk.GetImageFromArray(np.zeros((3, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="the mask is empty"):
        mask_centroid(empty)


def test_bad_box_parameters():
    image, _ = numbered_image()
    with pytest.raises(ValueError, match="box size must be 3 positive integers"):
        crop_or_pad(image, (0, 0, 0), (4, 0, 4))
    with pytest.raises(ValueError, match="box size must be 3 positive integers"):
        crop_or_pad(image, (0, 0, 0), (4.5, 4, 4))
    with pytest.raises(ValueError, match="start must be 3 integers"):
        crop_or_pad(image, (0, 0), (4, 4, 4))
