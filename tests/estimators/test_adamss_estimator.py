"""AdaMSSRegressor: every ablation trains, time bins, weight transfer, tabular inputs, API."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor, transfer_pretrained_weights
from survseg.networks.adamss import AdaMSS
from survseg.radiomics import RadiomicsExtractor
from tests.tiny_models import ADAMSS_FAST as TINY
from tests.tiny_models import ADAMSS_NETWORK as NET
from tests.tiny_models import FAST_RADIOMICS as FAST_RADIOMICS_SETTINGS

FAST_RADIOMICS = RadiomicsExtractor(**FAST_RADIOMICS_SETTINGS)


def _normalise(X):
    """AdaMSS's preprocessing: PET z-scored per patient, CT clipped to +-1024 HU and scaled."""
    X = X.copy()
    pet = X["pet"]
    X["pet"] = (pet - pet.mean(axis=(1, 2, 3), keepdims=True)) / pet.std(
        axis=(1, 2, 3), keepdims=True
    )
    X["ct"] = np.clip(X["ct"], -1024, 1024) / 1024
    return X


@pytest.fixture(scope="module")
def cohort():
    X, y = make_petct_cohort(12, shape=(16, 16, 16), random_state=0)
    return _normalise(X), y


def _check_predictions(est, X):
    risk = est.predict(X)
    assert risk.shape == (len(X),) and np.isfinite(risk).all()
    np.testing.assert_allclose(risk, -est.predict_time(X))
    surv = est.predict_survival_function(X, return_array=True)
    assert surv.shape == (len(X), est.n_intervals + 1)
    assert (np.diff(surv, axis=1) <= 0).all() and surv.min() >= 0 and surv[:, 0].max() == 1
    fns = est.predict_survival_function(X[:2])
    np.testing.assert_allclose(fns[0](est.time_bins_), surv[0])
    chf = est.predict_cumulative_hazard_function(X, return_array=True)
    np.testing.assert_allclose(chf, -np.log(surv))  # H = -log S of the discrete-time model
    np.testing.assert_array_equal(est.unique_times_, est.time_bins_)
    mask = est.predict_mask(X)
    assert mask.shape == (len(X), 16, 16, 16) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}


@pytest.mark.parametrize(
    "params",
    [
        dict(learning_strategy="ssl"),
        dict(learning_strategy="stl"),
        dict(learning_strategy="mtl"),
        dict(fusion="early"),
        dict(fusion="late"),
        dict(fusion="intermediate"),
        dict(modalities=("pet",), fusion="early"),
        dict(clinical=["age", "hpv"], augmentation=False, crop_size=None, validation_fraction=0),
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_ablations_fit_and_predict(cohort, params):
    X, y = cohort
    est = AdaMSSRegressor(**{**TINY, **params}).fit(X, y)
    _check_predictions(est, X)
    stages = set(est.history_["stage"])
    assert stages == (
        {"multitask"} if params.get("learning_strategy") == "mtl" else {"segmentation", "survival"}
    )
    assert len(est.history_) == 4 * len(stages)
    if params.get("learning_strategy") == "mtl":
        assert est.segmentation_network_ is est.network_
        assert {"dice_loss", "focal_loss", "nll", "val_dice_c_index"} <= set(est.history_.columns)


@pytest.mark.parametrize("strategy", ["ssl", "mtl"])
def test_monitor_picks_the_kept_survival_iteration(cohort, strategy):
    """monitor="loss" keeps the iteration of least validation NLL; None keeps the last."""
    X, y = cohort
    params = {**TINY, "max_iter": 6, "validate_every": 1, "learning_strategy": strategy}
    est = AdaMSSRegressor(**params, monitor="loss").fit(X, y)
    stage = "multitask" if strategy == "mtl" else "survival"
    h = est.history_[est.history_["stage"] == stage].dropna(subset=["val_nll"])
    assert len(h) == 6 and (h["val_nll"] > 0).all()
    score = h["val_nll"].to_numpy()
    if strategy == "mtl":  # the validation counterpart of the multi-task training loss
        np.testing.assert_allclose(h["val_loss"], 1 - h["val_dice"] + h["val_nll"])
        score = h["val_loss"].to_numpy()
    kept = int(h["iteration"].iloc[int(np.argmin(score))])
    assert est.best_iteration_[stage] == kept
    last = AdaMSSRegressor(**params, monitor=None).fit(X, y)
    assert last.best_iteration_[stage] == 6
    if strategy == "ssl":  # stage I still keeps its best validation Dice
        seg = last.history_[last.history_["stage"] == "segmentation"]
        best_dice = int(seg["iteration"].iloc[int(np.argmax(seg["val_dice"].to_numpy()))])
        assert last.best_iteration_["segmentation"] == best_dice


def test_three_modalities(cohort):
    X, y = cohort
    X3 = volumes(pet=X["pet"], ct=X["ct"], mri=X["pet"] * X["ct"], mask=X["mask"])
    est = AdaMSSRegressor(**{**TINY, "modalities": ("pet", "ct", "mri")}).fit(X3, y)
    assert est.network_.n_modalities == 3
    _check_predictions(est, X3)


def test_time_bins_spread_training_times_evenly(cohort):
    X, y = cohort
    est = AdaMSSRegressor(**{**TINY, "n_intervals": 4, "max_iter": 1}).fit(X, y)
    bins = est.time_bins_
    assert bins[0] == 0 and bins[-1] == y["time"].max() and np.all(np.diff(bins) > 0)
    counts = np.histogram(y["time"], bins=bins)[0]
    np.testing.assert_array_equal(counts, [3, 3, 3, 3])  # 12 patients over 4 intervals


def test_stage_two_starts_from_stage_one_weights(cohort):
    X, y = cohort
    # a vanishing stage-II learning rate: stage II ends (almost) where it started
    frozen = dict(lr=(1e-3, 1e-12), lr_factors=(1.0, 1.0), network_params={**NET, "dropout": 0.0})
    ssl = AdaMSSRegressor(**{**TINY, **frozen}).fit(X, y)
    seg = dict(ssl.segmentation_network_.named_parameters())
    init = AdaMSS(n_modalities=2, single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1))
    moved = 0
    for name, p in ssl.network_.named_parameters():
        if name.startswith("survival_head"):
            continue
        torch.testing.assert_close(p, seg[name], rtol=0, atol=1e-8)
        moved += not torch.equal(seg[name], dict(init.named_parameters())[name])
    assert moved > 0  # stage I did train, so equality is not just two fresh initialisations
    stl = AdaMSSRegressor(**{**TINY, **frozen, "learning_strategy": "stl"}).fit(X, y)
    diff = [
        not torch.allclose(p, dict(stl.segmentation_network_.encoder.named_parameters())[n])
        for n, p in stl.network_.encoder.named_parameters()
    ]
    assert any(diff)


def test_transfer_is_strict():
    a = AdaMSS(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1), n_extra_features=3)
    b = AdaMSS(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1))
    transfer_pretrained_weights(a, b)  # survival heads differ in width: not copied
    for (n, p), q in zip(a.encoder.state_dict().items(), b.encoder.state_dict().values()):
        assert torch.equal(p, q), n
    c = AdaMSS(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 2))
    with pytest.raises(RuntimeError, match="size mismatch|Missing|Unexpected"):
        transfer_pretrained_weights(a, c)


def test_clinical_reaches_the_prediction(cohort):
    X, y = cohort
    est = AdaMSSRegressor(**{**TINY, "clinical": ["age"]}).fit(X, y)
    assert est.network_.n_extra_features == 1 and est.tabular_features_ == ["age"]
    X2 = X.copy()
    X2["age"][0] += 30
    r1, r2 = est.predict(X), est.predict(X2)
    assert r1[0] != r2[0]
    np.testing.assert_array_equal(r1[1:], r2[1:])


def test_radiomics_from_predicted_masks_reach_the_prediction(cohort):
    X, y = cohort
    est = AdaMSSRegressor(
        **{**TINY, "radiomics": True, "extractor": FAST_RADIOMICS, "max_iter": 2}
    ).fit(X, y)
    assert 1 <= len(est.radiomics_features_) <= est.max_radiomics_features
    assert est.tabular_features_ == est.radiomics_features_
    assert est.network_.n_extra_features == len(est.radiomics_features_)
    table = est._radiomics_table(X)
    assert set(est.radiomics_features_) <= set(table.columns)
    r1 = est.predict(X)
    changed = table.copy()
    changed.loc[0, est.radiomics_features_] += 10 * est.tabular_scale_
    est._radiomics_table = lambda *_: changed  # the features of patient 0 only
    r2 = est.predict(X)
    assert r1[0] != r2[0]
    np.testing.assert_array_equal(r1[1:], r2[1:])


def test_radiomics_lasso_penalty_by_cross_validation(cohort):
    X, y = cohort
    params = {**TINY, "radiomics": True, "extractor": FAST_RADIOMICS, "max_iter": 1}
    est = AdaMSSRegressor(**params, max_radiomics_features=None).fit(X, y)
    capped = AdaMSSRegressor(**params, max_radiomics_features=1).fit(X, y)
    assert len(capped.radiomics_features_) <= 1
    columns = set(est._radiomics_table(X).columns)
    assert set(est.radiomics_features_) <= columns and set(capped.radiomics_features_) <= columns
    assert est.network_.n_extra_features == len(est.radiomics_features_)


def test_fusion_weights_and_attention_maps(cohort):
    X, y = cohort
    est = AdaMSSRegressor(**TINY).fit(X, y)
    for stage in ("survival", "segmentation"):
        w = est.fusion_weights(X, stage=stage)
        assert w.shape == (2,) and ((w > 0) & (w < 1)).all()
    assert est.fusion_weights(X, per_patient=True).shape == (12, 2)
    maps = est.attention_maps(X[:3])
    assert len(maps) == 1 and maps[0].shape == (3, 16, 16, 16)
    assert maps[0].min() > 0 and maps[0].max() < 1
    early = AdaMSSRegressor(**{**TINY, "fusion": "early", "max_iter": 1}).fit(X, y)
    with pytest.raises(ValueError, match="no fusion gates"):
        early.fusion_weights(X)


def test_sklearn_contract(cohort):
    X, y = cohort
    est = AdaMSSRegressor(**TINY)
    with pytest.raises(NotFittedError):
        est.predict(X)
    c = clone(est).set_params(fusion="late")
    assert c.get_params()["fusion"] == "late" and est.fusion == "adaptive"
    a = clone(est).fit(X, y)
    b = clone(est).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))  # same seed, same model
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict(X), a.predict(X))
    assert 0 <= a.score(X, y) <= 1


def test_extractor_parameters_reach_the_radiomics(cohort):
    est = AdaMSSRegressor(extractor=FAST_RADIOMICS).set_params(extractor__spacing=(3.0, 2.0, 2.0))
    masks = np.zeros((1, 4, 4, 4), np.uint8)
    used = est._radiomics_extractor({"tumour": masks}, ("pet", "ct"))
    assert used.spacing == (3.0, 2.0, 2.0) and used.modalities == ["pet", "ct"]
    assert used.empty_mask == "nan" and est.extractor.mask == "mask"  # the parameter untouched
    assert used.regions == ("tumour",)
    both = est._radiomics_extractor({"tumour": masks, "nodes": 0 * masks}, ("pet", "ct"))
    assert both.regions == ("tumour", "nodes") and both.spacing == (3.0, 2.0, 2.0)


def test_bad_inputs(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match="radiomics=False"):
        AdaMSSRegressor(**{**TINY, "learning_strategy": "mtl", "radiomics": True}).fit(X, y)
    with pytest.raises(ValueError, match="divisible by 2"):
        AdaMSSRegressor(**TINY).fit(
            volumes(
                pet=np.ones((4, 15, 16, 16)),
                ct=np.ones((4, 15, 16, 16)),
                mask=np.ones((4, 15, 16, 16)),
            ),
            y[:4],
        )
    with pytest.raises(ValueError, match="lr_factors"):
        AdaMSSRegressor(**{**TINY, "lr_factors": (0.5,)}).fit(X, y)
    with pytest.raises(ValueError, match="lr"):
        AdaMSSRegressor(**{**TINY, "lr": (1e-4, 1e-5, 1e-6)}).fit(X, y)
    with pytest.raises(ValueError, match="crop_size"):
        AdaMSSRegressor(**{**TINY, "crop_size": 7}).fit(X, y)
    with pytest.raises(ValueError, match="clinical field"):
        AdaMSSRegressor(**{**TINY, "clinical": ["weight"]}).fit(X, y)
    with pytest.raises(ValueError, match="learning_strategy"):
        AdaMSSRegressor(**{**TINY, "learning_strategy": "joint"}).fit(X, y)
    with pytest.raises(ValueError, match="monitor"):
        AdaMSSRegressor(**{**TINY, "monitor": "cox_loss"}).fit(X, y)
    with pytest.raises(ValueError, match="no events"):
        AdaMSSRegressor(**TINY).fit(X, Surv.from_arrays(np.zeros(12, bool), y["time"]))
    with pytest.raises(ValueError, match="monitor='dice'"):
        AdaMSSRegressor(**{**TINY, "monitor": "dice"}).fit(X, y)
    with pytest.raises(ValueError, match="unknown network_params"):
        AdaMSSRegressor(**{**TINY, "network_params": {"chanels": (2, 4)}}).fit(X, y)


def test_survival_head_starts_at_the_population_curve():
    from types import SimpleNamespace

    from survseg.losses.discrete_time import encode_survival

    # edges 0-1-2-3: A event at 0.5, B event at 1.5, C censored at 2.6, D censored at 1.2
    s, f = encode_survival([0.5, 1.5, 2.6, 1.2], [True, True, False, False], [0.0, 1.0, 2.0, 3.0])
    ctx = SimpleNamespace(s_train=torch.from_numpy(s), f_train=torch.from_numpy(f))
    net = AdaMSS(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1), n_intervals=3)
    AdaMSSRegressor()._init_survival_bias(net, ctx)
    # interval 1: 4 contribute, 1 event -> 3/4; interval 2: B and C, 1 event -> 1/2;
    # interval 3: C only, no event -> 1, clipped to 0.99
    expected = torch.logit(torch.tensor([0.75, 0.5, 0.99]))
    torch.testing.assert_close(net.survival_head.net[-1].bias.data, expected)


def test_tumour_head_starts_at_the_foreground_fraction():
    from types import SimpleNamespace

    masks = np.zeros((3, 4, 4, 4), np.uint8)
    masks[0, :2, :2, :2] = 1  # 8 voxels
    masks[1, 0, 0, :] = 1  # 4 voxels; patient 2 is left out of training
    masks[2] = 1
    nodes = np.zeros_like(masks)
    nodes[0, 3, 3, :2] = 1  # 2 node voxels; patient 1 has no nodes
    X = volumes(pet=np.ones((3, 4, 4, 4)), mask=masks, nodes=nodes)
    ctx = SimpleNamespace(X=X, train_idx=[0, 1], mask_fields=["mask"])
    shape = dict(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1))
    net = AdaMSS(n_modalities=1, **shape)
    AdaMSSRegressor()._init_segmentation_bias(net, ctx)
    pi = 12 / 128  # tumour voxels / all voxels of the training patients
    torch.testing.assert_close(net.seg_head.bias.data, torch.logit(torch.tensor([pi])))
    # two regions: each channel from its own labels (nodes 2 / 128)
    net = AdaMSS(n_modalities=1, seg_channels=2, **shape)
    ctx.mask_fields = ["mask", "nodes"]
    AdaMSSRegressor()._init_segmentation_bias(net, ctx)
    torch.testing.assert_close(net.seg_head.bias.data, torch.logit(torch.tensor([pi, 2 / 128])))


@pytest.mark.slow
def test_learns_segmentation_and_survival_on_the_synthetic_cohort():
    """Stage I segments test patients; stage II fits its training patients (4 minutes, 1 core).

    Segmentation is judged on test patients. Survival is judged as a fit to the training
    patients against the population curve (the maximum-likelihood model without covariates),
    with the head's L2 and dropout off and the last iteration kept: this checks that stage II
    learns from the images and covariates. Generalisation is not asserted: on this split, runs
    with other monitors and regularisation gave test C-indices from 0.43 to 0.58, within the
    noise of 30 test patients (3-fold out-of-fold C over the 80 patients, monitor="nll": 0.59).
    """
    from survseg.evaluation.metrics import concordance_index, dice_score
    from survseg.losses.discrete_time import discrete_time_nll, encode_survival

    X, y = make_petct_cohort(80, shape=(32, 32, 32), random_state=0, event_rate=0.5)
    X = _normalise(X)
    train, test = np.arange(50), np.arange(50, 80)
    est = AdaMSSRegressor(
        network_params=dict(
            single_channels=(4, 8, 16, 32),
            fuse_channels=(8, 16, 32, 64),
            n_convs=(1, 2, 2, 2),
            hidden_features=32,
            dropout=0.0,
        ),
        max_iter=250,
        max_iter_segmentation=150,
        lr=(1e-3, 5e-4),
        lr_factors=((0.5, 0.1), (0.2, 0.02)),
        clinical=["age", "hpv"],
        radiomics=False,
        head_l2=0.0,
        monitor=None,
        random_state=0,
        device="cpu",
    ).fit(X[train], y[train])
    dice = dice_score(X["mask"][test], est.predict_mask(X[test])).mean()
    assert dice > 0.7  # an empty or random mask scores about 0 here

    s, f = (
        torch.from_numpy(a)
        for a in encode_survival(y["time"][train], y["event"][train], est.time_bins_)
    )
    p = torch.from_numpy(est.predict_interval_probabilities(X[train])).clamp(1e-6, 1 - 1e-6)
    p_km = (1 - f.sum(0) / (s + f).sum(0).clamp(min=1)).clamp(0.01, 0.99).expand_as(p)
    nll_model = discrete_time_nll(torch.logit(p.double()), s, f)
    nll_km = discrete_time_nll(torch.logit(p_km.double()), s, f)
    assert nll_model < nll_km  # the images and covariates explain more than the population curve
    assert concordance_index(y[train], est.predict(X[train])) > 0.6
