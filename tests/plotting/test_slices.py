"""Slice geometry: views, the largest tumour cross-section, display orientation."""

from __future__ import annotations

import numpy as np
import pytest

from survseg.plotting.slices import (
    largest_cross_section,
    slice_aspect,
    slice_origin,
    take_slice,
)


@pytest.mark.parametrize("view, axis", [("axial", 0), ("coronal", 1), ("sagittal", 2)])
def test_largest_cross_section_is_argmax_area(petct, view, axis):
    X, _ = petct
    for mask in X["mask"]:
        other = tuple(a for a in range(3) if a != axis)
        area = mask.astype(int).sum(axis=other)
        assert largest_cross_section(mask, view) == int(np.argmax(area))


def test_largest_cross_section_known_box():
    mask = np.zeros((10, 12, 14), dtype=np.uint8)
    mask[2:5, 3:4, 1:3] = 1  # small box
    mask[7, 1:11, 2:13] = 1  # one big axial plane at z=7
    assert largest_cross_section(mask, "axial") == 7
    assert largest_cross_section(mask, "coronal") == 3  # y=3: 6 (box) + 11 (plane) voxels
    assert largest_cross_section(mask, "sagittal") == 2  # x=2: 3 (box) + 10 (plane) voxels


def test_empty_mask_gives_middle_slice():
    assert largest_cross_section(np.zeros((9, 4, 6)), "axial") == 4
    assert largest_cross_section(np.zeros((9, 4, 6)), "sagittal") == 3


def test_probability_map_thresholded_at_half():
    prob = np.zeros((5, 6, 6))
    prob[1] = 0.4  # large but below 0.5
    prob[3, :2, :2] = 0.9
    assert largest_cross_section(prob, "axial") == 3


def test_take_slice_orientation():
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(take_slice(vol, "axial", 2), vol[2])
    np.testing.assert_array_equal(take_slice(vol, "coronal", 1), vol[:, 1, :])
    np.testing.assert_array_equal(take_slice(vol, "sagittal", 5), vol[:, :, 5])
    assert slice_origin("axial") == "upper" and slice_origin("coronal") == "lower"
    assert slice_aspect("coronal", (3.0, 1.0, 0.5)) == 6.0
    assert slice_aspect("sagittal", (3.0, 1.0, 0.5)) == 3.0
    assert slice_aspect("axial", None) == 1.0


def test_bad_view_and_index():
    vol = np.zeros((4, 5, 6))
    with pytest.raises(ValueError, match="view must be one of"):
        take_slice(vol, "transverse", 0)
    with pytest.raises(IndexError, match="outside the sagittal range 0..5"):
        take_slice(vol, "sagittal", 6)
    with pytest.raises(ValueError, match="3D volume"):
        largest_cross_section(np.zeros((4, 5)))
