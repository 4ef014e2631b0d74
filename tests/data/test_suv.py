"""SUV (body weight) from DICOM tags, checked against hand computation.

PET series are written with SimpleITK (implicit VR little endian, as GDCM writes); the
Radiopharmaceutical Information Sequence, which SimpleITK cannot write, is added with pydicom.
SimpleITK reading the edited files back unchanged shows the files are still valid DICOM."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from survseg.data.io import read_pet
from survseg.data.suv import (
    MissingDicomTagError,
    read_radiopharmaceutical,
    suv_parameters,
    suv_scale_factor,
)
from tests.data.test_io import write_dicom_series

# F-18 FDG, 70.5 kg, 370 MBq injected at 09:07:48, series starts at 10:12:18.5.
WEIGHT, DOSE, HALF_LIFE = 70.5, 370.0e6, 6586.2
DELAY = (10 * 3600 + 12 * 60 + 18.5) - (9 * 3600 + 7 * 60 + 48)  # 3870.5 s
# Hand computation: SUV = C[Bq/mL] * 70500 g / (370e6 Bq * 0.5 ** (3870.5 s / 6586.2 s)).
HAND_FACTOR = 70500.0 / (370.0e6 * 0.5 ** (3870.5 / 6586.2))

PET_TAGS = {
    "0008|0060": "PT",
    "0008|0021": "20240312",
    "0008|0031": "101218.5",
    "0010|1030": "70.5",
    "0054|1001": "BQML",
    "0054|1102": "START",
}
RADIOPHARMACEUTICAL = {
    (0x0018, 0x0031): "Fluorodeoxyglucose",
    (0x0018, 0x1072): "090748.000000",
    (0x0018, 0x1074): "370000000",
    (0x0018, 0x1075): "6586.2",
}


# ------------------------------------------------------------------- writing with pydicom


def make_item(values, *, undefined=True):
    """A sequence item from ``{(group, element): value}`` (value: str, or a list of such
    dicts for a nested sequence), VRs from the DICOM dictionary."""
    item = Dataset()
    for tag, value in values.items():
        if isinstance(value, list):
            item.add_new(tag, "SQ", make_sequence(value, undefined=undefined))
            item[tag].is_undefined_length = undefined
        else:
            item.add_new(tag, dictionary_VR(tag), value)
    item.is_undefined_length_sequence_item = undefined
    return item


def make_sequence(items, *, undefined=True):
    return Sequence([make_item(values, undefined=undefined) for values in items])


def insert_sequence(path, items, *, undefined=True):
    """Add the Radiopharmaceutical Information Sequence (0054,0016) with ``items`` (dicts as
    for :func:`make_item`) to a DICOM file, keeping its transfer syntax."""
    ds = pydicom.dcmread(path)
    ds.RadiopharmaceuticalInformationSequence = make_sequence(items, undefined=undefined)
    ds["RadiopharmaceuticalInformationSequence"].is_undefined_length = undefined
    ds.save_as(path)


def write_pet(folder, *, tags=None, drop=(), item=None, undefined=True, shape=(3, 4, 5)):
    rng = np.random.default_rng(0)
    bqml = rng.uniform(0, 15000, size=shape)
    meta = {k: v for k, v in {**PET_TAGS, **(tags or {})}.items() if k not in drop}
    files = write_dicom_series(folder, bqml, tags=meta, slopes=[1.0, 0.5, 2.0][: shape[0]])
    if item is not False:
        for f in files:
            insert_sequence(f, [RADIOPHARMACEUTICAL if item is None else item], undefined=undefined)
    return bqml, files


# ------------------------------------------------------------------------------- tests


def test_scale_factor_matches_hand_computation():
    assert suv_scale_factor(WEIGHT, DOSE, HALF_LIFE, DELAY) == pytest.approx(HAND_FACTOR, 1e-12)
    # no decay (Decay Correction ADMIN): 70.5 kg / 370 MBq
    assert suv_scale_factor(70.5, 370e6, 6586.2, 0.0) == pytest.approx(70500 / 370e6, 1e-12)
    # one half-life later only half the dose is left
    assert suv_scale_factor(70.0, 2e8, 100.0, 100.0) == pytest.approx(70000 / 1e8, 1e-12)
    with pytest.raises(ValueError, match="weight_kg must be a positive"):
        suv_scale_factor(0.0, DOSE, HALF_LIFE, DELAY)
    with pytest.raises(ValueError, match="decay_time_s must be finite and >= 0"):
        suv_scale_factor(WEIGHT, DOSE, HALF_LIFE, -1.0)


@pytest.mark.parametrize("undefined", [True, False], ids=["undefined-length", "defined-length"])
def test_dicom_pet_series_to_suv(tmp_path, undefined):
    bqml, files = write_pet(tmp_path / "pet", undefined=undefined)
    # The edited files are still valid DICOM for SimpleITK/GDCM, with unchanged voxels.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    raw = sitk.GetArrayFromImage(reader.Execute())
    np.testing.assert_allclose(raw, bqml, atol=1.0)  # int16 storage, slopes up to 2
    suv, params = read_pet(tmp_path / "pet", return_suv_parameters=True)
    assert suv.GetPixelID() == sitk.sitkFloat32
    assert params.decay_time_s == pytest.approx(DELAY)
    np.testing.assert_allclose(sitk.GetArrayFromImage(suv), raw * HAND_FACTOR, rtol=1e-6)
    np.testing.assert_allclose(suv.GetSpacing(), (2.0, 2.0, 3.0))


def test_decay_correction_admin_does_not_decay_the_dose(tmp_path):
    write_pet(tmp_path / "pet", tags={"0054|1102": "ADMIN"})
    _, params = read_pet(tmp_path / "pet", return_suv_parameters=True)
    assert params.scale_factor == pytest.approx(70500 / 370e6, 1e-12)


def test_scan_start_falls_back_to_earliest_acquisition_time(tmp_path):
    # no Series Time; slices acquired at 10:12:18.5, 10:12:48.5, 10:13:18.5
    acq = {"0008|0032": lambda z: f"1012{18 + 30 * z:02d}.5" if z < 2 else "101318.5"}
    write_pet(tmp_path / "pet", tags=acq, drop=("0008|0031",))
    _, params = read_pet(tmp_path / "pet", return_suv_parameters=True)
    assert params.decay_time_s == pytest.approx(DELAY)


def test_start_datetime_across_midnight(tmp_path):
    item = {**RADIOPHARMACEUTICAL, (0x0018, 0x1078): "20240311234500"}
    write_pet(tmp_path / "pet", tags={"0008|0031": "001500"}, item=item)
    _, params = read_pet(tmp_path / "pet", return_suv_parameters=True)
    assert params.decay_time_s == 30 * 60


def test_scan_before_injection_is_an_error(tmp_path):
    write_pet(tmp_path / "pet", tags={"0008|0031": "001500"})
    with pytest.raises(ValueError, match=r"before the injection.*\(0018,1078\)"):
        read_pet(tmp_path / "pet")


def test_flattened_top_level_radiopharmaceutical_tags(tmp_path):
    flat = {f"{g:04x}|{e:04x}": v for (g, e), v in RADIOPHARMACEUTICAL.items()}
    bqml, _ = write_pet(tmp_path / "pet", tags=flat, item=False)
    suv = read_pet(tmp_path / "pet")
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(suv), bqml * HAND_FACTOR, atol=HAND_FACTOR
    )  # int16 storage, slopes up to 2


@pytest.mark.parametrize(
    "drop_tag, drop_item, message",
    [
        ("0010|1030", None, r"PatientWeight \(0010,1030\) is missing"),
        ("0054|1001", None, r"Units \(0054,1001\) is missing"),
        ("0054|1102", None, r"DecayCorrection \(0054,1102\) is missing"),
        ("0008|0031", None, r"SeriesTime \(0008,0031\) nor AcquisitionTime"),
        (None, (0x0018, 0x1074), r"RadionuclideTotalDose \(0018,1074\) is missing.*Sequence"),
        (None, (0x0018, 0x1075), r"RadionuclideHalfLife \(0018,1075\) is missing"),
        (None, (0x0018, 0x1072), r"RadiopharmaceuticalStartTime \(0018,1072\) is missing"),
    ],
)
def test_missing_tag_is_named(tmp_path, drop_tag, drop_item, message):
    item = {k: v for k, v in RADIOPHARMACEUTICAL.items() if k != drop_item}
    write_pet(tmp_path / "pet", drop=(drop_tag,), item=item)
    with pytest.raises(MissingDicomTagError, match=message):
        read_pet(tmp_path / "pet")


def test_missing_sequence_is_named(tmp_path):
    write_pet(tmp_path / "pet", item=False)
    with pytest.raises(MissingDicomTagError, match=r"RadionuclideTotalDose \(0018,1074\)"):
        read_pet(tmp_path / "pet")


def test_bad_values(tmp_path):
    write_pet(tmp_path / "a", tags={"0054|1001": "CNTS"})
    with pytest.raises(ValueError, match="'CNTS'.*only activity concentration"):
        read_pet(tmp_path / "a")
    write_pet(tmp_path / "b", tags={"0054|1102": "NONE"})
    with pytest.raises(ValueError, match="DecayCorrection.*'NONE' .* not supported"):
        read_pet(tmp_path / "b")
    write_pet(tmp_path / "c", tags={"0008|0060": "CT"})
    with pytest.raises(ValueError, match="not a PET series.*'CT'"):
        read_pet(tmp_path / "c")
    write_pet(tmp_path / "d", tags={"0010|1030": "0"})
    with pytest.raises(ValueError, match=r"PatientWeight \(0010,1030\).*must be positive"):
        read_pet(tmp_path / "d")


def test_units_gml_is_already_suv(tmp_path):
    bqml, _ = write_pet(
        tmp_path / "pet", tags={"0054|1001": "GML"}, item=False, drop=("0010|1030",)
    )
    out, params = read_pet(tmp_path / "pet", return_suv_parameters=True)
    assert params is None
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), bqml, atol=1.0)  # int16, slope 2


def test_nifti_pet_is_taken_as_suv(tmp_path):
    image = sitk.GetImageFromArray(np.full((2, 3, 4), 2.5, dtype=np.float64))
    sitk.WriteImage(image, str(tmp_path / "pt.nii.gz"))
    out = read_pet(tmp_path / "pt.nii.gz")
    assert out.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), 2.5)


def write_header(path, dataset, transfer_syntax=ImplicitVRLittleEndian, *, preamble=True):
    """A header-only DICOM file (no pixel data) in the given transfer syntax; without
    ``preamble`` an old-style file: data set only, implicit VR little endian."""
    if not preamble:
        pydicom.dcmwrite(path, dataset, implicit_vr=True, little_endian=True)
        return
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"  # PET Image
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.9.99"
    dataset.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("undefined", [True, False], ids=["undefined-length", "defined-length"])
@pytest.mark.parametrize(
    "syntax",
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ],
    ids=["implicit", "explicit", "deflated", "big-endian"],
)
def test_sequence_read_in_every_transfer_syntax(tmp_path, syntax, undefined):
    # A sequence before it, with a nested sequence, must not disturb the reading; the item's
    # own nested sequence (Radiopharmaceutical Code Sequence) is left out of the result.
    item = {
        **RADIOPHARMACEUTICAL,
        (0x0018, 0x1078): "20240312090748.000000+0100",
        (0x0054, 0x0300): [{(0x0008, 0x0100): "C-111A1", (0x0008, 0x0102): "SRT"}],
    }
    ds = Dataset()
    ds.Modality = "PT"
    ds.ReferencedImageSequence = make_sequence(
        [{(0x0008, 0x1150): "1.2.3", (0x0008, 0x1140): [{(0x0008, 0x1155): "1.2.3.4"}]}],
        undefined=undefined,
    )
    ds.RadiopharmaceuticalInformationSequence = make_sequence([item], undefined=undefined)
    ds.Units = "BQML"
    write_header(tmp_path / "f.dcm", ds, syntax)
    items = read_radiopharmaceutical(tmp_path / "f.dcm")
    assert items == [
        {
            "0018|0031": "Fluorodeoxyglucose",
            "0018|1072": "090748.000000",
            "0018|1074": "370000000",
            "0018|1075": "6586.2",
            "0018|1078": "20240312090748.000000+0100",
        }
    ]
    # the full date-time (offset ignored) and the start time name the same injection
    params = suv_parameters(PET_TAGS, items[0])
    assert params.decay_time_s == pytest.approx(DELAY)
    assert params.scale_factor == pytest.approx(HAND_FACTOR, 1e-12)


def test_file_without_preamble(tmp_path):
    ds = Dataset()
    ds.Modality = "PT"
    ds.RadiopharmaceuticalInformationSequence = make_sequence([RADIOPHARMACEUTICAL])
    write_header(tmp_path / "f.dcm", ds, preamble=False)
    assert (tmp_path / "f.dcm").read_bytes()[128:132] != b"DICM"
    (item,) = read_radiopharmaceutical(tmp_path / "f.dcm")
    assert suv_parameters(PET_TAGS, item).scale_factor == pytest.approx(HAND_FACTOR, 1e-12)


def test_no_sequence_gives_none(tmp_path):
    ds = Dataset()
    ds.Modality = "PT"
    write_header(tmp_path / "f.dcm", ds, ExplicitVRLittleEndian)
    assert read_radiopharmaceutical(tmp_path / "f.dcm") is None


def test_unusable_value_in_the_sequence_is_named(tmp_path):
    # pydicom itself refuses to convert '6586.x' as DS; the error must still name the tag
    ds = Dataset()
    ds.Modality = "PT"
    ds.RadiopharmaceuticalInformationSequence = make_sequence([RADIOPHARMACEUTICAL])
    write_header(tmp_path / "f.dcm", ds, ExplicitVRLittleEndian)
    raw = (tmp_path / "f.dcm").read_bytes()
    (tmp_path / "f.dcm").write_bytes(raw.replace(b"6586.2", b"6586.x"))
    (item,) = read_radiopharmaceutical(tmp_path / "f.dcm")
    with pytest.raises(ValueError, match=r"RadionuclideHalfLife \(0018,1075\).*not a number"):
        suv_parameters(PET_TAGS, item)


def test_unreadable_header_is_a_clear_error(tmp_path):
    ds = Dataset()
    ds.Modality = "PT"
    ds.RadiopharmaceuticalInformationSequence = make_sequence([RADIOPHARMACEUTICAL])
    write_header(tmp_path / "f.dcm", ds, DeflatedExplicitVRLittleEndian)
    raw = (tmp_path / "f.dcm").read_bytes()
    (tmp_path / "f.dcm").write_bytes(raw[:-3])  # a cut deflate stream
    with pytest.raises(ValueError, match=r"f\.dcm: cannot read the DICOM header"):
        read_radiopharmaceutical(tmp_path / "f.dcm")


def test_several_radiopharmaceuticals_are_refused(tmp_path):
    bqml, files = write_pet(tmp_path / "pet", item=False)
    for f in files:
        insert_sequence(f, [RADIOPHARMACEUTICAL, RADIOPHARMACEUTICAL])
    with pytest.raises(ValueError, match="has 2 items; SUV needs exactly one"):
        read_pet(tmp_path / "pet")
