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
this module reads that one sequence with pydicom (:func:`read_radiopharmaceutical`); dates and
times are parsed with pydicom's DA/TM/DT value representations. Tags that are not nested (as
some converters write them) are used when the sequence is absent. A missing or unusable tag is
an error that names it; no value is ever assumed.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import DA, DT, TM

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
    """DICOM DA ``YYYYMMDD`` (ACR-NEMA ``YYYY.MM.DD`` and ``YYYY-MM-DD`` tolerated)."""
    try:
        parsed = DA(value.strip().replace("-", ""))
    except ValueError:
        parsed = None
    if parsed is None:  # pydicom gives None for an empty value
        raise ValueError(f"{_name(key)} is not a DICOM date (YYYYMMDD): {value!r}.")
    return date(parsed.year, parsed.month, parsed.day)


def _parse_time(value: str, key: str) -> timedelta:
    """DICOM TM ``HH[MM[SS[.F{1,6}]]]`` (colons of ACR-NEMA tolerated) -> time since midnight."""
    try:
        parsed = TM(value.strip().replace(":", ""))
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"{_name(key)} is not a DICOM time (HHMMSS.FFFFFF): {value!r}.")
    return timedelta(
        hours=parsed.hour,
        minutes=parsed.minute,
        seconds=parsed.second,
        microseconds=parsed.microsecond,
    )


def _parse_datetime(value: str, key: str) -> datetime:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF[&ZZXX]``; a UTC offset suffix is ignored (both times
    of an SUV computation come from the same scanner clock)."""
    text = value.strip()
    try:
        parsed = DT(text)
    except ValueError:
        parsed = None
    if parsed is None or not text[:8].isdigit():  # pydicom fills a missing month/day with 1
        raise ValueError(
            f"{_name(key)} is not a DICOM date-time (YYYYMMDDHHMMSS.FFFFFF): {value!r}."
        )
    return datetime.combine(parsed.date(), parsed.time())  # time() drops the offset


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

# Value representations whose value is text (PS3.5 Table 6.2-1); binary ones are of no use here.
_TEXT_VRS = frozenset(
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI")
    + ("UR", "UT")
)


def _text(item: pydicom.Dataset, tag: BaseTag) -> str | None:
    """Text value of one element (multiple values joined by backslash), or ``None`` when
    its value is not text (a nested sequence, binary data, a private tag of unknown VR)."""
    vr = dictionary_VR(tag) if dictionary_has_tag(tag) else None  # a known tag's VR, not 'UN'
    element = item.get_item(tag)  # raw (not yet converted) when freshly read
    if (vr or element.VR) not in _TEXT_VRS:
        return None
    value = element.value
    # The raw bytes, not pydicom's converted value: an unusable value (e.g. a DS that is not
    # a number) then fails in this module with a message naming the tag, and only if used.
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value).strip(" \x00")


def read_radiopharmaceutical(path: str | os.PathLike) -> list[dict[str, str]] | None:
    """Items of the Radiopharmaceutical Information Sequence (0054,0016) of a DICOM file.

    The header is read with :func:`pydicom.dcmread` (pixel data skipped), so every transfer
    syntax pydicom reads is supported, as are files without the preamble and meta header.
    pydicom reads leniently: a file cut short inside the sequence is not always detected.
    :func:`survseg.data.io.read_pet` only calls this on files GDCM has read in full.

    Parameters
    ----------
    path : path-like
        One DICOM file (a slice of the PET series).

    Returns
    -------
    items : list of dict or None
        One dict per item: the text-valued elements (nested sequences left out) as stripped
        strings keyed ``"gggg|eeee"``; ``None`` when the file has no such sequence.

    Raises
    ------
    ValueError
        For a file pydicom cannot read as DICOM (the message names it).
    """
    try:
        # force: GDCM has already read the file as DICOM, including old ones with no preamble.
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        sequence = header.get("RadiopharmaceuticalInformationSequence")
    except (InvalidDicomError, EOFError, ValueError, struct.error, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read the DICOM header ({exc}).") from exc
    if sequence is None:
        return None
    items = []
    for item in sequence:
        values = {f"{tag.group:04x}|{tag.element:04x}": _text(item, tag) for tag in item.keys()}
        items.append({key: value for key, value in values.items() if value is not None})
    return items
