"""Tiny PET/CT cohorts on disk for the loaders' tests (and the docs' examples): a CSV
manifest of NIfTI files and the HECKTOR 2022 training layout."""

import pandas as pd
import SimpleITK as sitk

from survseg.preprocess import Preprocessing
from tests.preprocess.conftest import make_patient, write_patient

SMALL = Preprocessing(spacing=3.0, crop_size=(8, 8, 8))
RAW = Preprocessing(spacing=3.0, crop_size=(8, 8, 8), intensity={})
UPTAKES = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def write_manifest(tmp_path, n=4, **columns):
    """Write ``n`` patients and ``cohort.csv`` under ``tmp_path``; ``columns`` replace columns of
    the table (one value a patient). Returns the table as written."""
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


def write_hecktor(root, ids=("CHUP-001", "CHUP-002", "MDA-010", "HGJ-007")):
    """Write the HECKTOR 2022 layout under ``root``: ``ids`` with endpoints and one more
    patient (Task-1-only) with images and clinical data but no endpoint."""
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
