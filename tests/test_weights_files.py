"""Weights files (``save_weights`` / ``from_weights``): a trained network shared without a
pickle predicts exactly as the original; tampered files are refused, never executed."""

import hashlib
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sksurv.datasets import load_whas500

from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.estimators.deepsurv import DeepSurv
from survseg.persistence import ModelFileError, load_weights, save_weights
from survseg.training import Checkpoint
from tests.estimators.test_adamss_estimator import FAST_RADIOMICS, _normalise
from tests.estimators.test_adamss_estimator import TINY as ADAMSS_TINY
from tests.estimators.test_deepmts_estimator import TINY as DEEPMTS_TINY
from tests.estimators.test_deepmts_estimator import sphere_cohort


def _same_params(a, b):
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    pa["callbacks"] = None  # not written: it belongs to the fit
    assert set(pa) == set(pb)
    for k, v in pa.items():
        if hasattr(v, "get_params"):
            assert type(v) is type(pb[k]) and v.get_params() == pb[k].get_params(), k
        else:
            assert v == pb[k] and type(v) is type(pb[k]), k


def test_deepmts_from_weights_predicts_identically(tmp_path):
    torch.set_num_threads(1)
    X, y = sphere_cohort(n=10)
    model = DeepMTSRegressor(
        network_params=DEEPMTS_TINY,
        clinical=["age"],
        max_iter=3,
        batch_size=4,
        validation_fraction=0.3,
        validate_every=1,
        random_state=0,
        survival_inputs="pooled+segmentation",
        feature_scaling="standardize",
        callbacks=[Checkpoint(tmp_path / "ck")],
    ).fit(X, y)
    path = model.save_weights(tmp_path / "deepmts.weights")
    shared = DeepMTSRegressor.from_weights(path)
    assert type(shared) is DeepMTSRegressor and shared.callbacks is None
    _same_params(model, shared)
    np.testing.assert_array_equal(shared.predict(X), model.predict(X))
    np.testing.assert_array_equal(shared.predict_mask(X), model.predict_mask(X))
    np.testing.assert_array_equal(shared.transform(X), model.transform(X))
    np.testing.assert_array_equal(
        shared.predict_survival_function(X, return_array=True),
        model.predict_survival_function(X, return_array=True),
    )
    pd.testing.assert_frame_equal(shared.history_, model.history_)
    assert shared.best_iteration_ == model.best_iteration_ and shared.regions_ == model.regions_
    assert shared.intensity_ == model.intensity_
    # sklearn still treats it as an estimator: clone gives an unfitted copy of its parameters
    _same_params(clone(shared), shared)


@pytest.mark.parametrize("strategy", ["ssl", "mtl"])
def test_adamss_from_weights_predicts_identically(tmp_path, strategy):
    """With radiomics of its own predicted masks and clinical inputs (ssl), or one shared
    multi-task network (mtl)."""
    from survseg.datasets import make_petct_cohort

    torch.set_num_threads(1)
    X, y = make_petct_cohort(12, shape=(16, 16, 16), random_state=0)
    X = _normalise(X)
    params = {**ADAMSS_TINY, "max_iter": 2, "learning_strategy": strategy, "clinical": ["age"]}
    if strategy == "ssl":
        params.update(radiomics=True, extractor=FAST_RADIOMICS)
    model = AdaMSSRegressor(**params).fit(X, y)
    shared = AdaMSSRegressor.from_weights(save_weights(tmp_path / "a.weights", model))
    _same_params(model, shared)
    assert shared.radiomics_features_ == model.radiomics_features_
    if strategy == "mtl":
        assert shared.segmentation_network_ is shared.network_
    np.testing.assert_array_equal(shared.predict(X), model.predict(X))
    np.testing.assert_array_equal(shared.predict_mask(X), model.predict_mask(X))
    np.testing.assert_array_equal(
        shared.predict_survival_function(X, return_array=True),
        model.predict_survival_function(X, return_array=True),
    )
    np.testing.assert_array_equal(shared.time_bins_, model.time_bins_)


@pytest.fixture(scope="module")
def deepsurv():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr"]].astype(float)
    X = (X - X.mean()) / X.std()
    return DeepSurv(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y), X


def test_deepsurv_from_weights_keeps_feature_names(deepsurv, tmp_path):
    model, X = deepsurv
    shared = load_weights(save_weights(tmp_path / "d.weights", model))
    np.testing.assert_array_equal(shared.feature_names_in_, ["age", "bmi", "hr"])
    np.testing.assert_array_equal(shared.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        shared.predict(X[["hr", "bmi", "age"]])


def test_the_file_is_json_and_tensors(deepsurv, tmp_path):
    model, _ = deepsurv
    path = save_weights(tmp_path / "d.weights", model)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["header.json", "weights.pt"]
        header = json.loads(zf.read("header.json"))
        import io

        states = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
    assert header["estimator"] == "survseg.estimators.deepsurv.DeepSurv"
    assert set(states) == {"network_"} and all(
        torch.equal(states["network_"][k], v) for k, v in model.network_.state_dict().items()
    )


def test_existing_files_are_not_overwritten(deepsurv, tmp_path):
    model, _ = deepsurv
    path = tmp_path / "mine.bin"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_weights(path, model)
    assert path.read_bytes() == b"user data"
    save_weights(path, model, overwrite=True)
    assert zipfile.is_zipfile(path)


class _Marker:
    def __reduce__(self):
        return (open, ("/tmp/survseg-weights-test-marker-executed", "w"))


def _rewrite(path, header=None, payload=None):
    with zipfile.ZipFile(path) as zf:
        h, p = json.loads(zf.read("header.json")), zf.read("weights.pt")
    h, p = header(h) if header else h, payload if payload is not None else p
    h["payload_sha256"] = hashlib.sha256(p).hexdigest()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("header.json", json.dumps(h))
        zf.writestr("weights.pt", p)


def test_tampered_files_are_refused_and_never_executed(deepsurv, tmp_path):
    import os

    model, _ = deepsurv
    marker = "/tmp/survseg-weights-test-marker-executed"
    if os.path.exists(marker):
        os.unlink(marker)
    path = save_weights(tmp_path / "d.weights", model)
    _rewrite(path, payload=pickle.dumps({"network_": _Marker()}))
    with pytest.raises(ModelFileError, match="never unpickles"):
        load_weights(path)
    assert not os.path.exists(marker)

    path = save_weights(tmp_path / "e.weights", model)
    _rewrite(path, header=lambda h: {**h, "estimator": "os.system"})
    with pytest.raises(ModelFileError, match="only name survseg classes"):
        load_weights(path)

    path = save_weights(tmp_path / "f.weights", model)
    _rewrite(path, header=lambda h: {**h, "estimator": "survseg.estimators.DeepMTSRegressor"})
    with pytest.raises(ModelFileError, match="do not fit"):
        load_weights(path)
    good = save_weights(tmp_path / "g.weights", model)
    with pytest.raises(ModelFileError, match="holds a DeepSurv, not a AdaMSSRegressor"):
        AdaMSSRegressor.from_weights(good)

    raw = tmp_path / "h.weights"
    with zipfile.ZipFile(raw, "w") as zf:
        zf.writestr("header.json", "{}")
    with pytest.raises(ModelFileError, match="not a survseg weights file"):
        load_weights(raw)


def test_unsupported_state_is_named(deepsurv, tmp_path):
    model, _ = deepsurv
    odd = pickle.loads(pickle.dumps(model))
    odd.extra_ = object()
    with pytest.raises(TypeError, match="fitted attribute extra_ .*save_model"):
        save_weights(tmp_path / "x.weights", odd)
    assert not (tmp_path / "x.weights").exists()


def test_load_weights_into_a_fitted_model(deepsurv, tmp_path):
    """The instance method still loads the network weights into a fitted model, from a
    weights file or a plain ``torch.save`` of the state_dict."""
    model, X = deepsurv
    other = clone(model).set_params(random_state=3).fit(X, load_whas500()[1])
    assert not np.allclose(other.predict(X), model.predict(X))
    other.load_weights(save_weights(tmp_path / "d.weights", model))
    np.testing.assert_array_equal(other.predict(X), model.predict(X))
    third = clone(model).set_params(random_state=4).fit(X, load_whas500()[1])
    torch.save(model.network_.state_dict(), tmp_path / "sd.pt")
    third.load_weights(tmp_path / "sd.pt")
    np.testing.assert_array_equal(third.predict(X), model.predict(X))
