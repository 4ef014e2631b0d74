"""The shared recipe: split, head-only L2, schedule, monitors, C-index or NaN, atomic state."""

import math

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sksurv.metrics import concordance_index_censored

from survseg.training import (
    assign_fitted,
    c_index_or_nan,
    head_l2_adam,
    monitor_key,
    validation_every,
    validation_split,
)


def test_validation_split_sizes_and_stratification():
    event = np.array([1, 0] * 10, dtype=bool)
    train, val = validation_split(event, 0.2, seed=0)
    assert len(val) == 4 and len(train) == 16 and not set(train) & set(val)
    assert event[val].sum() == 2  # stratified: half events, as in the cohort
    np.testing.assert_array_equal(validation_split(event, 0.2, seed=0)[1], val)
    assert len(validation_split(event, 0, seed=0)[1]) == 0
    with pytest.raises(ValueError, match="no event"):
        validation_split(np.eye(1, 10, 0, dtype=bool)[0], 0.3, seed=0)
    with pytest.raises(ValueError, match="training patient"):
        validation_split(event[:3], 0.5, seed=0)


def test_head_l2_is_twice_lambda_on_the_head_only():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = head_l2_adam(net, [net[1].weight], lr=0.1, head_l2=0.3)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(net[1].weight)] == pytest.approx(0.6)
    assert decay[id(net[0].weight)] == decay[id(net[1].bias)] == 0.0
    # a zero loss: Adam's first step then moves only the penalised weight, by lr
    w0 = net[1].weight.detach().clone()
    b0 = net[0].weight.detach().clone()
    (0.0 * net(torch.ones(1, 3))).sum().backward()
    opt.step()
    np.testing.assert_allclose(
        (w0 - net[1].weight.detach()).numpy(), 0.1 * np.sign(w0.numpy()), rtol=1e-5
    )
    assert torch.equal(b0, net[0].weight)


def test_monitors_and_validation_interval():
    assert monitor_key("c_index") == ("val_c_index", "max")
    assert monitor_key("loss") == ("val_loss", "min")
    assert monitor_key(None) == (None, "max")
    with pytest.raises(ValueError, match="monitor"):
        monitor_key("auc")
    assert validation_every(None, 10000) == 200 and validation_every(None, 10) == 1
    assert validation_every(7, 10) == 7


def test_c_index_or_nan_agrees_with_sksurv():
    rng = np.random.default_rng(0)
    event, time, risk = rng.random(20) < 0.5, rng.random(20), rng.random(20)
    event[0] = True
    assert c_index_or_nan(event, time, risk) == concordance_index_censored(event, time, risk)[0]
    assert math.isnan(c_index_or_nan(np.zeros(5, bool), time[:5], risk[:5]))


class _Est(BaseEstimator):
    def __init__(self, a=1):
        self.a = a


def test_assign_fitted_replaces_the_whole_state():
    est = _Est()
    est.old_, est.kept_ = 1, 2
    assign_fitted(est, {"kept_": 3, "new_": 4})
    assert vars(est) == {"a": 1, "kept_": 3, "new_": 4}
    with pytest.raises(ValueError, match="end in"):
        assign_fitted(est, {"bad": 1})
