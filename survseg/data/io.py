"""Reading and writing 3D medical images with SimpleITK: NIfTI, NRRD, MetaImage and DICOM.

Every reader returns a 3D :class:`SimpleITK.Image`, whose spacing, origin and direction carry
the physical geometry (SimpleITK index order ``(x, y, z)``; ``sitk.GetArrayFromImage`` gives the
numpy array in ``(z, y, x)`` order, the survseg cohort order ``(D, H, W)``).

A DICOM series is a folder; :func:`read_pet` turns a PET series into SUV (body weight) from its
tags (see :mod:`survseg.data.suv`). PET given as NIfTI/NRRD/MetaImage is taken as it is (such
exports, e.g. HECKTOR's, are already in SUV).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk

from .suv import read_radiopharmaceutical, suv_parameters

__all__ = [
    "IMAGE_SUFFIXES",
    "is_dicom",
    "read_image",
    "read_pet",
    "read_mask",
    "select_labels",
    "write_image",
]

#: File suffixes read by :func:`read_image` (a folder is read as a DICOM series).
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
_MODALITY = "0008|0060"


def _suffix(path: str) -> str:
    name = os.path.basename(path).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as DICOM: a folder, a ``.dcm`` file or a file with the
    ``DICM`` marker at byte 128."""
    path = os.fspath(path)
    if os.path.isdir(path) or _suffix(path) == ".dcm":
        return True
    if os.path.isfile(path) and _suffix(path) not in IMAGE_SUFFIXES:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    return False


def _check_3d(image: sitk.Image, path: str) -> sitk.Image:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path}: expected a scalar image, got "
            f"{image.GetNumberOfComponentsPerPixel()} components per voxel."
        )
    if image.GetDimension() != 3:
        raise ValueError(
            f"{path}: expected a 3D image, got a {image.GetDimension()}D image of "
            f"size {image.GetSize()}."
        )
    return image


def _read_series(folder: str, series_id: str | None, with_tags: bool):
    """(image, file names, per-slice tag dicts) of one DICOM series in ``folder``."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise ValueError(f"no DICOM series found in folder {folder}.")
    if series_id is None:
        if len(ids) > 1:
            raise ValueError(
                f"folder {folder} holds {len(ids)} DICOM series {list(ids)}; choose one with "
                "series_id=..."
            )
        series_id = ids[0]
    elif series_id not in ids:
        raise ValueError(f"series {series_id!r} not in folder {folder}; it holds {list(ids)}.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_id)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    # The pixel type otherwise follows the first slice: an integer first slice would truncate
    # later slices whose rescale slope is fractional (PET scanners write one slope per slice).
    reader.SetOutputPixelType(sitk.sitkFloat32)
    if with_tags:
        reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    tags = []
    if with_tags:
        tags = [
            {k: reader.GetMetaData(i, k) for k in reader.GetMetaDataKeys(i)}
            for i in range(len(files))
        ]
    return image, list(files), tags


def _read_dicom_file(path: str, with_tags: bool):
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.SetImageIO("GDCMImageIO")
    image = reader.Execute()
    tags = [{k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}] if with_tags else []
    return image, [path], tags


_CHUNK = 1 << 22


def _nifti_expected_bytes(head: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file must hold (header + voxels), from its header; ``None`` if
    ``head`` is not a NIfTI header."""
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            offset = max(int(struct.unpack(order + "f", head[108:112])[0]), 352)
            break
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            dims = struct.unpack(order + "8q", head[16:80])
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            offset = max(struct.unpack(order + "q", head[168:176])[0], 544)
            break
    else:
        return None
    n = int(dims[0])
    if not 1 <= n <= 7 or bitpix <= 0:
        return None
    voxels = int(np.prod([max(int(d), 1) for d in dims[1 : n + 1]], dtype=np.int64))
    return offset + voxels * bitpix // 8


def check_complete_nifti(path: str) -> None:
    """Raise if a NIfTI file (``.nii`` or ``.nii.gz``) holds fewer voxel bytes than its
    header announces, or its gzip stream is cut.

    SimpleITK reads such a file without a word and fills the missing voxels with 0; the
    gzip stream is decompressed here in chunks (no whole copy in memory) to count them.

    Raises
    ------
    ValueError
        Naming the file and how many bytes it holds of how many.
    """
    compressed = path.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as fh:
            head = fh.read(540)
            expected = _nifti_expected_bytes(head)
            if expected is None:
                return  # not NIfTI: left to SimpleITK, which names the problem
            total = len(head)
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(
            f"{path} is truncated or damaged: its gzip stream is incomplete ({exc}). "
            "Copy or export the file again."
        ) from None
    if total < expected:
        raise ValueError(
            f"{path} is truncated: it holds {total} bytes"
            f"{' (decompressed)' if compressed else ''} but its NIfTI header needs "
            f"{expected}. Copy or export the file again."
        )


def _read_file(path: str) -> sitk.Image:
    if _suffix(path) in (".nii", ".nii.gz"):
        check_complete_nifti(path)
    try:
        return sitk.ReadImage(path)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in lines[1:] if "Exception" not in line), lines[-1])
        raise ValueError(f"{path}: SimpleITK cannot read this image ({detail}).") from None


def _read(path, series_id, with_tags):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    if os.path.isdir(path):
        image, files, tags = _read_series(path, series_id, with_tags)
    elif is_dicom(path):
        image, files, tags = _read_dicom_file(path, with_tags)
    else:
        if _suffix(path) not in IMAGE_SUFFIXES:
            raise ValueError(
                f"{path}: unknown image format {_suffix(path)!r}; survseg reads "
                f"{', '.join(IMAGE_SUFFIXES)} files and DICOM series (a folder)."
            )
        image, files, tags = _read_file(path), [path], []
    return _check_3d(image, path), files, tags


def read_image(path: str | os.PathLike, *, series_id: str | None = None) -> sitk.Image:
    """Read a 3D image: NIfTI, NRRD, MetaImage, one DICOM file or a DICOM series folder.

    Parameters
    ----------
    path : path-like
        A file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``, ``.dcm``) or
        a folder holding one DICOM series.
    series_id : str, optional
        Series Instance UID to read when the folder holds several series.

    Returns
    -------
    image : SimpleITK.Image
        With the file's pixel type (``float32`` for a DICOM series, whose rescale slope and
        intercept are applied slice by slice), spacing, origin and direction.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown format, no or several DICOM series, or an image that is not 3D and scalar.
    """
    return _read(path, series_id, with_tags=False)[0]


def read_pet(
    path: str | os.PathLike,
    *,
    series_id: str | None = None,
    return_suv_parameters: bool = False,
):
    """Read a PET image in SUV (body weight) as ``float32``.

    A DICOM PET (Modality ``PT``) in Bq/mL is converted with the weight, injected dose,
    half-life and injection and scan times from its own tags (:mod:`survseg.data.suv`); one
    already in g/mL (Units ``GML``) is returned as it is. Any other format is taken to be in
    SUV already and only cast to ``float32``.

    Parameters
    ----------
    path : path-like
        As for :func:`read_image`.
    series_id : str, optional
        As for :func:`read_image`.
    return_suv_parameters : bool
        Also return the :class:`~survseg.data.suv.SUVParameters` used (``None`` when no
        conversion was done).

    Returns
    -------
    image : SimpleITK.Image
        ``float32``, same geometry as the file.
    parameters : SUVParameters or None
        Only when ``return_suv_parameters``.

    Raises
    ------
    survseg.data.suv.MissingDicomTagError
        A tag needed for SUV is missing (the message names it).
    ValueError
        A DICOM series that is not PET, or unusable tag values.
    """
    dicom = is_dicom(path)
    image, files, tags = _read(path, series_id, with_tags=dicom)
    parameters = None
    if dicom:
        source = os.fspath(path)
        modality = tags[0].get(_MODALITY, "").strip()
        if modality != "PT":
            raise ValueError(
                f"{source} is not a PET series: Modality (0008,0060) is "
                f"{modality or 'missing'!r}, expected 'PT'."
            )
        if tags[0].get("0054|1001", "").strip().upper() != "GML":
            items = read_radiopharmaceutical(files[0])
            if items is not None and len(items) != 1:
                raise ValueError(
                    f"{source}: the Radiopharmaceutical Information Sequence (0054,0016) has "
                    f"{len(items)} items; SUV needs exactly one radiopharmaceutical."
                )
            parameters = suv_parameters(
                tags[0], items[0] if items else None, acquisition=tags, source=source
            )
    image = sitk.Cast(image, sitk.sitkFloat32)
    if parameters is not None:
        image = image * parameters.scale_factor
    return (image, parameters) if return_suv_parameters else image


def select_labels(image: sitk.Image, labels: Iterable[int] | None = None) -> sitk.Image:
    """Binary ``uint8`` mask of the voxels whose label is in ``labels``.

    Parameters
    ----------
    image : SimpleITK.Image
        A label image (integer values; a float image must hold whole numbers).
    labels : iterable of int, optional
        Labels forming the mask (e.g. ``(1,)`` = HECKTOR primary tumour, ``(1, 2)`` = tumour
        and lymph nodes). ``None``: every non-zero voxel.

    Returns
    -------
    mask : SimpleITK.Image
        ``uint8`` in {0, 1}, same geometry.
    """
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        raise ValueError(
            "a label image must hold whole numbers; this one has fractional "
            "values (was it resampled with linear interpolation?)."
        )
    if labels is None:
        binary = values != 0
    else:
        labels = [int(v) for v in labels]
        if not labels:
            raise ValueError("labels is empty: name at least one label to form the mask.")
        binary = np.isin(values, labels)
    mask = sitk.GetImageFromArray(binary.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def read_mask(
    path: str | os.PathLike, labels: Iterable[int] | None = None, *, series_id: str | None = None
) -> sitk.Image:
    """Read a label image and keep ``labels`` as a binary ``uint8`` mask (see
    :func:`select_labels`)."""
    return select_labels(read_image(path, series_id=series_id), labels)


def write_image(image: sitk.Image, path: str | os.PathLike, *, compress: bool = True) -> None:
    """Write an image as NIfTI, NRRD or MetaImage (chosen by the suffix of ``path``).

    Parameters
    ----------
    image : SimpleITK.Image
    path : path-like
        Ends in ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd``.
    compress : bool
        Compress the voxel data where the format allows it.
    """
    path = os.fspath(path)
    if _suffix(path) not in IMAGE_SUFFIXES or _suffix(path) == ".dcm":
        raise ValueError(
            f"{path}: write NIfTI, NRRD or MetaImage files ({', '.join(IMAGE_SUFFIXES[:-1])})."
        )
    sitk.WriteImage(image, path, useCompression=compress)
