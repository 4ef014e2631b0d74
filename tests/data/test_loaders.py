"""Loaders: a CSV manifest and the HECKTOR 2022 layout, written as tiny NIfTI/DICOM files,
read back into (X, y, patient_ids); every bad input gets an error naming line and patient;
a file-based cohort goes through scikit-learn's cross_val_score."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.model_selection import KFold, cross_val_score
from sksurv.util import Surv

from survseg.data.loaders import load_hecktor, load_manifest
from survseg.data.validation import check_cohort
from survseg.preprocess import Preprocessing, PreprocessingError, preprocess, to_original_space
from tests.conftest import MeanUptake
from tests.data.test_io import write_dicom_series
from tests.data.test_suv import HAND_FACTOR, PET_TAGS, RADIOPHARMACEUTICAL, insert_sequence
from tests.preprocess.conftest import make_patient, write_patient

SMALL = Preprocessing(spacing=3.0, crop_size=(8, 8, 8))
RAW = Preprocessing(spacing=3.0, crop_size=(8, 8, 8), intensity={})
UPTAKES = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def write_manifest(tmp_path, n=4, **columns):
    rows = []
    for i in range(n):
        paths = write_patient(
            tmp_path / f"P{i}", "img", shift=(i - 1.0, 0.5 * i, 0.0), seed=i, uptake=UPTAKES[i]
        )
        rows.append(
            {
                "patient_id": f"P{i}",
                **{k: str(v.relative_to(tmp_path)) for k, v in paths.items()},
                # higher uptake, earlier event
                "time": 1000.0 - 100 * i,
                "event": 1,
                "age": 50.0 + i,
            }
        )
    table = pd.DataFrame(rows)
    for key, values in columns.items():
        table[key] = values
    table.to_csv(tmp_path / "cohort.csv", index=False)
    return table


def test_load_manifest(tmp_path):
    table = write_manifest(tmp_path, event=[1, 0, "true", "False"])
    X, y, ids, geometries = load_manifest(
        tmp_path / "cohort.csv", clinical_columns=["age"], preprocessing=SMALL, return_geometry=True
    )
    assert X.dtype.names == ("ct", "pet", "mask", "age", "spacing")
    assert X["pet"].shape == (4, 8, 8, 8)
    # the preprocessed grid's spacing, (D, H, W) = reversed SimpleITK (x, y, z)
    for row, geometry in zip(X["spacing"], geometries, strict=True):
        np.testing.assert_allclose(row, geometry.grid.spacing[::-1])
    check_cohort(X, require_mask=True)
    expected_y = Surv.from_arrays([True, False, True, False], table["time"])
    np.testing.assert_array_equal(y, expected_y)
    assert ids.tolist() == ["P0", "P1", "P2", "P3"]
    np.testing.assert_array_equal(X["age"], table["age"])
    # the same as preprocessing the files directly, in manifest order
    cases = [{k: tmp_path / table.loc[i, k] for k in ("ct", "pet", "mask")} for i in range(4)]
    direct = preprocess(cases, SMALL)
    for key in ("ct", "pet", "mask"):
        np.testing.assert_array_equal(X[key], direct.volumes[key])
    assert geometries == direct.geometries
    back = to_original_space(X["mask"][2], geometries[2])
    assert back.GetSize() == sitk.ReadImage(str(tmp_path / table.loc[2, "ct"])).GetSize()


def test_manifest_without_ids_or_mask(tmp_path):
    write_manifest(tmp_path, n=2)
    X, y, ids = load_manifest(
        tmp_path / "cohort.csv",
        id_column=None,
        mask_column=None,
        image_columns={"pet": "pet"},
        preprocessing=Preprocessing(reference="pet", crop=None, spacing=6.0),
    )
    assert X.dtype.names == ("pet", "spacing") and ids.tolist() == ["0", "1"]
    np.testing.assert_allclose(X["spacing"], 6.0)


def test_dicom_pet_in_a_manifest_becomes_suv(tmp_path):
    table = write_manifest(tmp_path, n=2)
    # patient P1's PET, again, as a DICOM series in Bq/mL
    suv = make_patient(shift=(0.0, 0.5, 0.0), seed=1, uptake=UPTAKES[1])["pet"]
    bqml = sitk.GetArrayFromImage(suv) / HAND_FACTOR
    files = write_dicom_series(
        tmp_path / "P1" / "pet_dicom",
        bqml,
        spacing=suv.GetSpacing(),
        origin=suv.GetOrigin(),
        tags=PET_TAGS,
        slopes=[bqml.max() / 30000] * len(bqml),
    )
    for f in files:
        insert_sequence(f, [RADIOPHARMACEUTICAL])
    table.loc[1, "pet"] = "P1/pet_dicom"
    table.to_csv(tmp_path / "dicom.csv", index=False)
    X_nifti, _, _ = load_manifest(tmp_path / "cohort.csv", preprocessing=RAW)
    X_dicom, _, _ = load_manifest(tmp_path / "dicom.csv", preprocessing=RAW)
    np.testing.assert_allclose(X_dicom["pet"], X_nifti["pet"], atol=1e-3)
    assert 4.0 < X_dicom["pet"][1].max() < 5.01  # SUV (tumour 1 + 4), not Bq/mL (~17500)


def test_file_based_cohort_goes_through_cross_val_score(tmp_path):
    write_manifest(tmp_path, n=6)
    X, y, _ = load_manifest(tmp_path / "cohort.csv", preprocessing=RAW)
    scores = cross_val_score(
        MeanUptake(use_mask=False), X, y, cv=KFold(2, shuffle=True, random_state=0)
    )
    # risk = mean SUV grows with uptake and times fall with it: every pair concordant
    np.testing.assert_array_equal(scores, [1.0, 1.0])


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda t: t.drop(columns="time"), ValueError, r"column\(s\) \['time'\] not found"),
        (
            lambda t: t.assign(pet=["P0/missing.nii.gz", *t.pet[1:]]),
            FileNotFoundError,
            r"cohort.csv line 2 \(patient 'P0'\): 'pet' file not found: .*missing.nii.gz",
        ),
        (
            lambda t: t.assign(mask=[t["mask"][0], None, *t["mask"][2:]]),
            FileNotFoundError,
            r"line 3 \(patient 'P1'\): column 'mask' is empty",
        ),
        (
            lambda t: t.assign(event=[1, "maybe", 2, 0]),
            ValueError,
            r"(?s)line 3 \(patient 'P1'\): 'event' is 'maybe'.*line 4 \(patient 'P2'\): 'event' "
            r"is '2'",
        ),
        (
            lambda t: t.assign(time=[1.0, -5.0, np.nan, 3.0]),
            ValueError,
            r"(?s)must hold non-negative.*line 3 \(patient 'P1'\): 'time' is -5.0.*line 4",
        ),
        (
            lambda t: t.assign(patient_id=["A", "B", "A", "C"]),
            ValueError,
            r"patient id\(s\) \['A'\] appear more than once",
        ),
        (
            lambda t: t.assign(age=["old", 1, 2, 3]),
            ValueError,
            r"clinical column\(s\) \['age'\] are not numeric",
        ),
    ],
)
def test_manifest_errors(tmp_path, edit, error, message):
    table = write_manifest(tmp_path)
    edit(table).to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(error, match=message):
        load_manifest(tmp_path / "cohort.csv", clinical_columns=["age"], preprocessing=SMALL)


def test_manifest_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------- HECKTOR


def write_hecktor(root, ids=("CHUP-001", "CHUP-002", "MDA-010", "HGJ-007")):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i, pid in enumerate([*ids, "CHUV-099"]):  # the last one is Task-1-only
        case = make_patient(shift=(i - 1.5, 1.0 - i, 0.0), seed=i, uptake=UPTAKES[i])
        sitk.WriteImage(case["ct"], str(root / "imagesTr" / f"{pid}__CT.nii.gz"))
        sitk.WriteImage(case["pet"], str(root / "imagesTr" / f"{pid}__PT.nii.gz"))
        sitk.WriteImage(case["mask"], str(root / "labelsTr" / f"{pid}.nii.gz"))
    endpoint = pd.DataFrame(
        {"PatientID": list(ids), "Relapse": [1, 0, 1, 0], "RFS": [400.0, 1500.0, 250.0, 900.0]}
    )
    endpoint.to_csv(root / "hecktor2022_endpoint_training.csv", index=False)
    clinical = pd.DataFrame(
        {
            "PatientID": [*ids, "CHUV-099"],
            "Age": [60, 55, 71, 48, 66],
            "Gender": ["M", "F", "M", "M", "F"],
        }
    )
    clinical.to_csv(root / "hecktor2022_clinical_info_training.csv", index=False)
    return endpoint


def test_load_hecktor(tmp_path):
    endpoint = write_hecktor(tmp_path)
    X, y, ids, geometries = load_hecktor(
        tmp_path, clinical_columns=["Age"], preprocessing=SMALL, return_geometry=True
    )
    assert ids.tolist() == list(endpoint["PatientID"])  # CHUV-099 has no endpoint
    np.testing.assert_array_equal(y, Surv.from_arrays(endpoint["Relapse"], endpoint["RFS"]))
    np.testing.assert_array_equal(X["Age"], [60, 55, 71, 48])
    check_cohort(X, require_mask=True)
    # the mask is label 1 only: it matches preprocessing the primary tumour alone
    direct = preprocess(
        [
            {
                "ct": tmp_path / "imagesTr" / f"{i}__CT.nii.gz",
                "pet": tmp_path / "imagesTr" / f"{i}__PT.nii.gz",
                "mask": tmp_path / "labelsTr" / f"{i}.nii.gz",
            }
            for i in ids
        ],
        Preprocessing(spacing=3.0, crop_size=(8, 8, 8), mask_labels=(1,)),
    )
    np.testing.assert_array_equal(X["mask"], direct.volumes["mask"])
    assert geometries == direct.geometries


def test_hecktor_labels_choose_the_mask(tmp_path):
    write_hecktor(tmp_path)
    whole = Preprocessing(spacing=3.0, crop=None)
    X1, _, _ = load_hecktor(tmp_path, labels=(1,), preprocessing=whole, patients=["MDA-010"])
    X12, _, ids = load_hecktor(tmp_path, labels=(1, 2), preprocessing=whole, patients=["MDA-010"])
    label_image = sitk.ReadImage(str(tmp_path / "labelsTr" / "MDA-010.nii.gz"))
    labels = sitk.GetArrayFromImage(
        sitk.Resample(
            label_image,
            X1["mask"].shape[1:][::-1],
            sitk.Transform(),
            sitk.sitkNearestNeighbor,
            label_image.GetOrigin(),
            (3.0, 3.0, 3.0),
            label_image.GetDirection(),
            0,
        )
    )
    np.testing.assert_array_equal(X1["mask"][0], labels == 1)
    np.testing.assert_array_equal(X12["mask"][0], labels > 0)
    assert X12["mask"].sum() > X1["mask"].sum() and ids.tolist() == ["MDA-010"]


def test_hecktor_empty_masks(tmp_path):
    write_hecktor(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"patient\(s\) \['CHUP-001', 'CHUP-002', 'MDA-010', "
        r"'HGJ-007'\] contain none of the labels \(3,\)",
    ):
        load_hecktor(tmp_path, labels=(3,), preprocessing=SMALL)
    # a patient with lymph nodes only
    nodes_only = sitk.ReadImage(str(tmp_path / "labelsTr" / "MDA-010.nii.gz")) == 2
    sitk.WriteImage(nodes_only * 2, str(tmp_path / "labelsTr" / "MDA-010.nii.gz"))
    with pytest.raises(ValueError, match=r"\['MDA-010'\] contain none of the labels \(1,\)"):
        load_hecktor(tmp_path, preprocessing=SMALL)
    with pytest.warns(
        UserWarning,
        match=r"left out 1 patient\(s\) without labels \(1,\): "
        r"\['MDA-010'\]",
    ):
        X, y, ids = load_hecktor(tmp_path, preprocessing=SMALL, drop_empty_masks=True)
    assert ids.tolist() == ["CHUP-001", "CHUP-002", "HGJ-007"] and len(X) == len(y) == 3


def test_hecktor_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="HECKTOR folder not found"):
        load_hecktor(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="endpoint table not found"):
        load_hecktor(tmp_path)
    write_hecktor(tmp_path)
    (tmp_path / "imagesTr" / "MDA-010__PT.nii.gz").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"hecktor2022_endpoint_training.csv line 4 "
        r"\(patient 'MDA-010'\): .*MDA-010__PT.nii.gz",
    ):
        load_hecktor(tmp_path, preprocessing=SMALL)
    with pytest.raises(ValueError, match=r"column\(s\) \['PFS'\] not found"):
        load_hecktor(tmp_path, time_column="PFS")
    with pytest.raises(ValueError, match=r"patient\(s\) \['XYZ-1'\] are not in"):
        load_hecktor(tmp_path, patients=["XYZ-1"])
    with pytest.raises(ValueError, match=r"clinical column\(s\) \['Gender'\] are not numeric"):
        load_hecktor(
            tmp_path, patients=["CHUP-001"], clinical_columns=["Gender"], preprocessing=SMALL
        )
    with pytest.raises(ValueError, match=r"column\(s\) \['Weight'\] not found"):
        load_hecktor(tmp_path, clinical_columns=["Weight"])
    flat_pet = sitk.Image([40, 40, 40], sitk.sitkFloat32) + 1.0  # constant: no z-score
    flat_pet.SetOrigin((-60.0, -60.0, -60.0))
    flat_pet.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(flat_pet, str(tmp_path / "imagesTr" / "MDA-010__PT.nii.gz"))
    with pytest.raises(PreprocessingError, match="patient 'MDA-010': pet image: zscore"):
        load_hecktor(tmp_path, preprocessing=SMALL, patients=["MDA-010"])


def test_hecktor_gives_label_1_as_mask_and_label_2_as_nodes(tmp_path):
    write_hecktor(tmp_path)
    whole = Preprocessing(spacing=3.0, crop=None)
    X, _, _ = load_hecktor(tmp_path, preprocessing=whole, patients=["MDA-010"])
    assert X.dtype.names == ("ct", "pet", "mask", "nodes", "spacing")
    label_image = sitk.ReadImage(str(tmp_path / "labelsTr" / "MDA-010.nii.gz"))
    labels = sitk.GetArrayFromImage(
        sitk.Resample(
            label_image,
            X["mask"].shape[1:][::-1],
            sitk.Transform(),
            sitk.sitkNearestNeighbor,
            label_image.GetOrigin(),
            (3.0, 3.0, 3.0),
            label_image.GetDirection(),
            0,
        )
    )
    np.testing.assert_array_equal(X["mask"][0], labels == 1)
    np.testing.assert_array_equal(X["nodes"][0], labels == 2)
    assert X["nodes"].any()
    check_cohort(X, require_mask=True, require_nodes=True)
    # the earlier cohort: merged labels, no node field
    merged, _, _ = load_hecktor(
        tmp_path, labels=(1, 2), nodes_label=None, preprocessing=whole, patients=["MDA-010"]
    )
    assert merged.dtype.names == ("ct", "pet", "mask", "spacing")
    np.testing.assert_array_equal(merged["mask"][0], labels > 0)
    with pytest.raises(ValueError, match="nodes_label is empty"):
        load_hecktor(tmp_path, nodes_label=(), preprocessing=whole)


def test_hecktor_patient_without_nodes_has_an_empty_node_mask(tmp_path):
    write_hecktor(tmp_path)
    path = tmp_path / "labelsTr" / "CHUP-002.nii.gz"
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[array == 2] = 0
    no_nodes = sitk.GetImageFromArray(array)
    no_nodes.CopyInformation(image)
    sitk.WriteImage(no_nodes, str(path))
    X, _, ids = load_hecktor(tmp_path, preprocessing=SMALL)
    has = X["nodes"].reshape(len(X), -1).any(axis=1)
    assert not has[ids.tolist().index("CHUP-002")] and has.sum() >= 1
    check_cohort(X, require_mask=True, require_nodes=True)


def test_manifest_nodes_column(tmp_path):
    table = write_manifest(tmp_path)
    table["nodes"] = table["mask"]  # the label image again, its label 2
    table.loc[2, "nodes"] = ""  # patient P2: no nodes
    table.to_csv(tmp_path / "cohort.csv", index=False)
    whole = Preprocessing(spacing=3.0, crop_size=(12, 12, 12), intensity={})
    X, _, _ = load_manifest(
        tmp_path / "cohort.csv", labels=(1,), nodes_labels=(2,), preprocessing=whole
    )
    assert X.dtype.names == ("ct", "pet", "mask", "nodes", "spacing")
    per_patient = X["nodes"].reshape(len(X), -1).sum(axis=1)
    assert per_patient[2] == 0 and (np.delete(per_patient, 2) > 0).all()
    assert not (X["nodes"] & X["mask"]).any()
    # the node is a 4 mm ball: its volume on a 3 mm grid, within discretisation
    node_mm3 = np.delete(per_patient, 2) * 27.0
    assert np.all(np.abs(node_mm3 - 4 / 3 * np.pi * 4.0**3) < 0.6 * 4 / 3 * np.pi * 4.0**3)
    without, _, _ = load_manifest(tmp_path / "cohort.csv", nodes_column=None, preprocessing=whole)
    assert "nodes" not in without.dtype.names
    table.loc[1, "nodes"] = "P1/missing.nii.gz"
    table.to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(
        FileNotFoundError, match="line 3 \\(patient 'P1'\\).*'nodes' file not found"
    ):
        load_manifest(tmp_path / "cohort.csv", preprocessing=whole)
    with pytest.raises(ValueError, match="'nodes' is reserved"):
        load_manifest(tmp_path / "cohort.csv", image_columns={"nodes": "pet"})
