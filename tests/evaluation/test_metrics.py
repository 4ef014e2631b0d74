import numpy as np
import pytest
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.metrics import integrated_brier_score as sk_ibs
from sksurv.util import Surv

from survseg.evaluation import (
    concordance_index,
    dice_score,
    evaluation_times,
    integrated_brier_score,
    time_dependent_auc,
)
from survseg.evaluation.compare import compare_concordance, concordance_ci


def test_concordance_hand_computed():
    # comparable pairs (i has event and T_i < T_j): (0,1) (0,2) (0,3) (2,3): 4 pairs
    y = Surv.from_arrays([True, False, True, False], [1.0, 2.0, 3.0, 4.0])
    risk = [4.0, 1.0, 2.0, 2.0]  # pairs: ok, ok, ok, tie -> (3 + 0.5) / 4
    assert concordance_index(y, risk) == pytest.approx(3.5 / 4)
    with pytest.raises(ValueError, match="3 values but y has 4"):
        concordance_index(y, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        concordance_index(y, [1.0, np.nan, 2.0, 3.0])


def _brute_force_cindex(event, time, risk, groups):
    """Harrell's C by its definition, over pairs within groups (independent of sksurv)."""
    concordant = comparable = 0.0
    for i in range(len(time)):
        for j in range(len(time)):
            if groups[i] == groups[j] and event[i] and time[i] < time[j]:
                comparable += 1
                concordant += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return concordant / comparable


def test_within_group_concordance_counts_pairs_within_groups_only():
    rng = np.random.default_rng(0)
    n = 60
    time = rng.exponential(1.0, n)
    event = rng.random(n) < 0.6
    groups = np.repeat([0, 1, 2], n // 3)
    risk = np.round(-np.log(time) + rng.normal(0, 1, n), 1)  # rounding makes ties in risk
    y = Surv.from_arrays(event, time)
    ref = _brute_force_cindex(event, time, risk, groups)
    assert concordance_index(y, risk, groups=groups) == pytest.approx(ref)
    # each group's model may use its own scale: shifting one group's risks changes the pooled
    # C but not the within-group C
    shifted = risk + 10.0 * groups
    assert concordance_index(y, shifted, groups=groups) == pytest.approx(ref)
    assert concordance_index(y, shifted) != pytest.approx(concordance_index(y, risk))
    # a single group is the ordinary C-index
    assert concordance_index(y, risk, groups=np.zeros(n)) == pytest.approx(
        _brute_force_cindex(event, time, risk, np.zeros(n))
    )
    with pytest.raises(ValueError, match="groups has 3 values"):
        concordance_index(y, risk, groups=[0, 1, 2])
    # no group with a comparable pair
    y2 = Surv.from_arrays([True, False], [1.0, 2.0])
    with pytest.raises(ValueError, match="no comparable pair"):
        concordance_index(y2, [1.0, 0.0], groups=[0, 1])


def test_within_group_ci_resamples_within_groups():
    rng = np.random.default_rng(2)
    n = 150
    time = rng.exponential(1.0, n)
    y = Surv.from_arrays(rng.random(n) < 0.7, time)
    groups = np.repeat([0, 1, 2], n // 3)
    risk = -np.log(time) + rng.normal(0, 1, n) + 5.0 * groups  # scales differ between groups
    c, lo, hi = concordance_ci(y, risk, groups=groups, n_bootstrap=200, random_state=0)
    assert c == pytest.approx(concordance_index(y, risk, groups=groups))
    assert lo < c < hi and hi - lo < 0.2
    # unaffected by the between-group offsets, unlike the pooled C-index
    same = concordance_ci(y, risk - 5.0 * groups, groups=groups, n_bootstrap=200, random_state=0)
    np.testing.assert_allclose(same, (c, lo, hi))
    assert concordance_ci(y, risk, n_bootstrap=50, random_state=0)[0] < c - 0.1
    res = compare_concordance(
        y, risk, rng.normal(size=n), groups=groups, n_bootstrap=200, random_state=0
    )
    assert res.cindex_a == pytest.approx(c) and res.p_value < 0.01


def test_whas500_reference_cindex():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].to_numpy(float)
    risk = CoxPHSurvivalAnalysis(ties="efron").fit(X, y).predict(X)
    assert concordance_index(y, risk) == pytest.approx(0.7579741580060946, abs=1e-9)


def test_dice_hand_computed():
    a = np.zeros((2, 4, 4, 4), np.uint8)
    b = np.zeros_like(a)
    a[0, :2] = 1  # 32 voxels
    b[0, 1:3] = 1  # 32 voxels, 16 shared
    np.testing.assert_allclose(dice_score(a, b), [2 * 16 / 64, np.nan])
    np.testing.assert_allclose(dice_score(a, b, ignore_empty=False), [2 * 16 / 64, 1.0])
    assert dice_score(a[0], a[0]) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        dice_score(a, b[:, :2])


@pytest.mark.parametrize("ignore_empty", [True, False])
def test_dice_equals_monai_including_empty_masks(ignore_empty):
    import torch
    from monai.metrics import compute_dice

    rng = np.random.default_rng(0)
    truth = (rng.random((4, 5, 6, 7)) > 0.6).astype(np.uint8)
    pred = (rng.random((4, 5, 6, 7)) > 0.5).astype(np.uint8)
    truth[2:] = 0  # patients 2 and 3 have no tumour; 3's prediction is empty too
    pred[3] = 0
    ref = compute_dice(
        torch.from_numpy(pred[:, None]), torch.from_numpy(truth[:, None]), ignore_empty=ignore_empty
    ).numpy()[:, 0]
    got = dice_score(truth, pred, ignore_empty=ignore_empty)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert np.isnan(got[2]) == ignore_empty and (ignore_empty or got[2] == 0 and got[3] == 1)


def test_auc_and_ibs_equal_sksurv():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].to_numpy(float)
    tr, te = np.arange(0, 500, 2), np.arange(1, 500, 2)
    model = CoxPHSurvivalAnalysis().fit(X[tr], y[tr])
    times = evaluation_times(y[tr], y[te])
    auc, mean_auc, _ = time_dependent_auc(y[tr], y[te], model.predict(X[te]), times)
    ref_auc, ref_mean = cumulative_dynamic_auc(y[tr], y[te], model.predict(X[te]), times)
    np.testing.assert_allclose(auc, ref_auc)
    assert mean_auc == pytest.approx(ref_mean)
    fns = model.predict_survival_function(X[te])
    ref = sk_ibs(y[tr], y[te], np.vstack([f(times) for f in fns]), times)
    assert integrated_brier_score(y[tr], y[te], fns, times) == pytest.approx(ref)


def test_concordance_ci_contains_estimate():
    rng = np.random.default_rng(0)
    t = rng.exponential(1, 150)
    y = Surv.from_arrays(rng.random(150) < 0.7, t)
    risk = -t + rng.normal(0, 1, 150)
    c, lo, hi = concordance_ci(y, risk, n_bootstrap=200, random_state=0)
    assert lo < c < hi and hi - lo < 0.2


def test_compare_concordance_detects_difference_and_not_noise():
    rng = np.random.default_rng(1)
    n = 150
    t = rng.exponential(1, n)
    y = Surv.from_arrays(rng.random(n) < 0.7, t)
    good = -np.log(t) + rng.normal(0, 0.5, n)
    noise_a = rng.normal(size=n)
    res = compare_concordance(y, good, noise_a, n_bootstrap=300, random_state=0)
    assert res.difference > 0.2 and res.p_value < 0.01 and res.ci_low > 0
    same = compare_concordance(y, good, good, n_bootstrap=50, random_state=0)
    assert same.p_value == 1.0 and same.difference == 0.0
    # under the null (two noise scores) p-values should not be systematically small
    ps = [
        compare_concordance(
            y, rng.normal(size=n), rng.normal(size=n), n_bootstrap=150, random_state=k
        ).p_value
        for k in range(12)
    ]
    assert np.mean(np.array(ps) < 0.05) <= 0.25 and np.median(ps) > 0.2
