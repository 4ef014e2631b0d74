"""Fixtures for the radiomics tests: small textured cohorts with ellipsoid tumours."""

from __future__ import annotations

import numpy as np
import pytest

from survseg.data.cohort import volumes
from survseg.radiomics import clear_cache


def textured_cohort(n=3, shape=(20, 22, 24), seed=0):
    """PET-like (SUV) and CT-like (HU) images with one ellipsoid tumour per patient.

    The tumour has a texture (smoothed noise) so every texture class is non-degenerate.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape, dtype=np.float64)
    centre = (np.array(shape) - 1) / 2
    masks, pets, cts = [], [], []
    for _ in range(n):
        radii = rng.uniform(3.5, 6.0, 3)
        shift = rng.uniform(-1.5, 1.5, 3)
        d = (
            ((zz - centre[0] - shift[0]) / radii[0]) ** 2
            + ((yy - centre[1] - shift[1]) / radii[1]) ** 2
            + ((xx - centre[2] - shift[2]) / radii[2]) ** 2
        )
        mask = (d <= 1).astype(np.uint8)
        texture = rng.normal(0, 1, shape)
        texture = (
            texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, 1, 2)
        ) / 2
        pets.append(1.0 + 0.2 * rng.normal(0, 1, shape) + mask * (6.0 + 1.5 * texture))
        cts.append(30.0 + 15 * rng.normal(0, 1, shape) + mask * (20.0 + 40 * texture))
        masks.append(mask)
    return volumes(
        pet=np.stack(pets), ct=np.stack(cts), mask=np.stack(masks), age=rng.uniform(40, 80, n)
    )


@pytest.fixture(autouse=True)
def _empty_feature_cache():
    """Every test starts with an empty process-wide feature cache."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def cohort():
    return textured_cohort()


@pytest.fixture
def make_cohort():
    """The cohort builder itself, for tests that need another size or seed."""
    return textured_cohort
