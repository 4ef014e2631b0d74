import os

import numpy as np
import pytest
import SimpleITK as sitk

import survseg.preprocess.pipeline as pipeline
from survseg.data.cohort import volumes as make_cohort
from survseg.data.io import select_labels
from survseg.data.validation import check_cohort
from survseg.preprocess import (
    Preprocessing,
    PreprocessingError,
    box_around_point,
    crop_or_pad,
    mask_centroid,
    preprocess,
    preprocess_case,
    resample_to_reference,
    resample_to_spacing,
    to_image,
    to_original_space,
    window,
)
from tests.preprocess.conftest import OBLIQUE, make_patient, write_patient

RAW = {}  # no intensity normalisation


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_known_physical_point_lands_on_the_right_voxel():
    # CT with an oblique direction and anisotropic voxels; a bright voxel at a known point.
    ct = sitk.Image([30, 28, 12], sitk.sitkFloat32)
    ct.SetSpacing((1.5, 1.5, 3.0))
    ct.SetOrigin((-20.0, 12.0, 40.0))
    ct.SetDirection(OBLIQUE)
    ct = ct - 1000.0
    ct[10, 8, 4] = 3000.0
    point = ct.TransformIndexToPhysicalPoint((10, 8, 4))  # on the 1 mm grid: (15, 12, 12) mm
    # PET: another grid (3 mm, origin 3 mm off), its bright voxel 6 mm away along the CT axes
    pet = sitk.Image([16, 15, 13], sitk.sitkFloat32)
    pet.SetSpacing((3.0, 3.0, 3.0))
    pet.SetDirection(OBLIQUE)
    pet.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint((-2.0, -2.0, -1.0)))
    pet_point = ct.TransformContinuousIndexToPhysicalPoint((14.0, 8.0, 4.0))
    pet[pet.TransformPhysicalPointToIndex(pet_point)] = 50.0
    assert np.allclose(
        pet.TransformIndexToPhysicalPoint(pet.TransformPhysicalPointToIndex(pet_point)), pet_point
    )
    mask = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(ct)
    mask[12:15, 6:9, 3:6] = 1
    p = Preprocessing(spacing=1.0, crop="tumour", crop_size=(14, 15, 16), intensity=RAW)
    arrays, geometry = preprocess_case({"ct": ct, "pet": pet, "mask": mask}, p)
    assert arrays["ct"].shape == (14, 15, 16)  # crop_size is (D, H, W), the array shape
    out = to_image(arrays["ct"], geometry)
    x, y, z = out.TransformPhysicalPointToIndex(point)  # SimpleITK is the reference
    assert arrays["ct"][z, y, x] == pytest.approx(3000.0)
    assert np.unravel_index(arrays["ct"].argmax(), arrays["ct"].shape) == (z, y, x)
    x, y, z = out.TransformPhysicalPointToIndex(pet_point)
    assert arrays["pet"][z, y, x] == pytest.approx(50.0)
    assert np.unravel_index(arrays["pet"].argmax(), arrays["pet"].shape) == (z, y, x)
    assert geometry.original.size == (30, 28, 12) and geometry.grid.spacing == (1.0, 1.0, 1.0)


def test_pipeline_equals_the_composed_steps():
    case = make_patient()
    size = (10, 9, 8)  # SimpleITK's (x, y, z) for the composed steps
    p = Preprocessing(spacing=2.0, crop="tumour", crop_size=size[::-1], intensity=RAW)
    arrays, geometry = preprocess_case(case, p)
    ct = resample_to_spacing(case["ct"], 2.0, default_value=-1024.0)
    pet = resample_to_reference(case["pet"], ct)
    tumour = select_labels(case["mask"])
    mask = resample_to_reference(tumour, ct, interpolator="nearest")
    start = box_around_point(ct, mask_centroid(tumour), size)
    for name, image, pad in (("ct", ct, -1024.0), ("pet", pet, 0.0), ("mask", mask, 0)):
        expected = sitk.GetArrayFromImage(crop_or_pad(image, start, size, pad_value=pad))
        np.testing.assert_allclose(arrays[name], expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(geometry.grid.origin, ct.TransformIndexToPhysicalPoint(start))
    assert arrays["ct"].dtype == np.float32 and arrays["mask"].dtype == np.uint8


def test_default_intensity_pet_zscore_ct_window():
    case = make_patient()
    geometry_params = dict(spacing=2.0, crop="tumour", crop_size=(10, 10, 10))
    raw, _ = preprocess_case(case, Preprocessing(**geometry_params, intensity=RAW))
    out, _ = preprocess_case(case, Preprocessing(**geometry_params))
    pet = raw["pet"].astype(np.float64)
    np.testing.assert_allclose(out["pet"], (pet - pet.mean()) / pet.std(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["ct"], np.clip(raw["ct"], -1024, 1024) / 1024, atol=1e-6)
    deepmts_like, _ = preprocess_case(
        case, Preprocessing(**geometry_params, intensity={"ct": "zscore", "pet": None})
    )
    ct = raw["ct"].astype(np.float64)
    np.testing.assert_allclose(deepmts_like["ct"], (ct - ct.mean()) / ct.std(), atol=1e-4)
    np.testing.assert_allclose(deepmts_like["pet"], raw["pet"])


def test_box_leaving_the_image_is_padded():
    case = make_patient()
    p = Preprocessing(spacing=2.0, crop="tumour", crop_size=(40, 40, 40), intensity=RAW)
    arrays, _ = preprocess_case(case, p)
    assert arrays["ct"][0, 0, 0] == -1024.0 and arrays["pet"][0, 0, 0] == 0.0
    assert arrays["mask"][0, 0, 0] == 0
    windowed, _ = preprocess_case(case, Preprocessing(spacing=2.0, crop_size=(40, 40, 40)))
    assert windowed["ct"][0, 0, 0] == -1.0  # -1024 HU -> -1
    np.testing.assert_allclose(windowed["ct"], window(arrays["ct"]))


def test_mask_labels_choose_the_mask():
    case = make_patient()
    p = dict(spacing=2.0, crop=None, intensity=RAW)
    tumour, _ = preprocess_case(case, Preprocessing(**p, mask_labels=(1,)))
    both, _ = preprocess_case(case, Preprocessing(**p, mask_labels=(1, 2)))
    expected = resample_to_spacing(case["mask"], 2.0, interpolator="nearest")
    labels = sitk.GetArrayFromImage(expected)
    np.testing.assert_array_equal(tumour["mask"], labels == 1)
    np.testing.assert_array_equal(both["mask"], labels > 0)


def test_registration_to_a_template_and_back(tmp_path):
    template = write_patient(tmp_path, "template")["ct"]
    shifts = [(4.0, -3.0, 3.0), (-3.0, 2.0, -3.0)]
    cases = [make_patient(shift, seed=i + 1) for i, shift in enumerate(shifts)]
    p = Preprocessing.deepmts(
        template=template,
        crop_center=(0.0, 0.0, 0.0),
        spacing=2.0,
        crop_size=(14, 14, 12),
        intensity=RAW,
        mask_labels=(1,),
        registration=dict(shrink_factors=(2, 1), smoothing_sigmas=(1, 0)),
    )
    assert p.crop == "fixed" and p.intensity == RAW
    vols, geometries = preprocess(cases, p)
    reference, _ = preprocess_case(
        make_patient(),
        Preprocessing(
            spacing=2.0,
            crop="fixed",
            crop_center=(0.0, 0.0, 0.0),
            crop_size=(14, 14, 12),
            intensity=RAW,
            mask_labels=(1,),
        ),
    )
    for i, (case, geometry) in enumerate(zip(cases, geometries, strict=True)):
        # registered: the tumour sits where the template's does
        assert dice(vols["mask"][i], reference["mask"]) > 0.8
        np.testing.assert_allclose(geometry.transform[3:], shifts[i], atol=0.6)
        # and it goes back onto the patient's own CT grid
        back = to_original_space(vols["mask"][i], geometry)
        assert back.GetSize() == case["ct"].GetSize()
        original = sitk.GetArrayFromImage(case["mask"]) == 1
        assert dice(sitk.GetArrayFromImage(back) == 1, original) > 0.8
        np.testing.assert_allclose(mask_centroid(back), mask_centroid(case["mask"] == 1), atol=1.0)


def test_cohort_from_files_is_valid_with_parallel_jobs(tmp_path):
    cases = [write_patient(tmp_path, f"p{i}", shift=(i, -i, 0.5 * i), seed=i) for i in range(3)]
    p = Preprocessing(spacing=2.0, crop_size=(10, 10, 10))
    serial = preprocess(cases, p, ids=["a", "b", "c"])
    parallel = preprocess(cases, p, n_jobs=2)
    for key in ("ct", "pet", "mask"):
        np.testing.assert_array_equal(serial.volumes[key], parallel.volumes[key])
        assert serial.volumes[key].shape == (3, 10, 10, 10)
    assert serial.geometries == parallel.geometries
    X = make_cohort(**serial.volumes)
    check_cohort(X, require_mask=True)


def test_cache_is_used_and_invalidated_by_file_changes(tmp_path, monkeypatch):
    cases = [write_patient(tmp_path, f"p{i}", seed=i) for i in range(2)]
    p = Preprocessing(spacing=2.0, crop_size=(8, 8, 8))
    first = preprocess(cases, p, memory=tmp_path / "cache")

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(pipeline, "preprocess_case", fail)
    again = preprocess(cases, p, memory=tmp_path / "cache")  # from the cache
    np.testing.assert_array_equal(first.volumes["pet"], again.volumes["pet"])
    assert first.geometries == again.geometries
    # a changed file is a new cache key: the patient is recomputed
    sitk.WriteImage(make_patient(seed=7)["pet"], str(cases[1]["pet"]))
    os.utime(cases[1]["pet"], ns=(1, 10**18))
    with pytest.raises(AssertionError, match="recomputed"):
        preprocess(cases, p, memory=tmp_path / "cache")
    with pytest.raises(AssertionError, match="recomputed"):  # other parameters, new key
        preprocess(
            cases[:1], Preprocessing(spacing=2.0, crop_size=(6, 6, 6)), memory=tmp_path / "cache"
        )


def test_progress_bar(tmp_path, capsys):
    preprocess([make_patient()], Preprocessing(spacing=3.0, crop_size=(4, 4, 4)), verbose=True)
    assert "preprocess" in capsys.readouterr().err


def test_errors_name_the_patient(tmp_path):
    case = make_patient()
    p = Preprocessing(spacing=3.0, crop_size=(4, 4, 4))
    with pytest.raises(PreprocessingError, match=r"patient 'b': .*mask is empty for labels \(3,\)"):
        labelled_3 = {**case, "mask": (case["mask"] == 1) * 3}
        preprocess(
            [labelled_3, case],
            Preprocessing(spacing=3.0, crop_size=(4, 4, 4), mask_labels=(3,)),
            ids=["a", "b"],
        )
    with pytest.raises(PreprocessingError, match="patient '1': image not found: .*nope.nii.gz"):
        preprocess([case, {**case, "pet": tmp_path / "nope.nii.gz"}], p)
    with pytest.raises(
        ValueError,
        match=r"patient '1' has images \['ct', 'pet'\] but patient "
        r"'0' has \['ct', 'mask', 'pet'\]",
    ):
        preprocess([case, {"ct": case["ct"], "pet": case["pet"]}], p)
    no_mask = {"ct": case["ct"], "pet": case["pet"]}
    with pytest.raises(PreprocessingError, match="crop='tumour' needs a 'mask'"):
        preprocess([no_mask], p)
    with pytest.raises(PreprocessingError, match="reference modality 'ct' is not among"):
        preprocess([{"pet": case["pet"], "mask": case["mask"]}], p)
    moved = make_patient(shift=(6.0, 0.0, 0.0))
    with pytest.raises(PreprocessingError, match="mask is empty after resampling and cropping"):
        preprocess(
            [moved],
            Preprocessing(
                spacing=3.0, crop="fixed", crop_size=(3, 3, 3), crop_center=(-15.0, -15.0, -15.0)
            ),
        )
    small = {k: resample_to_spacing(v, 2.5, interpolator="nearest") for k, v in case.items()}
    with pytest.raises(PreprocessingError, match="preprocessed shape .* set crop="):
        preprocess([case, small], Preprocessing(spacing=None, crop=None))
    flat_pet = {**case, "pet": case["pet"] * 0 + 2.0}
    with pytest.raises(PreprocessingError, match="pet image: zscore: the image is constant"):
        preprocess([flat_pet], p)
    with pytest.raises(ValueError, match="no patients"):
        preprocess([], p)


def test_bad_parameters():
    with pytest.raises(ValueError, match="crop must be one of"):
        Preprocessing(crop="centre")
    with pytest.raises(ValueError, match="crop_size must be a positive integer or 3"):
        Preprocessing(crop_size=(160, 160))
    with pytest.raises(ValueError, match="intensity methods must be"):
        Preprocessing(intensity={"pet": "minmax"})
    with pytest.raises(ValueError, match="crop_center must be a physical point"):
        Preprocessing(crop_center=(1.0, 2.0))
    with pytest.raises(ValueError, match="no template"):
        Preprocessing(registration={"max_iter": 10})
    with pytest.raises(TypeError, match="preprocessing must be a Preprocessing"):
        preprocess([make_patient()], {"spacing": 1.0})


def _pwned(flag):
    os.environ[flag] = "1"


class _Boom:
    """Unpickling this runs code: it must never happen when the cache is read."""

    def __reduce__(self):
        return (_pwned, ("SURVSEG_CACHE_PWNED",))


def test_cache_holds_data_only_and_never_unpickles(tmp_path, monkeypatch):
    """Issue 15: the cache folder is npz + JSON read with allow_pickle=False."""
    monkeypatch.delenv("SURVSEG_CACHE_PWNED", raising=False)
    cases = [write_patient(tmp_path, "p0", seed=0)]
    p = Preprocessing(spacing=2.0, crop_size=(8, 8, 8))
    first = preprocess(cases, p, memory=tmp_path / "cache")
    files = list((tmp_path / "cache" / "survseg_preprocess").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as f:  # readable without pickle
        assert {"ct", "pet", "mask"} <= set(f.files)
    # a crafted cache file holding a pickle: refused, recomputed, nothing executed
    np.savez(files[0], pet=np.array([_Boom()], dtype=object))
    with pytest.warns(UserWarning, match="unreadable"):
        again = preprocess(cases, p, memory=tmp_path / "cache")
    assert "SURVSEG_CACHE_PWNED" not in os.environ
    np.testing.assert_array_equal(again.volumes["pet"], first.volumes["pet"])
    assert again.geometries == first.geometries


def test_result_carries_the_output_spacing(tmp_path):
    """Issue 15: the preprocessing output gives the cohort its spacing, (D, H, W) in mm."""
    from survseg.data.cohort import volumes

    cases = [write_patient(tmp_path, "p0", seed=0)]
    result = preprocess(cases, Preprocessing(spacing=(2.0, 3.0, 4.0), crop_size=(4, 4, 4)))
    np.testing.assert_allclose(result.spacing, [[2.0, 3.0, 4.0]])  # D, H, W = z, y, x
    assert result.geometries[0].grid.spacing == (4.0, 3.0, 2.0)  # SimpleITK's (x, y, z)
    X = volumes(**result.volumes, spacing=result.spacing)
    np.testing.assert_allclose(X["spacing"], [[2.0, 3.0, 4.0]])


def test_node_mask_goes_through_the_same_steps_as_the_tumour_mask():
    case = make_patient()
    case["nodes"] = case["mask"]  # one HECKTOR label image: 1 = tumour, 2 = nodes
    size = (20, 18, 14)  # (x, y, z): 40 x 36 x 28 mm around the tumour, the node is inside
    p = Preprocessing(
        spacing=2.0,
        crop="tumour",
        crop_size=size[::-1],  # (D, H, W)
        intensity=RAW,
        mask_labels=(1,),
        nodes_labels=(2,),
    )
    arrays, geometry = preprocess_case(case, p)
    # reference: the composed steps, on label 2 alone
    ct = resample_to_spacing(case["ct"], 2.0, default_value=-1024.0)
    tumour = select_labels(case["mask"], (1,))
    nodes = resample_to_reference(select_labels(case["mask"], (2,)), ct, interpolator="nearest")
    start = box_around_point(ct, mask_centroid(tumour), size)
    expected = sitk.GetArrayFromImage(crop_or_pad(nodes, start, size, pad_value=0))
    np.testing.assert_array_equal(arrays["nodes"], expected)
    assert arrays["nodes"].dtype == np.uint8 and arrays["nodes"].any()
    assert not (arrays["nodes"] & arrays["mask"]).any()
    # back in the original space the nodes overlay the original label 2
    back = sitk.GetArrayFromImage(to_original_space(arrays["nodes"], geometry))
    original = sitk.GetArrayFromImage(case["mask"]) == 2
    assert dice(back == 1, original) > 0.7
    # a patient without nodes (None, or a label image without label 2) gets an empty mask
    empty, _ = preprocess_case({**case, "nodes": None}, p)
    assert empty["nodes"].shape == arrays["nodes"].shape and not empty["nodes"].any()
    without = make_patient(node=False)
    empty, _ = preprocess_case({**without, "nodes": without["mask"]}, p)
    assert not empty["nodes"].any()
    with pytest.raises(ValueError, match="only 'nodes' may be None"):
        preprocess_case({**case, "pet": None}, p)


def test_node_masks_are_registered_and_mapped_back(tmp_path):
    template = write_patient(tmp_path, "template")["ct"]
    shift = (4.0, -3.0, 3.0)
    case = make_patient(shift, seed=1)
    case["nodes"] = case["mask"]
    p = Preprocessing.deepmts(
        template=template,
        crop_center=(0.0, 0.0, 0.0),
        spacing=2.0,
        crop_size=(14, 14, 12),
        intensity=RAW,
        mask_labels=(1,),
        nodes_labels=(2,),
        registration=dict(shrink_factors=(2, 1), smoothing_sigmas=(1, 0)),
    )
    vols, (geometry,) = preprocess([case], p)
    reference, _ = preprocess_case(
        {**make_patient(), "nodes": make_patient()["mask"]},
        Preprocessing(
            spacing=2.0,
            crop="fixed",
            crop_center=(0.0, 0.0, 0.0),
            crop_size=(14, 14, 12),
            intensity=RAW,
            mask_labels=(1,),
            nodes_labels=(2,),
        ),
    )
    assert dice(vols["nodes"][0], reference["nodes"]) > 0.6  # where the template's node is
    back = to_original_space(vols["nodes"][0], geometry)
    original = sitk.GetArrayFromImage(case["mask"]) == 2
    assert dice(sitk.GetArrayFromImage(back) == 1, original) > 0.6
    X = make_cohort(**vols)
    assert X.dtype.names == ("ct", "pet", "mask", "nodes")
    check_cohort(X, require_mask=True, require_nodes=True)


def test_crop_size_and_spacing_are_d_h_w_and_an_int_is_a_cube():
    case = make_patient()
    p = Preprocessing(spacing=(2.0, 1.0, 1.0), crop="tumour", crop_size=(6, 8, 10), intensity=RAW)
    arrays, geometry = preprocess_case(case, p)
    assert arrays["ct"].shape == (6, 8, 10)
    assert geometry.grid.spacing == (1.0, 1.0, 2.0)  # SimpleITK (x, y, z): D is z
    assert Preprocessing(crop_size=12).crop_size == (12, 12, 12)
    assert Preprocessing.deepmts(template=None).crop_size == (112, 128, 128)
    with pytest.raises(ValueError, match="crop_size must be a positive integer or 3"):
        Preprocessing(crop_size=(4, 4))
