"""load_manifest: a CSV manifest of tiny NIfTI/DICOM files read back into (X, y, patient_ids);
every bad input gets an error naming line and patient; a file-based cohort goes through
scikit-learn's cross_val_score."""

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.model_selection import KFold, cross_val_score
from sksurv.util import Surv

from survseg.data.validation import check_cohort
from survseg.datasets import load_manifest
from survseg.preprocess import Preprocessing, preprocess, to_original_space
from tests.conftest import MeanUptake
from tests.data.test_io import write_dicom_series
from tests.data.test_suv import HAND_FACTOR, PET_TAGS, RADIOPHARMACEUTICAL, insert_sequence
from tests.datasets.cohort_files import RAW, SMALL, UPTAKES, write_manifest
from tests.preprocess.conftest import make_patient


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
