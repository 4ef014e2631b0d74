"""SUV (body weight) from DICOM tags, checked against hand computation.

PET series are written with SimpleITK (implicit VR little endian, as GDCM writes) and the
Radiopharmaceutical Information Sequence, which SimpleITK cannot write, is inserted byte for byte
as DICOM PS3.5 encodes it. SimpleITK reading the edited files back unchanged shows the files are
valid DICOM."""

import struct
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

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


# ----------------------------------------------------------- DICOM byte encoding (PS3.5)


def _pad(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def _element(tag, value: bytes, vr: bytes | None) -> bytes:
    if vr is None:  # implicit VR: tag, 4-byte length
        return struct.pack("<HHI", *tag, len(value)) + value
    if vr in (b"SQ", b"UN", b"OB"):
        return struct.pack("<HH", *tag) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", *tag) + vr + struct.pack("<H", len(value)) + value


VRS = {
    (0x0018, 0x0031): b"LO",
    (0x0018, 0x1072): b"TM",
    (0x0018, 0x1074): b"DS",
    (0x0018, 0x1075): b"DS",
    (0x0018, 0x1078): b"DT",
    (0x0008, 0x0060): b"CS",
    (0x0054, 0x1001): b"CS",
    (0x0008, 0x1150): b"UI",
}


def encode_sequence(tag, items, *, explicit, undefined):
    """A sequence of items (dicts tag -> str or nested list of dicts) as bytes."""
    body = b""
    for item in items:
        content = b""
        for t, v in sorted(item.items()):
            if isinstance(v, list):
                content += encode_sequence(t, v, explicit=explicit, undefined=undefined)
            else:
                content += _element(t, _pad(v), VRS[t] if explicit else None)
        if undefined:
            body += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + content
            body += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        else:
            body += struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content
    if undefined:
        body += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        length = 0xFFFFFFFF
    else:
        length = len(body)
    if explicit:
        return struct.pack("<HH", *tag) + b"SQ\0\0" + struct.pack("<I", length) + body
    return struct.pack("<HHI", *tag, length) + body


def insert_sequence(path, items, *, undefined=True):
    """Insert (0054,0016) into a SimpleITK-written (implicit VR) file, in tag order: before
    the first of the elements (0054,1001), (0054,1102), (7FE0,0010) that the file has."""
    data = open(path, "rb").read()
    found = [
        data.find(struct.pack("<HH", *t))
        for t in ((0x54, 0x1001), (0x54, 0x1102), (0x7FE0, 0x0010))
    ]
    at = min(p for p in found if p > 0)
    seq = encode_sequence((0x0054, 0x0016), items, explicit=False, undefined=undefined)
    open(path, "wb").write(data[:at] + seq + data[at:])


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


def _explicit_file(dataset: bytes, syntax: str) -> bytes:
    meta = _element(
        (0x0002, 0x0010), _pad(syntax) if len(syntax) % 2 == 0 else syntax.encode() + b"\0", b"UI"
    )
    return b"\0" * 128 + b"DICM" + meta + dataset


@pytest.mark.parametrize("undefined", [True, False])
@pytest.mark.parametrize("deflate", [False, True])
def test_parser_explicit_vr_with_nested_sequences(tmp_path, undefined, deflate):
    # An earlier sequence with a nested sequence must be skipped correctly.
    earlier = encode_sequence(
        (0x0008, 0x1140),
        [{(0x0008, 0x1150): "1.2.3", (0x0018, 0x0031): "x"}],
        explicit=True,
        undefined=undefined,
    )
    item = {**RADIOPHARMACEUTICAL, (0x0018, 0x1078): "20240312090748.000000+0100"}
    seq = encode_sequence((0x0054, 0x0016), [item], explicit=True, undefined=undefined)
    dataset = (
        _element((0x0008, 0x0060), _pad("PT"), b"CS")
        + earlier
        + seq
        + _element((0x0054, 0x1001), _pad("BQML"), b"CS")
    )
    syntax = "1.2.840.10008.1.2.1"
    if deflate:
        syntax = "1.2.840.10008.1.2.1.99"
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        dataset = compressor.compress(dataset) + compressor.flush()
    (tmp_path / "f.dcm").write_bytes(_explicit_file(dataset, syntax))
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
    params = suv_parameters(PET_TAGS, items[0])
    assert params.scale_factor == pytest.approx(HAND_FACTOR, 1e-12)


def test_parser_returns_none_without_sequence(tmp_path):
    dataset = _element((0x0008, 0x0060), _pad("PT"), b"CS")
    (tmp_path / "f.dcm").write_bytes(_explicit_file(dataset, "1.2.840.10008.1.2.1"))
    assert read_radiopharmaceutical(tmp_path / "f.dcm") is None


def test_several_radiopharmaceuticals_are_refused(tmp_path):
    bqml, files = write_pet(tmp_path / "pet", item=False)
    for f in files:
        insert_sequence(f, [RADIOPHARMACEUTICAL, RADIOPHARMACEUTICAL])
    with pytest.raises(ValueError, match="has 2 items; SUV needs exactly one"):
        read_pet(tmp_path / "pet")
