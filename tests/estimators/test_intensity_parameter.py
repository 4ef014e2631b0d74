"""The deep estimators' ``intensity`` parameter: on-device normalisation of raw SUV/HU images
equals normalising the cohort beforehand with survseg.preprocess (itself checked by hand)."""

import numpy as np
import pytest
import torch

from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.preprocess import window, zscore
from survseg.training import check_intensity, image_tensor
from tests.tiny_models import ADAMSS_NETWORK, DEEPMTS_NETWORK

ADAMSS_TINY = dict(network_params=ADAMSS_NETWORK, radiomics=False, device="cpu")


@pytest.fixture(scope="module")
def raw():
    return make_petct_cohort(12, shape=(20, 20, 20), random_state=3)


def _normalised(X, ct):
    out = X.copy()
    for i in range(len(out)):
        out["pet"][i] = zscore(out["pet"][i])
        out["ct"][i] = zscore(out["ct"][i]) if ct == "zscore" else window(out["ct"][i])
    return out


def test_tensor_normalisation_matches_hand_formulas(raw):
    X, _ = raw
    methods = check_intensity({"pet": "zscore", "ct": ("window", -200, 300)}, ("pet", "ct"))
    got = image_tensor(X, ["pet", "ct", "mask"], [0, 5], intensity=methods).numpy()
    pet = X["pet"][[0, 5]].astype(np.float64)
    mu = pet.mean(axis=(1, 2, 3), keepdims=True)
    sd = np.sqrt(((pet - mu) ** 2).mean(axis=(1, 2, 3), keepdims=True))
    np.testing.assert_allclose(got[:, 0], (pet - mu) / sd, atol=1e-5)
    ct = X["ct"][[0, 5]].astype(np.float64)
    np.testing.assert_allclose(got[:, 1], 2 * (np.clip(ct, -200, 300) + 200) / 500 - 1, atol=1e-6)
    np.testing.assert_array_equal(got[:, 2], X["mask"][[0, 5]])  # masks are never touched


def test_deepmts_on_raw_images_equals_normalised_cohort(raw):
    X, y = raw
    params = dict(
        network_params=DEEPMTS_NETWORK, max_iter=3, batch_size=4, random_state=0, device="cpu"
    )
    a = DeepMTSRegressor(intensity={"pet": "zscore", "ct": "zscore"}, **params).fit(X, y)
    b = DeepMTSRegressor(**params).fit(_normalised(X, "zscore"), y)
    np.testing.assert_allclose(
        a.predict(X), b.predict(_normalised(X, "zscore")), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(a.predict_mask(X), b.predict_mask(_normalised(X, "zscore")))


def test_adamss_on_raw_images_equals_normalised_cohort(raw):
    X, y = raw
    params = dict(ADAMSS_TINY, max_iter=2, random_state=0)
    a = AdaMSSRegressor(intensity={"pet": "zscore", "ct": "window"}, **params).fit(X, y)
    b = AdaMSSRegressor(**params).fit(_normalised(X, "window"), y)
    np.testing.assert_allclose(
        a.predict(X), b.predict(_normalised(X, "window")), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    "intensity, message",
    [
        ("zscore", "must be None or a dict"),
        ({"mri": "zscore"}, "not among the modalities"),
        ({"pet": "minmax"}, "must be 'zscore'"),
        ({"ct": ("window", 5, -5)}, "low < high"),
    ],
)
def test_bad_intensity_is_named(raw, intensity, message):
    X, y = raw
    for est in (
        DeepMTSRegressor(
            network_params=DEEPMTS_NETWORK, max_iter=1, intensity=intensity, device="cpu"
        ),
        AdaMSSRegressor(**ADAMSS_TINY, max_iter=1, intensity=intensity),
    ):
        with pytest.raises(
            (ValueError, TypeError), match=message if isinstance(intensity, dict) else None
        ):
            est.fit(X, y)


def test_constant_image_cannot_be_zscored(raw):
    X, _ = raw
    X = X.copy()
    X["pet"][1] = 2.5
    with pytest.raises(ValueError, match="constant"):
        image_tensor(X, ["pet"], [0, 1], intensity=check_intensity({"pet": "zscore"}, ("pet",)))
    assert torch.isfinite(image_tensor(X, ["pet"], [0, 1])).all()
