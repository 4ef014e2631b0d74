"""Reading and writing images: every format round-trips values and geometry (SimpleITK is the
reference writer), DICOM series, label selection, and the error for each bad input."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from survseg.data.io import is_dicom, read_image, read_mask, select_labels, write_image

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a 90-degree turn about z


def make_image(shape=(5, 6, 7), seed=0, dtype=np.float32):
    """Random (z, y, x) image with non-trivial spacing, origin and direction."""
    rng = np.random.default_rng(seed)
    array = (rng.normal(size=shape) * 100).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.9, 1.1, 2.5))
    image.SetOrigin((-12.5, 30.0, 7.25))
    image.SetDirection(DIRECTION)
    return image, array


def write_dicom_series(
    folder,
    array,
    *,
    spacing=(2.0, 2.0, 3.0),
    origin=(10.0, 20.0, 30.0),
    tags=None,
    series_uid="1.2.826.0.1.3680043.2.1125.9.1",
    slopes=None,
):
    """Write a (z, y, x) float array as a DICOM series, one file per slice, with SimpleITK.

    ``tags``: extra "gggg|eeee" -> value for every slice (a callable of the slice index may give
    per-slice values). ``slopes``: per-slice rescale slopes (stored values are int16)."""
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    files = []
    for z in range(array.shape[0]):
        s = sitk.GetImageFromArray(np.ascontiguousarray(array[z], dtype=np.float32))
        s.SetSpacing(spacing[:2])
        meta = {
            "0020|000d": "1.2.826.0.1.3680043.2.1125.9",
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{z + 1}",
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(
                f"{v:g}" for v in (origin[0], origin[1], origin[2] + spacing[2] * z)
            ),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{spacing[2]:g}",
            # int16 storage with a per-slice slope, as PET scanners write
            "0028|0100": "16",
            "0028|0101": "16",
            "0028|0102": "15",
            "0028|0103": "1",
            "0028|1052": "0",
            "0028|1053": f"{(slopes[z] if slopes is not None else 1.0):g}",
        }
        for key, value in (tags or {}).items():
            meta[key] = value(z) if callable(value) else value
        for key, value in meta.items():
            s.SetMetaData(key, value)
        files.append(os.path.join(folder, f"{series_uid.rsplit('.', 1)[-1]}_{z:03d}.dcm"))
        writer.SetFileName(files[-1])
        writer.Execute(s)
    return files


def assert_same_geometry(a, b):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_file_formats_round_trip(tmp_path, suffix):
    image, array = make_image()
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(image, str(path))
    out = read_image(path)
    assert_same_geometry(out, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), array)
    assert not is_dicom(path)


def test_write_image_round_trips_and_rejects_dicom(tmp_path):
    image, array = make_image(dtype=np.int16)
    write_image(image, tmp_path / "x.nii.gz")
    out = sitk.ReadImage(str(tmp_path / "x.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), array)
    assert_same_geometry(out, image)
    with pytest.raises(ValueError, match="NIfTI, NRRD or MetaImage"):
        write_image(image, tmp_path / "x.dcm")


def test_dicom_series_folder_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    array = np.round(rng.uniform(-1000, 1500, size=(4, 6, 5)))
    write_dicom_series(
        tmp_path / "ct",
        array,
        spacing=(0.8, 0.9, 2.5),
        origin=(-5.0, 3.0, 40.0),
        tags={"0008|0060": "CT"},
    )
    image = read_image(tmp_path / "ct")
    assert is_dicom(tmp_path / "ct")
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), array)
    np.testing.assert_allclose(image.GetSpacing(), (0.8, 0.9, 2.5), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), (-5.0, 3.0, 40.0), atol=1e-6)
    # A voxel's world position matches the slice position written in its file.
    np.testing.assert_allclose(
        image.TransformIndexToPhysicalPoint((2, 3, 3)),
        (-5.0 + 2 * 0.8, 3.0 + 3 * 0.9, 40.0 + 3 * 2.5),
        atol=1e-6,
    )


def test_dicom_per_slice_rescale_slopes_are_applied(tmp_path):
    rng = np.random.default_rng(2)
    array = rng.uniform(0, 1, size=(3, 4, 4)) * np.array([100.0, 3000.0, 20.0])[:, None, None]
    slopes = [0.01, 0.1, 0.001]
    write_dicom_series(tmp_path / "s", array, slopes=slopes)
    out = sitk.GetArrayFromImage(read_image(tmp_path / "s"))
    for z, slope in enumerate(slopes):  # stored integers: error at most half a slope
        assert np.abs(out[z] - array[z]).max() <= slope / 2 + 1e-9


def test_dicom_folder_with_two_series_needs_series_id(tmp_path):
    a = np.zeros((2, 3, 3))
    b = np.ones((2, 3, 3)) * 7
    write_dicom_series(tmp_path, a, series_uid="1.2.826.0.1.3680043.2.1125.9.1")
    write_dicom_series(tmp_path, b, series_uid="1.2.826.0.1.3680043.2.1125.9.2")
    with pytest.raises(ValueError, match="2 DICOM series.*series_id"):
        read_image(tmp_path)
    out = read_image(tmp_path, series_id="1.2.826.0.1.3680043.2.1125.9.2")
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), b)
    with pytest.raises(ValueError, match="series '9.9' not in folder"):
        read_image(tmp_path, series_id="9.9")


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found: .*nope.nii.gz"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown image format '.csv'"):
        read_image(tmp_path / "table.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM series found"):
        read_image(tmp_path / "empty")
    flat = sitk.GetImageFromArray(np.zeros((4, 5), dtype=np.float32))
    sitk.WriteImage(flat, str(tmp_path / "flat.nii"))
    with pytest.raises(ValueError, match="expected a 3D image, got a 2D image"):
        read_image(tmp_path / "flat.nii")


def test_select_labels_and_read_mask(tmp_path):
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[1, 1:3, 1:3] = 1  # primary tumour
    labels[2, 3, 4] = 2  # a lymph node
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.0, 2.0, 3.0))
    image.SetOrigin((4.0, 5.0, 6.0))
    sitk.WriteImage(image, str(tmp_path / "lab.nii.gz"))
    primary = read_mask(tmp_path / "lab.nii.gz", labels=(1,))
    both = read_mask(tmp_path / "lab.nii.gz", labels=(1, 2))
    anything = read_mask(tmp_path / "lab.nii.gz")
    assert primary.GetPixelID() == sitk.sitkUInt8
    assert_same_geometry(primary, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(primary), labels == 1)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(both), labels > 0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(anything), labels > 0)
    fractional = sitk.GetImageFromArray(labels.astype(np.float32) * 0.5)
    with pytest.raises(ValueError, match="whole numbers"):
        select_labels(fractional)
    with pytest.raises(ValueError, match="labels is empty"):
        select_labels(image, labels=())
