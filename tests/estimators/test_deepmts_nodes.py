"""DeepMTS with lymph nodes as a second segmented region (issue 14, item 2)."""

import numpy as np
import pytest
import torch
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.networks.deepmts import DeepMTS
from tests.tiny_models import DEEPMTS_FAST
from tests.tiny_models import DEEPMTS_NETWORK as TINY
from tests.tiny_models import DEEPMTS_SHAPE as SHAPE


def nodes_cohort(n=12, seed=0):
    """A tumour sphere in the centre and, in every other patient, a node cube near a corner."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE)
    radius = rng.uniform(2.5, 4.5, n)
    dist = np.sqrt((zz - 10.0) ** 2 + (yy - 10.0) ** 2 + (xx - 10.0) ** 2)
    mask = (dist[None] <= radius[:, None, None, None]).astype(np.uint8)
    nodes = np.zeros((n, *SHAPE), dtype=np.uint8)
    nodes[::2, 2:6, 2:6, 13:17] = 1
    pet = rng.normal(0, 1, (n, *SHAPE)) + 3.0 * mask + 2.0 * nodes
    ct = rng.normal(0, 1, (n, *SHAPE)) + 1.0 * mask
    time = 100 * np.exp(-(radius - 3.5)) * rng.uniform(0.8, 1.2, n)
    event = np.ones(n, dtype=bool)
    event[::3] = False
    return volumes(pet=pet, ct=ct, mask=mask, nodes=nodes), Surv.from_arrays(event, time)


def tiny(**kw):
    return DeepMTSRegressor(**{**DEEPMTS_FAST, **kw})


def _dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def cohort():
    return nodes_cohort()


@pytest.fixture(scope="module")
def fitted(cohort):
    X, y = cohort
    return tiny(validation_fraction=0.4, validate_every=4, max_iter=4, monitor=None).fit(X, y)


def test_network_two_regions_shapes_and_gradients():
    torch.manual_seed(0)
    net = DeepMTS(2, 0, n_regions=2, **TINY)
    x = torch.randn(2, 2, 20, 24, 28)
    out = net(x)
    assert out.seg_logits.shape == (2, 2, 20, 24, 28)
    assert net.cascade.stem[0].in_channels == 4  # PET, CT and the two probability maps
    (out.log_risk.sum() + out.seg_logits.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
    assert net.backbone.seg_head.weight.grad[1].abs().sum() > 0  # the nodes channel learns
    with pytest.raises(ValueError, match="n_regions"):
        DeepMTS(2, 0, n_regions=0, **TINY)


def test_node_map_reaches_the_risk():
    """The cascade sees the nodes' probability map: moving the node logits moves the risk."""
    torch.manual_seed(0)
    net = DeepMTS(2, 0, n_regions=2, **TINY).eval()
    x = torch.randn(2, 2, 20, 20, 20)
    with torch.no_grad():
        before = net(x).log_risk.clone()
        net.backbone.seg_head.bias[1] += 3.0
        after = net(x).log_risk
    assert not torch.allclose(before, after)


def test_dice_loss_per_region_against_hand_computation():
    torch.manual_seed(1)
    logits = torch.randn(3, 2, 4, 5, 6, requires_grad=True)
    masks = (torch.rand(3, 2, 4, 5, 6) > 0.6).float()
    masks[1, 1] = 0  # a patient without nodes
    loss = DeepMTSRegressor._dice_loss(logits, masks)
    p = torch.sigmoid(logits.detach()).double()
    g = masks.double()
    tumour = 1 - 2 * (p[:, 0] * g[:, 0]).sum((1, 2, 3)) / (
        (p[:, 0] ** 2).sum((1, 2, 3)) + g[:, 0].sum((1, 2, 3)) + 1e-5
    )
    nodes = 1 - (2 * (p[:, 1] * g[:, 1]).sum((1, 2, 3)) + 1) / (
        (p[:, 1] ** 2).sum((1, 2, 3)) + g[:, 1].sum((1, 2, 3)) + 1
    )
    np.testing.assert_allclose(float(loss.detach()), float((tumour + nodes).mean()), rtol=1e-5)
    loss.backward()
    # the node-free patient's node channel is pushed towards 0 (positive gradient everywhere)
    assert (logits.grad[1, 1] > 0).all()


def test_one_region_loss_is_the_papers_eq_2():
    logits = torch.randn(2, 1, 4, 4, 4)
    masks = (torch.rand(2, 1, 4, 4, 4) > 0.5).float()
    p, g = torch.sigmoid(logits), masks
    eq2 = 1 - 2 * (p * g).sum((1, 2, 3, 4)) / ((p**2).sum((1, 2, 3, 4)) + g.sum((1, 2, 3, 4)))
    np.testing.assert_allclose(
        float(DeepMTSRegressor._dice_loss(logits, masks)), float(eq2.mean()), rtol=1e-4
    )


def test_fit_with_nodes_predicts_both_masks(fitted, cohort):
    X, _ = cohort
    assert fitted.regions_ == ("tumour", "nodes")
    assert fitted.network_.backbone.seg_head.out_channels == 2
    tumour = fitted.predict_proba_mask(X)
    nodes = fitted.predict_proba_mask(X, region="nodes")
    assert tumour.shape == nodes.shape == (12, *SHAPE)
    assert not np.allclose(tumour, nodes)
    np.testing.assert_array_equal(
        fitted.predict_mask(X, region="nodes"), (nodes > 0.5).astype(np.uint8)
    )
    # neither mask is needed to predict
    bare = volumes(pet=X["pet"], ct=X["ct"])
    np.testing.assert_allclose(fitted.predict_proba_mask(bare, region="nodes"), nodes)
    with pytest.raises(ValueError, match="region must be one of"):
        fitted.predict_mask(X, region="liver")


def test_history_has_node_dice_over_patients_with_nodes(fitted, cohort):
    X, _ = cohort
    h = fitted.history_.dropna(subset=["val_dice"])
    assert {"val_dice", "val_dice_nodes", "val_dice_loss"} <= set(h.columns)
    # the last validation is of the kept (last) network: recompute both Dice by hand
    from survseg.training import validation_split

    _, val = validation_split(np.asarray(cohort[1]["event"]), 0.4, 0, need_events=True)
    Xv = X[val]
    pred_t = fitted.predict_mask(Xv)
    pred_n = fitted.predict_mask(Xv, region="nodes")
    want_t = np.mean([_dice(Xv["mask"][i], pred_t[i]) for i in range(len(val))])
    with_nodes = [i for i in range(len(val)) if Xv["nodes"][i].any()]
    assert with_nodes
    want_n = np.mean([_dice(Xv["nodes"][i], pred_n[i]) for i in with_nodes])
    np.testing.assert_allclose(h["val_dice"].iloc[-1], want_t, rtol=1e-6)
    np.testing.assert_allclose(h["val_dice_nodes"].iloc[-1], want_n, rtol=1e-6)


def test_without_nodes_the_tumour_only(cohort):
    X, y = cohort
    est = tiny(nodes_field=None).fit(X, y)
    assert est.regions_ == ("tumour",)
    assert est.network_.backbone.seg_head.out_channels == 1
    with pytest.raises(ValueError, match="fit with their labels"):
        est.predict_mask(X, region="nodes")
    # the same as a cohort without the nodes field
    no_nodes = volumes(pet=X["pet"], ct=X["ct"], mask=X["mask"])
    other = tiny().fit(no_nodes, y)
    np.testing.assert_allclose(other.predict(no_nodes), est.predict(no_nodes), rtol=1e-5)


def test_bad_node_masks_are_named(cohort):
    X, y = cohort
    bad = X.copy()
    bad["nodes"][3] = 2
    with pytest.raises(ValueError, match="nodes"):
        tiny().fit(bad, y)
    with pytest.raises(ValueError, match="two fields"):
        tiny(nodes_field="mask").fit(X, y)


def test_benchmark_reports_node_dice_over_patients_with_nodes(cohort):
    from sklearn.model_selection import StratifiedKFold

    from survseg.evaluation.benchmark import benchmark

    X, y = cohort
    res = benchmark(
        {"deepmts": tiny(), "tumour only": tiny(nodes_field=None)},
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
    per_patient_t, per_patient_n = [], []
    for model, (_, test) in zip(res.models["deepmts"], cv.split(X, y["event"]), strict=True):
        pred_t = model.predict_mask(X[test])
        pred_n = model.predict_mask(X[test], region="nodes")
        for j, i in enumerate(test):
            if X["mask"][i].any():
                per_patient_t.append(_dice(X["mask"][i], pred_t[j]))
            if X["nodes"][i].any():  # nodes Dice only where the patient has nodes
                per_patient_n.append(_dice(X["nodes"][i], pred_n[j]))
    np.testing.assert_allclose(table.loc["deepmts", "dice"], np.mean(per_patient_t), rtol=1e-6)
    np.testing.assert_allclose(
        table.loc["deepmts", "dice_nodes"], np.mean(per_patient_n), rtol=1e-6
    )


def test_label_map_follows_hecktor_labels_by_hand():
    """predict_label_map: 0 below the threshold, else 1 + the most probable region (ties go
    to the tumour), checked on logits chosen by hand."""
    from scipy.special import logit

    est = DeepMTSRegressor(mask_threshold=0.5)
    est.network_, est.regions_ = torch.nn.Linear(1, 1), ("tumour", "nodes")
    prob = np.array([[0.9, 0.2, 0.6, 0.3, 0.7], [0.1, 0.8, 0.7, 0.4, 0.7]])  # 5 voxels
    logits = logit(prob).reshape(1, 2, 1, 1, 5).astype(np.float32)
    est._forward = lambda X, want_seg=False: (None, None, logits)
    expected = np.array([1, 2, 2, 0, 1], np.uint8).reshape(1, 1, 1, 5)
    got = est.predict_label_map(None)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
