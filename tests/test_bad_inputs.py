"""The project's bad-input and fault matrix (issue 15): one row per case.

Each row builds a bad input or a fault and states what must happen: a clear error (type and
a message naming the problem, and the patient or file where there is one) or a correct
result (data intact, stale results recomputed, the file's code never run). A row that passes
is "handled clearly"; there is no row that accepts a silent result.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sksurv.util import Surv

from survseg.cli import main
from survseg.data import cohort as cohort_module
from survseg.data import store as store_module
from survseg.data.cohort import load_cohort, save_cohort, volumes
from survseg.data.io import read_image
from survseg.data.names import resolve_inside, safe_file_name
from survseg.data.store import load_dataset, save_dataset
from survseg.data.validation import (
    check_cohort,
    check_fitted_cohort,
    check_image_content,
    check_masks,
    check_survival,
    cohort_signature,
)
from survseg.datasets import load_hecktor, load_manifest
from survseg.evaluation.benchmark import benchmark
from survseg.persistence import (
    ModelFileError,
    UntrustedModelError,
    load_model,
    read_header,
    save_model,
)
from survseg.preprocess import Preprocessing, preprocess_case
from survseg.radiomics import RadiomicsExtractor
from survseg.training import balanced_batches
from tests.conftest import MeanUptake, sphere_cohort

SHAPE = (8, 8, 8)
_RNG = np.random.default_rng(7)


def _cohort(n=4, **kw):
    rng = np.random.default_rng(0)
    mask = np.zeros((n, *SHAPE), np.uint8)
    mask[:, 2:6, 2:6, 2:6] = 1
    return volumes(
        pet=rng.random((n, *SHAPE)) + 2 * mask, ct=rng.random((n, *SHAPE)), mask=mask, **kw
    )


def _y(n=4):
    return Surv.from_arrays(np.arange(n) % 2 == 0, np.arange(1.0, n + 1))


def _write(path, array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(np.asarray(array))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _pwned(flag):
    os.environ[flag] = "1"


class Evil:
    """Unpickling this runs code (sets a flag): a model file must never do it untrusted."""

    def __reduce__(self):
        return (_pwned, ("SURVSEG_PWNED",))


def _fitted():
    X, y = sphere_cohort(n=10, seed=0)
    return MeanUptake().fit(X, y), X


def _model_zip(path, header, payload=b"junk"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("header.json", json.dumps(header))
        zf.writestr("model.joblib", payload)
    return path


# ------------------------------------------------------------------ rows raising an error
def _raises(exc, match):
    return exc, match


ERROR_ROWS = {
    # cohort and validation (items 11, 13)
    "spacing of wrong shape": (
        lambda tmp: volumes(pet=np.ones((2, *SHAPE)), spacing=(1.0, 2.0)),
        _raises(ValueError, r"spacing has shape \(2,\)"),
    ),
    "negative spacing names the patient": (
        lambda tmp: volumes(pet=np.ones((2, *SHAPE)), spacing=[[1, 1, 1], [1, -1, 1]]),
        _raises(ValueError, r"for patient 1\b"),
    ),
    "a clinical column called 'spacing'": (
        lambda tmp: cohort_module.from_dataframe(
            pd.DataFrame({"spacing": [1.0, 2.0]}), pet=np.ones((2, *SHAPE))
        ),
        _raises(ValueError, "clash with image field names"),
    ),
    "non-binary mask names the patient (volumes)": (
        lambda tmp: volumes(
            pet=np.ones((2, *SHAPE)), mask=np.stack([np.zeros(SHAPE), 2 * np.ones(SHAPE)])
        ),
        _raises(ValueError, "patient 1 has values"),
    ),
    "non-binary mask names the patient (check_masks)": (
        lambda tmp: check_masks(_nonbinary_mask_cohort()),
        _raises(ValueError, "not binary for patient 2"),
    ),
    "infinite time names the patient": (
        lambda tmp: check_survival(Surv.from_arrays([True, False], [1.0, np.inf])),
        _raises(ValueError, r"infinite for patient 1\."),
    ),
    "malformed spacing field": (
        lambda tmp: check_cohort(
            np.zeros(2, [("pet", "f4", SHAPE), ("spacing", "f8", (2,))]), check_values=False
        ),
        _raises(ValueError, "field 'spacing' must hold 3 numbers"),
    ),
    "a mask asked for as a modality": (
        lambda tmp: check_cohort(_cohort(), modalities=["pet", "mask"]),
        _raises(ValueError, r"\['mask'\] are masks"),
    ),
    "missing mask message does not say 'at fit'": (
        lambda tmp: check_cohort(volumes(pet=np.ones((2, *SHAPE))), require_mask=True),
        _raises(ValueError, r"needs tumour masks: X has no 'mask'"),
    ),
    # the errors docs/data-model.md promises
    "docs: NaN voxels name the patient": (
        lambda tmp: check_cohort(_with_nan(_cohort())),
        _raises(ValueError, "image field 'pet' has NaN or infinite voxels for patient 2"),
    ),
    "docs: empty mask names the patient": (
        lambda tmp: check_cohort(_empty_mask(_cohort()), require_mask=True),
        _raises(ValueError, "mask field 'mask' is empty for patient 3"),
    ),
    "docs: missing modality": (
        lambda tmp: check_cohort(_cohort(), modalities=["t1"]),
        _raises(ValueError, r"modality field\(s\) \['t1'\] not in X"),
    ),
    "docs: stacks of different shapes": (
        lambda tmp: volumes(pet=np.ones((2, 4, 4, 4)), ct=np.ones((2, 4, 4, 5))),
        _raises(ValueError, "differ in shape"),
    ),
    "docs: X not a cohort": (
        lambda tmp: check_cohort(np.zeros((3, 4))),
        _raises(TypeError, "X must be a survseg cohort"),
    ),
    "docs: y not a survival array": (
        lambda tmp: check_survival(np.zeros(3)),
        _raises(TypeError, "y must be a survival array"),
    ),
    "docs: negative time names the patient": (
        lambda tmp: check_survival(Surv.from_arrays([True, True], [-1.0, 2.0])),
        _raises(ValueError, r"negative for patient 0\."),
    ),
    "docs: no events": (
        lambda tmp: check_survival(Surv.from_arrays([False, False], [1.0, 2.0])),
        _raises(ValueError, "y has no events"),
    ),
    # patient ids as file names (item 3)
    **{
        f"unsafe id {bad!r}": (
            lambda tmp, bad=bad: safe_file_name(bad),
            _raises(ValueError, "cannot be used as a file name"),
        )
        for bad in [
            "../../x",
            "/etc/x",
            "",
            " ",
            "..",
            "a/b",
            "a\\b",
            "CON",
            "nul.txt",
            "x\x00",
            "C:x",
        ]
    },
    "path leaving its folder": (
        lambda tmp: resolve_inside(tmp, "../x"),
        _raises(ValueError, "resolves outside"),
    ),
    "save_dataset with an unsafe id": (
        lambda tmp: save_dataset(tmp / "ds", _cohort(2), patient_ids=["ok", "../evil"]),
        _raises(ValueError, r"'\.\./evil' cannot be used as a file name"),
    ),
    "load_hecktor id that leaves the root": (
        lambda tmp: load_hecktor(_hecktor_with_id(tmp, "../../outside")),
        _raises(ValueError, r"'\.\./\.\./outside' cannot be used as a file name"),
    ),
    # dataset folders (item 10)
    "patients.json not JSON names the file": (
        lambda tmp: load_dataset(_dataset_with_patients(tmp, "{not json")),
        _raises(ValueError, r"patients.json is not valid JSON"),
    ),
    "patients.json with the wrong number of ids": (
        lambda tmp: load_dataset(_dataset_with_patients(tmp, json.dumps({"patient_ids": ["a"]}))),
        _raises(ValueError, r"patients.json: 'patient_ids' must be a list of the 4 patients"),
    ),
    "patients.json with a traversal id": (
        lambda tmp: load_dataset(
            _dataset_with_patients(tmp, json.dumps({"patient_ids": ["a", "b", "c", "../../x"]}))
        ),
        _raises(ValueError, r"patients.json: patient id '\.\./\.\./x'"),
    ),
    "patients.json holding a list": (
        lambda tmp: load_dataset(_dataset_with_patients(tmp, "[1, 2]")),
        _raises(ValueError, "must hold a JSON object"),
    ),
    "X.npy that is not an array file": (
        lambda tmp: load_dataset(_dataset_with_file(tmp, "X.npy", b"garbage")),
        _raises(ValueError, r"X.npy is not a readable survseg array file"),
    ),
    "y.npy of the wrong length": (
        lambda tmp: load_dataset(_dataset_with_y(tmp, _y(3))),
        _raises(ValueError, r"y.npy: X has 4 patients but y has 3"),
    ),
    # model files (item 2)
    "model file that is not a zip": (
        lambda tmp: load_model(_bytes(tmp / "m", b"\x80\x04junk")),
        _raises(ModelFileError, "not a survseg model file"),
    ),
    "old joblib model file": (
        lambda tmp: load_model(_joblib_file(tmp / "m.joblib")),
        _raises(ModelFileError, "fit the model again"),
    ),
    "zip without a survseg header": (
        lambda tmp: load_model(_plain_zip(tmp / "m.zip")),
        _raises(ModelFileError, "not a survseg model file"),
    ),
    "header of another format": (
        lambda tmp: load_model(_model_zip(tmp / "m", {"format": "other"})),
        _raises(ModelFileError, "not a survseg model file"),
    ),
    "header of a future format version": (
        lambda tmp: load_model(
            _model_zip(tmp / "m", {"format": "survseg-model", "format_version": 99})
        ),
        _raises(ModelFileError, "format version 99"),
    ),
    "payload altered after writing": (
        lambda tmp: load_model(_tampered(tmp / "m")),
        _raises(ModelFileError, "does not match the hash"),
    ),
    "crafted unsigned model file is not unpickled": (
        lambda tmp: load_model(_evil_model(tmp / "m")),
        _raises(UntrustedModelError, "trusted=True"),
    ),
    "model signed with another user's key": (
        lambda tmp: load_model(_other_users_model(tmp)),
        _raises(UntrustedModelError, "not written with this user's survseg key"),
    ),
    "trusted payload of another class than its header": (
        lambda tmp: load_model(_lying_header(tmp / "m"), trusted=True),
        _raises(ModelFileError, "but the header says"),
    ),
    "trusted payload that cannot be unpickled": (
        lambda tmp: load_model(_unpicklable(tmp / "m"), trusted=True),
        _raises(ModelFileError, "cannot be unpickled"),
    ),
    # truncated and damaged images (item 7)
    "truncated .nii.gz": (
        lambda tmp: read_image(_truncate(_write(tmp / "a.nii.gz", _RNG.random(SHAPE)))),
        _raises(ValueError, r"a.nii.gz is truncated or damaged"),
    ),
    "truncated .nii": (
        lambda tmp: read_image(_truncate(_write(tmp / "a.nii", _RNG.random(SHAPE)))),
        _raises(ValueError, r"a.nii is truncated: it holds"),
    ),
    "truncated .nrrd": (
        lambda tmp: read_image(_truncate(_write(tmp / "a.nrrd", _RNG.random(SHAPE)))),
        _raises(ValueError, r"a.nrrd: SimpleITK cannot read this image"),
    ),
    "truncated image in a manifest names patient and file": (
        lambda tmp: load_manifest(_manifest(tmp, truncate="pet"), preprocessing=_PREP),
        _raises(ValueError, r"patient 'P0': .*pet.nii.gz is truncated"),
    ),
    "mask header spacing differs from its image": (
        lambda tmp: load_manifest(
            _manifest(tmp, mask_spacing=(2.0, 2.0, 2.0)), preprocessing=_PREP
        ),
        _raises(ValueError, r"patient 'P0': the mask has the size of the 'ct' image"),
    ),
    # spacing conflicts in radiomics (item 11)
    "user spacing conflicts with the cohort's": (
        lambda tmp: RadiomicsExtractor(feature_classes=["shape"], spacing=1.0).fit(
            _cohort(spacing=(2.0, 2.0, 4.0))
        ),
        _raises(ValueError, "conflicts with the cohort's own voxel spacing"),
    ),
    "spacing given in (x, y, z) order": (
        lambda tmp: RadiomicsExtractor(feature_classes=["shape"], spacing=(4.0, 2.0, 1.0)).fit(
            _cohort(spacing=(1.0, 2.0, 4.0))
        ),
        _raises(ValueError, r"not SimpleITK's \(x, y, z\)"),
    ),
    # fitted signature (item 9)
    "predict on another volume size": (
        lambda tmp: check_fitted_cohort(_deep_like(), volumes(pet=np.ones((2, 6, 8, 8)))),
        _raises(ValueError, r"shape \(6, 8, 8\) .* fitted on \(8, 8, 8\)"),
    ),
    "predict without a fitted field": (
        lambda tmp: check_fitted_cohort(_signed_holder(_cohort(age=np.ones(4))), _cohort()),
        _raises(ValueError, r"lacks the field\(s\) \['age'\]"),
    ),
    "predict on a cohort that lost its spacing": (
        lambda tmp: check_fitted_cohort(_signed_holder(_cohort(spacing=2.0)), _cohort()),
        _raises(ValueError, "carries its voxel spacing"),
    ),
    "an image field that became a mask": (
        lambda tmp: check_fitted_cohort(_signed_holder(_cohort()), _as_bool_ct(_cohort())),
        _raises(ValueError, "field 'ct' was an image"),
    ),
    # the deep-training path (item 13, issue 15's leftovers)
    **{
        f"{name}: constant PET names the field and the patients": (
            lambda tmp, fit=fit: fit(_deep_cohort(constant_pet=(2, 5))),
            _raises(
                ValueError,
                r"image field 'pet' is constant for patients \[2, 5\] \(every voxel 0 for patient 2\)",
            ),
        )
        for name, fit in (
            ("DeepMTS", lambda c: _deepmts().fit(*c)),
            ("AdaMSS", lambda c: _adamss().fit(*c)),
        )
    },
    **{
        f"{name}: {where} is reported as such, not as a constant PET": (
            lambda tmp, fit=fit, whole=whole: fit(_deep_cohort(blank_mask=3, whole=whole)),
            _raises(
                ValueError,
                r"mask 'mask' of patient 3 lies on a blank region: under it every 'pet' voxel is 0 and every 'ct' voxel is -1024 \(patient 3\)",
            ),
        )
        for name, fit in (
            ("DeepMTS", lambda c: _deepmts().fit(*c)),
            ("AdaMSS", lambda c: _adamss().fit(*c)),
        )
        for where, whole in (("a mask in the air", False), ("a mask on a blank volume", True))
    },
    "DeepMTS: volumes too small, rejected before training with the rules": (
        lambda tmp: _no_training(lambda: _deepmts().fit(*_deep_cohort(shape=(10, 12, 12)))),
        _raises(
            ValueError,
            r"\(10, 12, 12\) \(D, H, W\) cannot pass DeepMTSRegressor's network: the U-Net's 3 levels \(len\(channels\)\) need every axis divisible by 4 \(2\*\*2\); the DenseNet cascade .* at least 19 voxels",
        ),
    ),
    "DeepMTS: volumes too small for the cascade only": (
        lambda tmp: _no_training(lambda: _deepmts().fit(*_deep_cohort(shape=(8, 8, 8)))),
        _raises(
            ValueError,
            r"cannot pass DeepMTSRegressor's network: the DenseNet cascade \(3 dense blocks.*at least 19 voxels\.",
        ),
    ),
    "AdaMSS: volumes not divisible by 2**(levels - 1), before training": (
        lambda tmp: _no_training(
            lambda: _adamss(n_convs=(1, 1, 1)).fit(*_deep_cohort(shape=(12, 12, 10)))
        ),
        _raises(
            ValueError,
            r"\(12, 12, 10\) \(D, H, W\) cannot pass the 3 levels of AdaMSS \(len\(n_convs\)\): every axis must be divisible by 4 \(2\*\*2\), so at least 4 voxels",
        ),
    ),
    "AdaMSS: crop size the network cannot take, before training": (
        lambda tmp: _no_training(
            lambda: _adamss(n_convs=(1, 1, 1), crop_size=(6, 8, 8)).fit(
                *_deep_cohort(shape=(12, 12, 12))
            )
        ),
        _raises(
            ValueError,
            r"crop_size \(6, 8, 8\) must be .* divisible by 4, as the network's 3 levels",
        ),
    ),
    "preprocess: a mask in the air is reported as such, not as a constant PET": (
        lambda tmp: preprocess_case(
            _air_mask_case(), Preprocessing(spacing=1.0, crop_size=(6, 6, 6))
        ),
        _raises(
            ValueError,
            r"the mask lies on a blank region after resampling and cropping: under it every "
            r"'ct' voxel is -1024 and every 'pet' voxel is 0",
        ),
    ),
    "AdaMSS: predict on another volume size": (
        lambda tmp: _fitted_adamss().predict(_deep_cohort(shape=(16, 16, 16))[0]),
        _raises(
            ValueError,
            r"shape \(16, 16, 16\) \(D, H, W\) but AdaMSSRegressor was fitted on \(12, 12, 12\)",
        ),
    ),
    "AdaMSS: predict without a fitted field": (
        lambda tmp: _fitted_adamss().predict_mask(
            _without(_deep_cohort(shape=(12, 12, 12))[0], "ct")
        ),
        _raises(
            ValueError, r"X lacks the field\(s\) \['ct'\] that AdaMSSRegressor was fitted with"
        ),
    ),
    "AdaMSS: predict on a constant PET": (
        lambda tmp: _fitted_adamss().predict(
            _deep_cohort(shape=(12, 12, 12), constant_pet=(1,))[0]
        ),
        _raises(ValueError, r"image field 'pet' is constant for patient 1 "),
    ),
    "balanced batches from a cohort without events": (
        lambda tmp: balanced_batches(np.zeros(5, bool), 4, 4, np.random.default_rng(0)),
        _raises(ValueError, "the 5 training patients are all censored"),
    ),
    # benchmark (item 13)
    "custom splitter with an event-free training fold": (
        lambda tmp: benchmark({"m": MeanUptake()}, *_censored_half(), cv=_HalfSplit()),
        _raises(ValueError, "training fold 0 of the cross-validation has no events"),
    ),
}


@pytest.mark.parametrize("name", list(ERROR_ROWS))
def test_error_rows(name, tmp_path):
    make, (exc, match) = ERROR_ROWS[name]
    with pytest.raises(exc, match=match):
        make(tmp_path)
    assert "SURVSEG_PWNED" not in os.environ  # no model file's code ran


# ------------------------------------------------------------------ helpers of the rows
_PREP = Preprocessing(spacing=2.0, crop_size=(4, 4, 4))
_TINY_DEEPMTS = dict(
    channels=(4, 6, 8),
    encoder_convs=(1, 1, 1),
    decoder_convs=(1, 1),
    feature_channels=(2, 3, 4),
    dense_stem_channels=6,
    dense_block_layers=(1, 1, 1),
    dense_transition_channels=(3, 4, 5),
    dense_growth_rate=4,
    dense_bottleneck_channels=8,
    fc_units=5,
)


def _deepmts(**kw):
    from survseg.estimators import DeepMTSRegressor

    params = dict(network_params=_TINY_DEEPMTS, max_iter=2, batch_size=4, device="cpu")
    return DeepMTSRegressor(**{**params, "random_state": 0, **kw})


def _adamss(n_convs=(1, 1), **kw):
    from survseg.estimators import AdaMSSRegressor

    channels = (2, 4, 4)[: len(n_convs)]
    net = dict(single_channels=channels, fuse_channels=channels, n_convs=n_convs)
    params = dict(network_params={**net, "hidden_features": 4}, max_iter=2, radiomics=False)
    return AdaMSSRegressor(**{**params, "device": "cpu", "random_state": 0, **kw})


def _deep_cohort(n=8, shape=(20, 20, 20), constant_pet=(), blank_mask=None, whole=False):
    """PET/CT phantoms of a body (a box inside air: CT -1024 HU, PET 0) holding a tumour; a
    patient's PET may be all zero, or its mask may lie in the air (``blank_mask``), its
    whole volume then blank too with ``whole``."""
    rng = np.random.default_rng(3)
    body = np.zeros(shape, bool)
    body[tuple(slice(1, s - 1) for s in shape)] = True
    mask = np.zeros((n, *shape), np.uint8)
    centre = tuple(s // 2 for s in shape)
    mask[(slice(None), *(slice(c - 2, c + 2) for c in centre))] = 1
    pet = np.where(body, rng.gamma(4.0, 0.25, (n, *shape)), 0.0) + 3.0 * mask
    ct = np.where(body, rng.normal(40.0, 20.0, (n, *shape)), -1024.0)
    for i in constant_pet:
        pet[i] = 0.0
    if blank_mask is not None:
        mask[blank_mask] = 0
        mask[blank_mask][:1, :2, :2] = 1  # a corner outside the body
        if whole:
            pet[blank_mask], ct[blank_mask] = 0.0, -1024.0
    event = np.arange(n) % 2 == 0
    return volumes(pet=pet, ct=ct, mask=mask), Surv.from_arrays(event, 10.0 + np.arange(n))


def _air_mask_case():
    """A body (a box of tissue) in air, the mask drawn in a corner of the air."""
    rng = np.random.default_rng(5)
    body = np.zeros((24, 24, 24), bool)
    body[2:14, 2:14, 2:14] = True
    ct = np.where(body, rng.normal(40.0, 20.0, body.shape), -1024.0).astype(np.float32)
    pet = np.where(body, rng.gamma(4.0, 0.25, body.shape), 0.0).astype(np.float32)
    mask = np.zeros(body.shape, np.uint8)
    mask[18:21, 18:21, 18:21] = 1
    return {
        name: sitk.GetImageFromArray(array)
        for name, array in (("ct", ct), ("pet", pet), ("mask", mask))
    }


def _no_training(fit):
    """Run ``fit`` with every training entry point replaced by a failure."""
    from survseg import training
    from survseg.estimators import deepmts

    def trained(*args, **kwargs):
        raise AssertionError("training started before the volume size was checked")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deepmts, "train", trained)
        patch.setattr(deepmts, "CohortBatches", trained)
        patch.setattr(training, "train", trained)
        patch.setattr(training, "CohortBatches", trained)
        return fit()


_ADAMSS = {}


def _fitted_adamss():
    if not _ADAMSS:
        _ADAMSS["model"] = _adamss().fit(*_deep_cohort(shape=(12, 12, 12)))
    return _ADAMSS["model"]


def _without(X, field):
    return volumes(**{n: X[n] for n in X.dtype.names if n != field})


def _with_nan(X):
    X["pet"][2][1, 1, 1] = np.nan
    return X


def _empty_mask(X):
    X["mask"][3] = 0
    return X


def _nonbinary_mask_cohort():
    X = _cohort()
    X["mask"][2][0, 0, 0] = 5
    return X


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _joblib_file(path):
    import joblib

    joblib.dump({"model": MeanUptake(), "name": "x"}, path)
    return path


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    return path


def _tampered(path):
    save_model(path, _fitted()[0])
    with zipfile.ZipFile(path) as zf:
        header = zf.read("header.json")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("header.json", header)
        zf.writestr("model.joblib", pickle.dumps(Evil()))
    return path


def _evil_model(path):
    import hashlib

    payload = pickle.dumps(Evil())
    header = {
        "format": "survseg-model",
        "format_version": 1,
        "estimator": "tests.conftest.MeanUptake",
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "hmac": "0" * 64,
    }
    return _model_zip(path, header, payload)


def _other_users_model(tmp):
    old = os.environ["XDG_CONFIG_HOME"]
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "other_user")
    try:
        save_model(tmp / "m", _fitted()[0])
    finally:
        os.environ["XDG_CONFIG_HOME"] = old
    return tmp / "m"


def _lying_header(path):
    import hashlib

    import joblib

    buffer = __import__("io").BytesIO()
    joblib.dump([1, 2, 3], buffer)
    payload = buffer.getvalue()
    header = {
        "format": "survseg-model",
        "format_version": 1,
        "estimator": "tests.conftest.MeanUptake",
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return _model_zip(path, header, payload)


def _unpicklable(path):
    import hashlib

    payload = b"\x80\x04\x95not a pickle"
    header = {
        "format": "survseg-model",
        "format_version": 1,
        "estimator": "x.Y",
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return _model_zip(path, header, payload)


def _hecktor_with_id(tmp, pid):
    root = tmp / "hecktor"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "hecktor2022_endpoint_training.csv").write_text(f"PatientID,Relapse,RFS\n{pid},1,100\n")
    return root


def _dataset_with_patients(tmp, text):
    save_dataset(tmp / "ds", _cohort(), _y())
    (tmp / "ds" / "patients.json").write_text(text)
    return tmp / "ds"


def _dataset_with_file(tmp, name, data):
    save_dataset(tmp / "ds", _cohort(), _y())
    (tmp / "ds" / name).write_bytes(data)
    return tmp / "ds"


def _dataset_with_y(tmp, y):
    save_dataset(tmp / "ds", _cohort(), _y())
    np.save(tmp / "ds" / "y.npy", y)
    return tmp / "ds"


def _manifest(tmp, truncate=None, mask_spacing=(1.0, 1.0, 1.0)):
    rng = np.random.default_rng(1)
    folder = tmp / "P0"
    folder.mkdir()
    mask = np.zeros((12, 12, 12), np.uint8)
    mask[4:8, 4:8, 4:8] = 1
    _write(folder / "ct.nii.gz", rng.normal(0, 10, (12, 12, 12)).astype(np.float32))
    _write(folder / "pet.nii.gz", (rng.random((12, 12, 12)) + 3 * mask).astype(np.float32))
    _write(folder / "mask.nii.gz", mask, spacing=mask_spacing)
    if truncate:
        _truncate(folder / f"{truncate}.nii.gz")
    (tmp / "cohort.csv").write_text(
        "patient_id,ct,pet,mask,time,event\nP0,P0/ct.nii.gz,P0/pet.nii.gz,P0/mask.nii.gz,5,1\n"
    )
    return tmp / "cohort.csv"


class _DeepLike:
    modalities = ("pet",)
    clinical = None
    image_shape_ = (8, 8, 8)


def _deep_like():
    return _DeepLike()


class _Holder:
    pass


def _signed_holder(X):
    holder = _Holder()
    holder.cohort_signature_ = cohort_signature(X)
    return holder


def _as_bool_ct(X):
    dtype = [
        (n, np.bool_, X.dtype.fields[n][0].shape) if n == "ct" else (n, X.dtype.fields[n][0])
        for n in X.dtype.names
    ]
    out = np.zeros(len(X), dtype)
    for n in X.dtype.names:
        out[n] = X[n] if n != "ct" else X[n] > 0.5
    return out


def _censored_half():
    X, y = sphere_cohort(n=12, seed=1)
    event = np.zeros(12, bool)
    event[6:] = True
    return X, Surv.from_arrays(event, y["time"])


class _HalfSplit:
    """Train on the first half (all censored), test on the second."""

    def split(self, X, y=None, groups=None):
        idx = np.arange(len(X))
        yield idx[:6], idx[6:]
        yield idx[6:], idx[:6]

    def get_n_splits(self, *args, **kwargs):
        return 2


# ------------------------------------------------------------------ rows handled correctly
def test_save_cohort_onto_its_own_memmap_keeps_the_data(tmp_path):
    """Item 1: it used to zero the file."""
    X = _cohort(spacing=(2.0, 2.0, 3.0))
    save_cohort(tmp_path / "X.npy", X)
    mapped = load_cohort(tmp_path / "X.npy")
    save_cohort(tmp_path / "X.npy", mapped)
    again = load_cohort(tmp_path / "X.npy")
    np.testing.assert_array_equal(again, X)
    assert os.listdir(tmp_path) == ["X.npy"]  # no temporary file left


def test_save_dataset_onto_its_own_folder_keeps_the_data(tmp_path):
    X, y = _cohort(), _y()
    save_dataset(tmp_path / "ds", X, y, ["a", "b", "c", "d"])
    ds = load_dataset(tmp_path / "ds")
    save_dataset(tmp_path / "ds", ds.X, ds.y, ds.patient_ids)
    again = load_dataset(tmp_path / "ds")
    np.testing.assert_array_equal(again.X, X)
    np.testing.assert_array_equal(again.y, y)
    assert again.patient_ids == ["a", "b", "c", "d"]


def test_a_disk_that_refuses_the_write_leaves_the_old_file(tmp_path, monkeypatch):
    """Fault: the rename (or the write) fails; the previous file stays whole."""
    X = _cohort()
    save_cohort(tmp_path / "X.npy", X)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        save_cohort(tmp_path / "X.npy", _cohort(n=2))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_cohort(tmp_path / "X.npy"), X)
    assert os.listdir(tmp_path) == ["X.npy"]


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    X = _cohort(n=40)
    save_cohort(tmp_path / "X.npy", X)

    class Exploding(np.ndarray):
        def __getitem__(self, key):
            if isinstance(key, slice) and key.start and key.start >= 16:
                raise KeyboardInterrupt  # the user stops it during the copy
            return super().__getitem__(key)

    with pytest.raises(KeyboardInterrupt):
        save_cohort(tmp_path / "X.npy", _cohort(n=40).view(Exploding))
    np.testing.assert_array_equal(load_cohort(tmp_path / "X.npy"), X)
    assert os.listdir(tmp_path) == ["X.npy"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    save_cohort(tmp_path / "X.npy", _cohort())
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            save_cohort(tmp_path / "X.npy", _cohort(n=2))
    finally:
        tmp_path.chmod(0o700)
    assert len(load_cohort(tmp_path / "X.npy")) == 4


def test_integer_ct_is_classified_as_an_image():
    """Item 8: by name and role, not by dtype."""
    X = np.zeros(
        2,
        [("pet", "f4", SHAPE), ("ct", "i2", SHAPE), ("mask", "u1", SHAPE), ("nodes", "u1", SHAPE)],
    )
    assert cohort_module.image_fields(X) == ["pet", "ct"]
    assert cohort_module.mask_fields(X) == ["mask", "nodes"]


def test_spacing_survives_slicing_splits_and_memmaps(tmp_path):
    rows = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 1.0, 1.0], [1.0, 1.0, 4.0]])
    X = _cohort(spacing=rows)
    np.testing.assert_array_equal(X[[3, 1]]["spacing"], rows[[3, 1]])
    save_cohort(tmp_path / "X.npy", X)
    np.testing.assert_array_equal(load_cohort(tmp_path / "X.npy")[2:]["spacing"], rows[2:])
    assert "spacing" not in cohort_module.clinical_fields(X)  # not taken for a covariate
    assert "spacing" not in cohort_module.image_fields(X)


def test_crafted_model_file_with_trusted_false_runs_nothing(tmp_path):
    with pytest.raises(UntrustedModelError):
        load_model(_evil_model(tmp_path / "m"))
    assert "SURVSEG_PWNED" not in os.environ
    header = read_header(tmp_path / "m")  # the header alone is plain JSON
    assert header["estimator"] == "tests.conftest.MeanUptake"


def test_own_model_file_round_trip_and_explicit_trust(tmp_path):
    model, X = _fitted()
    save_model(tmp_path / "m", model, name="uptake", signature=cohort_signature(X))
    loaded = load_model(tmp_path / "m")
    assert loaded.signed and loaded.header["name"] == "uptake"
    np.testing.assert_array_equal(loaded.model.predict(X), model.predict(X))
    # an unsigned file (e.g. shared by a colleague) loads only when trusted explicitly
    other = _other_users_model(tmp_path)
    assert not load_model(other, trusted=True).signed


def test_stale_benchmark_folds_are_recomputed(tmp_path):
    """Item 4 (full cases in tests/evaluation/test_benchmark.py)."""
    X, y = sphere_cohort(n=18, seed=2)
    a = benchmark({"m": MeanUptake()}, X, y, cv=3, n_bootstrap=10, output_dir=tmp_path)
    with pytest.warns(UserWarning, match="retraining"):
        b = benchmark(
            {"m": MeanUptake(use_mask=False)}, X, y, cv=3, n_bootstrap=10, output_dir=tmp_path
        )
    fresh = benchmark({"m": MeanUptake(use_mask=False)}, X, y, cv=3, n_bootstrap=10)
    assert b.table.loc[0, "cindex"] == pytest.approx(fresh.table.loc[0, "cindex"])
    assert a.table.loc[0, "cindex"] != pytest.approx(b.table.loc[0, "cindex"])


def test_a_bright_noise_free_tumour_is_not_a_blank_region():
    """A phantom's tumour painted with one value (brighter than the body) is real content."""
    X, _ = _deep_cohort()
    X["pet"] = np.where(X["ct"] > -1024, 1.0, 0.0) + 3.0 * X["mask"]  # no noise at all
    X["ct"] = np.where(X["ct"] > -1024, 40.0, -1024.0)
    check_image_content(X, ["pet", "ct"], mask_field="mask")  # no error
    X["pet"][0] = np.where(X["mask"][0], 0.0, X["pet"][0])  # the tumour made as dark as air
    X["ct"][0] = np.where(X["mask"][0], -1024.0, X["ct"][0])
    with pytest.raises(ValueError, match=r"of patient 0 lies on a blank region"):
        check_image_content(X, ["pet", "ct"], mask_field="mask")


def test_balanced_batches_from_a_small_group_warn_once_and_never_repeat_a_patient():
    """Item 13: 3 events for a quota of 4 used to be drawn with replacement."""
    event = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], bool)  # 3 events, 7 censored
    with pytest.warns(UserWarning) as record:
        batches = balanced_batches(event, 4, 4, np.random.default_rng(0))
    assert len(record) == 1
    assert "3 events for a quota of 4" in str(record[0].message)
    assert "batches hold 7 patients instead of 8" in str(record[0].message)
    seen = set()
    for _ in range(20):
        batch = next(batches)
        assert len(batch) == len(set(batch)) == 7  # no patient twice
        assert set(np.flatnonzero(event)) <= set(batch)  # every event in every batch
        assert (~event[batch]).sum() == 4
        seen |= set(batch.tolist())
    assert seen == set(range(10))  # censored patients drawn in turn
    # every patient had the event: batches are all events, 8 of 9, without a warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only = balanced_batches(np.ones(9, bool), 4, 4, np.random.default_rng(0))
        assert len(set(next(only))) == 8


def test_deep_fit_warns_once_for_an_oversized_balanced_batch():
    X, y = _deep_cohort(n=8)  # 4 events, 4 censored; the training part holds fewer
    with pytest.warns(UserWarning, match="balanced batches: the training part has") as record:
        _deepmts(batch_size=12, validation_fraction=0).fit(X, y)
    assert sum("balanced batches" in str(w.message) for w in record) == 1


def test_adamss_predicts_without_the_mask_it_was_fitted_with():
    model = _fitted_adamss()
    X, _ = _deep_cohort(shape=(12, 12, 12))
    np.testing.assert_array_equal(model.predict(_without(X, "mask")), model.predict(X))
    assert model.cohort_signature_["volume_shape"] == [12, 12, 12]


# ------------------------------------------------------------------ CLI rows (item 10)
@pytest.fixture
def dataset(tmp_path):
    X, y = sphere_cohort(n=10, seed=3)
    return save_dataset(tmp_path / "ds", X, y, [f"P{i}" for i in range(10)])


def _one_error_line(capsys, argv, *needles):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"survseg {argv[0]}: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_cli_junk_model_file(dataset, tmp_path, capsys):
    junk = _bytes(tmp_path / "junk.bin", os.urandom(200))
    _one_error_line(
        capsys, ["predict", junk, dataset, "--output", tmp_path / "o"], "not a survseg model file"
    )


def test_cli_unsigned_model_needs_trust(dataset, tmp_path, capsys):
    evil = _evil_model(tmp_path / "evil.zip")
    _one_error_line(capsys, ["predict", evil, dataset, "--output", tmp_path / "o"], "--trust-model")
    assert "SURVSEG_PWNED" not in os.environ and not (tmp_path / "o").exists()


def test_cli_fit_output_unwritable_fails_before_training(dataset, tmp_path, capsys, monkeypatch):
    import survseg.commands as commands

    def no_training(*args, **kwargs):
        raise AssertionError("the model was built: the output was not checked first")

    monkeypatch.setattr(commands, "make_model", no_training)
    blocker = _bytes(tmp_path / "a_file", b"x")  # a folder cannot be made under a file
    _one_error_line(
        capsys,
        ["fit", dataset, "--model", "RadiomicsCox", "--output", blocker / "m.zip"],
        "a_file",
    )
    (tmp_path / "folder").mkdir()
    _one_error_line(
        capsys,
        ["fit", dataset, "--model", "RadiomicsCox", "--output", tmp_path / "folder"],
        "is a folder",
    )


def test_cli_broken_patients_json_names_the_file(dataset, tmp_path, capsys):
    (dataset / "patients.json").write_text('{"patient_ids": [')
    _one_error_line(
        capsys,
        ["fit", dataset, "--model", "RadiomicsCox", "--output", tmp_path / "m.zip"],
        "patients.json is not valid JSON",
    )


def test_cli_traversal_id_never_becomes_a_path(dataset, tmp_path, capsys):
    meta = json.loads((dataset / "patients.json").read_text())
    meta["patient_ids"][0] = "../../escaped"
    (dataset / "patients.json").write_text(json.dumps(meta))
    save_model(tmp_path / "m.zip", MeanUptake().fit(*sphere_cohort(n=10, seed=3)))
    _one_error_line(
        capsys, ["predict", tmp_path / "m.zip", dataset, "--output", tmp_path / "o"], "escaped"
    )
    assert not (tmp_path.parent / "escaped.nii.gz").exists()


def test_cli_preprocess_refuses_unsafe_ids_before_preprocessing(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("patient_id,ct,pet,mask,time,event\n../x,a,b,c,1,1\n")
    _one_error_line(
        capsys,
        ["preprocess", "--manifest", tmp_path / "m.csv", "--output", tmp_path / "ds"],
        "patient id in m.csv '../x' cannot be used as a file name",
    )
    assert not (tmp_path / "ds").exists()


def test_cli_errors_name_patients_by_id(tmp_path, capsys):
    X, y = sphere_cohort(n=10, seed=3)
    X["age"][6] = np.nan
    ds = save_dataset(tmp_path / "ds", X, y, [f"HN-{i:03d}" for i in range(10)])
    _one_error_line(
        capsys,
        ["fit", ds, "--model", "ClinicalCox", "--output", tmp_path / "m.zip"],
        "'age' is NaN or infinite for patient 'HN-006' (row 6)",
    )
    err = _one_error_line(
        capsys,
        ["benchmark", ds, "--models", "ClinicalCox", "--folds", "2", "--output", tmp_path / "b"],
        "for patient 'HN-006' (row 6)",
    )
    assert "ClinicalCox, fold " in err


def test_cli_benchmark_no_resume_flag():
    from survseg.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["benchmark", "ds"]).resume is True
    assert parser.parse_args(["benchmark", "ds", "--no-resume"]).resume is False
