"""CohortBatches: volumes read and normalised once, batches by index, augmentation on device."""

import numpy as np
import pytest
import torch
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.training import (
    CohortBatches,
    Standardiser,
    balanced_batches,
    check_intensity,
    forward_in_batches,
)


def _cohort(n=6, shape=(8, 10, 12), seed=0):
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, *shape)) > 0.8).astype(np.uint8)
    X = volumes(pet=rng.gamma(2.0, 1.5, (n, *shape)), ct=rng.normal(0, 300, (n, *shape)), mask=mask)
    return X, Surv.from_arrays(np.arange(n) % 2 == 0, np.arange(1.0, n + 1))


def test_batches_hold_the_cohorts_normalised_voxels_without_augmentation():
    X, _ = _cohort()
    rows = np.array([1, 3, 4, 5])
    methods = check_intensity({"pet": "zscore", "ct": ("window", -200, 300)}, ("pet", "ct"))
    data = CohortBatches(
        X, rows, ("pet", "ct"), device=torch.device("cpu"), intensity=methods, mask_field="mask"
    )
    assert data.images.is_contiguous() and data.images.dtype == torch.float32
    b = data.batch([2, 0])
    pet = X["pet"][[4, 1]].astype(np.float64)
    z = (pet - pet.mean(axis=(1, 2, 3), keepdims=True)) / pet.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(b.images[:, 0].numpy(), z, rtol=1e-5, atol=1e-5)
    ct = np.clip(X["ct"][[4, 1]], -200, 300)
    np.testing.assert_allclose(b.images[:, 1].numpy(), 2 * (ct + 200) / 500 - 1, atol=1e-6)
    np.testing.assert_array_equal(b.masks[:, 0].numpy(), X["mask"][[4, 1]])
    assert b.index.tolist() == [2, 0]
    assert data.batch([1], with_masks=False).masks is None


def test_augmentation_keeps_masks_binary_and_crop_size():
    X, _ = _cohort()
    gen = torch.Generator().manual_seed(0)
    data = CohortBatches(
        X, np.arange(6), ("pet",), device=torch.device("cpu"), mask_field="mask",
        augment=dict(max_translation=2.0, max_rotation=10.0, flip_axes=(-1,)),
        crop=(8, 8, 8), generator=gen,
    )  # fmt: skip
    b = data.batch([0, 1, 2])
    assert b.images.shape == (3, 1, 8, 8, 8) and b.masks.shape == (3, 1, 8, 8, 8)
    assert set(torch.unique(b.masks).tolist()) <= {0.0, 1.0}


def test_balanced_sampler_gives_half_events():
    _, y = _cohort()
    it = balanced_batches(y["event"], 1, 1, np.random.default_rng(0))
    for _ in range(5):
        assert y["event"][next(it)].sum() == 1


def test_constant_image_names_the_patient():
    X, _ = _cohort()
    X["pet"][4] = 1.0
    with pytest.raises(ValueError, match="the 'pet' image of patient 4 is constant"):
        CohortBatches(
            X,
            np.arange(6),
            ("pet",),
            device=torch.device("cpu"),
            intensity=check_intensity({"pet": "zscore"}, ("pet",)),
        )


def test_standardiser_matches_numpy_and_fills_missing_with_the_mean():
    values = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0], [5.0, 5.0]])
    sc = Standardiser.fit(values)
    np.testing.assert_allclose(sc.mean, [3.0, 5.0])
    np.testing.assert_allclose(sc.scale, [np.std([1, 3, 5]), 1.0])
    z = sc.transform(values)
    np.testing.assert_allclose(z[:, 0], [-1.224745, 0, 0, 1.224745], atol=1e-6)
    assert (z[:, 1] == 0).all()


def test_forward_in_batches_concatenates_chunks():
    out = forward_in_batches(lambda idx: (torch.as_tensor(idx) * 2, torch.ones(len(idx), 3)), 7, 3)
    np.testing.assert_array_equal(out[0], np.arange(7) * 2)
    assert out[1].shape == (7, 3)
