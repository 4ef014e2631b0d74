"""RadiomicsExtractor against pyradiomics called directly, analytic values, caching, bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics import featureextractor
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import survseg.radiomics.extractor as extractor_module
from survseg.data.cohort import volumes
from survseg.radiomics import RadiomicsExtractor, clear_cache

# pykwalify (pyradiomics' parameter-dict validation, used by `direct`) imports the old way.
pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")

FAST = dict(
    feature_classes=["firstorder", "shape"],
    image_types=["original"],
    bin_width={"pet": 0.5, "ct": 10.0},
)


def direct(image, mask, spacing_xyz, param_dict):
    """pyradiomics through its parameter-dictionary interface on hand-built SimpleITK images."""
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(spacing_xyz)
    msk = sitk.GetImageFromArray(mask)
    msk.SetSpacing(spacing_xyz)
    result = featureextractor.RadiomicsFeatureExtractor(param_dict).execute(img, msk)
    return {k: float(np.real(v)) for k, v in result.items() if not k.startswith("diagnostics_")}


@pytest.fixture
def count_extractions(monkeypatch):
    """Count the pyradiomics runs the extractor dispatches (n_jobs=1 runs them in-process)."""
    calls = []
    original = extractor_module._run_unit

    def counting(index, *args):
        calls.append(index)
        return original(index, *args)

    monkeypatch.setattr(extractor_module, "_run_unit", counting)
    return calls


def test_features_equal_pyradiomics_direct_with_anisotropic_spacing(make_cohort):
    X = make_cohort(n=2)
    spacing = (2.0, 1.5, 1.0)  # (D, H, W) -> SimpleITK (x, y, z) = (1.0, 1.5, 2.0)
    classes = ["firstorder", "glcm", "glrlm", "glszm", "ngtdm"]
    widths = {"pet": {"original": 0.5, "wavelet": 0.25}, "ct": {"original": 10.0, "wavelet": 5.0}}
    ext = RadiomicsExtractor(
        feature_classes=classes + ["shape"],
        image_types=["original", "wavelet"],
        bin_width=widths,
        spacing=spacing,
    )
    got = ext.fit_transform(X)
    assert got.shape == (2, len(ext.get_feature_names_out()))
    for i in range(2):
        mask = X["mask"][i]
        for m in ("pet", "ct"):
            ref = direct(
                X[m][i],
                mask,
                (1.0, 1.5, 2.0),
                {
                    "setting": {"binWidth": widths[m]["original"], "preCrop": True, "label": 1},
                    "imageType": {"Original": {}, "Wavelet": {"binWidth": widths[m]["wavelet"]}},
                    "featureClass": {c: None for c in classes},
                },
            )
            ref.pop("original_firstorder_StandardDeviation", None)
            cols = [f"{m}_{k}" for k in ref]
            np.testing.assert_allclose(
                got.loc[i, cols].to_numpy(float), list(ref.values()), rtol=1e-9
            )
        shape_ref = direct(
            X["pet"][i],
            mask,
            (1.0, 1.5, 2.0),
            {"setting": {"label": 1}, "featureClass": {"shape": None}},
        )
        cols = ["shape_" + k.split("_shape_")[1] for k in shape_ref]
        np.testing.assert_allclose(
            got.loc[i, cols].to_numpy(float), list(shape_ref.values()), rtol=1e-9
        )
        # analytic: physical volume of the voxels and the raw mean intensity in the mask
        assert got.loc[i, "shape_VoxelVolume"] == pytest.approx(mask.sum() * 2.0 * 1.5 * 1.0)
        assert got.loc[i, "ct_original_firstorder_Mean"] == pytest.approx(
            X["ct"][i][mask == 1].astype(np.float64).mean(), rel=1e-6
        )


def test_two_mm_grid_gives_physical_volume(make_cohort):
    X = make_cohort(n=1)
    voxels = int(X["mask"][0].sum())
    one = RadiomicsExtractor(feature_classes=["shape"]).fit_transform(X)
    two = RadiomicsExtractor(feature_classes=["shape"], spacing=2.0).fit_transform(X)
    assert one.loc[0, "shape_VoxelVolume"] == pytest.approx(voxels)
    assert two.loc[0, "shape_VoxelVolume"] == pytest.approx(8.0 * voxels)
    assert two.loc[0, "shape_MeshVolume"] == pytest.approx(8.0 * one.loc[0, "shape_MeshVolume"])
    assert two.loc[0, "shape_SurfaceArea"] == pytest.approx(4.0 * one.loc[0, "shape_SurfaceArea"])


def test_pre_crop_off_and_resampling_equal_pyradiomics(cohort):
    X = cohort[:1]
    for kwargs, setting in [
        ({"pre_crop": False}, {"preCrop": False}),
        ({"resampling": (2.0, 2.0, 2.0)}, {"resampledPixelSpacing": [2.0, 2.0, 2.0]}),
    ]:
        got = RadiomicsExtractor(
            modalities=["ct"],
            feature_classes=["firstorder", "glcm", "shape"],
            image_types=["original"],
            bin_width=10.0,
            **kwargs,
        ).fit_transform(X)
        ref = direct(
            X["ct"][0],
            X["mask"][0],
            (1.0, 1.0, 1.0),
            {
                "setting": {"binWidth": 10.0, "label": 1, **setting},
                "featureClass": {"firstorder": None, "glcm": None, "shape": None},
            },
        )
        ref.pop("original_firstorder_StandardDeviation", None)
        cols = ["shape_" + k.split("_shape_")[1] if "_shape_" in k else f"ct_{k}" for k in ref]
        np.testing.assert_allclose(got.loc[0, cols].to_numpy(float), list(ref.values()), rtol=1e-9)


def test_papers_feature_set_has_1456_columns(cohort):
    ext = RadiomicsExtractor().fit(cohort)
    names = list(ext.get_feature_names_out())
    assert len(names) == 1456
    assert sum(n.startswith("shape_") for n in names) == 16
    for m in ("pet", "ct"):
        mine = [n for n in names if n.startswith(m + "_")]
        assert len(mine) == 9 * 80
        for cls, count in {
            "firstorder": 19,
            "glcm": 24,
            "glrlm": 16,
            "glszm": 16,
            "ngtdm": 5,
        }.items():
            assert sum(f"_{cls}_" in n for n in mine) == 9 * count
    for name in [
        "pet_wavelet-LLH_glcm_Contrast",
        "ct_wavelet-HHH_ngtdm_Busyness",
        "ct_original_firstorder_StandardDeviation",
        "shape_VoxelVolume",
        "shape_Compactness1",
    ]:
        assert name in names


def test_transform_is_a_dataframe_and_set_output_works(cohort):
    ext = RadiomicsExtractor(**FAST).fit(cohort)
    df = ext.transform(cohort)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(ext.get_feature_names_out())
    assert df.shape[0] == len(cohort)
    pandas_out = clone(ext).set_output(transform="pandas").fit_transform(cohort)
    pd.testing.assert_frame_equal(pandas_out, df)
    with pytest.raises(NotFittedError):
        RadiomicsExtractor().transform(cohort)


def test_second_fit_uses_the_cache(cohort, count_extractions):
    ext = RadiomicsExtractor(**FAST)
    first = ext.fit_transform(cohort)
    assert len(count_extractions) == 3 * 3  # patients x (pet, ct, shape)
    second = clone(ext).fit_transform(cohort[[2, 0]])  # a CV-like re-fit on other rows
    assert len(count_extractions) == 9
    pd.testing.assert_frame_equal(second, first.iloc[[2, 0]].reset_index(drop=True))
    # a voxel far outside the tumour is cropped away before hashing: still a cache hit
    X = cohort.copy()
    X["ct"][1][0, 0, 0] += 1.0
    ext.transform(X)
    assert len(count_extractions) == 9
    # a changed voxel inside the tumour re-extracts that patient's changed unit only
    X["ct"][1][tuple(np.argwhere(X["mask"][1])[0])] += 1.0
    ext.transform(X)
    assert count_extractions[9:] == [(1, "tumour", "ct")]
    # no cache: everything again
    RadiomicsExtractor(**FAST, cache=False).fit_transform(cohort)
    assert len(count_extractions) == 10 + 9


def test_disk_cache_survives_the_memory_cache(cohort, count_extractions, tmp_path):
    first = RadiomicsExtractor(**FAST, memory=tmp_path).fit_transform(cohort)
    assert len(list((tmp_path / "survseg_radiomics").rglob("*.npz"))) == 9
    clear_cache()
    from joblib import Memory

    again = RadiomicsExtractor(**FAST, memory=Memory(tmp_path, verbose=0)).fit_transform(cohort)
    assert len(count_extractions) == 9
    pd.testing.assert_frame_equal(again, first)


def test_parallel_equals_serial(cohort):
    serial = RadiomicsExtractor(**FAST, cache=False).fit_transform(cohort)
    parallel = RadiomicsExtractor(**FAST, cache=False, n_jobs=2).fit_transform(cohort)
    pd.testing.assert_frame_equal(parallel, serial)


def test_verbose_shows_a_progress_bar(cohort, capsys):
    RadiomicsExtractor(**FAST, verbose=1).fit_transform(cohort)
    assert "radiomics" in capsys.readouterr().err


class HalfMask:
    """A picklable mask source: the ground-truth mask without its lower half in D."""

    def __call__(self, X):
        masks = np.array(X["mask"])
        masks[:, : masks.shape[1] // 2] = 0
        return masks


def test_mask_from_another_field_or_a_callable(cohort):
    shrunk = cohort["mask"].copy()
    shrunk[:, :, :, :12] = 0
    X = volumes(pet=cohort["pet"], ct=cohort["ct"], mask=cohort["mask"])
    X2 = np.empty(len(X), dtype=X.dtype.descr + [("gtv", np.uint8, X.dtype["mask"].shape)])
    for name in X.dtype.names:
        X2[name] = X[name]
    X2["gtv"] = shrunk
    by_field = RadiomicsExtractor(mask="gtv", **FAST).fit_transform(X2)
    by_callable = RadiomicsExtractor(mask=lambda Z: shrunk[: len(Z)], **FAST).fit_transform(X)
    pd.testing.assert_frame_equal(by_field, by_callable)
    assert np.allclose(by_field["shape_VoxelVolume"], shrunk.reshape(3, -1).sum(axis=1))
    # a picklable callable keeps the extractor picklable and clonable
    ext = RadiomicsExtractor(mask=HalfMask(), **FAST).fit(X)
    restored = pickle.loads(pickle.dumps(clone(ext).fit(X)))
    halves = cohort["mask"].copy()
    halves[:, : halves.shape[1] // 2] = 0
    np.testing.assert_allclose(
        restored.transform(X)["shape_VoxelVolume"], halves.reshape(3, -1).sum(axis=1)
    )


def test_bad_mask_callables(cohort):
    with pytest.raises(ValueError, match="returned shape"):
        RadiomicsExtractor(mask=lambda Z: Z["mask"][:, :5], **FAST).fit_transform(cohort)
    with pytest.raises(ValueError, match="binary"):
        RadiomicsExtractor(mask=lambda Z: Z["mask"] * 2, **FAST).fit_transform(cohort)


def test_empty_mask_raises_naming_the_patient_or_gives_nan(cohort):
    X = cohort.copy()
    X["mask"][1] = 0
    with pytest.raises(ValueError, match="patient 1: the mask is empty"):
        RadiomicsExtractor(**FAST).fit_transform(X)
    with pytest.warns(UserWarning, match="patient 1"):
        got = RadiomicsExtractor(**FAST, empty_mask="nan").fit_transform(X)
    assert got.iloc[1].isna().all()
    ref = RadiomicsExtractor(**FAST).fit_transform(cohort[[0, 2]])
    np.testing.assert_allclose(got.iloc[[0, 2]].to_numpy(), ref.to_numpy())


def test_mask_pyradiomics_rejects_follows_the_policy(cohort):
    X = cohort.copy()
    X["mask"][2] = 0
    X["mask"][2][10, 10, 10] = 1  # a single voxel: pyradiomics refuses it
    with pytest.raises(ValueError, match="patient 2: pyradiomics rejected the mask"):
        RadiomicsExtractor(**FAST).fit_transform(X)
    with pytest.warns(UserWarning, match="patient 2"):
        got = RadiomicsExtractor(**FAST, empty_mask="nan").fit_transform(X)
    assert got.iloc[2].isna().all() and not got.iloc[:2].isna().any().any()


def test_coarse_bin_width_warns(cohort):
    with pytest.warns(UserWarning, match="'pet' tumours span a median"):
        RadiomicsExtractor(
            feature_classes=["glcm"], image_types=["original"], bin_width=25.0
        ).fit_transform(cohort)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RadiomicsExtractor(
            feature_classes=["glcm"],
            image_types=["original"],
            bin_width={"pet": 0.5, "ct": 10},
            spacing=1.0,  # the fixture carries no spacing: said, so no warning
        ).fit_transform(cohort)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"feature_classes": ["glcm", "nope"]}, "unknown feature class 'nope'"),
        (
            {"feature_classes": {"glcm": ["Contrast", "Nope"]}},
            r"unknown glcm feature\(s\) \['Nope'\]",
        ),
        ({"feature_classes": "glcm"}, "feature_classes"),
        ({"feature_classes": ["shape2D"]}, "2D"),
        ({"image_types": ["original", "fourier"]}, "unknown image type"),
        ({"image_types": ["log"]}, "sigma"),
        ({"bin_width": -1.0}, "bin_width"),
        ({"bin_width": {"pet": 1.0}}, r"missing \['ct'\]"),
        ({"bin_width": {"wavelet": 10}}, "must give 'original'"),
        ({"settings": {"binWidth": 3}}, "use bin_width"),
        ({"spacing": (1.0, 2.0)}, "spacing must be"),
        ({"spacing": -2.0}, "spacing"),
        ({"modalities": ["pet", "mri"]}, r"modality field\(s\) \['mri'\] not in X"),
        ({"mask": "gtv"}, "no 'gtv' field"),
        ({"empty_mask": "skip"}, "empty_mask"),
    ],
)
def test_bad_parameters(cohort, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RadiomicsExtractor(**params).fit(cohort)


def test_bad_cohorts(cohort):
    with pytest.raises(TypeError, match="survseg cohort"):
        RadiomicsExtractor(**FAST).fit(np.zeros((3, 8, 8, 8)))
    ext = RadiomicsExtractor(**FAST).fit(cohort)
    X = cohort.copy()
    X["pet"][2][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="'pet' has NaN or infinite voxels for patient 2"):
        ext.transform(X)
    X = cohort.copy()
    X["mask"][0][5, 5, 5] = 3
    with pytest.raises(ValueError, match="not binary"):
        ext.transform(X)
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['ct'\]"):
        ext.transform(volumes(pet=cohort["pet"], mask=cohort["mask"]))


def _with_spacing(X, spacing):
    return volumes(pet=X["pet"], ct=X["ct"], mask=X["mask"], age=X["age"], spacing=spacing)


def test_spacing_carried_by_the_cohort(make_cohort):
    """The cohort's own spacing is used without being told, and equals telling it (issue 15)."""
    X = _with_spacing(make_cohort(n=3, shape=(16, 18, 20), seed=4), (2.0, 1.5, 1.0))
    shape = dict(feature_classes=["shape"], cache=False)
    told = RadiomicsExtractor(spacing=(2.0, 1.5, 1.0), **shape).fit_transform(X)
    carried = RadiomicsExtractor(**shape).fit_transform(X)
    pd.testing.assert_frame_equal(carried, told)
    # the analytic voxel volume: count x 2 x 1.5 x 1 mm^3
    counts = X["mask"].reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(carried["shape_VoxelVolume"], counts * 3.0)
    # spacing survives slicing: the second patient alone gives its own row
    one = RadiomicsExtractor(**shape).fit_transform(X[1:2])
    np.testing.assert_allclose(one.to_numpy(), carried.iloc[1:2].to_numpy())


def test_spacing_per_patient_and_conflicts(make_cohort):
    X = make_cohort(n=3, shape=(16, 18, 20), seed=5)
    rows = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [1.0, 1.0, 3.0]])
    Xs = _with_spacing(X, rows)
    got = RadiomicsExtractor(feature_classes=["shape"], cache=False).fit_transform(Xs)
    counts = X["mask"].reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(got["shape_VoxelVolume"], counts * rows.prod(axis=1))
    with pytest.raises(ValueError, match=r"conflicts with the cohort's own voxel spacing"):
        RadiomicsExtractor(feature_classes=["shape"], spacing=1.0).fit(Xs)
    aniso = _with_spacing(X, (4.0, 2.0, 1.0))
    with pytest.raises(ValueError, match=r"in reverse: give spacing in \(D, H, W\) order"):
        RadiomicsExtractor(feature_classes=["shape"], spacing=(1.0, 2.0, 4.0)).fit(aniso)
    with pytest.warns(UserWarning, match="carries no voxel spacing"):
        RadiomicsExtractor(feature_classes=["shape"]).fit(X)
    # fitted on a cohort with spacing, a cohort that lost it is refused (not measured at 1 mm)
    ext = RadiomicsExtractor(feature_classes=["shape"]).fit(aniso)
    with pytest.raises(ValueError, match="carries its voxel spacing"):
        ext.transform(X)


def test_pre_crop_with_normalize_gives_identical_features(make_cohort):
    """pyradiomics normalises over the whole image; the crop must not come first (issue 15)."""
    X = make_cohort(n=2, shape=(24, 24, 24), seed=6)
    X["pet"][:, :4] += 50.0  # intensity far from the tumour: changes whole-image statistics
    kw = dict(
        feature_classes=["firstorder", "glcm"],
        image_types=["original", "wavelet"],
        settings={"normalize": True, "binCount": 16},
        spacing=1.0,
        cache=False,
    )
    cropped = RadiomicsExtractor(pre_crop=True, **kw).fit_transform(X)
    whole = RadiomicsExtractor(pre_crop=False, **kw).fit_transform(X)
    pd.testing.assert_frame_equal(cropped, whole, rtol=1e-9, atol=1e-12)


def test_integer_ct_is_an_image_not_a_mask(cohort):
    """Scanners store CT as int16: it is extracted as the 'ct' image (issue 15, item 8)."""
    as_int = np.zeros(
        len(cohort),
        dtype=[(n, np.int16 if n == "ct" else cohort.dtype.fields[n][0]) for n in ("pet", "mask")]
        + [("ct", np.int16, cohort.dtype.fields["ct"][0].shape)],
    )
    ct = np.round(cohort["ct"])
    as_int["pet"], as_int["mask"], as_int["ct"] = cohort["pet"], cohort["mask"], ct
    kw = dict(feature_classes=["firstorder"], image_types=["original"], spacing=1.0, cache=False)
    got = RadiomicsExtractor(bin_width={"pet": 0.5, "ct": 10}, **kw).fit_transform(as_int)
    assert any(c.startswith("ct_") for c in got.columns)
    ref = volumes(pet=cohort["pet"], ct=ct, mask=cohort["mask"])
    want = RadiomicsExtractor(bin_width={"pet": 0.5, "ct": 10}, **kw).fit_transform(ref)
    pd.testing.assert_frame_equal(got[want.columns], want)


def test_memory_mapped_cohort(cohort, tmp_path):
    from survseg.data.cohort import load_cohort, save_cohort

    save_cohort(tmp_path / "cohort.npy", cohort)
    X = load_cohort(tmp_path / "cohort.npy")
    assert isinstance(X, np.memmap)
    got = RadiomicsExtractor(**FAST, cache=False).fit_transform(X)
    pd.testing.assert_frame_equal(
        got, RadiomicsExtractor(**FAST, cache=False).fit_transform(cohort)
    )


def test_failed_extractions_are_one_short_warning_grouped_by_reason(cohort):
    # every unit (modalities and shape) of every rejected patient fails: the warning groups
    # them by region and reason instead of listing each extraction
    X = cohort.copy()
    for i in (0, 2):
        X["mask"][i] = 0
        X["mask"][i][10, 10, 10] = 1
    with pytest.warns(UserWarning) as record:
        RadiomicsExtractor(**FAST, empty_mask="nan").fit_transform(X)
    messages = [str(w.message) for w in record if "set to NaN" in str(w.message)]
    assert len(messages) == 1
    assert "of 2 patients" in messages[0]
    assert messages[0].count("pyradiomics rejected the mask") == 1
    assert "patients [0, 2]" in messages[0]


def test_failure_warning_names_the_patients_of_the_cohort_a_caller_sliced(cohort):
    # inside benchmark or FoldEnsemble the extractor sees X[train]: rows_of renames the
    # warning's rows to the cohort's, as it does for errors
    from survseg.data.errors import PatientWarning, rows_of

    X = cohort.copy()
    X["mask"][1] = 0
    X["mask"][1][10, 10, 10] = 1
    index = np.arange(1, len(X))  # the caller's slice: row 0 of it is cohort row 1
    with pytest.warns(PatientWarning) as record:
        with rows_of(index, "fold 2"):
            RadiomicsExtractor(**FAST, empty_mask="nan").fit_transform(X[index])
    messages = [str(w.message) for w in record if "set to NaN" in str(w.message)]
    assert len(messages) == 1
    assert messages[0].startswith("fold 2: ")
    assert messages[0].endswith(": patient 1.")
