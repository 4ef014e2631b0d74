"""AdaMSS survival inputs read off the stage-I maps, and scaled (issue 14, item 4)."""

import pickle

import numpy as np
import pytest
import torch
from test_adamss_nodes import NET, nodes_cohort

from survseg.estimators.adamss import AdaMSSRegressor
from survseg.networks.adamss import AdaMSS
from survseg.training import seed_from, validation_split


def tiny(**kw):
    params = dict(
        network_params=NET,
        max_iter=4,
        random_state=0,
        radiomics=False,
        device="cpu",
        augmentation=False,
        crop_size=None,
        survival_inputs="segmentation",
        feature_scaling=None,
        validation_fraction=0.25,
        validate_every=2,
    )
    params.update(kw)
    return AdaMSSRegressor(**params)


@pytest.fixture(scope="module")
def cohort():
    return nodes_cohort()


def _hand_features(est, X):
    """log(1 + V), log(1 + U), U / max(V, v) per region from the public probability maps."""
    v = 8.0 / 1000  # 2 mm voxels, in ml
    pet = np.asarray(X["pet"], dtype=np.float64)
    cols = []
    for region in est.regions_:
        p = est.predict_proba_mask(X, region=region).astype(np.float64)
        volume = v * p.sum(axis=(1, 2, 3))
        uptake = v * (p * pet).sum(axis=(1, 2, 3))
        cols += [np.log1p(volume), np.log1p(uptake), uptake / np.maximum(volume, v)]
    return np.stack(cols, axis=1)


def test_segmentation_features_from_the_stage_one_maps(cohort):
    X, y = cohort
    est = tiny().fit(X, y)
    assert est.tabular_features_ == [
        f"{r}_{w}" for r in ("tumour", "nodes") for w in ("log_volume", "log_uptake", "mean_suv")
    ]
    want = _hand_features(est, X)
    np.testing.assert_allclose(est._tabular(X), want, rtol=2e-4, atol=1e-5)  # unscaled
    # the head sees these features only (no pooled decoder features)
    assert not est.network_.pooled_features
    assert est.network_.survival_head.net[1].in_features == 6
    assert np.isfinite(est.predict(X)).all()


def test_standardized_segmentation_features_use_training_statistics(cohort):
    X, y = cohort
    est = tiny(feature_scaling="standardize").fit(X, y)
    train, _ = validation_split(np.asarray(y["event"]), 0.25, seed_from(0), need_events=False)
    hand = _hand_features(est, X)[train]
    np.testing.assert_allclose(est.tabular_mean_[:6], hand.mean(axis=0), rtol=2e-4, atol=1e-5)
    sd = hand.std(axis=0)
    np.testing.assert_allclose(
        est.tabular_scale_[:6], np.where(sd > 0, sd, 1.0), rtol=2e-3, atol=1e-5
    )


def test_pooled_features_scaled_by_running_statistics(cohort):
    X, y = cohort
    est = tiny(survival_inputs="pooled+segmentation", feature_scaling="standardize", monitor=None)
    est.fit(X, y)  # the last iteration kept (the statistics are part of a checkpoint)
    scaler = est.network_.scale_pooled
    assert scaler is not None and int(scaler.n_updates) == 4  # one update per training batch
    assert est.network_.pooled_features
    n_pooled = sum(est.network_.decoder.channels)
    assert est.network_.survival_head.net[1].in_features == n_pooled + 6
    again = pickle.loads(pickle.dumps(est))  # the statistics are saved with the network
    np.testing.assert_allclose(again.predict(X), est.predict(X), rtol=1e-6)
    # without scaling: the paper's network, no standardiser
    paper = tiny(survival_inputs="pooled").fit(X, y)
    assert paper.network_.scale_pooled is None and paper.tabular_features_ == []


def test_network_standardizer_in_eval_mode_is_fixed():
    torch.manual_seed(0)
    net = AdaMSS(2, n_intervals=3, feature_scaling=True, **NET)
    x = torch.randn(4, 2, 8, 8, 8)
    net.train()
    net(x, task="survival")
    pooled = torch.cat([d.mean(dim=(2, 3, 4)) for d in net.decoder(net.encoder(x)[0])[0]], dim=1)
    # the first batch sets the statistics: mean and population sd of that batch
    torch.testing.assert_close(net.scale_pooled.mean, pooled.detach().mean(0), atol=1e-5, rtol=0)
    net.eval()
    before = net.scale_pooled.mean.clone()
    net(torch.randn(4, 2, 8, 8, 8), task="survival")
    torch.testing.assert_close(net.scale_pooled.mean, before)


def test_segmentation_inputs_reach_the_risk(cohort):
    """Raising the PET inside patient 0's tumour raises its uptake feature, and only its."""
    X, y = cohort
    est = tiny(max_iter=6).fit(X, y)
    base = est._tabular(X)
    changed = X.copy()
    changed["pet"][0] = changed["pet"][0] + 5.0 * X["mask"][0]
    after = est._tabular(changed)
    assert after[0, 1] > base[0, 1]
    np.testing.assert_allclose(after[1:], base[1:], rtol=1e-6)


def test_pet_statistics_follow_segmentation_statistics(cohort):
    X, y = cohort
    stats = ("log_max_suv", "log_volume", "suv_cv")
    est = tiny(segmentation_statistics=stats).fit(X, y)
    assert est.tabular_features_ == [f"{r}_{w}" for r in ("tumour", "nodes") for w in stats]
    pet = np.asarray(X["pet"], dtype=np.float64).reshape(len(X), -1)
    cols = []
    for region in est.regions_:
        p = est.predict_proba_mask(X, region=region).astype(np.float64).reshape(len(X), -1)
        mean = np.average(pet, weights=p, axis=1)
        sd = np.sqrt(np.average((pet - mean[:, None]) ** 2, weights=p, axis=1))
        cols += [np.log1p((p * pet).max(1)), np.log1p(8.0 / 1000 * p.sum(1)), sd / mean]
    np.testing.assert_allclose(est._tabular(X), np.stack(cols, 1), rtol=2e-4, atol=1e-5)
    assert est.network_.survival_head.net[1].in_features == 6
    with pytest.raises(ValueError, match="segmentation_statistics"):
        tiny(segmentation_statistics=["mean_suv", "mean_suv"]).fit(X, y)


def test_bad_combinations(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match="no stage I"):
        tiny(learning_strategy="mtl").fit(X, y)
    with pytest.raises(ValueError, match="'pet'"):
        tiny(modalities=("ct",), fusion="early").fit(X, y)
    with pytest.raises(ValueError, match="survival_inputs"):
        tiny(survival_inputs="both").fit(X, y)
    with pytest.raises(ValueError, match="n_extra_features"):
        AdaMSS(2, pooled_features=False, **NET)
    # the defaults are the paper's
    est = AdaMSSRegressor()
    assert est.survival_inputs == "pooled" and est.feature_scaling is None
