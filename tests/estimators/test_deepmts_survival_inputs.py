"""DeepMTS survival inputs read off the predicted maps, and scaled (issue 14, item 4)."""

import pickle

import numpy as np
import pytest
import torch
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.networks.deepmts import DeepMTS
from survseg.networks.heads import FeatureStandardizer, SegmentationFeatures
from tests.tiny_models import DEEPMTS_FAST
from tests.tiny_models import DEEPMTS_NETWORK as TINY
from tests.tiny_models import DEEPMTS_SHAPE as SHAPE


def volume_cohort(n=24, seed=0):
    """One bright sphere per patient in SUV units; the hazard grows with the tumour volume."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE)
    radius = rng.uniform(2.0, 6.0, n)
    centre = 10 + rng.uniform(-1.5, 1.5, (n, 3))
    dist = np.sqrt(
        sum((g[None] - centre[:, i, None, None, None]) ** 2 for i, g in enumerate((zz, yy, xx)))
    )
    mask = (dist <= radius[:, None, None, None]).astype(np.uint8)
    pet = 1.0 + 0.3 * rng.normal(0, 1, (n, *SHAPE)) + 8.0 * mask  # SUV
    ct = 40.0 + 20.0 * rng.normal(0, 1, (n, *SHAPE)) + 30.0 * mask  # HU
    time = 100 * np.exp(-(mask.reshape(n, -1).sum(1) / 300.0)) * rng.uniform(0.9, 1.1, n)
    event = np.ones(n, dtype=bool)
    event[::4] = False
    X = volumes(pet=pet, ct=ct, mask=mask, spacing=np.full((n, 3), 2.0))
    return X, Surv.from_arrays(event, time)


def tiny(**kw):
    params = dict(
        DEEPMTS_FAST,
        intensity={"pet": "zscore", "ct": "zscore"},
        # the segmentation-derived head (the paper's "pooled" is the default)
        survival_inputs="segmentation",
        feature_scaling="standardize",
    )
    return DeepMTSRegressor(**{**params, **kw})


@pytest.fixture(scope="module")
def cohort():
    return volume_cohort()


def test_segmentation_features_hand_computed():
    prob = torch.zeros(2, 2, 2, 2, 2)
    prob[0, 0, 0, 0, 0] = 1.0
    prob[0, 0, 1, 1, 1] = 0.5  # tumour of patient 0: 1.5 voxels
    suv = torch.ones(2, 1, 2, 2, 2)
    suv[0, 0, 0, 0, 0] = 4.0  # uptake 4 * 1 + 1 * 0.5 = 4.5 voxel-SUV
    got = SegmentationFeatures()(prob, suv, voxel_ml=torch.tensor([0.008, 0.001]))
    v = 0.008
    want_t = [np.log1p(1.5 * v), np.log1p(4.5 * v), 4.5 / 1.5]
    np.testing.assert_allclose(got[0, :3].numpy(), want_t, rtol=1e-6)
    np.testing.assert_allclose(got[0, 3:].numpy(), [0, 0, 0], atol=1e-7)  # no nodes
    np.testing.assert_allclose(got[1].numpy(), np.zeros(6), atol=1e-7)


def test_running_standardizer_follows_the_batches():
    torch.manual_seed(0)
    std = FeatureStandardizer(3, momentum=0.5)
    a, b = torch.randn(8, 3) * 2 + 1, torch.randn(8, 3) * 3 - 1
    std(a)
    z = std(b)
    mean = 0.5 * a.mean(0) + 0.5 * b.mean(0)
    var = 0.5 * (a.var(0, unbiased=False) + 1e-6) + 0.5 * b.var(0, unbiased=False)
    np.testing.assert_allclose(std.mean.numpy(), mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(std.scale.numpy(), np.sqrt(var.numpy() + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(z.numpy(), ((b - mean) / std.scale).numpy(), rtol=1e-5)
    std.eval()
    std(torch.randn(8, 3) * 100)  # no update at prediction
    np.testing.assert_allclose(std.mean.numpy(), mean.numpy(), rtol=1e-5)


def test_segmentation_branch_does_not_reshape_the_segmentation():
    torch.manual_seed(0)
    net = DeepMTS(
        2, 0, hard_sharing=False, cascade=False, segmentation_features=True, n_regions=2, **TINY
    )
    x = torch.randn(3, 2, 20, 20, 20)
    out = net(x, suv=torch.rand(3, 1, 20, 20, 20) * 5, voxel_ml=torch.full((3,), 0.008))
    assert out.features.shape == (3, 6) and out.log_risk.shape == (3,)
    out.log_risk.sum().backward()
    assert net.fc_seg[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.backbone.parameters())  # maps are detached
    with pytest.raises(ValueError, match="suv"):
        net(x)
    with pytest.raises(ValueError, match="segmentation=True"):
        DeepMTS(2, 0, segmentation=False, segmentation_features=True, **TINY)


def test_default_head_reads_the_predicted_map(cohort):
    X, y = cohort
    est = tiny().fit(X, y)
    assert est.network_.fc_shared is None and est.network_.cascade is None
    names = list(est.get_feature_names_out())
    assert names == ["tumour_log_volume", "tumour_log_uptake", "tumour_mean_suv"]
    feats = est.transform(X)
    p = est.predict_proba_mask(X).astype(np.float64)
    v = 2.0**3 / 1000  # ml per voxel
    vol = p.reshape(len(X), -1).sum(1) * v
    upt = (p * X["pet"]).reshape(len(X), -1).sum(1) * v
    want = np.stack([np.log1p(vol), np.log1p(upt), upt / np.maximum(vol, v)], axis=1)
    np.testing.assert_allclose(feats, want, rtol=2e-4)
    # the scaling statistics travel with the model
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict(X), est.predict(X), rtol=1e-6)
    assert again.network_.scale_seg.n_updates == 3


def test_paper_settings_build_the_paper_head(cohort):
    X, y = cohort
    est = tiny(survival_inputs="pooled", feature_scaling=None).fit(X, y)
    assert est.network_.seg_features is None and est.network_.scale_shared is None
    assert len(est.get_feature_names_out()) == est.transform(X[:2]).shape[1]
    both = tiny(survival_inputs="pooled+segmentation").fit(X, y)
    names = both.get_feature_names_out()
    assert names[0].startswith("hs1_") and names[-1] == "tumour_mean_suv"
    assert both.network_.scale_shared is not None


def test_segmentation_inputs_rank_by_predicted_tumour_volume():
    """Risk = tumour volume: the default head ranks new patients better than chance."""
    X, y = volume_cohort(n=36, seed=1)
    train, test = np.arange(24), np.arange(24, 36)
    est = tiny(max_iter=40, lr=3e-3, lr_factors=(1.0, 1.0, 1.0), batch_size=6)
    est.fit(X[train], y[train])
    c = concordance_index_censored(y["event"][test], y["time"][test], est.predict(X[test]))[0]
    assert c > 0.7, c


def _pet_statistics(p, pet, v):
    """MTV, TLG, SUVmean, SUVmax, COV of probability maps ``p`` (n, ...), by numpy."""
    p, pet = p.reshape(len(p), -1), pet.reshape(len(pet), -1)
    vol, upt = p.sum(1) * v, (p * pet).sum(1) * v
    mean = np.average(pet, weights=p, axis=1)
    sd = np.sqrt(np.average((pet - mean[:, None]) ** 2, weights=p, axis=1))
    peak = (p * pet).max(1)
    return np.stack(
        [np.log1p(vol), np.log1p(upt), upt / np.maximum(vol, v), np.log1p(peak), sd / mean], 1
    )


def test_pet_statistics_reach_the_cox_head(cohort):
    X, y = cohort
    stats = ("log_volume", "log_uptake", "mean_suv", "log_max_suv", "suv_cv")
    est = tiny(segmentation_statistics=stats, survival_head="cox").fit(X, y)
    assert list(est.get_feature_names_out()) == [f"tumour_{s}" for s in stats]
    p = est.predict_proba_mask(X).astype(np.float64)
    want = _pet_statistics(p, np.asarray(X["pet"], dtype=np.float64), 2.0**3 / 1000)
    np.testing.assert_allclose(est.transform(X), want, rtol=2e-4)
    assert est.head_coef_.shape == (5,) and np.isfinite(est.predict(X)).all()
    # the network is rebuilt with the same branch from a pickle
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict(X), est.predict(X), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(segmentation_statistics=("log_volume", "suv_peak")), "segmentation_statistics"),
        (dict(segmentation_statistics=()), "segmentation_statistics"),
        (dict(segmentation=False), "needs segmentation=True"),
        (dict(modalities=("ct",), intensity=None), "'pet' modality"),
        (dict(survival_inputs="radiomics"), "survival_inputs"),
        (dict(feature_scaling="minmax"), "feature_scaling"),
    ],
)
def test_bad_settings_are_named(kwargs, match, cohort):
    X, y = cohort
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs).fit(X, y)
