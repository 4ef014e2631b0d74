"""Loader of a cohort described by a CSV manifest, one row per patient.

``load_manifest`` reads every patient's images, runs them through
:func:`survseg.preprocess.preprocess` (so that all patients share one array shape) and returns a
survseg cohort ``X``, scikit-survival's ``y`` and the patient identifiers, in the same order.
``return_geometry=True`` adds the per-patient :class:`~survseg.preprocess.CaseGeometry` records
that lead predicted masks back to each patient's original CT space
(:func:`~survseg.preprocess.to_original_space`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from ._table import check_columns, load_table

__all__ = ["load_manifest"]


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
        check_columns(table, [id_column], source)
        ids = [str(v) for v in table[id_column]]
    else:
        ids = [str(i) for i in range(len(table))]
    if not len(table):
        raise ValueError(f"{source} lists no patients.")
    if nodes_column == "auto":
        nodes_column = "nodes" if "nodes" in table.columns else None
    return load_table(
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
