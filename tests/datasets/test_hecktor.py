"""load_hecktor: the HECKTOR 2022 training layout, written as tiny NIfTI files, read back into
(X, y, patient_ids), with the tumour and node labels; every bad input gets an error naming the
patient."""

import numpy as np
import pytest
import SimpleITK as sitk
from sksurv.util import Surv

from survseg.data.validation import check_cohort
from survseg.datasets import load_hecktor
from survseg.preprocess import Preprocessing, PreprocessingError, preprocess
from tests.datasets.cohort_files import SMALL, write_hecktor


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
