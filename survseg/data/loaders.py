"""Loaders from files on disk to ``(X, y, patient_ids)``: a CSV manifest, or the HECKTOR 2022
training layout.

Both read every patient's images, run them through :func:`survseg.preprocess.preprocess` (so
that all patients share one array shape) and return a survseg cohort ``X``, scikit-survival's
``y`` and the patient identifiers, in the same order. ``return_geometry=True`` adds the
per-patient :class:`~survseg.preprocess.CaseGeometry` records that lead predicted masks back to
each patient's original CT space (:func:`~survseg.preprocess.to_original_space`).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sksurv.util import Surv

from .cohort import from_dataframe
from .io import read_image
from .names import check_patient_ids, resolve_inside

__all__ = ["load_manifest", "load_hecktor"]

_MAX_LISTED = 10
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _listing(problems: list[str]) -> str:
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = len(problems) - _MAX_LISTED
    return f"\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else "")


def _where(source: str, line: int, patient: str) -> str:
    return f"{source} line {line} (patient {patient!r})"


def _events(values: pd.Series, ids, lines, source: str, column: str) -> np.ndarray:
    events, problems = [], []
    for value, patient, line in zip(values, ids, lines, strict=True):
        text = str(value).strip().lower()
        if isinstance(value, (bool, np.bool_)):
            events.append(bool(value))
        elif text in _TRUE or text in ("1.0",):
            events.append(True)
        elif text in _FALSE or text in ("0.0",):
            events.append(False)
        else:
            problems.append(f"{_where(source, line, patient)}: {column!r} is {value!r}")
            events.append(False)
    if problems:
        raise ValueError(
            f"event column {column!r} must hold 0/1 (or true/false):" + _listing(problems)
        )
    return np.asarray(events, dtype=bool)


def _times(values: pd.Series, ids, lines, source: str, column: str) -> np.ndarray:
    times = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    problems = [
        f"{_where(source, line, patient)}: {column!r} is {value!r}"
        for value, time, patient, line in zip(values, times, ids, lines, strict=True)
        if not (np.isfinite(time) and time >= 0)
    ]
    if problems:
        raise ValueError(
            f"time column {column!r} must hold non-negative numbers:" + _listing(problems)
        )
    return times


def _check_columns(table: pd.DataFrame, needed: Sequence[str], source: str) -> None:
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: column(s) {missing} not found; its columns are {list(table.columns)}."
        )


def _load_table(
    table,
    base_dir,
    *,
    image_columns,
    mask_column,
    nodes_column,
    time_column,
    event_column,
    ids,
    lines,
    clinical_columns,
    labels,
    nodes_labels,
    preprocessing,
    n_jobs,
    memory,
    verbose,
    return_geometry,
    source,
):
    # Imported here: survseg.preprocess imports survseg.data.io, so a module-level import
    # would tie the two packages' initialisation order together.
    from ..preprocess import Preprocessing, preprocess

    image_columns = dict(image_columns)
    if not image_columns:
        raise ValueError("image_columns is empty: name at least one image column.")
    for reserved, param in (("mask", "mask_column"), ("nodes", "nodes_column")):
        if reserved in image_columns:
            raise ValueError(
                f"{reserved!r} is reserved for the {reserved} labels ({param}); name the image "
                "field otherwise."
            )
    clinical_columns = list(clinical_columns)
    path_columns = {**image_columns, **({"mask": mask_column} if mask_column else {})}
    if nodes_column:
        _check_columns(table, [nodes_column], source)
    if (time_column is None) != (event_column is None):
        raise ValueError("time_column and event_column are both None (no outcomes) or both named.")
    outcome_columns = [time_column, event_column] if time_column is not None else []
    _check_columns(table, [*path_columns.values(), *outcome_columns, *clinical_columns], source)
    duplicated = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicated:
        raise ValueError(f"{source}: patient id(s) {duplicated} appear more than once.")

    cases, problems = [], []
    for row, (_, record) in enumerate(table.iterrows()):
        case = {}
        for field, column in path_columns.items():
            value = record[column]
            where = _where(source, lines[row], ids[row])
            if pd.isna(value) or not str(value).strip():
                problems.append(f"{where}: column {column!r} is empty")
                continue
            path = os.path.join(base_dir, os.path.expanduser(str(value).strip()))
            if not os.path.exists(path):
                problems.append(f"{where}: {column!r} file not found: {path}")
            case[field] = path
        if nodes_column:  # an empty cell is a patient without nodes
            value = record[nodes_column]
            if pd.isna(value) or not str(value).strip():
                case["nodes"] = None
            else:
                path = os.path.join(base_dir, os.path.expanduser(str(value).strip()))
                if not os.path.exists(path):
                    where = _where(source, lines[row], ids[row])
                    problems.append(f"{where}: {nodes_column!r} file not found: {path}")
                case["nodes"] = path
        cases.append(case)
    if problems:
        raise FileNotFoundError("image files are missing:" + _listing(problems))

    if time_column is not None:
        time = _times(table[time_column], ids, lines, source, time_column)
        event = _events(table[event_column], ids, lines, source, event_column)
    clinical = table[clinical_columns].reset_index(drop=True)
    non_numeric = [c for c in clinical_columns if not pd.api.types.is_numeric_dtype(clinical[c])]
    if non_numeric:
        raise ValueError(
            f"{source}: clinical column(s) {non_numeric} are not numeric (e.g. "
            f"{clinical[non_numeric[0]].dropna().iloc[0]!r}); encode them as numbers first."
        )

    p = Preprocessing() if preprocessing is None else preprocessing
    if labels is not None:
        p = dataclasses.replace(p, mask_labels=tuple(int(v) for v in labels))
    if nodes_labels is not None:
        p = dataclasses.replace(p, nodes_labels=tuple(int(v) for v in nodes_labels))
    result = preprocess(cases, p, ids=ids, n_jobs=n_jobs, memory=memory, verbose=verbose)
    volumes, geometries = result
    mask = volumes.pop("mask", None)
    nodes = volumes.pop("nodes", None)
    # the preprocessed grid's voxel spacing travels with the cohort
    X = from_dataframe(clinical, mask=mask, nodes=nodes, spacing=result.spacing, **volumes)
    y = Surv.from_arrays(event=event, time=time) if time_column is not None else None
    patient_ids = np.asarray(ids, dtype=str)
    return (X, y, patient_ids, geometries) if return_geometry else (X, y, patient_ids)


def load_manifest(
    csv_path: str | os.PathLike,
    *,
    image_columns: Mapping[str, str] | None = None,
    mask_column: str | None = "mask",
    nodes_column: str | None = "auto",
    time_column: str | None = "time",
    event_column: str | None = "event",
    id_column: str | None = "patient_id",
    clinical_columns: Sequence[str] = (),
    labels: Sequence[int] | None = None,
    nodes_labels: Sequence[int] | None = None,
    preprocessing=None,
    n_jobs: int | None = None,
    memory=None,
    verbose: bool = False,
    return_geometry: bool = False,
):
    """Load a cohort described by a CSV manifest, one row per patient.

    Parameters
    ----------
    csv_path : path-like
        The manifest. Relative image paths are resolved against its folder.
    image_columns : mapping of str to str, optional
        Cohort field name -> column holding that modality's file (or DICOM folder) path.
        Default ``{'ct': 'ct', 'pet': 'pet'}``. A PET in a DICOM folder is converted to SUV.
    mask_column : str or None
        Column with the label image path; ``None`` for a cohort without masks.
    nodes_column : str or None, default="auto"
        Column with the lymph-node label image path (it may name the same file as the mask,
        e.g. a HECKTOR label image, with ``nodes_labels=(2,)``); an empty cell is a patient
        without nodes. ``"auto"``: the ``'nodes'`` column if the manifest has one; ``None``:
        no node masks. With it, ``X`` has a ``'nodes'`` field.
    time_column, event_column : str or None
        Survival time and event indicator (0/1 or true/false). Both ``None`` for new patients
        without outcomes (``y`` is then ``None``).
    id_column : str or None
        Patient identifiers; ``None`` uses the row numbers.
    clinical_columns : sequence of str
        Numeric columns to keep as clinical fields of ``X`` (NaN is kept as NaN).
    labels : sequence of int, optional
        Labels of the label image forming the mask (replaces ``preprocessing.mask_labels``);
        default: any non-zero label.
    nodes_labels : sequence of int, optional
        Labels of the node label image forming the node mask (replaces
        ``preprocessing.nodes_labels``); default: any non-zero label.
    preprocessing : survseg.preprocess.Preprocessing, optional
        Resampling, registration, crop and intensity parameters; default
        ``Preprocessing()`` (AdaMSS: 1 mm, 160^3 box on the tumour).
    n_jobs, memory, verbose
        Passed to :func:`survseg.preprocess.preprocess` (parallel patients, on-disk cache,
        progress bar).
    return_geometry : bool
        Also return the per-patient geometry records.

    Returns
    -------
    X : ndarray, structured
        The cohort: image fields, ``'mask'`` (if ``mask_column``), ``'nodes'`` (with a nodes
        column) and clinical fields.
    y : structured ndarray or None
        ``sksurv.util.Surv.from_arrays(event, time)``; ``None`` without outcome columns.
    patient_ids : ndarray of str
    geometries : list of CaseGeometry
        Only with ``return_geometry=True``.

    Raises
    ------
    FileNotFoundError
        The manifest or image files are missing (every missing file is listed with its line
        and patient).
    ValueError
        Missing columns, bad event or time values, non-numeric clinical columns, duplicated
        ids; :class:`~survseg.preprocess.PreprocessingError` names a patient whose images
        cannot be preprocessed.

    Examples
    --------
    A manifest ``cohort.csv``::

        patient_id,ct,pet,mask,nodes,time,event,age
        P001,P001/ct.nii.gz,P001/pet_dicom/,P001/gtvp.nii.gz,P001/gtvn.nii.gz,812,1,61
        P002,P002/ct.nii.gz,P002/pet_dicom/,P002/gtvp.nii.gz,,430,0,57

    >>> X, y, ids = load_manifest("cohort.csv", clinical_columns=["age"])  # doctest: +SKIP
    """
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"manifest not found: {csv_path}")
    table = pd.read_csv(csv_path)
    source = os.path.basename(csv_path)
    if id_column is not None:
        _check_columns(table, [id_column], source)
        ids = [str(v) for v in table[id_column]]
    else:
        ids = [str(i) for i in range(len(table))]
    if not len(table):
        raise ValueError(f"{source} lists no patients.")
    if nodes_column == "auto":
        nodes_column = "nodes" if "nodes" in table.columns else None
    return _load_table(
        table,
        os.path.dirname(os.path.abspath(csv_path)),
        image_columns=image_columns or {"ct": "ct", "pet": "pet"},
        mask_column=mask_column,
        nodes_column=nodes_column,
        time_column=time_column,
        event_column=event_column,
        ids=ids,
        lines=list(range(2, len(table) + 2)),
        clinical_columns=clinical_columns,
        labels=labels,
        nodes_labels=nodes_labels,
        preprocessing=preprocessing,
        n_jobs=n_jobs,
        memory=memory,
        verbose=verbose,
        return_geometry=return_geometry,
        source=source,
    )


def _mask_has_labels(path: str, labels) -> bool:
    image = read_image(path)  # keep a reference: the view does not
    return bool(np.isin(sitk.GetArrayViewFromImage(image), list(labels)).any())


def load_hecktor(
    root: str | os.PathLike,
    *,
    endpoint_csv: str | os.PathLike | None = None,
    id_column: str = "PatientID",
    time_column: str = "RFS",
    event_column: str = "Relapse",
    labels: Sequence[int] = (1,),
    nodes_label: int | Sequence[int] | None = 2,
    clinical_csv: str | os.PathLike | None = None,
    clinical_columns: Sequence[str] = (),
    images_dir: str = "imagesTr",
    labels_dir: str = "labelsTr",
    patients: Sequence[str] | None = None,
    drop_empty_masks: bool = False,
    preprocessing=None,
    n_jobs: int | None = None,
    memory=None,
    verbose: bool = False,
    return_geometry: bool = False,
):
    """Load the HECKTOR 2022 training data (Task 2: recurrence-free survival).

    Expected layout (as distributed)::

        root/imagesTr/<PatientID>__CT.nii.gz
        root/imagesTr/<PatientID>__PT.nii.gz     (PET already in SUV)
        root/labelsTr/<PatientID>.nii.gz         (1 = primary tumour GTVp, 2 = nodes GTVn)
        root/hecktor2022_endpoint_training.csv   (PatientID, Relapse, RFS)
        root/hecktor2022_clinical_info_training.csv

    Patients are those of the endpoint table (Task-1-only patients without an endpoint are
    not loaded), in its order.

    Parameters
    ----------
    root : path-like
        The training folder.
    endpoint_csv : path-like, optional
        Default ``root/hecktor2022_endpoint_training.csv``.
    id_column, time_column, event_column : str
        Endpoint columns: patient id, RFS (days) and relapse indicator.
    labels : sequence of int
        Labels forming the mask: ``(1,)`` primary tumour (default), ``(1, 2)`` tumour and
        lymph nodes merged into one mask.
    nodes_label : int, sequence of int or None, default=2
        Label(s) forming the lymph-node mask, the ``'nodes'`` field of ``X`` (GTVn; all zero
        for a patient without nodes). ``None``: no ``'nodes'`` field (with ``labels=(1, 2)``,
        the cohort of earlier versions). A label in both ``labels`` and ``nodes_label`` is in
        both masks.
    clinical_csv : path-like, optional
        Default ``root/hecktor2022_clinical_info_training.csv``; read only when
        ``clinical_columns`` is given.
    clinical_columns : sequence of str
        Numeric clinical columns to add to ``X`` (e.g. ``['Age', 'Weight']``; encode text
        columns such as ``Gender`` first).
    images_dir, labels_dir : str
        Sub-folders of ``root``.
    patients : sequence of str, optional
        Load only these patients (ids of the endpoint table).
    drop_empty_masks : bool
        Leave out, with a warning, patients whose label image has none of ``labels`` (some
        HECKTOR patients have nodes but no primary tumour); by default they are an error.
    preprocessing, n_jobs, memory, verbose, return_geometry
        As for :func:`load_manifest`.

    Returns
    -------
    X, y, patient_ids[, geometries]
        As for :func:`load_manifest`; ``X`` has ``'mask'`` (``labels``) and, unless
        ``nodes_label=None``, ``'nodes'``.

    References
    ----------
    Andrearczyk V., Oreiller V., et al. Overview of the HECKTOR challenge at MICCAI 2022:
    automatic head and neck tumor segmentation and outcome prediction in PET/CT. LNCS 13626
    (2023).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"HECKTOR folder not found: {root}")
    endpoint_csv = os.fspath(
        endpoint_csv or os.path.join(root, "hecktor2022_endpoint_training.csv")
    )
    if not os.path.isfile(endpoint_csv):
        raise FileNotFoundError(
            f"endpoint table not found: {endpoint_csv} (pass endpoint_csv=...)."
        )
    source = os.path.basename(endpoint_csv)
    table = pd.read_csv(endpoint_csv)
    _check_columns(table, [id_column, time_column, event_column], source)
    table[id_column] = table[id_column].astype(str).str.strip()
    table["_line"] = np.arange(len(table)) + 2
    if patients is not None:
        wanted = [str(p) for p in patients]
        unknown = sorted(set(wanted) - set(table[id_column]))
        if unknown:
            raise ValueError(f"patient(s) {unknown} are not in {source}.")
        table = table[table[id_column].isin(wanted)]
    if not len(table):
        raise ValueError(f"{source} lists no patients.")

    ids = check_patient_ids(table[id_column], source)  # ids become file names below

    def inside(folder, name):  # a path under root, never outside it
        return os.path.relpath(resolve_inside(root, os.path.join(folder, name)), root)

    table = table.assign(
        _ct=[inside(images_dir, f"{i}__CT.nii.gz") for i in ids],
        _pt=[inside(images_dir, f"{i}__PT.nii.gz") for i in ids],
        _mask=[inside(labels_dir, f"{i}.nii.gz") for i in ids],
    )
    if clinical_columns:
        clinical_csv = os.fspath(
            clinical_csv or os.path.join(root, "hecktor2022_clinical_info_training.csv")
        )
        if not os.path.isfile(clinical_csv):
            raise FileNotFoundError(
                f"clinical table not found: {clinical_csv} (pass clinical_csv=...)."
            )
        clinical = pd.read_csv(clinical_csv)
        _check_columns(clinical, [id_column, *clinical_columns], os.path.basename(clinical_csv))
        clinical[id_column] = clinical[id_column].astype(str).str.strip()
        absent = [i for i in ids if i not in set(clinical[id_column])]
        if absent:
            raise ValueError(
                f"patient(s) {absent[:_MAX_LISTED]} have no row in "
                f"{os.path.basename(clinical_csv)}."
            )
        clashes = [c for c in clinical_columns if c in table.columns]
        if clashes:
            raise ValueError(f"clinical column(s) {clashes} are also endpoint columns.")
        table = table.merge(
            clinical[[id_column, *clinical_columns]],
            on=id_column,
            how="left",
            validate="one_to_one",
        )

    missing = [
        f"{_where(source, line, i)}: {path} not found"
        for i, line, *paths in zip(
            ids, table["_line"], table["_ct"], table["_pt"], table["_mask"], strict=True
        )
        for path in paths
        if not os.path.exists(os.path.join(root, path))
    ]
    if missing:
        raise FileNotFoundError("HECKTOR files are missing:" + _listing(missing))
    labels = tuple(int(v) for v in labels)
    empty = [
        i
        for i, path in zip(ids, table["_mask"], strict=True)
        if not _mask_has_labels(os.path.join(root, path), labels)
    ]
    if empty and not drop_empty_masks:
        raise ValueError(
            f"the label images of patient(s) {empty[:_MAX_LISTED]}"
            f"{' ...' if len(empty) > _MAX_LISTED else ''} contain none of the "
            f"labels {labels}; choose other labels or pass drop_empty_masks=True."
        )
    if empty:
        warnings.warn(
            f"left out {len(empty)} patient(s) without labels {labels}: {empty}",
            UserWarning,
            stacklevel=2,
        )
        table = table[~table[id_column].isin(empty)]
        ids = list(table[id_column])
        if not ids:
            raise ValueError(f"no patient has labels {labels}.")
    if nodes_label is not None:
        nodes_label = (
            (int(nodes_label),)
            if isinstance(nodes_label, numbers.Integral)
            else tuple(int(v) for v in nodes_label)
        )
        if not nodes_label:
            raise ValueError("nodes_label is empty: give a label (HECKTOR: 2) or None.")
    return _load_table(
        table.reset_index(drop=True),
        root,
        image_columns={"ct": "_ct", "pet": "_pt"},
        mask_column="_mask",
        nodes_column=None if nodes_label is None else "_mask",
        time_column=time_column,
        event_column=event_column,
        ids=ids,
        lines=list(table["_line"]),
        clinical_columns=clinical_columns,
        labels=labels,
        nodes_labels=nodes_label,
        preprocessing=preprocessing,
        n_jobs=n_jobs,
        memory=memory,
        verbose=verbose,
        return_geometry=return_geometry,
        source=source,
    )
