"""AdaMSS with lymph nodes as a second segmented region (issue 14, items 2-3)."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.radiomics import RadiomicsExtractor

SHAPE = (16, 16, 16)
NET = dict(single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1), hidden_features=8)
FAST_RADIOMICS = RadiomicsExtractor(
    feature_classes=["firstorder", "shape"], image_types=["original"], settings={"binCount": 16}
)


def nodes_cohort(n=12, seed=0):
    """A tumour sphere in the centre and, in every other patient, a node cube in a corner."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE)
    radius = rng.uniform(2.5, 4.0, n)
    dist = np.sqrt((zz - 8.0) ** 2 + (yy - 8.0) ** 2 + (xx - 8.0) ** 2)
    mask = (dist[None] <= radius[:, None, None, None]).astype(np.uint8)
    nodes = np.zeros((n, *SHAPE), dtype=np.uint8)
    nodes[::2, 1:4, 1:4, 11:14] = 1
    pet = rng.normal(0, 0.5, (n, *SHAPE)) + 3.0 * mask + 3.0 * nodes
    ct = rng.normal(0, 0.5, (n, *SHAPE)) + 1.0 * mask - 1.5 * nodes  # nodes: CT-dark
    time = 100 * np.exp(-(radius - 3.0)) * rng.uniform(0.8, 1.2, n)
    event = np.ones(n, dtype=bool)
    event[::3] = False
    X = volumes(pet=pet, ct=ct, mask=mask, nodes=nodes, spacing=np.full((n, 3), 2.0))
    return X, Surv.from_arrays(event, time)


def tiny(**kw):
    params = dict(
        network_params=NET,
        max_iter=4,
        random_state=0,
        radiomics=False,
        device="cpu",
        augmentation=False,
        crop_size=None,
    )
    params.update(kw)
    return AdaMSSRegressor(**params)


def trained(**kw):
    """``tiny`` with a stage I that learns (lr 1e-2, batches of 4, 40 % held out)."""
    base = dict(max_iter_survival=2, lr=1e-2, lr_factors=(1.0, 1.0), batch_size=4)
    return tiny(**{**base, "validation_fraction": 0.4, **kw})


def _dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def cohort():
    return nodes_cohort()


@pytest.fixture(scope="module")
def fitted(cohort):
    """Trained long enough (stage I: 40 iterations at lr 1e-2) for non-trivial Dice values."""
    X, y = cohort
    return trained(max_iter_segmentation=40, validate_every=40).fit(X, y)


def test_segmentation_loss_summed_over_regions_against_hand_computation():
    torch.manual_seed(1)
    logits = torch.randn(3, 2, 4, 5, 6)
    masks = (torch.rand(3, 2, 4, 5, 6) > 0.6).float()
    masks[1, 1] = 0  # a patient without nodes
    est = AdaMSSRegressor(focal_alpha=0.25, focal_gamma=2.0)
    dice, focal = est._segmentation_loss(logits, masks)
    p, g = torch.sigmoid(logits).double(), masks.double()
    s = (1, 2, 3)
    tumour = 1 - 2 * (p[:, 0] * g[:, 0]).sum(s) / (p[:, 0].sum(s) + g[:, 0].sum(s) + 1e-5)
    # the authors' MONAI DiceLoss on the node channel too (no extra smoothing)
    nodes = 1 - 2 * (p[:, 1] * g[:, 1]).sum(s) / (p[:, 1].sum(s) + g[:, 1].sum(s) + 1e-5)
    np.testing.assert_allclose(float(dice), float((tumour + nodes).mean()), rtol=1e-5)
    # focal loss (Lin et al.): -alpha_t (1 - p_t)^gamma log p_t, voxel mean per region, summed
    pt = torch.where(g > 0, p, 1 - p)
    at = torch.where(g > 0, 0.25, 0.75)
    fl = -(at * (1 - pt) ** 2 * torch.log(pt))
    want = fl[:, 0].mean() + fl[:, 1].mean()
    np.testing.assert_allclose(float(focal), float(want), rtol=1e-5)


def test_one_region_loss_is_the_authors_monai_losses():
    """Tumour only: MONAI's DiceLoss(sigmoid) + FocalLoss(0.25, 2), the authors' losses."""
    from monai.losses import DiceLoss, FocalLoss

    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, 6)
    masks = (torch.rand(2, 1, 6, 6, 6) > 0.5).float()
    dice, focal = AdaMSSRegressor()._segmentation_loss(logits, masks)
    ref_dice = DiceLoss(sigmoid=True, smooth_nr=0, smooth_dr=1e-5)(logits, masks)
    ref_focal = FocalLoss(alpha=0.25, gamma=2)(logits, masks)
    np.testing.assert_allclose(float(dice), float(ref_dice), rtol=1e-6)
    np.testing.assert_allclose(float(focal), float(ref_focal), rtol=1e-6)


def test_node_free_patient_penalises_false_positive_nodes():
    logits = torch.zeros(1, 2, 4, 4, 4, requires_grad=True)
    masks = torch.zeros(1, 2, 4, 4, 4)
    masks[0, 0, 1:3, 1:3, 1:3] = 1  # a tumour, no nodes
    dice, focal = AdaMSSRegressor()._segmentation_loss(logits, masks)
    (dice + focal).backward()
    assert (logits.grad[0, 1] > 0).all()  # every node logit is pushed down


def test_fit_with_nodes_segments_both_regions(fitted, cohort):
    X, _ = cohort
    assert fitted.regions_ == ("tumour", "nodes")
    assert fitted.segmentation_network_.seg_head.out_channels == 2
    tumour = fitted.predict_proba_mask(X)
    nodes = fitted.predict_proba_mask(X, region="nodes")
    assert tumour.shape == nodes.shape == (12, *SHAPE) and tumour.dtype == np.float32
    np.testing.assert_array_equal(
        fitted.predict_mask(X, region="nodes"), (nodes > 0.5).astype(np.uint8)
    )
    dice_tumour = np.mean([_dice(X["mask"][i], fitted.predict_mask(X)[i]) for i in range(12)])
    assert dice_tumour > 0.8
    # the node channel learned where the nodes are: higher probability inside them
    inside = X["nodes"][::2] > 0
    assert nodes[::2][inside].mean() > 5 * nodes[::2][~inside].mean()
    # no mask is needed to predict
    bare = volumes(pet=X["pet"], ct=X["ct"], spacing=X["spacing"])
    np.testing.assert_allclose(fitted.predict_proba_mask(bare, region="nodes"), nodes)
    assert np.isfinite(fitted.predict(bare)).all()
    with pytest.raises(ValueError, match="region must be one of"):
        fitted.predict_mask(X, region="liver")


def test_label_map_is_hecktor_labels_of_the_two_regions(fitted, cohort):
    """1 = tumour, 2 = nodes (HECKTOR's GTVp / GTVn): the more probable region above the
    threshold, computed here voxel by voxel from the two probability maps."""
    X, _ = cohort
    tumour = fitted.predict_proba_mask(X)
    nodes = fitted.predict_proba_mask(X, region="nodes")
    expected = np.zeros(tumour.shape, dtype=np.uint8)
    expected[(tumour > 0.5) & (tumour >= nodes)] = 1
    expected[(nodes > 0.5) & (nodes > tumour)] = 2
    labels = fitted.predict_label_map(X)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
    assert (labels == 2).any() and (labels == 1).any()


def test_history_node_dice_over_validation_patients_with_nodes(fitted, cohort):
    X, y = cohort
    from survseg.training import seed_from, validation_split

    _, val = validation_split(np.asarray(y["event"]), 0.4, seed_from(0), need_events=False)
    h = fitted.history_
    row = h[(h.stage == "segmentation") & (h.iteration == fitted.best_iteration_["segmentation"])]
    Xv = X[val]
    pred_t, pred_n = fitted.predict_mask(Xv), fitted.predict_mask(Xv, region="nodes")
    with_nodes = [i for i in range(len(val)) if Xv["nodes"][i].any()]
    assert with_nodes and len(with_nodes) < len(val)  # patients with and without nodes
    want_t = np.mean([_dice(Xv["mask"][i], pred_t[i]) for i in range(len(val))])
    want_n = np.mean([_dice(Xv["nodes"][i], pred_n[i]) for i in with_nodes])
    np.testing.assert_allclose(row["val_dice"].iloc[0], want_t, rtol=1e-6)
    np.testing.assert_allclose(row["val_dice_nodes"].iloc[0], want_n, rtol=1e-6)
    assert want_n > 0  # not a trivial 0 == 0


def test_without_nodes_the_tumour_only(cohort):
    X, y = cohort
    est = tiny(nodes_field=None).fit(X, y)
    assert est.regions_ == ("tumour",)
    assert est.segmentation_network_.seg_head.out_channels == 1
    assert "val_dice_nodes" not in est.history_
    with pytest.raises(ValueError, match="fit with their labels"):
        est.predict_mask(X, region="nodes")
    # the same model as on a cohort without the nodes field
    bare = volumes(pet=X["pet"], ct=X["ct"], mask=X["mask"], spacing=X["spacing"])
    other = tiny().fit(bare, y)
    assert other.regions_ == ("tumour",)
    np.testing.assert_allclose(other.predict(bare), est.predict(bare), rtol=1e-6)
    np.testing.assert_allclose(other.predict_proba_mask(bare), est.predict_proba_mask(bare))


def test_bad_node_masks_are_named(cohort):
    X, y = cohort
    bad = X.copy()
    bad["nodes"][3] = 2
    with pytest.raises(ValueError, match="patient 3"):
        tiny().fit(bad, y)
    with pytest.raises(ValueError, match="two fields"):
        tiny(nodes_field="mask").fit(X, y)
    other = volumes(pet=X["pet"], ct=X["ct"], mask=X["mask"], gtvn_mask=X["nodes"])
    other["gtvn_mask"][0] *= 2  # a label map (GTVn = 2), not a binary mask
    with pytest.raises(ValueError, match="gtvn_mask.*patient 0"):
        tiny(nodes_field="gtvn_mask").fit(other, y)
    with pytest.raises(ValueError, match="seg_channels"):
        tiny(network_params={**NET, "seg_channels": 2}).fit(X, y)


def test_custom_nodes_field(cohort):
    X, y = cohort
    other = volumes(
        pet=X["pet"], ct=X["ct"], mask=X["mask"], gtvn_mask=X["nodes"], spacing=X["spacing"]
    )
    est = tiny(nodes_field="gtvn_mask", max_iter=2).fit(other, y)
    assert est.regions_ == ("tumour", "nodes")


def test_stage_two_radiomics_describe_both_predicted_regions(cohort):
    X, y = cohort
    est = tiny(radiomics=True, extractor=FAST_RADIOMICS, max_iter=6, lr=1e-2, batch_size=4)
    est.fit(X, y)
    masks = est._region_masks(
        est.segmentation_network_, X, est.modalities_, est.intensity_, est.regions_
    )
    np.testing.assert_array_equal(masks["nodes"], est.predict_mask(X, region="nodes"))
    table = est._radiomics_table(X, masks, est.modalities_)
    assert any(c.startswith("nodes_pet_original_firstorder_") for c in table.columns)
    # node burden against scipy's connected components and a voxel count (2 mm voxels)
    for i in range(len(X)):
        n_components = ndimage.label(masks["nodes"][i], structure=np.ones((3, 3, 3)))[1]
        assert table["nodes_burden_Count"].iloc[i] == n_components
        assert table["nodes_burden_Volume"].iloc[i] == pytest.approx(8.0 * masks["nodes"][i].sum())
        if not masks["nodes"][i].any():  # no predicted nodes: defined, 0
            assert table.filter(like="nodes_").iloc[i].eq(0).all()
    assert set(est.radiomics_features_) <= set(table.columns)


def test_benchmark_reports_node_dice(cohort):
    from sklearn.model_selection import StratifiedKFold

    from survseg.evaluation.benchmark import benchmark

    X, y = cohort
    res = benchmark(
        {
            "adamss": tiny(max_iter=3, validation_fraction=0),
            "tumour only": tiny(max_iter=3, validation_fraction=0, nodes_field=None),
        },
        X,
        y,
        cv=2,
        n_bootstrap=20,
        keep_models=True,
        random_state=0,
    )
    table = res.table.set_index("model")
    assert np.isnan(table.loc["tumour only", "dice_nodes"])
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    per_patient = []
    for model, (_, test) in zip(res.models["adamss"], cv.split(X, y["event"]), strict=True):
        pred = model.predict_mask(X[test], region="nodes")
        per_patient += [_dice(X["nodes"][i], pred[j]) for j, i in enumerate(test) if i % 2 == 0]
    np.testing.assert_allclose(table.loc["adamss", "dice_nodes"], np.mean(per_patient), rtol=1e-6)


def test_cross_fitted_radiomics_masks_come_from_networks_that_did_not_see_the_patient(cohort):
    """radiomics_cv=2: the radiomics masks of the training patients are not the full stage-I
    network's (which saw them); without it they are (the paper's in-sample masks)."""
    X, y = cohort
    params = dict(radiomics=True, extractor=FAST_RADIOMICS, max_iter=3, validation_fraction=0)
    seen = {}
    est = tiny(**params, radiomics_cv=2)
    original = est._radiomics_table

    def spy(X_, masks=None, modalities=None):
        if masks is not None:
            seen["masks"] = {k: v.copy() for k, v in masks.items()}
        return original(X_, masks, modalities)

    est._radiomics_table = spy
    est.fit(X, y)
    full = est.predict_mask(X)  # the full stage-I network (trained on every patient)
    cross = seen["masks"]["tumour"]
    assert cross.shape == full.shape and not np.array_equal(cross, full)
    assert est.regions_ == ("tumour", "nodes") and "nodes" in seen["masks"]
    # the paper's behaviour (in-sample masks) stays the default
    paper = tiny(**params)
    seen.clear()
    paper._radiomics_table = lambda X_, masks=None, modalities=None: (
        seen.setdefault("masks", masks),
        original.__func__(paper, X_, masks, modalities),
    )[1]
    paper.fit(X, y)
    np.testing.assert_array_equal(
        seen["masks"]["tumour"][paper.predict_mask(X).reshape(12, -1).any(axis=1)],
        paper.predict_mask(X)[paper.predict_mask(X).reshape(12, -1).any(axis=1)],
    )
    with pytest.raises(ValueError, match="radiomics=True"):
        tiny(radiomics_cv=2).fit(X, y)


@pytest.mark.parametrize("monitor", ["tumour", "mean"])
def test_stage_one_keeps_the_iteration_of_its_segmentation_monitor(cohort, monitor):
    X, y = cohort
    est = trained(max_iter_segmentation=16, validate_every=2, segmentation_monitor=monitor)
    est.fit(X, y)
    h = est.history_
    val = h[(h["stage"] == "segmentation") & h["val_dice"].notna()]
    mean = (val["val_dice"] + val["val_dice_nodes"]) / 2  # every validation split has nodes
    np.testing.assert_allclose(val["val_dice_mean"], mean, rtol=1e-12)
    score = mean if monitor == "mean" else val["val_dice"]
    best = val["iteration"][score == score.max()]
    assert est.best_iteration_["segmentation"] == best.iloc[0]


def test_mean_segmentation_monitor_is_the_tumour_dice_without_nodes(cohort):
    X, y = cohort
    bare = volumes(pet=X["pet"], ct=X["ct"], mask=X["mask"], spacing=X["spacing"])
    est = tiny(validation_fraction=0.4, validate_every=2, segmentation_monitor="mean")
    h = est.fit(bare, y).history_
    val = h[(h["stage"] == "segmentation") & h["val_dice"].notna()]
    assert len(val) and (val["val_dice_mean"] == val["val_dice"]).all()


def test_unknown_segmentation_monitor_is_refused(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match="segmentation_monitor"):
        tiny(segmentation_monitor="nodes").fit(X, y)
