"""Tests of the synthetic head-and-neck PET/CT cohort.

References are independent of the generator: scikit-survival's C-index and Cox model, the
analytic Weibull survival function (probability integral transform), scipy statistics, and
properties measured directly on the images (HU ranges, uptake ratios, mask geometry).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from survseg.data.validation import check_cohort, check_survival
from survseg.datasets import DEFAULT_COEF, make_petct_cohort
from survseg.datasets._survival import MEDIAN_MONTHS, WEIBULL_SHAPE

SHAPE = (32, 32, 32)


@pytest.fixture(scope="module")
def cohort():
    return make_petct_cohort(40, SHAPE, random_state=0, return_truth=True)


@pytest.fixture(scope="module")
def large():
    """Many small patients: enough events to check the survival model."""
    return make_petct_cohort(600, (16, 16, 16), random_state=0, event_rate=0.5, return_truth=True)


def cindex(y, risk):
    return concordance_index_censored(y["event"], y["time"], risk)[0]


# ---------------------------------------------------------------- data model


def test_fields_dtypes_and_shapes(cohort):
    X, y, truth = cohort
    assert X.shape == (40,)
    assert X.dtype.names == (
        "pet",
        "ct",
        "mask",
        "nodes",
        "age",
        "sex",
        "hpv",
        "tnm_stage",
        "spacing",
    )
    for name, dtype in [
        ("pet", np.float32),
        ("ct", np.float32),
        ("mask", np.uint8),
        ("nodes", np.uint8),
    ]:
        assert X.dtype.fields[name][0].base == dtype
        assert X[name].shape == (40, *SHAPE)
    assert X["age"].dtype == np.float64 and X["tnm_stage"].dtype == np.int64
    assert set(np.unique(X["hpv"])) <= {0, 1} and set(np.unique(X["sex"])) <= {0, 1}
    assert set(np.unique(X["tnm_stage"])) <= {1, 2, 3, 4}
    # the cohort carries its voxel size: the longest axis spans 160 mm by default
    np.testing.assert_allclose(X["spacing"], 160.0 / max(SHAPE))
    np.testing.assert_allclose(X["spacing"][0], truth.spacing_mm)
    assert np.all((X["age"] >= 30) & (X["age"] <= 90))
    check_cohort(
        X, require_mask=True, require_nodes=True, clinical=["age", "sex", "hpv", "tnm_stage"]
    )
    event, time = check_survival(y, len(X))
    assert event.any() and np.all(time > 0)
    assert truth.node_mask.shape == (40, *SHAPE) and truth.node_mask.dtype == np.uint8


def test_returns_two_items_without_truth():
    out = make_petct_cohort(3, (16, 16, 16), random_state=1)
    assert len(out) == 2


def test_truth_risk_is_the_documented_linear_predictor(cohort):
    _, _, truth = cohort
    cov = truth.covariates
    # eta = sum_j beta_j (x_j - c_j), with the documented centres, written out by hand
    expected = (
        0.45 * cov["tumour_size"]
        + 0.30 * cov["tumour_uptake"]
        + 0.35 * cov["tumour_heterogeneity"]
        + 1.30 * (cov["node_burden"] - np.log(4.0))
        + 0.025 * (cov["age"] - 60.0)
        - 0.70 * (cov["hpv"] - 0.65)
    )
    np.testing.assert_allclose(truth.risk, expected, rtol=1e-12)
    np.testing.assert_allclose(
        truth.risk, truth.risk_tumour + truth.risk_nodes + truth.risk_clinical, rtol=1e-12
    )
    assert truth.coef == DEFAULT_COEF


def test_deterministic_given_random_state():
    a = make_petct_cohort(3, (16, 16, 16), random_state=7)
    b = make_petct_cohort(3, (16, 16, 16), random_state=7)
    c = make_petct_cohort(3, (16, 16, 16), random_state=np.random.RandomState(7))
    d = make_petct_cohort(3, (16, 16, 16), random_state=np.random.RandomState(7))
    e = make_petct_cohort(3, (16, 16, 16), random_state=np.random.default_rng(7))
    f = make_petct_cohort(3, (16, 16, 16), random_state=np.random.default_rng(7))
    for p, q in [(a, b), (c, d), (e, f)]:
        assert p[0].tobytes() == q[0].tobytes()
        assert p[1].tobytes() == q[1].tobytes()
    other = make_petct_cohort(3, (16, 16, 16), random_state=8)
    assert not np.array_equal(a[0]["pet"], other[0]["pet"])


# ---------------------------------------------------------------- images


def test_masks_binary_nonempty_irregular_and_in_soft_tissue(cohort):
    X, _, _ = cohort
    mask = X["mask"].astype(bool)
    assert set(np.unique(X["mask"])) == {0, 1}
    assert mask.reshape(len(X), -1).any(axis=1).all()
    assert np.all(X["ct"][mask] > -500)  # inside the body, never air
    assert np.all(X["ct"][mask] < 300)  # never bone
    # not a sphere: Dice with the equal-volume sphere at the centroid
    grid = np.indices(SHAPE)
    dice = []
    for m in mask:
        centroid = np.array(np.nonzero(m)).mean(axis=1)
        r = np.cbrt(3 * m.sum() / (4 * np.pi))
        sphere = sum((g - c) ** 2 for g, c in zip(grid, centroid, strict=True)) < r * r
        dice.append(2 * (m & sphere).sum() / (m.sum() + sphere.sum()))
    assert np.median(dice) < 0.92


def test_ct_has_air_soft_tissue_and_bone(cohort):
    X, _, _ = cohort
    ct = X["ct"].reshape(len(X), -1)
    assert (ct < -900).any(axis=1).all()  # air outside the body and in the airway
    assert (ct > 300).any(axis=1).all()  # spine, mandible, skull
    assert (ct > 700).any(axis=1).all()  # cortical bone
    corner = X["ct"][:, 12:20, :2, :2]  # anterior corner of the neck slices: pure air
    assert abs(float(np.median(corner)) + 1000) < 5
    tissue = ct[(ct > -200) & (ct < 200)]
    assert 0 < np.median(tissue) < 60  # soft tissue ~ 0-60 HU
    # CT noise: air outside the body is not constant
    assert 5 < corner.std() < 30


def test_tumour_uptake_exceeds_background(cohort):
    X, _, truth = cohort
    for pet, ct, m, nodes in zip(X["pet"], X["ct"], X["mask"], truth.node_mask, strict=True):
        soft = (ct > -100) & (ct < 100) & (m == 0) & (nodes == 0)
        background = np.median(pet[soft])
        assert 0.3 < background < 1.5
        assert pet[m == 1].mean() > 2.0 * background
        assert pet[m == 1].max() > 3.0 * background


def test_physiological_uptake_brain_brightest(cohort):
    X, _, _ = cohort
    pet, ct = X["pet"], X["ct"]
    top = pet[:, -4:]  # superior slices: lower brain inside the skull
    soft = (ct > -100) & (ct < 100)
    for i in range(len(X)):
        assert np.percentile(top[i], 99) > 4.0 * np.median(pet[i][soft[i]])
    # PET is blurred: neighbouring voxels correlate far more than white noise would
    a, b = pet[:, 8:24, 8:24, 8:23].ravel(), pet[:, 8:24, 8:24, 9:24].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.5


def test_nodes_are_outside_the_mask_and_hot(cohort):
    X, _, truth = cohort
    np.testing.assert_array_equal(X["nodes"], truth.node_mask)
    nodes = X["nodes"].astype(bool)
    assert not (nodes & X["mask"].astype(bool)).any()
    k = truth.measurements["n_nodes"].to_numpy()
    assert np.all((k >= 1) & (k <= 3))
    has = nodes.reshape(len(X), -1).any(axis=1)
    assert has.all()
    for pet, ct, n in zip(X["pet"], X["ct"], nodes, strict=True):
        soft = (ct > -100) & (ct < 100)
        assert pet[n].max() > 2.0 * np.median(pet[soft])


def test_images_encode_the_risk_covariates(cohort):
    X, _, truth = cohort
    cov = truth.covariates
    n = len(X)
    volume = X["mask"].reshape(n, -1).sum(axis=1)
    suv_max = np.where(X["mask"] == 1, X["pet"], 0).reshape(n, -1).max(axis=1)
    node_voxels = truth.node_mask.reshape(n, -1).sum(axis=1)
    assert stats.spearmanr(volume, cov["tumour_size"])[0] > 0.9
    assert stats.spearmanr(suv_max, cov["tumour_uptake"])[0] > 0.7
    assert stats.spearmanr(node_voxels, cov["node_burden"])[0] > 0.7
    np.testing.assert_array_equal(truth.measurements["tumour_voxels"], volume)


def test_no_nodes_and_noise_free_options():
    X, _, truth = make_petct_cohort(
        4, (16, 20, 24), random_state=0, n_nodes=0, noise=0.0, return_truth=True
    )
    assert X["pet"].shape == (4, 16, 20, 24)
    assert not truth.node_mask.any()
    np.testing.assert_array_equal(truth.covariates["node_burden"], 0.0)
    np.testing.assert_allclose(X["ct"][:, :, 0, 0], -1000.0, atol=1e-3)


def test_noise_levels_match_the_documented_model():
    # the same seed draws the same noise fields; noise=0 scales them to nothing
    kw = dict(n_patients=3, shape=(32, 32, 32), random_state=5)
    X1, X0 = make_petct_cohort(noise=1.0, **kw), make_petct_cohort(noise=0.0, **kw)
    X1, X0 = X1[0], X0[0]
    soft = (X0["ct"] > -100) & (X0["ct"] < 100) & (X0["pet"] > 0.5) & (X0["pet"] < 1.5)
    ct_sd = (X1["ct"] - X0["ct"])[soft].std()
    assert 11.0 < ct_sd < 13.0  # 12 HU white noise
    pet_diff = (X1["pet"] - X0["pet"])[soft]
    expected = 0.2 * np.sqrt(X0["pet"][soft] + 0.05)  # 0.2 sqrt(SUV) after the PSF blur
    assert 0.75 < pet_diff.std() / np.sqrt(np.mean(expected**2)) < 1.25


# ---------------------------------------------------------------- survival


@pytest.mark.parametrize("rate", [0.2, 0.3, 0.4])
def test_event_rate_is_calibrated(rate):
    _, y = make_petct_cohort(200, (16, 16, 16), random_state=3, event_rate=rate)
    assert abs(y["event"].mean() - rate) < 0.08


@pytest.mark.parametrize("seed", range(8))
def test_tiny_cohorts_always_have_an_event(seed):
    X, y = make_petct_cohort(12, (16, 16, 16), random_state=seed, event_rate=0.02)
    check_survival(y, len(X))
    assert y["event"].sum() >= 1
    check_cohort(X, require_mask=True)


def test_event_times_follow_the_weibull_model(large):
    _, y, truth = large
    eta = truth.risk + truth.frailty
    # probability integral transform: S(T | eta) ~ U(0, 1) under the documented model
    u = np.exp(-np.log(2) * (truth.event_time / MEDIAN_MONTHS) ** WEIBULL_SHAPE * np.exp(eta))
    assert stats.kstest(u, "uniform").pvalue > 0.01
    observed = np.minimum(truth.event_time, truth.censoring_time)
    np.testing.assert_allclose(y["time"], observed)
    np.testing.assert_array_equal(y["event"], truth.event_time <= truth.censoring_time)
    assert np.all(truth.censoring_time <= truth.study_length + 1e-9)


def test_survival_depends_on_tumour_and_nodes(large):
    _, y, truth = large
    c_full = cindex(y, truth.risk)
    c_masked = cindex(y, truth.risk_tumour + truth.risk_clinical)
    assert c_full > 0.72
    assert cindex(y, truth.risk_tumour) > 0.6
    assert cindex(y, truth.risk_nodes) > 0.6
    # what lies outside the mask matters: a tumour-only view loses concordance
    assert c_full - c_masked > 0.03

    cox = CoxPHSurvivalAnalysis().fit(truth.covariates.to_numpy(), y)
    for name, estimate in zip(truth.covariates.columns, cox.coef_, strict=True):
        assert np.sign(estimate) == np.sign(DEFAULT_COEF[name]), name
    node = cox.coef_[list(truth.covariates.columns).index("node_burden")]
    assert 0.5 * DEFAULT_COEF["node_burden"] < node < 1.5 * DEFAULT_COEF["node_burden"]


def test_coef_override_switches_nodes_off():
    _, y, truth = make_petct_cohort(
        8, (16, 16, 16), random_state=0, coef={"node_burden": 0.0}, return_truth=True
    )
    np.testing.assert_array_equal(truth.risk_nodes, 0.0)
    assert truth.node_mask.any()  # the nodes are still in the images
    assert truth.coef["node_burden"] == 0.0 and truth.coef["hpv"] == DEFAULT_COEF["hpv"]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_patients": 1}, ValueError, "n_patients must be >= 2"),
        ({"n_patients": 5.0}, TypeError, "n_patients must be an int"),
        ({"shape": (32, 32)}, ValueError, "shape must be a tuple of 3"),
        ({"shape": (32, 15, 32)}, ValueError, ">= 16"),
        ({"shape": (32, 32.0, 32)}, TypeError, "shape must hold ints"),
        ({"event_rate": 0.0}, ValueError, "event_rate"),
        ({"event_rate": 1.0}, ValueError, "event_rate"),
        ({"event_rate": float("nan")}, ValueError, "event_rate"),
        ({"n_nodes": (3, 1)}, ValueError, "n_nodes"),
        ({"n_nodes": (0, 7)}, ValueError, "n_nodes"),
        ({"n_nodes": "two"}, ValueError, "n_nodes"),
        ({"coef": {"tumor_size": 1.0}}, ValueError, "unknown coef key"),
        ({"coef": [0.1]}, TypeError, "coef must be a dict"),
        ({"coef": {"hpv": float("inf")}}, ValueError, "coef"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"frailty_sd": -0.1}, ValueError, "frailty_sd"),
        ({"pet_fwhm_mm": -1.0}, ValueError, "pet_fwhm_mm"),
        ({"voxel_size_mm": 0.0}, ValueError, "voxel_size_mm"),
        ({"return_truth": 1}, TypeError, "return_truth"),
        ({"random_state": "seed"}, ValueError, "seed"),
    ],
)
def test_invalid_parameters_raise_clear_errors(kwargs, error, match):
    params = {"n_patients": 4, "shape": (16, 16, 16), **kwargs}
    with pytest.raises(error, match=match):
        make_petct_cohort(**params)


def test_node_masks_are_where_the_nodes_are_painted(cohort):
    X, _, truth = cohort
    n = len(X)
    k = truth.measurements["n_nodes"].to_numpy()
    components = np.zeros(n, dtype=int)
    for i in range(n):
        nodes = X["nodes"][i].astype(bool)
        _, components[i] = ndimage.label(nodes, structure=np.ones((3, 3, 3)))
        # painted nodes are soft tissue (CT) with uptake above the surrounding tissue (PET)
        ring = ndimage.binary_dilation(nodes, iterations=2) & ~nodes & (X["mask"][i] == 0)
        soft = ring & (X["ct"][i] > -150) & (X["ct"][i] < 150)
        assert np.median(X["pet"][i][nodes]) > np.median(X["pet"][i][soft])
        assert np.median(X["ct"][i][nodes]) > -100
    # every node is painted; on a 5 mm grid neighbouring nodes may merge or bone may split
    # one, so the count of connected components is the number of nodes give or take one
    assert (components >= 1).all() and np.mean(np.abs(components - k) <= 1) > 0.85
    # the mask's volume measures the drawn nodal volume V_N that drives the risk
    node_ml = X["nodes"].reshape(n, -1).sum(axis=1) * truth.spacing_mm**3 / 1000
    drawn_ml = np.expm1(truth.covariates["node_burden"].to_numpy())
    assert stats.spearmanr(node_ml, drawn_ml)[0] > 0.8
    assert 0.5 < np.median(node_ml / drawn_ml) < 2.0


def test_return_nodes_false_gives_the_tumour_only_cohort():
    with_nodes, y1 = make_petct_cohort(5, (16, 16, 16), random_state=3 + 10)
    without, y2 = make_petct_cohort(5, (16, 16, 16), random_state=3 + 10, return_nodes=False)
    assert "nodes" not in without.dtype.names
    assert without.dtype.names == tuple(n for n in with_nodes.dtype.names if n != "nodes")
    for name in without.dtype.names:
        np.testing.assert_array_equal(without[name], with_nodes[name])
    np.testing.assert_array_equal(y1, y2)
    none, _ = make_petct_cohort(3, (16, 16, 16), random_state=0, n_nodes=0)
    assert not none["nodes"].any()
    check_cohort(none, require_nodes=True)
    with pytest.raises(TypeError, match="return_nodes must be a bool"):
        make_petct_cohort(3, (16, 16, 16), return_nodes="yes")
