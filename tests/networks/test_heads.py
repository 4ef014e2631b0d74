"""Tests of the small-cohort survival-head pieces (survseg.networks.heads)."""

import numpy as np
import pytest
import torch

from survseg.networks.heads import (
    PET_STATISTICS,
    FeatureStandardizer,
    RiskHead,
    RiskMemoryBank,
    SegmentationFeatures,
)


def _breslow_nll_numpy(eta, time, event, count):
    """-sum over the events in ``count`` of [eta_i - log sum_{T_j >= T_i} exp(eta_j)], by loops."""
    total = 0.0
    for i in np.flatnonzero(event & count):
        total -= eta[i] - np.log(np.exp(eta[time >= time[i]]).sum())
    return total


class TestSegmentationFeatures:
    def test_analytic_cube(self):
        # 8 voxels of 0.125 ml at SUV 2 in region 0 -> 1 ml, 2 SUV.ml, mean 2; region 1 empty
        prob = torch.zeros(1, 2, 6, 7, 8)
        prob[0, 0, 1:3, 2:4, 3:5] = 1.0
        suv = torch.full((1, 1, 6, 7, 8), 0.5)
        suv[0, 0, 1:3, 2:4, 3:5] = 2.0
        f = SegmentationFeatures(voxel_ml=0.125)(prob, suv)
        np.testing.assert_allclose(
            f.numpy()[0], [np.log(2.0), np.log(3.0), 2.0, 0.0, 0.0, 0.0], rtol=1e-6
        )

    def test_soft_probabilities_weight_uptake(self):
        prob = torch.full((1, 1, 2, 2, 2), 0.25)  # soft volume 2 voxels
        suv = torch.arange(8.0).reshape(1, 1, 2, 2, 2)  # sum 28 -> uptake 7 voxel-SUV
        f = SegmentationFeatures(voxel_ml=1.0)(prob, suv)
        np.testing.assert_allclose(f.numpy()[0], [np.log(3.0), np.log(8.0), 3.5], rtol=1e-6)

    @pytest.mark.parametrize("detach", [True, False])
    def test_gradient_reaches_maps_only_when_not_detached(self, detach):
        prob = torch.rand(2, 2, 4, 4, 4, requires_grad=True)
        suv = torch.rand(2, 1, 4, 4, 4) + 1
        f = SegmentationFeatures(voxel_ml=0.1, detach=detach)(prob, suv)
        assert f.shape == (2, 6)
        if detach:
            assert not f.requires_grad
        else:
            f.sum().backward()
            assert prob.grad.abs().sum() > 0

    def test_pet_statistics_of_a_hard_mask(self):
        # a 2x2x2 region with SUV 1..8: SUVmax 8, CV = population SD / mean
        prob = torch.zeros(1, 2, 4, 4, 4)
        prob[0, 0, :2, :2, :2] = 1.0
        suv = torch.full((1, 1, 4, 4, 4), 20.0)  # hotter outside: must not leak in
        suv[0, 0, :2, :2, :2] = torch.arange(1.0, 9.0).reshape(2, 2, 2)
        f = SegmentationFeatures(voxel_ml=0.5, statistics=PET_STATISTICS)(prob, suv)
        values = np.arange(1.0, 9.0)
        expected = [np.log(5.0), np.log(19.0), 4.5, np.log(9.0), values.std() / values.mean()]
        np.testing.assert_allclose(f.numpy()[0], expected + [0.0] * 5, rtol=1e-5, atol=1e-6)

    def test_pet_statistics_of_soft_maps_are_weighted_moments(self):
        gen = torch.Generator().manual_seed(0)
        prob = torch.rand(3, 2, 5, 5, 5, generator=gen, dtype=torch.float64)
        suv = torch.rand(3, 1, 5, 5, 5, generator=gen, dtype=torch.float64) * 6
        got = SegmentationFeatures(statistics=("log_max_suv", "suv_cv"))(prob, suv).numpy()
        for i in range(3):
            for r in range(2):
                w, s = prob[i, r].numpy().ravel(), suv[i, 0].numpy().ravel()
                mean = np.average(s, weights=w)
                sd = np.sqrt(np.average((s - mean) ** 2, weights=w))
                np.testing.assert_allclose(
                    got[i, 2 * r : 2 * r + 2], [np.log1p((w * s).max()), sd / mean], rtol=1e-6
                )

    def test_spread_fades_to_zero_with_the_region(self):
        suv = torch.rand(1, 1, 3, 3, 3) + 1
        prob = torch.zeros(1, 1, 3, 3, 3)
        prob[0, 0, 0, 0, :2] = 0.25  # half a voxel's worth of probability
        sf = SegmentationFeatures(statistics=("suv_cv",))
        # the same weighted moments at 4x the probability (2 voxels' worth): the full CV
        full = sf(prob * 4, suv).item()
        assert full > 0
        np.testing.assert_allclose(sf(prob, suv).item(), 0.5 * full, rtol=1e-5)
        assert sf(torch.zeros_like(prob), suv).item() == 0.0

    @pytest.mark.parametrize("bad", [(), ("log_volume", "log_volume"), ("suv_peak",)])
    def test_rejects_unknown_or_repeated_statistics(self, bad):
        with pytest.raises(ValueError, match="statistics must be distinct names"):
            SegmentationFeatures(statistics=bad)

    def test_bad_shapes(self):
        sf = SegmentationFeatures(voxel_ml=1.0)
        with pytest.raises(ValueError, match="suv"):
            sf(torch.rand(1, 2, 4, 4, 4), torch.rand(1, 2, 4, 4, 4))
        with pytest.raises(ValueError, match="differ"):
            sf(torch.rand(1, 2, 4, 4, 4), torch.rand(1, 1, 4, 4, 5))
        with pytest.raises(ValueError, match="voxel_ml"):
            SegmentationFeatures(voxel_ml=0.0)


class TestFeatureStandardizer:
    def test_unit_scale_on_training_data(self):
        rng = np.random.default_rng(0)
        x = rng.normal(3.0, 0.18, (50, 4))
        x[:, 3] = 1.5  # constant feature
        std = FeatureStandardizer(4).set_statistics(torch.from_numpy(x))
        z = std(torch.from_numpy(x).float()).numpy()
        np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(z[:, :3].std(0, ddof=1), 1, rtol=1e-5)
        np.testing.assert_allclose(z[:, 3], 0, atol=1e-6)
        assert set(dict(std.named_buffers())) == {"mean", "scale"}
        assert not list(std.parameters())

    def test_errors(self):
        std = FeatureStandardizer(3)
        with pytest.raises(ValueError, match="N >= 2"):
            std.set_statistics(torch.zeros(5, 2))
        with pytest.raises(ValueError, match="NaN"):
            std.set_statistics(torch.tensor([[0.0, 1, 2], [np.nan, 1, 2]]))


class TestRiskHead:
    def test_starts_at_equal_risks_and_checks_clinical(self):
        head = RiskHead(5, n_clinical=2, hidden=8, dropout=0.5).eval()
        out = head(torch.randn(4, 5), torch.randn(4, 2))
        assert out.shape == (4,)
        assert torch.all(out == 0)
        with pytest.raises(ValueError, match="clinical must have shape"):
            head(torch.randn(4, 5))

    def test_every_input_changes_the_output_after_a_step(self):
        torch.manual_seed(0)
        head = RiskHead(3, n_clinical=1)
        x, c = torch.randn(10, 3), torch.randn(10, 1)
        with torch.no_grad():  # leave the zero initialisation
            head.net[-1].weight.normal_()
        base = head(x, c)
        for j in range(3):
            x2 = x.clone()
            x2[:, j] += 1
            assert not torch.allclose(head(x2, c), base)
        assert not torch.allclose(head(x, c + 1), base)


class TestRiskMemoryBank:
    def test_full_batch_is_the_efron_likelihood_of_scikit_survival_whas500(self):
        from sksurv.datasets import load_whas500
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        X, y = load_whas500()
        cols = ["age", "bmi", "hr", "sysbp", "diasbp"]
        x = X[cols].to_numpy(float)
        model = CoxPHSurvivalAnalysis(ties="efron").fit(x, y)
        eta = torch.from_numpy(x @ model.coef_)
        bank = RiskMemoryBank(y["lenfol"], y["fstat"], ties="efron")
        n_events = int(y["fstat"].sum())
        loss = bank.loss(eta, np.arange(len(y)))
        # Efron log-likelihood at the MLE (DEPENDENCIES.md reference value)
        np.testing.assert_allclose(-float(loss) * n_events, -1138.18306, rtol=1e-7)

    def test_batches_against_the_bank_add_up_to_the_full_breslow_likelihood(self):
        rng = np.random.default_rng(1)
        n = 40
        time = rng.permutation(n).astype(float) + 1  # distinct times
        event = rng.random(n) < 0.5
        event[0] = True
        eta = rng.normal(size=n)
        bank = RiskMemoryBank(time, event, ties="breslow")
        bank.update(np.arange(n), torch.from_numpy(eta))
        total = 0.0
        for idx in np.array_split(rng.permutation(n), 5):
            ev_b = int(event[idx].sum())
            if ev_b:
                loss = bank.loss(torch.from_numpy(eta[idx]), idx)
                total += float(loss) * ev_b
                in_batch = np.zeros(n, bool)
                in_batch[idx] = True
                ref = _breslow_nll_numpy(eta, time, event, in_batch)
                np.testing.assert_allclose(float(loss) * ev_b, ref, rtol=1e-10)
        np.testing.assert_allclose(
            total, _breslow_nll_numpy(eta, time, event, np.ones(n, bool)), rtol=1e-10
        )

    def test_gradient_goes_to_the_batch_and_update_stores_it(self):
        time = np.array([5.0, 4, 3, 2, 1, 6])
        event = np.array([1, 0, 1, 1, 0, 1], bool)
        bank = RiskMemoryBank(time, event)
        eta = torch.tensor([0.3, -0.2], requires_grad=True)
        loss = bank.loss(eta, [2, 4])
        loss.backward()
        # the batch's only event is patient 2 (at 3): risk set {0, 1, 5} (bank, log-risk 0)
        # and itself; patient 4 (censored at 1) is in no risk set and gets no gradient
        e = np.exp(0.3)
        np.testing.assert_allclose(loss.item(), -(0.3 - np.log(e + 3)), rtol=1e-6)
        np.testing.assert_allclose(eta.grad.numpy(), [-(1 - e / (e + 3)), 0.0], atol=1e-7)
        bank.update([2, 4], eta)
        np.testing.assert_allclose(bank.log_risk.numpy(), [0, 0, 0.3, 0, -0.2, 0], atol=1e-7)

    def test_batch_without_events_is_zero_not_nan(self):
        bank = RiskMemoryBank([1.0, 2.0, 3.0], [True, False, False])
        eta = torch.tensor([0.5, 0.1], requires_grad=True)
        loss = bank.loss(eta, [1, 2])
        assert loss.item() == 0.0
        loss.backward()
        assert torch.all(eta.grad == 0)

    def test_errors(self):
        bank = RiskMemoryBank([1.0, 2.0, 3.0], [True, False, True])
        with pytest.raises(ValueError, match="twice"):
            bank.loss(torch.zeros(2), [1, 1])
        with pytest.raises(ValueError, match="outside"):
            bank.loss(torch.zeros(1), [3])
        with pytest.raises(ValueError, match="log-risks for"):
            bank.loss(torch.zeros(3), [0, 1])
        with pytest.raises(ValueError, match="one length"):
            RiskMemoryBank([1.0, 2.0], [True])


def test_segmentation_features_match_the_generator_measurements():
    """Volume and mean SUV of the ground-truth masks agree with the cohort's own truth table."""
    from survseg.datasets import make_petct_cohort

    X, _, truth = make_petct_cohort(4, (24, 24, 24), random_state=0, return_truth=True)
    prob = torch.from_numpy(np.stack([X["mask"], truth.node_mask], 1).astype(np.float32))
    suv = torch.from_numpy(X["pet"][:, None].copy())
    f = SegmentationFeatures(voxel_ml=truth.spacing_mm**3 / 1000).eval()(prob, suv).numpy()
    m = truth.measurements
    np.testing.assert_allclose(np.expm1(f[:, 0]), m["tumour_volume_ml"], rtol=1e-5)
    np.testing.assert_allclose(f[:, 2], m["suv_mean"], rtol=1e-4)
    np.testing.assert_allclose(np.expm1(f[:, 3]), m["node_volume_ml"], rtol=1e-5)
