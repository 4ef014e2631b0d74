"""PET/CT overlays: the slice shown, the contours drawn, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from survseg.plotting import plot_overlay
from survseg.plotting.overlay import CT_WINDOW_HU


def _shown(ax):
    return np.asarray(ax.images[0].get_array())


@pytest.mark.parametrize("view, axis", [("axial", 0), ("coronal", 1), ("sagittal", 2)])
def test_default_slice_is_largest_true_cross_section(petct, view, axis, check_png):
    X, _ = petct
    mask = X["mask"][1]
    predicted = binary_dilation(mask, iterations=1)
    fig = plot_overlay(X[1], predicted=predicted, view=view, spacing=(3.0, 3.0, 3.0))
    area = mask.astype(int).sum(axis=tuple(a for a in range(3) if a != axis))
    k = int(np.argmax(area))
    assert [ax.get_title() for ax in fig.axes] == [f"PET — {view} {k}", f"CT — {view} {k}"]
    for ax, name in zip(fig.axes, ("pet", "ct")):
        np.testing.assert_array_equal(_shown(ax), np.take(X[name][1], k, axis=axis))
        # two contour sets: true (solid) and predicted (dashed)
        assert len(ax.collections) == 2
    check_png(fig, f"overlay_{view}")


def test_ct_in_hu_gets_soft_tissue_window(petct):
    X, _ = petct
    fig = plot_overlay({"ct": X["ct"][0], "pet": X["pet"][0]}, mask=X["mask"][0])
    assert fig.axes[0].images[0].get_clim() == CT_WINDOW_HU
    lo, hi = fig.axes[1].images[0].get_clim()
    np.testing.assert_allclose((lo, hi), np.percentile(X["pet"][0], [1.0, 99.5]))


def test_predicted_guides_slice_without_true_mask(check_png):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(10, 12, 14))
    predicted = np.zeros((10, 12, 14))
    predicted[6, 2:9, 3:10] = 0.8
    predicted[2, 5:7, 5:7] = 0.9
    fig = plot_overlay(image, predicted=predicted)
    assert fig.axes[0].get_title().endswith("axial 6")
    np.testing.assert_array_equal(_shown(fig.axes[0]), image[6])
    assert len(fig.axes[0].collections) == 1
    check_png(fig, "overlay_predicted_only")


def test_explicit_index_and_no_contour_on_empty_slice():
    image = np.random.default_rng(1).normal(size=(8, 8, 8))
    mask = np.zeros((8, 8, 8), dtype=np.uint8)
    mask[2:4, 2:5, 2:5] = 1
    fig = plot_overlay(image, mask=mask, index=6)
    np.testing.assert_array_equal(_shown(fig.axes[0]), image[6])
    assert len(fig.axes[0].collections) == 0  # the tumour is not in slice 6


def test_shape_mismatch_and_bad_view():
    image = np.zeros((8, 8, 8))
    with pytest.raises(ValueError, match="mask has shape"):
        plot_overlay(image, mask=np.zeros((8, 8, 7)))
    with pytest.raises(ValueError, match="view must be one of"):
        plot_overlay(image, view="oblique")
    with pytest.raises(ValueError, match="3D volume"):
        plot_overlay(np.zeros((8, 8)))
