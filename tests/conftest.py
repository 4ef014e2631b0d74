"""Shared fixtures: small deterministic cohorts and a trivial estimator for pass-through tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sksurv.util import Surv

from survseg.base import SurvivalMixin
from survseg.data.cohort import volumes
from survseg.data.validation import check_cohort

torch.set_num_threads(1)  # CI has 2 cores; joblib workers must not oversubscribe them


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _model_key_home(tmp_path_factory):
    """Model files are signed with a per-user key under $XDG_CONFIG_HOME: keep the tests'
    key out of the real home folder."""
    import os

    previous = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if previous is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = previous


def sphere_cohort(n=12, shape=(12, 14, 16), seed=0):
    """Cohort of noisy images with one spherical tumour each; risk grows with tumour radius."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    centre = np.array(shape) / 2
    radius = rng.uniform(2.0, 4.5, n)
    dist = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    mask = (dist[None] <= radius[:, None, None, None]).astype(np.uint8)
    pet = rng.normal(1.0, 0.1, (n, *shape)) + 4.0 * mask
    ct = rng.normal(0.0, 0.1, (n, *shape)) + 0.5 * mask
    time = 100.0 * np.exp(-(radius - 3.0)) * rng.uniform(0.8, 1.2, n)
    event = np.ones(n, dtype=bool)
    event[::3] = False
    age = rng.uniform(40, 80, n)
    X = volumes(pet=pet, ct=ct, mask=mask, age=age)
    return X, Surv.from_arrays(event, time)


@pytest.fixture
def small_cohort():
    return sphere_cohort()


class MeanUptake(SurvivalMixin, BaseEstimator):
    """Trivial survival 'model': risk = total PET uptake inside the mask (or mean uptake)."""

    def __init__(self, use_mask=True):
        self.use_mask = use_mask

    def fit(self, X, y):
        check_cohort(X, require_mask=self.use_mask)
        self.n_train_ = len(X)
        return self

    def predict(self, X):
        pet = np.asarray(X["pet"], dtype=np.float64)
        if self.use_mask:
            m = np.asarray(X["mask"], dtype=bool)
            return (pet * m).sum(axis=(1, 2, 3))
        return pet.mean(axis=(1, 2, 3))
