import numpy as np
import pytest
import torch
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis

from survseg.losses.cox import cox_partial_likelihood_loss

WHAS_EFRON_LOGLIK = -1138.18306  # shared reference value (lifelines / sksurv agree)


@pytest.fixture(scope="module")
def whas500():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].to_numpy(float)
    return X, y


def _fit_linear_cox(X, event, time, ties):
    """Minimise our loss for a linear model with L-BFGS (float64)."""
    sd = X.std(0)
    Xt = torch.tensor((X - X.mean(0)) / sd)
    beta = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [beta],
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )
    ev, t = torch.tensor(event), torch.tensor(time)

    def closure():
        opt.zero_grad()
        loss = cox_partial_likelihood_loss(Xt @ beta, ev, t, ties=ties, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach().numpy() / sd, -float(closure().detach())


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_linear_cox_reproduces_sksurv(whas500, ties):
    X, y = whas500
    coef, loglik = _fit_linear_cox(X, y["fstat"], y["lenfol"].astype(float), ties)
    ref = CoxPHSurvivalAnalysis(ties=ties).fit(X, y).coef_
    np.testing.assert_allclose(coef, ref, rtol=1e-4, atol=1e-6)
    if ties == "efron":
        assert loglik == pytest.approx(WHAS_EFRON_LOGLIK, abs=1e-4)


def test_hand_computed_ties():
    # times 1, 1, 2, 3 ; events 1, 1, 0, 1 ; eta = 0, ln2, 0, ln3
    eta = torch.tensor([0.0, np.log(2), 0.0, np.log(3)], dtype=torch.float64)
    event = torch.tensor([1, 1, 0, 1])
    time = torch.tensor([1.0, 1.0, 2.0, 3.0])
    r1 = 1 + 2 + 1 + 3  # risk set at t=1
    breslow = -(0 + np.log(2) - 2 * np.log(r1) + np.log(3) - np.log(3))
    efron = -(0 + np.log(2) - np.log(r1) - np.log(r1 - 0.5 * 3) + np.log(3) - np.log(3))
    got_b = cox_partial_likelihood_loss(eta, event, time, ties="breslow", reduction="sum")
    got_e = cox_partial_likelihood_loss(eta, event, time, ties="efron", reduction="sum")
    assert float(got_b) == pytest.approx(breslow, rel=1e-12)
    assert float(got_e) == pytest.approx(efron, rel=1e-12)
    mean = cox_partial_likelihood_loss(eta, event, time, reduction="mean")
    assert float(mean) == pytest.approx(efron / 3, rel=1e-12)


def test_no_ties_efron_equals_breslow_and_order_invariance():
    g = torch.Generator().manual_seed(0)
    eta = torch.randn(20, generator=g, dtype=torch.float64)
    time = torch.randperm(20, generator=g).double() + 1
    event = torch.rand(20, generator=g) < 0.6
    a = cox_partial_likelihood_loss(eta, event, time, ties="efron")
    b = cox_partial_likelihood_loss(eta, event, time, ties="breslow")
    assert float(a) == pytest.approx(float(b), rel=1e-12)
    perm = torch.randperm(20, generator=g)
    c = cox_partial_likelihood_loss(eta[perm], event[perm], time[perm])
    assert float(c) == pytest.approx(float(a), rel=1e-12)


def test_no_events_is_zero_with_graph():
    eta = torch.randn(5, requires_grad=True)
    loss = cox_partial_likelihood_loss(eta, torch.zeros(5), torch.arange(5.0))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(eta.grad, torch.zeros(5))


def test_large_log_risk_is_finite():
    eta = torch.tensor([800.0, -800.0, 0.0, 700.0], requires_grad=True)
    loss = cox_partial_likelihood_loss(
        eta, torch.tensor([1, 1, 0, 1]), torch.tensor([1.0, 1.0, 2.0, 2.0])
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(eta.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="ties"):
        cox_partial_likelihood_loss(torch.zeros(2), torch.ones(2), torch.ones(2), ties="exact")
    with pytest.raises(ValueError, match="same length"):
        cox_partial_likelihood_loss(torch.zeros(3), torch.ones(2), torch.ones(2))


def test_mean_reduction_against_torchsurvs_published_values():
    # torchsurv's neg_partial_log_likelihood docstring: mean 1.0071, sum 3.0214 without ties
    # and 1.0873 (Efron and Breslow) with a censored patient tied to an event
    log_hz = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    event = torch.tensor([1, 0, 1, 0, 1], dtype=torch.bool)
    time = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    mean = cox_partial_likelihood_loss(log_hz, event, time, reduction="mean")
    total = cox_partial_likelihood_loss(log_hz, event, time, reduction="sum")
    assert float(mean) == pytest.approx(1.0071, abs=1e-4)
    assert float(total) == pytest.approx(3.0214, abs=1e-4)
    tied = torch.tensor([1.0, 2.0, 2.0, 4.0, 5.0], dtype=torch.float64)
    for ties in ("efron", "breslow"):
        got = cox_partial_likelihood_loss(log_hz, event, tied, ties=ties, reduction="mean")
        assert float(got) == pytest.approx(1.0873, abs=1e-4)


def test_mean_reduction_divides_by_events_when_events_share_a_time():
    # two events at t=1, one at t=3: the mean is per event (3), not per distinct time (2)
    log_hz = torch.tensor([0.3, -0.2, 0.1, 0.4], dtype=torch.float64)
    event = torch.tensor([1, 1, 1, 0], dtype=torch.bool)
    time = torch.tensor([1.0, 1.0, 3.0, 4.0], dtype=torch.float64)
    theta = log_hz.exp()
    # Efron by hand: at t=1 risk set {0..3}, tied events {0, 1}; at t=3 risk set {2, 3}
    r1, h1 = theta.sum(), theta[0] + theta[1]
    pll = (log_hz[0] + log_hz[1] - torch.log(r1) - torch.log(r1 - 0.5 * h1)) + (
        log_hz[2] - torch.log(theta[2] + theta[3])
    )
    got = cox_partial_likelihood_loss(log_hz, event, time, ties="efron", reduction="mean")
    assert float(got) == pytest.approx(float(-pll / 3), rel=1e-12)
