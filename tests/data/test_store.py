import numpy as np
import pytest

from survseg.data.store import load_dataset, save_dataset
from tests.conftest import sphere_cohort


def test_dataset_roundtrip(tmp_path):
    X, y = sphere_cohort(n=5)
    geoms = [{"spacing": [1.0, 1.0, 1.0], "origin": np.array([0.0, 1.0, 2.0])} for _ in range(5)]
    save_dataset(tmp_path / "ds", X, y, ["a", "b", "c", "d", "e"], geoms, {"spacing": 1.0})
    ds = load_dataset(tmp_path / "ds")
    assert isinstance(ds.X, np.memmap)
    np.testing.assert_array_equal(ds.X["mask"], X["mask"])
    np.testing.assert_array_equal(ds.y, y)
    assert ds.patient_ids == ["a", "b", "c", "d", "e"]
    assert ds.geometries[0]["origin"] == [0.0, 1.0, 2.0]
    assert ds.metadata == {"spacing": 1.0}


def test_dataset_without_outcomes_and_errors(tmp_path):
    X, _ = sphere_cohort(n=3)
    save_dataset(tmp_path / "ds", X)
    ds = load_dataset(tmp_path / "ds")
    assert ds.y is None and ds.patient_ids == ["0", "1", "2"]
    with pytest.raises(ValueError, match="2 patient ids for 3"):
        save_dataset(tmp_path / "bad", X, patient_ids=["a", "b"])
    with pytest.raises(FileNotFoundError, match="not a survseg dataset"):
        load_dataset(tmp_path / "nothing")
