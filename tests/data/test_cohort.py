import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sksurv.metrics import concordance_index_censored

from survseg.data.cohort import (
    clinical_fields,
    clinical_frame,
    from_dataframe,
    image_fields,
    load_cohort,
    mask_fields,
    save_cohort,
    volume_shape,
    volumes,
)
from survseg.data.validation import check_cohort
from tests.conftest import MeanUptake, sphere_cohort


def test_volumes_fields_dtypes_and_views():
    rng = np.random.default_rng(0)
    pet, ct = rng.random((3, 4, 5, 6)), rng.random((3, 4, 5, 6))
    mask = (pet > 0.5).astype(int)
    X = volumes(pet=pet, ct=ct, mask=mask, age=[50.0, 60.0, 70.0], stage=np.array([1, 2, 3]))
    assert X.dtype.names == ("pet", "ct", "mask", "age", "stage")
    assert X["pet"].dtype == np.float32 and X["mask"].dtype == np.uint8
    assert X["stage"].dtype.kind == "i"
    np.testing.assert_allclose(X["pet"], pet.astype(np.float32))
    np.testing.assert_array_equal(X["mask"], mask)
    assert image_fields(X) == ["pet", "ct"]
    assert mask_fields(X) == ["mask"]
    assert clinical_fields(X) == ["age", "stage"]
    assert volume_shape(X) == (4, 5, 6)
    sub = X[[2, 0]]
    np.testing.assert_allclose(sub["ct"][0], ct[2].astype(np.float32))
    assert list(clinical_frame(X)["age"]) == [50.0, 60.0, 70.0]


def test_other_modality_names():
    X = volumes(t1=np.zeros((2, 3, 3, 3)), t2=np.ones((2, 3, 3, 3)))
    assert image_fields(X) == ["t1", "t2"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"age": [1.0, 2.0]}, "at least one image"),
        ({"pet": np.zeros((2, 3, 3, 3)), "ct": np.zeros((2, 3, 3, 4))}, "differ in shape"),
        ({"pet": np.zeros((2, 3, 3, 3)), "mask": np.full((2, 3, 3, 3), 2)}, "binary"),
        ({"pet": np.zeros((2, 3, 3, 3)), "age": [1.0, 2.0, 3.0]}, "lengths"),
        ({"pet": np.zeros((2, 3, 3))}, "shape"),
    ],
)
def test_volumes_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        volumes(**kwargs)


def test_from_dataframe():
    df = pd.DataFrame({"age": [60.0, 70.0], "hpv": [0, 1]})
    X = from_dataframe(df, pet=np.zeros((2, 3, 3, 3)))
    assert clinical_fields(X) == ["age", "hpv"]
    with pytest.raises(ValueError, match="not numeric"):
        from_dataframe(pd.DataFrame({"site": ["a", "b"]}), pet=np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="clash"):
        from_dataframe(pd.DataFrame({"pet": [1.0, 2.0]}), pet=np.zeros((2, 3, 3, 3)))


def test_save_load_memmap_roundtrip(tmp_path):
    X, y = sphere_cohort(n=10)
    path = tmp_path / "cohort.npy"
    save_cohort(path, X)
    Xm = load_cohort(path)
    assert isinstance(Xm, np.memmap)
    assert Xm.dtype == X.dtype
    np.testing.assert_array_equal(Xm["pet"], X["pet"])
    # estimators and CV work on the memory-mapped cohort unchanged
    scores_mem = cross_val_score(MeanUptake(), Xm, y, cv=KFold(2))
    scores_ram = cross_val_score(MeanUptake(), X, y, cv=KFold(2))
    np.testing.assert_allclose(scores_mem, scores_ram)


def test_cohort_passes_through_sklearn_model_selection():
    X, y = sphere_cohort(n=12)
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(MeanUptake(), X, y, cv=cv, n_jobs=2)
    # independent reference: sksurv's C-index on each test fold, computed by hand
    expected = []
    for tr, te in cv.split(X):
        risk = MeanUptake().fit(X[tr], y[tr]).predict(X[te])
        expected.append(concordance_index_censored(y["event"][te], y["time"][te], risk)[0])
    np.testing.assert_allclose(scores, expected)
    search = GridSearchCV(MeanUptake(), {"use_mask": [True, False]}, cv=cv, n_jobs=2).fit(X, y)
    assert search.best_params_["use_mask"] in (True, False)


def test_nodes_are_a_mask_field_never_an_image_or_clinical_field():
    rng = np.random.default_rng(0)
    pet = rng.random((3, 4, 5, 6))
    mask = np.zeros((3, 4, 5, 6), np.uint8)
    mask[:, 1:3, 1:3, 1:3] = 1
    nodes = np.zeros_like(mask)
    nodes[0, 0, 0, :2] = 1  # patients 1 and 2 have no nodes: valid
    X = volumes(pet=pet, mask=mask, nodes=nodes, age=[50.0, 60.0, 70.0])
    assert X.dtype.names == ("pet", "mask", "nodes", "age")
    assert X["nodes"].dtype == np.uint8
    assert image_fields(X) == ["pet"] and clinical_fields(X) == ["age"]
    assert mask_fields(X) == ["mask", "nodes"]
    check_cohort(X, require_mask=True, require_nodes=True)
    with pytest.raises(ValueError, match="nodes must be binary.*patient 1"):
        volumes(pet=pet, nodes=nodes + np.array([0, 2, 0])[:, None, None, None])
    with pytest.raises(ValueError, match="differ in shape"):
        volumes(pet=pet, nodes=nodes[:, :3])
    with pytest.raises(ValueError, match="clash"):
        from_dataframe(pd.DataFrame({"nodes": [1.0, 2.0, 3.0]}), pet=pet)
    bad = X.copy()
    bad["nodes"][2, 0, 0, 0] = 3
    with pytest.raises(
        ValueError, match="'nodes' \\(lymph-node masks\\) is not binary for patient 2"
    ):
        check_cohort(bad)
    check_cohort(bad, check_values=False)  # values are only scanned with check_values
    with pytest.raises(ValueError, match="lymph-node masks are needed"):
        check_cohort(volumes(pet=pet, mask=mask), require_nodes=True)
    floats = np.zeros(3, dtype=[("pet", np.float32, (4, 5, 6)), ("nodes", np.float32, (4, 5, 6))])
    with pytest.raises(TypeError, match="'nodes' \\(lymph-node masks\\) has dtype"):
        check_cohort(floats)
    wrong = np.zeros(3, dtype=[("pet", np.float32, (4, 5, 6)), ("nodes", np.uint8, (4, 5, 5))])
    with pytest.raises(ValueError, match="differ in shape"):
        check_cohort(wrong)
