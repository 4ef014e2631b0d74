import numpy as np
import pytest
from sksurv.util import Surv

from survseg.data.cohort import volumes
from survseg.data.validation import check_cohort, check_survival
from tests.conftest import sphere_cohort


def test_valid_cohort_passes(small_cohort):
    X, y = small_cohort
    assert check_cohort(X, require_mask=True, clinical=["age"]) is X
    event, time = check_survival(y, len(X))
    assert event.dtype == bool and time.dtype == np.float64


def test_not_structured():
    with pytest.raises(TypeError, match="structured array"):
        check_cohort(np.zeros((3, 4, 4, 4)))
    with pytest.raises(TypeError, match="structured array"):
        check_cohort([1, 2])


def test_no_image_field():
    X = np.zeros(3, dtype=[("age", float)])
    with pytest.raises(ValueError, match="no image field"):
        check_cohort(X)


def test_shapes_differ():
    X = np.zeros(2, dtype=[("pet", np.float32, (3, 3, 3)), ("ct", np.float32, (3, 3, 4))])
    with pytest.raises(ValueError, match="differ in shape"):
        check_cohort(X)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_voxels_named(value):
    X, _ = sphere_cohort(n=10)
    X["ct"][9, 1, 2, 3] = value
    with pytest.raises(ValueError, match="'ct' has NaN or infinite voxels for patient 9"):
        check_cohort(X)


def test_mask_not_binary_and_empty():
    X, _ = sphere_cohort(n=4)
    X["mask"][1, 0, 0, 0] = 2
    with pytest.raises(ValueError, match="not binary"):
        check_cohort(X, require_mask=True)
    X, _ = sphere_cohort(n=4)
    X["mask"][3] = 0
    with pytest.raises(ValueError, match="empty for patient 3"):
        check_cohort(X, require_mask=True)


def test_missing_mask_and_wrong_mask_dtype():
    X = volumes(pet=np.ones((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="needs tumour masks"):
        check_cohort(X, require_mask=True)
    X = np.zeros(2, dtype=[("pet", np.float32, (3, 3, 3)), ("mask", np.float32, (3, 3, 3))])
    with pytest.raises(TypeError, match="uint8"):
        check_cohort(X)


def test_integer_image_is_an_image_and_missing_modality():
    # scanners store CT as int16: the field is an image by its name, not a mask by its dtype
    X = np.zeros(2, dtype=[("pet", np.float32, (3, 3, 3)), ("ct", np.int16, (3, 3, 3))])
    X["pet"] = 1.0
    assert check_cohort(X, modalities=["pet", "ct"]) is X
    with pytest.raises(ValueError, match="are masks"):
        check_cohort(
            volumes(pet=np.ones((2, 3, 3, 3)), mask=np.ones((2, 3, 3, 3))), modalities=["mask"]
        )
    with pytest.raises(ValueError, match="modality field"):
        check_cohort(volumes(pet=np.ones((2, 3, 3, 3))), modalities=["pet", "ct"])


def test_clinical_nan_and_missing():
    X = volumes(pet=np.ones((3, 3, 3, 3)), age=[1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"'age' is NaN or infinite for patient 1;"):
        check_cohort(X, clinical=["age"])
    with pytest.raises(ValueError, match="clinical field"):
        check_cohort(X, clinical=["stage"])


def test_survival_errors():
    with pytest.raises(TypeError, match="Surv.from_arrays"):
        check_survival(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="boolean"):
        check_survival(np.array([(1, 2.0)], dtype=[("e", int), ("t", float)]))
    with pytest.raises(ValueError, match="negative"):
        check_survival(Surv.from_arrays([True, False], [-1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        check_survival(np.array([(True, np.nan)], dtype=[("e", bool), ("t", float)]))
    with pytest.raises(ValueError, match="no events"):
        check_survival(Surv.from_arrays([False, False], [1.0, 2.0]))
    with pytest.raises(ValueError, match="3 patients but y has 2"):
        check_survival(Surv.from_arrays([True, False], [1.0, 2.0]), n_samples=3)
