"""fit is atomic: an exception, a KeyboardInterrupt or a divergence inside fit leaves the
estimator as it was (unfitted, or with its previous fitted state whole)."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from survseg.estimators import AdaMSSRegressor, DeepMTSRegressor, DeepSurv
from survseg.training import train
from survseg.utils.estimator_checks import make_check_cohort, make_check_tabular
from tests.tiny_models import DEEPMTS_NETWORK_MINI

_DEEPMTS = dict(
    network_params=DEEPMTS_NETWORK_MINI,
    batch_size=4,
    intensity={"pet": "zscore", "ct": "window"},
    device="cpu",
    random_state=0,
)
_ADAMSS = dict(
    network_params=dict(single_channels=(2, 2), fuse_channels=(2, 4), n_convs=(1, 1)),
    radiomics=False,
    intensity={"pet": "zscore", "ct": "window"},
    device="cpu",
    random_state=0,
)


class Boom(RuntimeError):
    pass


def fail_at(k, stage=None, exc=Boom):
    def callback(name, iteration, row):
        if iteration == k and (stage is None or name == stage):
            raise exc(f"injected at {name} iteration {iteration}")

    return callback


@pytest.fixture(scope="module")
def cohort():
    return make_check_cohort()


MODELS = [
    pytest.param(lambda **kw: DeepMTSRegressor(max_iter=3, **_DEEPMTS, **kw), None, id="DeepMTS"),
    pytest.param(
        lambda **kw: AdaMSSRegressor(max_iter=3, **_ADAMSS, **kw), "survival", id="AdaMSS"
    ),
]


@pytest.mark.parametrize(("make", "stage"), MODELS)
@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_interrupted_fit_leaves_no_fitted_state(make, stage, exc, cohort):
    X, y = cohort
    est = make(callbacks=[fail_at(2, stage, exc)])
    with pytest.raises(exc, match="injected"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not [k for k in vars(est) if k.endswith("_")]


@pytest.mark.parametrize(("make", "stage"), MODELS)
def test_interrupted_refit_keeps_the_previous_model_whole(make, stage, cohort):
    X, y = cohort
    est = make().fit(X, y)
    before = {k: v for k, v in vars(est).items() if k.endswith("_")}
    risk = est.predict(X)
    # a re-fit on other data that fails at its second iteration
    est.set_params(callbacks=[fail_at(2, stage, KeyboardInterrupt)], random_state=1)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[::-1], y[::-1])
    after = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)  # the same objects: no mix
    np.testing.assert_array_equal(est.predict(X), risk)


def test_deepsurv_refit_that_diverges_keeps_the_previous_model():
    X, y = make_check_tabular()
    est = DeepSurv((4,), max_iter=20, random_state=0).fit(X, y)
    risk = est.predict(X)
    est.set_params(lr=1e20, dropout=0.0, weight_decay=0.0)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict(X), risk)


def _loop(losses):
    module = torch.nn.Linear(1, 1)
    weight = module.weight
    values = iter(losses)

    def compute_loss(m, batch):
        return {"loss": weight.sum() * 0 + next(values)}

    opt = torch.optim.SGD(module.parameters(), lr=0.0)
    return train(
        module, iter(range(len(losses))), compute_loss, opt, max_iter=len(losses),
        device=torch.device("cpu"),
    )  # fmt: skip


def test_exploding_loss_stops_training_naming_the_iteration():
    losses = [1.0, 1.2, 0.9, 1.1, 1.0, 0.8, 1.05, 3e6, 1.0]
    with pytest.raises(FloatingPointError, match=r"iteration 8: the loss 3e\+06 exploded.*`lr`"):
        _loop(losses)
    # a loss that grows, but not by a factor of a million over its running median, trains on
    assert len(_loop([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]).history) == 8


def test_non_finite_loss_stops_training_naming_the_iteration():
    with pytest.raises(FloatingPointError, match="iteration 3: the loss is not finite"):
        _loop([1.0, 1.0, float("nan"), 1.0])
