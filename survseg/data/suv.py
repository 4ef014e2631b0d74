r"""Standardised uptake value (body weight) of a PET DICOM series, from the series' own tags.

.. math::

    \mathrm{SUV_{bw}} = \frac{C \cdot W}{D_{\mathrm{inj}} \, 2^{-\Delta t / T_{1/2}}}

* :math:`C`: voxel activity concentration in Bq/mL (Units (0054,1001) = ``BQML``), decay
  corrected to the scan start (Decay Correction (0054,1102) = ``START``);
* :math:`W`: patient weight in g (Patient's Weight (0010,1030), given in kg);
* :math:`D_{\mathrm{inj}}`: injected activity in Bq (Radionuclide Total Dose (0018,1074));
* :math:`T_{1/2}`: radionuclide half-life in s (Radionuclide Half Life (0018,1075));
* :math:`\Delta t`: time from injection (Radiopharmaceutical Start DateTime (0018,1078), or
  Start Time (0018,1072) on the series date) to the scan start (Series Date/Time
  (0008,0021)/(0008,0031); the earliest Acquisition Date/Time (0008,0022)/(0008,0032) of the
  slices when the series time is absent).

The series time is the scan start the DICOM standard defines for Decay Correction ``START``;
some scanners rewrite it when a series is reconstructed again later (the QIBA SUV notes
discuss vendor-specific tags for that case, which this module does not read): check
:attr:`SUVParameters.decay_time_s` (``read_pet(..., return_suv_parameters=True)``) when
converting such data.

The dose is decayed to the scan start because the image is decay-corrected to it; with
Decay Correction ``ADMIN`` the image is corrected to the injection time and :math:`\Delta t = 0`.
Tissue density is taken as 1 g/mL, so SUV is in g/mL (dimensionless in practice).

The three radiopharmaceutical tags live inside the Radiopharmaceutical Information Sequence
(0054,0016). SimpleITK (GDCM) does not expose sequence contents in its metadata dictionary, so
this module reads that one sequence from the file itself (DICOM PS3.5 encoding: implicit or
explicit VR little endian, deflated explicit VR; defined or undefined lengths). Tags that are
not nested (as some converters write them) are used when the sequence is absent. A missing or
unusable tag is an error that names it; no value is ever assumed.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "MissingDicomTagError",
    "SUVParameters",
    "suv_scale_factor",
    "suv_parameters",
    "read_radiopharmaceutical",
]

# Tag keys in SimpleITK's "gggg|eeee" form.
PATIENT_WEIGHT = "0010|1030"
UNITS = "0054|1001"
DECAY_CORRECTION = "0054|1102"
STUDY_DATE = "0008|0020"
SERIES_DATE = "0008|0021"
ACQUISITION_DATE = "0008|0022"
SERIES_TIME = "0008|0031"
ACQUISITION_TIME = "0008|0032"
RADIOPHARMACEUTICAL_SEQUENCE = "0054|0016"
RADIOPHARMACEUTICAL_START_TIME = "0018|1072"
RADIONUCLIDE_TOTAL_DOSE = "0018|1074"
RADIONUCLIDE_HALF_LIFE = "0018|1075"
RADIOPHARMACEUTICAL_START_DATETIME = "0018|1078"

_TAG_NAMES = {
    PATIENT_WEIGHT: "PatientWeight",
    UNITS: "Units",
    DECAY_CORRECTION: "DecayCorrection",
    SERIES_TIME: "SeriesTime",
    ACQUISITION_TIME: "AcquisitionTime",
    RADIOPHARMACEUTICAL_SEQUENCE: "RadiopharmaceuticalInformationSequence",
    RADIOPHARMACEUTICAL_START_TIME: "RadiopharmaceuticalStartTime",
    RADIONUCLIDE_TOTAL_DOSE: "RadionuclideTotalDose",
    RADIONUCLIDE_HALF_LIFE: "RadionuclideHalfLife",
}


def _name(key: str) -> str:
    return f"{_TAG_NAMES.get(key, 'tag')} ({key.replace('|', ',')})"


def suv_scale_factor(
    weight_kg: float, injected_dose_bq: float, half_life_s: float, decay_time_s: float
) -> float:
    r"""Factor that turns Bq/mL into SUV (body weight): :math:`1000\,W / (D\,2^{-\Delta t/T_{1/2}})`.

    Parameters
    ----------
    weight_kg : float
        Patient weight in kg.
    injected_dose_bq : float
        Injected activity in Bq.
    half_life_s : float
        Radionuclide half-life in s.
    decay_time_s : float
        Time in s over which the dose decays before the reference time of the image
        (scan start for Decay Correction ``START``; 0 for ``ADMIN``).

    Returns
    -------
    factor : float
        Multiply a Bq/mL image by it to get SUV in g/mL.
    """
    for name, value in (
        ("weight_kg", weight_kg),
        ("injected_dose_bq", injected_dose_bq),
        ("half_life_s", half_life_s),
    ):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    if not (math.isfinite(decay_time_s) and decay_time_s >= 0):
        raise ValueError(f"decay_time_s must be finite and >= 0; got {decay_time_s!r}.")
    dose_at_reference = injected_dose_bq * 2.0 ** (-decay_time_s / half_life_s)
    return 1000.0 * weight_kg / dose_at_reference


@dataclass(frozen=True)
class SUVParameters:
    """What SUV conversion of one PET series used, read from its tags.

    Attributes
    ----------
    weight_kg, injected_dose_bq, half_life_s : float
    injection_time, scan_start : datetime
        Injection start and scan start (the series reference time).
    decay_correction : {'START', 'ADMIN'}
    """

    weight_kg: float
    injected_dose_bq: float
    half_life_s: float
    injection_time: datetime
    scan_start: datetime
    decay_correction: str

    @property
    def decay_time_s(self) -> float:
        """Seconds the dose decays before the image's reference time."""
        if self.decay_correction == "ADMIN":
            return 0.0
        return (self.scan_start - self.injection_time).total_seconds()

    @property
    def scale_factor(self) -> float:
        """SUV per Bq/mL (see :func:`suv_scale_factor`)."""
        return suv_scale_factor(
            self.weight_kg, self.injected_dose_bq, self.half_life_s, self.decay_time_s
        )


# --------------------------------------------------------------------------- tag values


class MissingDicomTagError(ValueError):
    """A tag needed for SUV conversion is absent or empty."""


def _get(tags: Mapping[str, str], key: str, source: str) -> str:
    value = str(tags.get(key, "")).strip(" \x00")
    if not value:
        raise MissingDicomTagError(
            f"cannot convert PET to SUV: {_name(key)} is missing or empty in {source}. "
            "Fill it in the DICOM files (no value is assumed)."
        )
    return value


def _float(tags: Mapping[str, str], key: str, source: str) -> float:
    value = _get(tags, key, source)
    try:
        number = float(value.split("\\")[0])
    except ValueError:
        raise ValueError(f"{_name(key)} in {source} is not a number: {value!r}.") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{_name(key)} in {source} must be positive; got {value!r}.")
    return number


def _parse_date(value: str, key: str) -> date:
    digits = value.strip().replace(".", "").replace("-", "")  # old ACR-NEMA wrote YYYY.MM.DD
    try:
        return datetime.strptime(digits[:8], "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"{_name(key)} is not a DICOM date (YYYYMMDD): {value!r}.") from None


def _parse_time(value: str, key: str) -> timedelta:
    """DICOM TM ``HH[MM[SS[.F{1,6}]]]`` (colons of ACR-NEMA tolerated) -> time since midnight."""
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        raise ValueError(f"{_name(key)} is not a DICOM time (HHMMSS.FFFFFF): {value!r}.")
    hours, minutes, seconds = int(whole[:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueError(f"{_name(key)} is out of range: {value!r}.")
    frac = float("0." + fraction) if fraction else 0.0
    return timedelta(hours=hours, minutes=minutes, seconds=seconds + frac)


def _parse_datetime(value: str, key: str) -> datetime:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF[&ZZXX]``; a UTC offset suffix is ignored (both times
    of an SUV computation come from the same scanner clock)."""
    text = value.strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    day = _parse_date(text[:8], key)
    clock = _parse_time(text[8:], key) if len(text) > 8 else timedelta(0)
    return datetime.combine(day, datetime.min.time()) + clock


def _first_date(tags: Mapping[str, str], keys: Sequence[str]) -> date | None:
    for key in keys:
        value = str(tags.get(key, "")).strip(" \x00")
        if value:
            return _parse_date(value, key)
    return None


def suv_parameters(
    tags: Mapping[str, str],
    radiopharmaceutical: Mapping[str, str] | None = None,
    *,
    acquisition: Sequence[Mapping[str, str]] = (),
    source: str = "the PET series",
) -> SUVParameters:
    """Gather and check the SUV (body weight) parameters from DICOM tag values.

    Parameters
    ----------
    tags : mapping of str to str
        Top-level tags of one slice, keyed ``"gggg|eeee"`` as in SimpleITK's metadata.
    radiopharmaceutical : mapping of str to str, optional
        The (single) item of the Radiopharmaceutical Information Sequence (0054,0016), as
        returned by :func:`read_radiopharmaceutical`. When ``None`` the three radiopharmaceutical
        tags are looked up at the top level of ``tags``.
    acquisition : sequence of mapping
        Per-slice tags, used for the scan start (earliest Acquisition Date/Time) when the
        Series Time (0008,0031) is absent.
    source : str
        Named in error messages (e.g. the folder).

    Returns
    -------
    SUVParameters

    Raises
    ------
    MissingDicomTagError
        A needed tag is missing or empty (the message names it).
    ValueError
        A tag has an unusable value: Units other than ``BQML``, Decay Correction other than
        ``START``/``ADMIN``, a scan start before the injection, a non-positive weight or dose.
    """
    units = _get(tags, UNITS, source).upper()
    if units != "BQML":
        hint = (
            " The image is already in SUV (g/mL): read it without conversion."
            if units == "GML"
            else ""
        )
        raise ValueError(
            f"cannot convert PET to SUV from {_name(UNITS)} = {units!r} in {source}; only "
            f"activity concentration ('BQML') is supported.{hint}"
        )
    correction = _get(tags, DECAY_CORRECTION, source).upper()
    if correction not in ("START", "ADMIN"):
        raise ValueError(
            f"{_name(DECAY_CORRECTION)} = {correction!r} in {source} is not supported: SUV "
            "needs an image decay-corrected to the scan start ('START') or to the injection "
            "('ADMIN')."
        )
    weight = _float(tags, PATIENT_WEIGHT, source)
    rp = tags if radiopharmaceutical is None else radiopharmaceutical
    rp_source = (
        source
        if radiopharmaceutical is None
        else (f"the {_name(RADIOPHARMACEUTICAL_SEQUENCE)} of {source}")
    )
    dose = _float(rp, RADIONUCLIDE_TOTAL_DOSE, rp_source)
    half_life = _float(rp, RADIONUCLIDE_HALF_LIFE, rp_source)

    # Scan start: series date/time, else the earliest slice acquisition date/time.
    scan_day = _first_date(tags, (SERIES_DATE, ACQUISITION_DATE, STUDY_DATE))
    if str(tags.get(SERIES_TIME, "")).strip(" \x00"):
        scan_clock = _parse_time(_get(tags, SERIES_TIME, source), SERIES_TIME)
        scan_start = datetime.combine(scan_day or date.min, datetime.min.time()) + scan_clock
    else:
        starts = []
        for slice_tags in acquisition or [tags]:
            value = str(slice_tags.get(ACQUISITION_TIME, "")).strip(" \x00")
            if value:
                day = _first_date(slice_tags, (ACQUISITION_DATE, SERIES_DATE, STUDY_DATE))
                starts.append(
                    datetime.combine(day or scan_day or date.min, datetime.min.time())
                    + _parse_time(value, ACQUISITION_TIME)
                )
        if not starts:
            raise MissingDicomTagError(
                f"cannot convert PET to SUV: neither {_name(SERIES_TIME)} nor "
                f"{_name(ACQUISITION_TIME)} gives the scan start in {source}."
            )
        scan_start = min(starts)

    # Injection: the full date-time when given, else the start time on the scan's day.
    start_dt = str(rp.get(RADIOPHARMACEUTICAL_START_DATETIME, "")).strip(" \x00")
    if start_dt:
        injection = _parse_datetime(start_dt, RADIOPHARMACEUTICAL_START_DATETIME)
        if scan_day is None:  # no date on the scan side: compare clock times on one day
            injection = datetime.combine(date.min, injection.time())
    else:
        clock = _parse_time(
            _get(rp, RADIOPHARMACEUTICAL_START_TIME, rp_source), RADIOPHARMACEUTICAL_START_TIME
        )
        injection = datetime.combine(scan_start.date(), datetime.min.time()) + clock
    if scan_start < injection:
        raise ValueError(
            f"the scan start ({scan_start.time()}) is before the injection ({injection.time()}) "
            f"in {source}. If the scan crossed midnight, the files need "
            f"RadiopharmaceuticalStartDateTime (0018,1078); no date is assumed."
        )
    return SUVParameters(weight, dose, half_life, injection, scan_start, correction)


# ------------------------------------------------------------- the one sequence we need

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED_LE = "1.2.840.10008.1.2.1.99"
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
# VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 Table 7.1-1).
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_SEQUENCE_TAG = (0x0054, 0x0016)


def _header(buf: bytes, pos: int, explicit: bool):
    """(tag, vr, length, value offset) of the data element starting at ``pos``."""
    group, element = struct.unpack_from("<HH", buf, pos)
    if group == 0xFFFE or not explicit:  # item tags never carry a VR
        (length,) = struct.unpack_from("<I", buf, pos + 4)
        return (group, element), None, length, pos + 8
    vr = bytes(buf[pos + 4 : pos + 6])
    if vr in _LONG_VRS:
        (length,) = struct.unpack_from("<I", buf, pos + 8)
        return (group, element), vr, length, pos + 12
    (length,) = struct.unpack_from("<H", buf, pos + 6)
    return (group, element), vr, length, pos + 8


def _dataset(buf: bytes, pos: int, end: int, explicit: bool, stop=None):
    """Parse elements from ``pos`` to ``end`` (or an item delimiter); sequences recursively."""
    out = {}
    while pos + 8 <= end:
        tag, vr, length, value = _header(buf, pos, explicit)
        if tag == _ITEM_END:
            return out, value
        if stop is not None and tag > stop:
            return out, pos
        if vr == b"SQ" or length == _UNDEFINED or tag == _SEQUENCE_TAG:
            # Undefined-length UN holds an implicit-VR sequence (PS3.5 6.2.2, CP-246).
            inner_explicit = explicit and vr != b"UN"
            out[tag], pos = _sequence(buf, value, length, inner_explicit)
        else:
            if value + length > len(buf):
                raise ValueError("DICOM data element runs past the end of the file.")
            out[tag] = bytes(buf[value : value + length])
            pos = value + length
    return out, pos


def _sequence(buf: bytes, pos: int, length: int, explicit: bool):
    end = len(buf) if length == _UNDEFINED else pos + length
    items = []
    while pos + 8 <= end:
        tag, _, item_length, value = _header(buf, pos, explicit)
        if tag == _SEQUENCE_END:
            return items, value
        if tag != _ITEM:
            raise ValueError(f"malformed DICOM sequence: expected an item, found tag {tag}.")
        item_end = end if item_length == _UNDEFINED else value + item_length
        item, pos = _dataset(buf, value, item_end, explicit)
        items.append(item)
    return items, end


def _dataset_start(buf: bytes):
    """Offset of the data set after the file meta information, and its encoding."""
    if buf[128:132] == b"DICM":
        pos, syntax = 132, None
        while pos + 8 <= len(buf) and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
            tag, _, length, value = _header(buf, pos, explicit=True)
            if tag == (0x0002, 0x0010):
                syntax = buf[value : value + length].decode("ascii", "replace").strip(" \x00")
            pos = value + length
        if syntax is None:
            raise ValueError("DICOM file meta information has no Transfer Syntax UID (0002,0010).")
        return pos, syntax
    # No preamble (old files): guess the encoding from the first element's VR bytes.
    explicit = len(buf) >= 6 and buf[4:6].isalpha() and buf[4:6].isupper()
    return 0, (_IMPLICIT_LE if not explicit else "1.2.840.10008.1.2.1")


def read_radiopharmaceutical(path: str | os.PathLike) -> list[dict[str, str]] | None:
    """Items of the Radiopharmaceutical Information Sequence (0054,0016) of a DICOM file.

    Parameters
    ----------
    path : path-like
        One DICOM file (a slice of the PET series).

    Returns
    -------
    items : list of dict or None
        One dict per item, tag values as stripped strings keyed ``"gggg|eeee"``; ``None``
        when the file has no such sequence.

    Raises
    ------
    ValueError
        For a big-endian or malformed file.
    """
    with open(path, "rb") as fh:
        buf = fh.read()
    pos, syntax = _dataset_start(buf)
    if syntax == _EXPLICIT_BE:
        raise ValueError(f"{path}: big-endian DICOM (retired transfer syntax) is not supported.")
    if syntax == _DEFLATED_LE:
        buf, pos = zlib.decompress(buf[pos:], -zlib.MAX_WBITS), 0
    explicit = syntax != _IMPLICIT_LE
    try:
        dataset, _ = _dataset(buf, pos, len(buf), explicit, stop=_SEQUENCE_TAG)
    except struct.error:
        raise ValueError(f"{path}: truncated DICOM file.") from None
    items = dataset.get(_SEQUENCE_TAG)
    if items is None:
        return None
    return [
        {
            f"{g:04x}|{e:04x}": v.decode("ascii", "replace").strip(" \x00")
            for (g, e), v in item.items()
            if isinstance(v, bytes)
        }
        for item in items
    ]
