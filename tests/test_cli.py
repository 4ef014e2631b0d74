"""The ``survseg`` command line on a tiny HECKTOR-layout folder written with SimpleITK.

The folder mimics HECKTOR 2022: per patient a CT and a coarser PET on *different* grids
(anisotropic spacing, non-zero origins, one patient with a flipped direction), a label image
on the CT grid (1 = primary tumour, 2 = a lymph node) and the endpoint table. The round trip
preprocess -> fit -> predict is checked against the files written here, read back with
SimpleITK, never against survseg's own intermediate output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from survseg.cli import main
from tests.tiny_models import DEEPMTS_NETWORK

N_PATIENTS = 10
CT_SIZE = (40, 40, 30)  # (x, y, z) voxels
CT_SPACING = (1.0, 1.2, 2.0)  # mm, anisotropic
PET_SPACING = (2.5, 2.5, 3.0)  # coarser than the CT
FLIPPED = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # x and y axes reversed
CROP = 24  # voxels of the preprocessed box (DeepMTS's DenseNet needs >= 19), at PREP_SPACING mm
PREP_SPACING = 2.0

DEEPMTS_PARAMS = [f"network_params={DEEPMTS_NETWORK!r}", "max_iter=2", "batch_size=4", "device=cpu"]


def _image(array_zyx, origin, spacing, direction=None):
    image = sitk.GetImageFromArray(array_zyx)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _physical_points(size, origin, spacing, direction):
    """Physical (x, y, z) position of every voxel centre, as arrays of shape (z, y, x)."""
    k, j, i = np.indices(tuple(reversed(size)), dtype=float)
    index = np.stack([i, j, k], axis=-1) * spacing
    matrix = np.reshape(direction, (3, 3))
    return np.asarray(origin) + index @ matrix.T


def write_hecktor(root, n=N_PATIENTS, seed=0):
    """A HECKTOR 2022 training folder; returns the patients' (id, centre, radius)."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rows, truth = [], []
    for p in range(n):
        pid = f"CHUP-{p:03d}"
        direction = FLIPPED if p == 0 else (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
        ct_origin = (-20.0 + 3 * p, 15.5, -140.0 + p)
        if p == 0:  # with x and y reversed, the origin is the opposite corner
            ct_origin = (ct_origin[0] + 39.0, ct_origin[1] + 39 * 1.2, ct_origin[2])
        ct_points = _physical_points(CT_SIZE, ct_origin, CT_SPACING, direction)
        lo = ct_points.reshape(-1, 3).min(0)
        hi = ct_points.reshape(-1, 3).max(0)
        radius = rng.uniform(4.0, 8.0)
        centre = (lo + hi) / 2 + rng.uniform(-4, 4, 3)
        node = centre + np.array([9.0, -9.0, 6.0])
        d_tumour = np.linalg.norm(ct_points - centre, axis=-1)
        d_node = np.linalg.norm(ct_points - node, axis=-1)
        label = np.zeros(d_tumour.shape, np.uint8)
        label[d_node <= 3.5] = 2
        label[d_tumour <= radius] = 1
        ct = rng.normal(0, 20, label.shape) + 60.0 * (label > 0)
        sitk.WriteImage(
            _image(label, ct_origin, CT_SPACING, direction),
            str(root / "labelsTr" / f"{pid}.nii.gz"),
        )
        sitk.WriteImage(
            _image(ct.astype(np.int16), ct_origin, CT_SPACING, direction),
            str(root / "imagesTr" / f"{pid}__CT.nii.gz"),
        )
        # PET on its own coarser grid covering the CT, from the same physical tumours
        pet_origin = tuple(lo - np.array([1.3, 0.7, 1.0]))
        pet_size = tuple(int(np.ceil((hi[a] - lo[a] + 2.0) / PET_SPACING[a])) + 1 for a in range(3))
        pet_points = _physical_points(
            pet_size, pet_origin, PET_SPACING, (1, 0, 0, 0, 1, 0, 0, 0, 1)
        )
        pet = (
            1.0
            + rng.normal(0, 0.1, pet_points.shape[:3])
            + 8.0 * (np.linalg.norm(pet_points - centre, axis=-1) <= radius)
            + 4.0 * (np.linalg.norm(pet_points - node, axis=-1) <= 3.5)
        )
        sitk.WriteImage(
            _image(pet.astype(np.float32), pet_origin, PET_SPACING),
            str(root / "imagesTr" / f"{pid}__PT.nii.gz"),
        )
        rfs = 2000.0 / radius**2 * rng.uniform(0.8, 1.2)
        rows.append({"PatientID": pid, "Relapse": int(p % 3 != 0), "RFS": round(rfs * 30, 1)})
        truth.append((pid, centre, radius))
    pd.DataFrame(rows).to_csv(root / "hecktor2022_endpoint_training.csv", index=False)
    return truth


@pytest.fixture(scope="module")
def hecktor(tmp_path_factory):
    root = tmp_path_factory.mktemp("hecktor")
    truth = write_hecktor(root)
    return root, truth


@pytest.fixture(scope="module")
def dataset(hecktor, tmp_path_factory):
    root, _ = hecktor
    ds = tmp_path_factory.mktemp("dataset") / "train"
    code = main(
        [
            "preprocess",
            "--hecktor",
            str(root),
            "--output",
            str(ds),
            "--spacing",
            str(PREP_SPACING),
            "--crop-size",
            str(CROP),
        ]
    )
    assert code == 0
    return ds


@pytest.fixture(scope="module")
def fitted(dataset, tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("model") / "deepmts.joblib"
    code = main(
        [
            "fit",
            str(dataset),
            "--model",
            "DeepMTS",
            "--param",
            *DEEPMTS_PARAMS,
            "--output",
            str(path),
        ]
    )
    assert code == 0
    return path


def _centroid(image, label=1):
    """Mean physical position of the voxels of a SimpleITK image equal to ``label``."""
    array = sitk.GetArrayFromImage(image)
    points = [
        image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])
        for k, j, i in np.argwhere(array == label)
    ]
    return np.mean(points, axis=0)


def test_preprocess_writes_a_dataset_folder(hecktor, dataset):
    from survseg.data.store import load_dataset

    root, truth = hecktor
    ds = load_dataset(dataset)
    assert list(ds.patient_ids) == [pid for pid, _, _ in truth]
    assert ds.X["ct"].shape == (N_PATIENTS, CROP, CROP, CROP)
    table = pd.read_csv(root / "hecktor2022_endpoint_training.csv")
    np.testing.assert_allclose(ds.y["time"], table["RFS"])
    np.testing.assert_array_equal(ds.y["event"], table["Relapse"].astype(bool))
    # the mask is the primary tumour only (label 1): its volume matches the sphere's
    for i, (_, _, radius) in enumerate(truth):
        volume = ds.X["mask"][i].sum() * PREP_SPACING**3
        assert volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.35)


def test_preprocess_keeps_the_lymph_nodes(hecktor, dataset, tmp_path):
    from survseg.data.store import load_dataset
    from survseg.data.validation import check_cohort

    root, _ = hecktor
    ds = load_dataset(dataset)
    check_cohort(ds.X, require_mask=True, require_nodes=True)
    # label 2 is the nodes: a 3.5 mm ball per patient, never inside the tumour mask
    assert not (np.asarray(ds.X["nodes"]) & np.asarray(ds.X["mask"])).any()
    volumes = np.asarray(ds.X["nodes"]).reshape(N_PATIENTS, -1).sum(axis=1) * PREP_SPACING**3
    assert np.median(volumes) == pytest.approx(4 / 3 * np.pi * 3.5**3, rel=0.5)
    out = tmp_path / "no_nodes"
    args = ["preprocess", "--hecktor", str(root), "--output", str(out), "--no-nodes"]
    assert main([*args, "--spacing", str(PREP_SPACING), "--crop-size", str(CROP)]) == 0
    assert "nodes" not in load_dataset(out).X.dtype.names


def test_fit_predict_round_trip(hecktor, dataset, fitted, tmp_path):
    root, truth = hecktor
    out = tmp_path / "pred"
    assert main(["predict", str(fitted), str(dataset), "--output", str(out)]) == 0
    ids = [pid for pid, _, _ in truth]

    risk = pd.read_csv(out / "risk.csv")
    assert list(risk.columns) == ["patient_id", "risk"]
    assert list(risk["patient_id"]) == ids
    assert np.isfinite(risk["risk"]).all()

    surv = pd.read_csv(out / "survival.csv")
    assert list(surv["patient_id"]) == ids
    values = surv.drop(columns="patient_id").to_numpy()
    times = [float(c[2:-1]) for c in surv.columns[1:]]
    assert np.all(np.diff(times) > 0)
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    assert np.all(np.diff(values, axis=1) <= 1e-12)

    # masks: on each patient's original CT grid, non-empty exactly where the model segments
    # (after 2 iterations the model segments nothing; test_masks_overlay_the_input_ct checks
    # non-empty masks land on the tumour)
    from survseg.data.store import load_dataset
    from survseg.persistence import load_model

    model = load_model(fitted).model
    assert model.regions_ == ("tumour", "nodes")  # the dataset has HECKTOR's label 2
    predicted = model.predict_label_map(load_dataset(dataset).X)
    assert json.loads((out / "masks" / "labels.json").read_text()) == {
        "0": "background",
        "1": "tumour (GTVp)",
        "2": "lymph nodes (GTVn)",
    }
    for i, pid in enumerate(ids):
        mask = sitk.ReadImage(str(out / "masks" / f"{pid}.nii.gz"))
        ct = sitk.ReadImage(str(root / "imagesTr" / f"{pid}__CT.nii.gz"))
        assert mask.GetSize() == ct.GetSize()
        np.testing.assert_allclose(mask.GetSpacing(), ct.GetSpacing())
        np.testing.assert_allclose(mask.GetOrigin(), ct.GetOrigin())
        np.testing.assert_allclose(mask.GetDirection(), ct.GetDirection())
        assert (sitk.GetArrayViewFromImage(mask).sum() > 0) == (predicted[i].sum() > 0)


def test_masks_overlay_the_input_ct(hecktor, dataset, fitted, tmp_path, monkeypatch):
    """Known masks (the dataset's own tumour and node masks) come back onto the original
    label image as HECKTOR's labels: 1 = tumour (GTVp), 2 = nodes (GTVn)."""
    from survseg.data.store import load_dataset
    from survseg.estimators import DeepMTSRegressor

    monkeypatch.setattr(
        DeepMTSRegressor,
        "predict_label_map",
        lambda self, X: np.asarray(X["mask"]) + 2 * np.asarray(X["nodes"]),
    )
    root, truth = hecktor
    out = tmp_path / "pred"
    assert main(["predict", str(fitted), str(dataset), "--output", str(out)]) == 0
    assert len(load_dataset(dataset).patient_ids) == len(truth)
    for pid, centre, _ in truth:
        mask = sitk.ReadImage(str(out / "masks" / f"{pid}.nii.gz"))
        label = sitk.ReadImage(str(root / "labelsTr" / f"{pid}.nii.gz"))
        assert mask.GetSize() == label.GetSize()
        for k in (1, 2):
            written = sitk.GetArrayFromImage(mask) == k
            truth = sitk.GetArrayFromImage(label) == k
            dice = 2 * (written & truth).sum() / (written.sum() + truth.sum())
            assert dice > 0.7, (pid, k, dice)  # two nearest-neighbour resamplings
        np.testing.assert_allclose(_centroid(label), centre, atol=0.5)
        np.testing.assert_allclose(_centroid(mask), centre, atol=min(CT_SPACING))


def test_benchmark_writes_the_table(dataset, tmp_path):
    """results.csv has a row per model and the documented columns; its pooled C-index is
    scikit-survival's on the out-of-fold risks of predictions.csv."""
    from sksurv.metrics import concordance_index_censored

    from survseg.data.store import load_dataset

    out = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            str(dataset),
            "--models",
            "RadiomicsCox",
            "DeepMTS",
            "--folds",
            "2",
            "--n-bootstrap",
            "50",
            "--no-plots",
            "--output",
            str(out),
            "--param",
            "extractor__feature_classes=['firstorder','shape']",
            "extractor__image_types=['original']",
            "extractor__bin_width={'pet': 0.1, 'ct': 0.005}",
            "RadiomicsCox:cv=2",
            *[f"DeepMTS:{p}" for p in DEEPMTS_PARAMS],
        ]
    )
    assert code == 0
    table = pd.read_csv(out / "results.csv")
    assert list(table["model"]) == ["RadiomicsCox", "DeepMTS"]
    expected = [
        "cindex",
        "cindex_low",
        "cindex_high",
        "cindex_fold_mean",
        "cindex_fold_sd",
        "dice",
        "auc",
        "ibs",
        "fit_seconds",
        "p_value",
    ]
    assert set(expected) <= set(table.columns)
    assert np.isnan(table["p_value"][0]) and 0 <= table["p_value"][1] <= 1  # first = reference
    assert np.isnan(table["dice"][0]) and 0 <= table["dice"][1] <= 1  # only DeepMTS segments

    ds = load_dataset(dataset)
    pred = pd.read_csv(out / "predictions.csv")
    for name, row in zip(table["model"], table.itertuples(), strict=True):
        oof = pred[(pred["model"] == name) & (pred["set"] == "train_cv")].sort_values("patient")
        assert list(oof["patient"]) == list(range(N_PATIENTS))
        assert list(oof["patient_id"]) == list(ds.patient_ids)
        reference = concordance_index_censored(ds.y["event"], ds.y["time"], oof["risk"])[0]
        assert row.cindex == pytest.approx(reference)


def test_fit_uses_the_datasets_spacing_for_radiomics(dataset, tmp_path):
    path = tmp_path / "cox.joblib"
    code = main(
        [
            "fit",
            str(dataset),
            "--model",
            "RadiomicsCox",
            "--output",
            str(path),
            "--param",
            "extractor__feature_classes=['firstorder','shape']",
            "extractor__image_types=['original']",
            "extractor__bin_width={'pet': 0.1, 'ct': 0.005}",
            "cv=2",
        ]
    )
    assert code == 0
    from survseg.persistence import load_model

    model = load_model(path).model
    # pyradiomics measures in mm on the preprocessed grid, not in voxels
    np.testing.assert_allclose(model.extractor_.spacing_, [PREP_SPACING] * 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["preprocess", "--manifest", "{tmp}/absent.csv", "--output", "{tmp}/ds"],
            "manifest not found",
        ),
        (
            ["preprocess", "--manifest", "{tmp}/no_mask.csv", "--output", "{tmp}/ds"],
            "['mask'] not found",
        ),
        (
            ["preprocess", "--hecktor", "{tmp}/absent", "--output", "{tmp}/ds"],
            "HECKTOR folder not found",
        ),
        (
            ["fit", "{tmp}/absent", "--model", "DeepMTS", "--output", "{tmp}/m.joblib"],
            "not a survseg dataset folder",
        ),
        (
            [
                "fit",
                "{tmp}",
                "--model",
                "DeepMTS",
                "--param",
                "max_iter",
                "--output",
                "{tmp}/m.joblib",
            ],
            "--param expects key=value",
        ),
        (
            [
                "fit",
                "{tmp}",
                "--model",
                "DeepMTS",
                "--param",
                "Foo:max_iter=2",
                "--output",
                "{tmp}/m",
            ],
            "--param expects key=value",
        ),
        (
            ["benchmark", "{tmp}", "--models", "DeepMTS", "--reference", "AdaMSS"],
            "--reference AdaMSS is not one of --models",
        ),
        (
            ["predict", "{tmp}/absent.joblib", "{tmp}", "--output", "{tmp}/out"],
            "model file {tmp}/absent.joblib not found",
        ),
        (
            ["predict", "{tmp}/not_a_model.joblib", "{tmp}", "--output", "{tmp}/out"],
            "is not a survseg model file (no survseg header)",
        ),
    ],
)
def test_user_errors_are_one_clear_line(argv, message, tmp_path, capsys):
    (tmp_path / "no_mask.csv").write_text("patient_id,ct,pet,time,event\nA,a.nii,b.nii,10,1\n")
    joblib.dump([1, 2], tmp_path / "not_a_model.joblib")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"survseg {argv[0]}: error:" in err and message.format(tmp=tmp_path) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_parameters_are_named(dataset, fitted, tmp_path, capsys):
    cases = [
        (
            [
                "fit",
                str(dataset),
                "--model",
                "DeepMTS",
                "--param",
                "max_itr=2",
                "--output",
                str(tmp_path / "m.joblib"),
            ],
            "'max_itr' is not a parameter of DeepMTS; did you mean 'max_iter'?",
        ),
        (
            [
                "benchmark",
                str(dataset),
                "--models",
                "DeepMTS",
                "AdaMSS",
                "--param",
                "typo=1",
                "--output",
                str(tmp_path / "b"),
            ],
            "'typo' is not a parameter of any of the models",
        ),
        (
            [
                "benchmark",
                str(dataset),
                "--models",
                "DeepMTS",
                "--param",
                "AdaMSS:max_iter=1",
                "--output",
                str(tmp_path / "b"),
            ],
            "AdaMSS is not one of the models ['DeepMTS']",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.joblib").exists() and not (tmp_path / "b").exists()


def test_predict_needs_the_fields_the_model_was_fitted_with(fitted, tmp_path, capsys):
    from survseg.data.cohort import volumes
    from survseg.data.store import save_dataset

    shape = (CROP, CROP, CROP)
    X = volumes(pet=np.zeros((2, *shape), np.float32), mask=np.zeros((2, *shape), np.uint8))
    save_dataset(tmp_path / "ds", X)
    assert main(["predict", str(fitted), str(tmp_path / "ds"), "--output", str(tmp_path)]) == 2
    assert "lacks the field(s) ['ct']" in capsys.readouterr().err


def test_predict_refuses_another_volume_size(fitted, tmp_path, capsys):
    from survseg.data.cohort import volumes
    from survseg.data.store import save_dataset

    shape = (CROP + 8,) * 3
    X = volumes(pet=np.ones((2, *shape)), ct=np.ones((2, *shape)), mask=np.ones((2, *shape)))
    save_dataset(tmp_path / "ds", X)
    assert main(["predict", str(fitted), str(tmp_path / "ds"), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"volumes of shape {shape}" in err and f"fitted on {(CROP,) * 3}" in err


def test_unknown_model_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "ds", "--model", "Nope", "--output", "m.joblib"])
    assert exc.value.code == 2
    assert "invalid choice: 'Nope'" in capsys.readouterr().err


def test_help(capsys):
    for command in ("demo", "preprocess", "benchmark", "fit", "predict"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert f"usage: survseg {command}" in capsys.readouterr().out
    script = shutil.which("survseg")
    cmd = [script] if script else [sys.executable, "-m", "survseg.cli"]
    done = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for command in ("demo", "preprocess", "benchmark", "fit", "predict"):
        assert command in done.stdout


def test_predict_never_overwrites_without_asking(dataset, fitted, tmp_path, capsys):
    """A second run into the same folder (or a user's own risk.csv / mask there) is refused
    before anything is computed; --overwrite replaces them."""
    out = tmp_path / "pred"
    (out / "masks").mkdir(parents=True)
    mine = out / "masks" / "CHUP-001.nii.gz"
    mine.write_bytes(b"the user's own mask")
    (out / "notes.txt").write_text("mine")
    args = ["predict", str(fitted), str(dataset), "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds ['masks/CHUP-001.nii.gz']" in err and "--overwrite" in err
    assert mine.read_bytes() == b"the user's own mask" and not (out / "risk.csv").exists()
    assert main([*args, "--overwrite"]) == 0
    assert sitk.ReadImage(str(mine)).GetSize()[0] > 1  # replaced by the prediction
    assert (out / "notes.txt").read_text() == "mine"  # files predict does not write: untouched
    before = (out / "risk.csv").read_bytes()
    assert main(args) == 2 and "risk.csv" in capsys.readouterr().err
    assert (out / "risk.csv").read_bytes() == before


def test_predict_times_and_no_masks(dataset, fitted, tmp_path):
    out = tmp_path / "pred"
    code = main(
        [
            "predict",
            str(fitted),
            str(dataset),
            "--output",
            str(out),
            "--times",
            "100",
            "500",
            "1000",
            "--no-masks",
        ]
    )
    assert code == 0
    surv = pd.read_csv(out / "survival.csv")
    assert list(surv.columns) == ["patient_id", "S(100)", "S(500)", "S(1000)"]
    assert np.all(np.diff(surv.drop(columns="patient_id").to_numpy(), axis=1) <= 1e-12)
    assert not (out / "masks").exists()


def test_hecktor_patient_without_primary_tumour(tmp_path, capsys):
    """HECKTOR has patients with nodes only: an error naming them, or left out on request."""
    write_hecktor(tmp_path / "h", n=3)
    label = sitk.ReadImage(str(tmp_path / "h" / "labelsTr" / "CHUP-001.nii.gz"))
    array = sitk.GetArrayFromImage(label)
    array[array == 1] = 0
    nodes_only = sitk.GetImageFromArray(array)
    nodes_only.CopyInformation(label)
    sitk.WriteImage(nodes_only, str(tmp_path / "h" / "labelsTr" / "CHUP-001.nii.gz"))
    argv = [
        "preprocess",
        "--hecktor",
        str(tmp_path / "h"),
        "--output",
        str(tmp_path / "ds"),
        "--spacing",
        "3",
        "--crop-size",
        "8",
    ]
    assert main(argv) == 2
    assert "['CHUP-001'] contain none of the labels (1,)" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="left out 1 patient"):
        assert main([*argv, "--drop-empty-masks"]) == 0
    from survseg.data.store import load_dataset

    assert load_dataset(tmp_path / "ds").patient_ids == ["CHUP-000", "CHUP-002"]


def test_adamss_fit_predict(hecktor, dataset, tmp_path):
    root, truth = hecktor
    model = tmp_path / "adamss.joblib"
    params = [
        "network_params={'single_channels': (2, 4), 'fuse_channels': (4, 8), 'n_convs': (1, 1), 'hidden_features': 8}",
        "max_iter=2",
        "radiomics=False",
        "device=cpu",
    ]
    assert (
        main(["fit", str(dataset), "--model", "AdaMSS", "--param", *params, "--output", str(model)])
        == 0
    )
    out = tmp_path / "pred"
    assert main(["predict", str(model), str(dataset), "--output", str(out)]) == 0
    assert np.isfinite(pd.read_csv(out / "risk.csv")["risk"]).all()
    assert np.all(
        np.diff(pd.read_csv(out / "survival.csv").iloc[:, 1:].to_numpy(), axis=1) <= 1e-12
    )
    for pid, _, _ in truth:
        mask = sitk.ReadImage(str(out / "masks" / f"{pid}.nii.gz"))
        ct = sitk.ReadImage(str(root / "imagesTr" / f"{pid}__CT.nii.gz"))
        assert mask.GetSize() == ct.GetSize()
        np.testing.assert_allclose(mask.GetOrigin(), ct.GetOrigin())
        np.testing.assert_allclose(mask.GetDirection(), ct.GetDirection())


def test_dataset_keeps_physical_units_and_models_normalise(hecktor, dataset, fitted):
    """preprocess keeps HU and SUV; the deep models get the papers' per-patient normalisation
    and the radiomics extractors bin widths in HU and SUV."""
    from survseg.commands import make_model
    from survseg.data.store import load_dataset

    ds = load_dataset(dataset)
    assert ds.metadata["intensity"] == "physical"
    root, truth = hecktor
    ct = sitk.GetArrayFromImage(
        sitk.ReadImage(str(root / "imagesTr" / f"{truth[1][0]}__CT.nii.gz"))
    )
    # the written CT is N(0, 20) HU with +60 HU in the lesions (-1024 HU pads the box)
    inside = ds.X["ct"][1][ds.X["ct"][1] > -1024]
    assert -100 < inside.min() < -20 and 40 < inside.max() <= ct.max()
    from survseg.persistence import load_model

    model = load_model(fitted).model
    assert model.intensity == {"pet": "zscore", "ct": "zscore"}
    assert make_model("AdaMSS").intensity == {"pet": "zscore", "ct": "window"}
    assert make_model("RadiomicsCox").extractor.bin_width == {"pet": 0.25, "ct": 25.0}
    normalised = make_model("RadiomicsCox", units="normalised")
    assert normalised.extractor.bin_width is None
    assert normalised.extractor.settings == {"binCount": 32}
    assert make_model("DeepMTS", units="normalised").intensity is None


def test_normalised_dataset(hecktor, tmp_path):
    from survseg.data.store import load_dataset

    root, _ = hecktor
    assert (
        main(
            [
                "preprocess",
                "--hecktor",
                str(root),
                "--output",
                str(tmp_path / "n"),
                "--spacing",
                str(PREP_SPACING),
                "--crop-size",
                str(CROP),
                "--intensity",
                "normalised",
            ]
        )
        == 0
    )
    ds = load_dataset(tmp_path / "n")
    assert ds.metadata["intensity"] == "normalised"
    assert ds.X["ct"].min() >= -1.0 and ds.X["ct"].max() <= 1.0  # window [-1024, 1024] HU
    np.testing.assert_allclose(ds.X["pet"].reshape(len(ds.X), -1).mean(1), 0, atol=1e-4)


def test_new_patients_without_masks_or_outcomes(hecktor, fitted, tmp_path):
    """Patients to predict have no mask and no outcome: a fixed box, masks from the model."""
    root, truth = hecktor
    rows = [
        {
            "patient_id": pid,
            "ct": str(root / "imagesTr" / f"{pid}__CT.nii.gz"),
            "pet": str(root / "imagesTr" / f"{pid}__PT.nii.gz"),
        }
        for pid, _, _ in truth[:3]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "new.csv", index=False)
    base = [
        "preprocess",
        "--manifest",
        str(tmp_path / "new.csv"),
        "--output",
        str(tmp_path / "new"),
        "--new-patients",
        "--spacing",
        str(PREP_SPACING),
        "--crop-size",
        str(CROP),
    ]
    assert main(base) == 2  # a tumour-centred box needs a mask
    assert main([*base, "--crop", "fixed"]) == 0
    out = tmp_path / "pred"
    assert main(["predict", str(fitted), str(tmp_path / "new"), "--output", str(out)]) == 0
    risk = pd.read_csv(out / "risk.csv")
    assert list(risk["patient_id"]) == [pid for pid, _, _ in truth[:3]]
    for pid, _, _ in truth[:3]:
        written = sitk.ReadImage(str(out / "masks" / f"{pid}.nii.gz"))
        ct = sitk.ReadImage(str(root / "imagesTr" / f"{pid}__CT.nii.gz"))
        assert written.GetSize() == ct.GetSize()
        np.testing.assert_allclose(written.GetOrigin(), ct.GetOrigin(), atol=1e-4)
