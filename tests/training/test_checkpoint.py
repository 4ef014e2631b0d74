"""Checkpoint: an interrupted fit resumed from its files ends as the uninterrupted fit did;
folders of other fits and user files are never overwritten; files are read as tensors only."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sksurv.datasets import load_whas500

from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.estimators.deepsurv import DeepSurv
from survseg.training import Checkpoint, random_batches, train
from tests.estimators.test_adamss_estimator import TINY as ADAMSS_TINY
from tests.estimators.test_adamss_estimator import _normalise
from tests.estimators.test_deepmts_estimator import TINY as DEEPMTS_TINY
from tests.estimators.test_deepmts_estimator import sphere_cohort


class Interrupted(Exception):
    pass


def interrupt_at(stage, iteration):
    def callback(s, it, row):
        if s == stage and it == iteration:
            raise Interrupted(f"{s} {it}")

    return callback


@pytest.fixture(scope="module")
def whas():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].to_numpy(float)
    X = (X - X.mean(0)) / X.std(0)
    return X[:200], y[:200]


def _resumed(model, X, y, folder, stage, at, every):
    """Fit interrupted at ``stage``/``at``, then resumed from ``folder``; returns the resumed
    (which must train only the iterations after the last save)."""
    interrupted = clone(model).set_params(
        callbacks=[Checkpoint(folder, every=every), interrupt_at(stage, at)]
    )
    with pytest.raises(Interrupted):
        interrupted.fit(X, y)
    assert not hasattr(interrupted, "network_")  # fit stays atomic
    return (
        clone(model).set_params(callbacks=[Checkpoint(folder, every=every, resume=True)]).fit(X, y)
    )


def _same_fit(resumed, reference, X):
    np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))
    pd.testing.assert_frame_equal(resumed.history_, reference.history_)
    assert resumed.best_iteration_ == reference.best_iteration_
    for (k, a), b in zip(
        resumed.network_.state_dict().items(), reference.network_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_deepsurv_resumed_fit_equals_uninterrupted(whas, tmp_path):
    X, y = whas
    model = DeepSurv(
        hidden_layer_sizes=(8,),
        dropout=0.3,
        batch_size=32,
        max_iter=30,
        validation_fraction=0.2,
        validate_every=5,
        random_state=0,
    )
    reference = clone(model).fit(X, y)
    # interrupted between two saves: iterations 21-23 are trained again from iteration 20
    resumed = _resumed(model, X, y, tmp_path / "ck", "DeepSurv", at=23, every=10)
    _same_fit(resumed, reference, X)
    meta = json.loads((tmp_path / "ck" / "DeepSurv.ckpt.json").read_text())
    assert meta["iteration"] == 30 and len(meta["history"]) == 30


def test_deepmts_resumed_fit_equals_uninterrupted(tmp_path):
    """Augmentation (torch generator), balanced batches (numpy) and dropout all resume."""
    torch.set_num_threads(1)
    X, y = sphere_cohort(n=10)
    model = DeepMTSRegressor(
        network_params={**DEEPMTS_TINY, "fc_dropout": 0.5},
        max_iter=6,
        batch_size=4,
        validation_fraction=0.3,
        validate_every=2,
        random_state=0,
        survival_inputs="pooled",
        feature_scaling=None,
    )
    reference = clone(model).fit(X, y)
    resumed = _resumed(model, X, y, tmp_path / "ck", "multitask", at=5, every=2)
    _same_fit(resumed, reference, X)
    np.testing.assert_array_equal(resumed.predict_mask(X), reference.predict_mask(X))


def test_adamss_resumes_in_its_second_stage(tmp_path):
    """Stage I is restored from its last checkpoint without training; stage II resumes."""
    from survseg.datasets import make_petct_cohort

    torch.set_num_threads(1)
    X, y = make_petct_cohort(12, shape=(16, 16, 16), random_state=0)
    X = _normalise(X)
    model = AdaMSSRegressor(**{**ADAMSS_TINY, "max_iter": 4, "validate_every": 2})
    reference = clone(model).fit(X, y)
    seen = []
    resumed_model = clone(model)
    folder = tmp_path / "ck"
    with pytest.raises(Interrupted):
        resumed_model.set_params(
            callbacks=[Checkpoint(folder, every=2), interrupt_at("survival", 3)]
        ).fit(X, y)
    resumed_model.set_params(
        callbacks=[
            Checkpoint(folder, every=2, resume=True),
            lambda s, it, row: seen.append((s, it)),
        ]
    ).fit(X, y)
    assert seen == [("survival", 3), ("survival", 4)]  # nothing of stage I trained again
    _same_fit(resumed_model, reference, X)


def test_a_finished_checkpoint_restores_without_training(whas, tmp_path):
    X, y = whas
    model = DeepSurv(hidden_layer_sizes=(4,), batch_size=50, max_iter=8, random_state=1)
    first = clone(model).set_params(callbacks=[Checkpoint(tmp_path, every=4)]).fit(X, y)
    calls = []
    again = (
        clone(model)
        .set_params(
            callbacks=[Checkpoint(tmp_path, every=4, resume=True), lambda *a: calls.append(a)]
        )
        .fit(X, y)
    )
    assert calls == []
    np.testing.assert_array_equal(again.predict(X), first.predict(X))


def test_existing_files_are_never_overwritten(whas, tmp_path):
    X, y = whas
    model = DeepSurv(hidden_layer_sizes=(4,), batch_size=50, max_iter=4, random_state=1)
    clone(model).set_params(callbacks=[Checkpoint(tmp_path, every=2)]).fit(X, y)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="DeepSurv.ckpt.json.*resume=True"):
        clone(model).set_params(callbacks=[Checkpoint(tmp_path, every=2)]).fit(X, y)
    other = clone(model).set_params(lr=0.5, callbacks=[Checkpoint(tmp_path, resume=True)])
    with pytest.raises(ValueError, match="checkpoint of another fit"):
        other.fit(X, y)
    with pytest.raises(ValueError, match="checkpoint of another fit"):  # other data
        clone(model).set_params(callbacks=[Checkpoint(tmp_path, resume=True)]).fit(X[:150], y[:150])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a user's file in the folder is left alone, and a new folder is fine next to it
    (tmp_path / "notes.txt").write_text("mine")
    sub = tmp_path / "run2"
    clone(model).set_params(callbacks=[Checkpoint(sub, every=2)]).fit(X, y)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in sub.iterdir()) == ["DeepSurv.ckpt.json", "DeepSurv.ckpt.pt"]


class _Boom:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


def test_checkpoint_files_are_read_as_tensors_only(whas, tmp_path):
    """A .pt replaced by an arbitrary pickle (hash updated too) is refused, not executed."""
    import hashlib

    X, y = whas
    model = DeepSurv(hidden_layer_sizes=(4,), batch_size=50, max_iter=4, random_state=1)
    clone(model).set_params(callbacks=[Checkpoint(tmp_path, every=2)]).fit(X, y)
    pt, js = tmp_path / "DeepSurv.ckpt.pt", tmp_path / "DeepSurv.ckpt.json"
    resume = clone(model).set_params(callbacks=[Checkpoint(tmp_path, resume=True)])
    pt.write_bytes(pt.read_bytes()[:-5] + b"xxxxx")
    with pytest.raises(ValueError, match="does not match the hash"):
        resume.fit(X, y)
    pt.write_bytes(pickle.dumps({"module": _Boom()}))
    meta = json.loads(js.read_text())
    meta["tensors_sha256"] = hashlib.sha256(pt.read_bytes()).hexdigest()
    js.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="never unpickles"):
        resume.fit(X, y)


def test_sampler_state_round_trip():
    """A sampler restored mid-epoch continues with the batches of the original."""
    a = random_batches(10, 3, np.random.default_rng(0))
    for _ in range(4):  # into the second epoch
        next(a)
    state, rng_state = a.state_dict(), a.rng.bit_generator.state
    expected = [next(a) for _ in range(5)]
    rng = np.random.default_rng(123)
    rng.bit_generator.state = rng_state
    b = random_batches(10, 3, rng)
    b.load_state_dict(json.loads(json.dumps(state)))
    np.testing.assert_array_equal(
        np.concatenate([next(b) for _ in range(5)]), np.concatenate(expected)
    )


def test_bad_every_is_named(whas, tmp_path):
    X, y = whas
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        DeepSurv(max_iter=2, callbacks=[Checkpoint(tmp_path, every=0)]).fit(X, y)


def _scripted(scores, max_iter, callbacks):
    """A linear model trained with validation scores given in advance."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    it = iter(scores)
    weights = []

    def validate(m):
        weights.append(m.weight.detach().clone())
        return {"val_score": next(it)}

    result = train(
        model,
        iter(lambda: (X, y), None),
        lambda m, b: {"loss": ((m(b[0]).squeeze(1) - b[1]) ** 2).mean()},
        opt,
        max_iter=max_iter,
        device=torch.device("cpu"),
        validate=validate,
        validate_every=1,
        monitor="val_score",
        mode="max",
        callbacks=callbacks,
    )
    return model, result, weights


def test_early_stopping_stops_patience_validations_after_the_best(tmp_path):
    from survseg.training import EarlyStopping

    scores = [1.0, 3.0, 2.0, 2.5, 2.9, 9.0, 9.0]  # best at iteration 2, then 3 worse
    model, result, weights = _scripted(scores, 7, [EarlyStopping(patience=3)])
    assert len(result.history) == 5 and result.best_iteration == 2  # stopped at 2 + 3
    torch.testing.assert_close(model.weight.detach(), weights[1])
    # with a checkpoint: the stop is saved, and resuming does not train on
    _scripted(scores, 7, [EarlyStopping(3), Checkpoint(tmp_path, every=100)])
    meta = json.loads((tmp_path / "training.ckpt.json").read_text())
    assert meta["iteration"] == 5 and meta["stopped"] is True
    _, again, seen = _scripted(scores, 7, [EarlyStopping(3), Checkpoint(tmp_path, resume=True)])
    assert seen == [] and again.best_iteration == 2 and len(again.history) == 5


def test_early_stopping_needs_validation(whas):
    from survseg.training import EarlyStopping

    X, y = whas
    with pytest.raises(ValueError, match="EarlyStopping .* needs validation"):
        DeepSurv(max_iter=2, callbacks=[EarlyStopping(2)]).fit(X, y)
    with pytest.raises(ValueError, match="patience must be an integer"):
        EarlyStopping(0)
