"""Discrete-time likelihood: hand-computed values, the logistic-hazard equivalence, targets."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from survseg.losses.discrete_time import (
    discrete_time_nll,
    encode_survival,
    predicted_time,
    survival_at_edges,
    time_bin_edges,
)

EDGES = np.array([0.0, 1.0, 2.0, 3.0])  # midpoints 0.5, 1.5, 2.5


def _logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


def test_targets_by_hand():
    time = [1.5, 1.2, 1.6, 0.2, 3.0, 7.0, 1.0, 0.4]
    event = [True, False, False, True, True, True, True, False]
    s, f = encode_survival(time, event, EDGES)
    np.testing.assert_array_equal(
        s,
        [
            [1, 0, 0],  # event in [1, 2): survived interval 1
            [1, 0, 0],  # censored at 1.2: passed midpoint 0.5 only
            [1, 1, 0],  # censored at 1.6: passed midpoints 0.5 and 1.5
            [0, 0, 0],  # event in the first interval
            [1, 1, 0],  # event at the last edge: last interval (closed on the right)
            [1, 1, 1],  # event after the last edge: survived everything we model
            [1, 0, 0],  # event exactly on an inner edge: the interval that starts there
            [0, 0, 0],  # censored before the first midpoint: no information
        ],
    )
    np.testing.assert_array_equal(
        f, [[0, 1, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]]
    )
    assert s.dtype == f.dtype == np.float32


def test_loss_by_hand():
    # p = conditional survival per interval for two patients
    p = torch.tensor([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]], dtype=torch.float64)
    s, f = encode_survival([1.5, 1.7], [True, False], EDGES)
    loss = discrete_time_nll(_logit(p), torch.from_numpy(s), torch.from_numpy(f), reduction="none")
    # patient 1: survived interval 1 (0.9), failed in interval 2 (1 - 0.8)
    # patient 2: censored at 1.7 >= midpoints 0.5, 1.5: survived intervals 1 and 2 (0.6 * 0.5)
    expected = [-(math.log(0.9) + math.log(0.2)), -(math.log(0.6) + math.log(0.5))]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    args = (_logit(p), torch.from_numpy(s), torch.from_numpy(f))
    torch.testing.assert_close(
        discrete_time_nll(*args), torch.tensor(sum(expected) / 2, dtype=torch.float64)
    )
    torch.testing.assert_close(
        discrete_time_nll(*args, reduction="sum"), torch.tensor(sum(expected), dtype=torch.float64)
    )


def test_equals_eq1_with_clamps_away_from_zero():
    # AdaMSS Eq. 1 written literally (clamped logs of probabilities)
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.uniform(0.05, 0.95, (20, 6)))
    time, event = rng.uniform(0, 12, 20), rng.random(20) < 0.6
    s, f = (
        torch.from_numpy(a).double() for a in encode_survival(time, event, np.linspace(0, 10, 7))
    )
    eps = 1e-5
    eq1 = -(
        torch.log(torch.clamp(1 + s * (p - 1), min=eps))
        + torch.log(torch.clamp(1 - f * p, min=eps))
    ).sum(1)
    torch.testing.assert_close(discrete_time_nll(_logit(p), s, f, reduction="none"), eq1)


def test_equals_logistic_hazard_likelihood():
    # Independent formulation: hazard h_j = 1 - p_j (hazard logit = -l_j). A patient is at risk
    # in intervals 1..k, where k = the event interval, or for a censored patient the last
    # interval whose midpoint was passed; label 1 only in the event interval. The NLL is the
    # sum of binary cross-entropies over the at-risk intervals.
    rng = np.random.default_rng(1)
    n, edges = 50, np.array([0.0, 2.0, 3.0, 5.0, 8.0, 9.0])
    time = rng.uniform(0, 9, n)
    event = rng.random(n) < 0.5
    logits = torch.from_numpy(rng.normal(0, 2, (n, 5)))
    mid = (edges[:-1] + edges[1:]) / 2
    expected = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        if event[i]:
            k = int(np.searchsorted(edges[1:], time[i], side="right"))
            k = min(k, 4)
            labels = torch.zeros(k + 1, dtype=torch.float64)
            labels[k] = 1.0
        else:
            k = int((time[i] >= mid).sum()) - 1
            labels = torch.zeros(k + 1, dtype=torch.float64)
        if k >= 0:
            expected[i] = F.binary_cross_entropy_with_logits(
                -logits[i, : k + 1], labels, reduction="sum"
            )
    s, f = (torch.from_numpy(a) for a in encode_survival(time, event, edges))
    torch.testing.assert_close(discrete_time_nll(logits, s, f, reduction="none"), expected)


def test_stable_and_differentiable_at_extreme_logits():
    logits = torch.tensor([[200.0, -200.0, 0.0]], requires_grad=True)
    s, f = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    loss = discrete_time_nll(logits, s, f)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() < 1e-6
    assert torch.isfinite(logits.grad).all()
    # a confidently wrong prediction costs about |logit|
    loss = discrete_time_nll(torch.tensor([[-200.0, 0.0, 0.0]]), s, torch.zeros_like(f))
    assert loss.item() == pytest.approx(200.0)


def test_time_bin_edges_spread_times_evenly():
    rng = np.random.default_rng(2)
    time = rng.exponential(30.0, 500)
    edges = time_bin_edges(time, 10)
    assert edges.shape == (11,) and edges[0] == 0 and edges[-1] == time.max()
    assert np.all(np.diff(edges) > 0)
    counts = np.histogram(time, bins=edges)[0]
    assert counts.sum() == 500 and counts.min() >= 49 and counts.max() <= 51


def test_time_bin_edges_errors():
    with pytest.raises(ValueError, match="use fewer intervals"):
        time_bin_edges([1.0, 1.0, 1.0, 1.0, 2.0, 3.0], 5)
    with pytest.raises(ValueError, match="non-negative"):
        time_bin_edges([-1.0, 2.0], 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_survival([1.0], [True], [0.0, 1.0, 1.0])


def test_survival_and_predicted_time_by_hand():
    p = np.array([[0.9, 0.8, 0.5], [1.0, 1.0, 1.0]])
    edges = np.array([0.0, 2.0, 3.0, 7.0])
    np.testing.assert_allclose(survival_at_edges(p), [[0.9, 0.72, 0.36], [1, 1, 1]])
    # Eq. 2: 0.9 * 2 + 0.72 * 1 + 0.36 * 4 = 3.96; certain survival gives the full span 7
    np.testing.assert_allclose(predicted_time(p, edges), [3.96, 7.0])
    with pytest.raises(ValueError, match="intervals"):
        predicted_time(p, edges[:-1])
