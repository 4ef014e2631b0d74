import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from survseg.data.cohort import volumes
from survseg.estimators.deepmts import DeepMTSRegressor
from tests.tiny_models import (
    DEEPMTS_ABLATIONS,
    DEEPMTS_FAST,
    DEEPMTS_SHAPE,
    PAPER_HEAD,
    deepmts_cohort,
)


def _with_params(est, **params):
    """A fitted estimator with other prediction parameters (a shallow copy)."""
    import copy

    other = copy.copy(est)
    other.set_params(**params)
    return other


def tiny(**kw):
    # the papers' head; the issue-14 defaults are tested in test_deepmts_nodes.py
    return DeepMTSRegressor(**{**DEEPMTS_FAST, **PAPER_HEAD, **kw})


@pytest.fixture(scope="module")
def cohort():
    return deepmts_cohort()


@pytest.fixture(scope="module")
def fitted(cohort):
    X, y = cohort
    return tiny(clinical=["age"], validation_fraction=0.4, validate_every=2, max_iter=4).fit(X, y)


def test_predict_score_transform(fitted, cohort):
    X, y = cohort
    risk = fitted.predict(X)
    assert risk.shape == (12,) and np.isfinite(risk).all()
    expected = concordance_index_censored(y["event"], y["time"], risk)[0]
    assert fitted.score(X, y) == pytest.approx(expected)
    feats = fitted.transform(X)
    names = fitted.get_feature_names_out()
    assert feats.shape == (12, (2 + 3 + 4) + (3 + 4 + 5)) == (12, fitted.n_features_out_)
    assert len(names) == feats.shape[1] and names[0] == "hs1_0" and names[-1] == "csn3_4"


def test_paper_defaults_give_236_feature_names():
    X, y = deepmts_cohort(n=4, shape=(32, 32, 32))
    est = DeepMTSRegressor(
        max_iter=1,
        batch_size=2,
        random_state=0,
        flip=False,
        survival_inputs="pooled",
        feature_scaling=None,
    ).fit(X, y)
    names = est.get_feature_names_out()
    assert len(names) == 236 == est.transform(X[:1]).shape[1]
    assert sum(n.startswith("hs") for n in names) == 124


def test_masks(fitted, cohort):
    X, _ = cohort
    prob = fitted.predict_proba_mask(X)
    assert prob.shape == (12, *DEEPMTS_SHAPE) and prob.dtype == np.float32
    assert prob.min() >= 0 and prob.max() <= 1
    np.testing.assert_array_equal(fitted.predict_mask(X), (prob > 0.5).astype(np.uint8))
    np.testing.assert_array_equal(
        _with_params(fitted, mask_threshold=0.3).predict_mask(X),
        (prob > 0.3).astype(np.uint8),
    )
    # masks are not needed to predict
    X_no_mask = volumes(pet=X["pet"], ct=X["ct"], age=X["age"])
    np.testing.assert_allclose(fitted.predict_proba_mask(X_no_mask), prob)


def test_survival_functions(fitted, cohort):
    X, _ = cohort
    surv = fitted.predict_survival_function(X, return_array=True)
    assert surv.shape == (12, len(fitted.unique_times_))
    assert (surv >= 0).all() and (surv <= 1).all()
    assert (np.diff(surv, axis=1) <= 1e-12).all()
    # higher risk -> lower survival everywhere
    risk = fitted.predict(X)
    hi, lo = np.argmax(risk), np.argmin(risk)
    assert (surv[hi] <= surv[lo] + 1e-12).all()


def test_history_and_validation(fitted):
    h = fitted.history_
    assert list(h["iteration"]) == [1, 2, 3, 4]
    for col in ("lr", "loss", "cox_loss", "dice_loss"):
        assert h[col].notna().all()
    np.testing.assert_allclose(h["loss"], h["cox_loss"] + h["dice_loss"], rtol=1e-6)
    validated = h.dropna(subset=["val_c_index"])
    assert list(validated["iteration"]) == [2, 4]
    assert {"val_loss", "val_dice", "val_dice_loss"} <= set(h.columns)
    assert set(h["stage"]) == {"multitask"}
    # val_loss is the Cox partial likelihood of the validation patients under the kept network
    # at the last iteration: recompute it from predict on those patients
    best = validated["iteration"].iloc[int(np.argmax(validated["val_c_index"].to_numpy()))]
    assert fitted.best_iteration_ == {"multitask": best}


@pytest.mark.parametrize("monitor, pick", [("loss", np.argmin), ("dice", np.argmax), (None, None)])
def test_monitor_selects_the_checkpoint(monitor, pick, cohort):
    X, y = cohort
    est = tiny(validation_fraction=0.4, validate_every=1, max_iter=3, monitor=monitor).fit(X, y)
    h = est.history_
    col = {"loss": "val_loss", "dice": "val_dice"}.get(monitor)
    expected = 3 if pick is None else int(h["iteration"].iloc[int(pick(h[col].to_numpy()))])
    assert est.best_iteration_ == {"multitask": expected}


def test_lr_schedule_is_the_paper_schedule_scaled():
    # 15k iterations with drops at 2.5k, 5k, 10k scaled to 6: drops after iterations 1, 2 and 4
    X, y = deepmts_cohort(n=8)
    est = tiny(max_iter=6, segmentation=False, cascade=False).fit(X, y)
    np.testing.assert_allclose(est.history_["lr"], [1e-4, 5e-5, 1e-5, 1e-5, 1e-6, 1e-6])


def test_pickle_and_weights_round_trip(fitted, cohort, tmp_path):
    X, _ = cohort
    clone_ = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone_.predict(X), fitted.predict(X))
    path = tmp_path / "w.pt"
    fitted.save_weights(path)
    other = tiny(clinical=["age"], max_iter=1, random_state=5).fit(*cohort)
    assert not np.allclose(other.predict(X), fitted.predict(X))
    other.load_weights(path)
    other.tabular_mean_, other.tabular_scale_ = fitted.tabular_mean_, fitted.tabular_scale_
    np.testing.assert_allclose(other.predict(X), fitted.predict(X), rtol=1e-6)


def test_same_seed_same_model_and_clone(cohort):
    X, y = cohort
    a = tiny(max_iter=2).fit(X, y)
    b = clone(a).fit(X, y)
    c = tiny(max_iter=2, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.predict(X), c.predict(X))
    assert clone(a).get_params() == a.get_params()


@pytest.mark.parametrize("name", list(DEEPMTS_ABLATIONS))
def test_each_ablation_trains(name, cohort):
    X, y = cohort
    kw = DEEPMTS_ABLATIONS[name]
    est = tiny(max_iter=2, **kw).fit(X, y)
    survival = kw.get("hard_sharing", True) or kw.get("cascade", True)
    segments = kw.get("segmentation", True)
    assert hasattr(est, "predict") == survival
    assert hasattr(est, "predict_mask") == segments
    if survival:
        assert np.isfinite(est.predict(X)).all()
        assert "cox_loss" in est.history_
    if segments:
        assert est.predict_mask(X).shape == (12, *DEEPMTS_SHAPE)
        assert "dice_loss" in est.history_
    else:
        assert "dice_loss" not in est.history_


def test_mask_input_multiplies_images_by_the_mask(cohort):
    X, y = cohort
    est = tiny(
        segmentation=False,
        cascade=False,
        mask_input=True,
        max_translation=0,
        max_rotation=0,
        flip=False,
    )
    X_no_mask = volumes(pet=X["pet"], ct=X["ct"])
    fitted = est.fit(X, y)
    with pytest.raises(ValueError, match="mask"):
        fitted.predict(X_no_mask)
    # identical images outside the tumour do not change a mask-input model's risk
    X2 = X.copy()
    X2["pet"] = np.where(X["mask"] == 1, X["pet"], X["pet"] + 5.0)
    np.testing.assert_allclose(fitted.predict(X2), fitted.predict(X), rtol=1e-5)


def test_head_l2_acts_on_fc_kernels_only(cohort):
    X, y = cohort
    a = tiny(max_iter=1, head_l2=0.0).fit(X, y).network_
    b = tiny(max_iter=1, head_l2=5e2).fit(X, y).network_
    kernels = {id(p) for p in b.head_weights()}
    changed = [
        n
        for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True)
        if not torch.equal(pa, pb)
    ]
    assert len(changed) == 3
    assert all(id(p) in kernels for n, p in b.named_parameters() if n in changed)


def test_batches_without_events_give_zero_cox_loss():
    events = np.zeros(8, dtype=bool)
    events[0] = True
    X, y = deepmts_cohort(n=8, events=events)
    est = tiny(balanced=False, batch_size=2, max_iter=6, segmentation=False, cascade=False).fit(
        X, y
    )
    cox = est.history_["cox_loss"]
    assert np.isfinite(est.history_["loss"]).all()
    assert (cox == 0).sum() >= 3  # at most 2 of the 6 batches can hold patient 0


def test_clinical_covariates_reach_the_risk(cohort):
    X, y = cohort
    est = tiny(clinical=["age", "stage"], max_iter=2).fit(X, y)
    assert est.network_.n_clinical == 2
    np.testing.assert_allclose(est.tabular_mean_, [X["age"].mean(), X["stage"].mean()])
    X2 = X.copy()
    X2["stage"] = X2["stage"] + 1
    assert not np.allclose(est.predict(X2), est.predict(X))


def test_deep_features_in_a_pipeline(cohort):
    X, y = cohort
    pipe = Pipeline([("deep", tiny(max_iter=2)), ("cox", CoxPHSurvivalAnalysis(alpha=10.0))])
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (12,)
    assert pipe.named_steps["cox"].coef_.shape == (21,)


def test_fit_needs_masks_unless_segmentation_is_off(cohort):
    X, y = cohort
    X_no_mask = volumes(pet=X["pet"], ct=X["ct"])
    with pytest.raises(ValueError, match="'mask'"):
        tiny().fit(X_no_mask, y)
    est = tiny(segmentation=False, max_iter=1).fit(X_no_mask, y)
    assert np.isfinite(est.predict(X_no_mask)).all()


def test_bad_input_is_named(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match="'t1'"):
        tiny(modalities=("pet", "t1")).fit(X, y)
    with pytest.raises(ValueError, match="'bmi'"):
        tiny(clinical=["bmi"]).fit(X, y)
    with pytest.raises(ValueError, match="divisible by 16"):
        tiny(network_params=None).fit(X, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_iter=0), "max_iter"),
        (dict(batch_size=1), "batch_size"),
        (dict(backbone="unet"), "backbone"),
        (dict(ties="exact"), "ties"),
        (dict(mask_input=True), "segmentation=False"),
        (dict(segmentation=False, hard_sharing=False, cascade=False), "nothing to train"),
        (dict(network_params={"chanels": (4, 8)}), "unknown network_params"),
        (dict(lr_milestones=(0.5,)), "same length"),
        (dict(lr_milestones=(2500, 5000, 10000)), "fractions"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(lr=0.0), "'lr'"),
        (dict(validation_fraction=None), "validation_fraction"),
        (dict(amp="yes"), "amp"),
        (dict(monitor="auc"), "monitor"),
        (dict(monitor="dice", segmentation=False), "monitor='dice'"),
        (dict(device="tpu"), "device"),
    ],
)
def test_bad_parameters_raise_at_fit(kwargs, match, cohort):
    est = tiny(**kwargs)  # __init__ stores only
    with pytest.raises(ValueError, match=match):
        est.fit(*cohort)


@pytest.mark.slow
def test_learns_segmentation_and_survival_on_a_synthetic_cohort():
    """About five minutes on one CPU core: held-out Dice and C-index clearly above chance."""
    from survseg.datasets import make_petct_cohort
    from survseg.evaluation.metrics import concordance_index, dice_score

    X, y = make_petct_cohort(120, (24, 24, 24), random_state=0, event_rate=0.5, voxel_size_mm=4.0)
    for f in ("pet", "ct"):  # per-patient z-score, the paper's last preprocessing step
        v = X[f].astype(np.float64)
        X[f] = (v - v.mean(axis=(1, 2, 3), keepdims=True)) / v.std(axis=(1, 2, 3), keepdims=True)
    train, test = np.arange(60), np.arange(60, 120)
    net = dict(
        channels=(8, 16, 32, 64),
        encoder_convs=(2, 2, 3, 3),
        decoder_convs=(3, 2, 2),
        feature_channels=(4, 8, 16, 32),
        dense_block_layers=(2, 4, 8),
        dense_transition_channels=(8, 16, 32),
    )
    est = DeepMTSRegressor(
        network_params=net,
        max_iter=400,
        lr=1e-3,
        lr_factors=(1.0, 1.0, 0.1),
        random_state=0,
        device="cpu",
        survival_inputs="pooled",  # the paper's head, as when 0.89 / 0.64 were measured
        feature_scaling=None,
    )
    est.fit(X[train], y[train])
    h = est.history_
    assert h["cox_loss"].iloc[-100:].mean() < h["cox_loss"].iloc[:100].mean() - 0.1
    dice = dice_score(X["mask"][test], est.predict_mask(X[test])).mean()
    cindex = concordance_index(y[test], est.predict(X[test]))
    assert dice > 0.7  # measured 0.89
    assert cindex > 0.6  # measured 0.64 (60 test patients, 30 events)


def test_deep_features_pipeline_of_table_two(cohort):
    """'DeepMTS features + Lasso-Cox' as make_survival_pipeline: named pandas features flow."""
    from survseg.estimators.pipelines import make_survival_pipeline

    X, y = cohort
    pipe = make_survival_pipeline(tiny(max_iter=2), "lasso_cox", random_state=0)
    # the features of a 2-iteration fit are near-collinear: a short path keeps Coxnet finite
    pipe.set_params(model__cv=2, model__n_alphas=5, model__alpha_min_ratio=0.1).fit(X, y)
    deep = pipe.named_steps["features"]
    table = deep.transform(X)
    assert list(table.columns) == list(deep.get_feature_names_out())
    np.testing.assert_allclose(table.to_numpy(), deep.set_output(transform="default").transform(X))
    selected = pipe[:-1].get_feature_names_out()
    assert set(selected) <= set(table.columns)
    assert pipe.predict(X).shape == (12,)
    seg_only = tiny(hard_sharing=False, cascade=False, max_iter=1).fit(X, y)
    with pytest.raises(AttributeError, match="transform"):  # the Seg-Backbone has no features
        seg_only.transform(X)
