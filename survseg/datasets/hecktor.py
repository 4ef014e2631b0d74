"""Loader of the HECKTOR 2022 training data (Task 2: recurrence-free survival), as distributed.

``load_hecktor`` reads the endpoint table, finds each patient's CT, PET and label image, and
reads them as :func:`~survseg.datasets.load_manifest` does (same return values).
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..data.io import read_image
from ..data.names import check_patient_ids, resolve_inside
from ._table import MAX_LISTED, check_columns, listing, load_table, locate

__all__ = ["load_hecktor"]


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
        As for :func:`~survseg.datasets.load_manifest`.

    Returns
    -------
    X, y, patient_ids[, geometries]
        As for :func:`~survseg.datasets.load_manifest`; ``X`` has ``'mask'`` (``labels``) and, unless
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
    check_columns(table, [id_column, time_column, event_column], source)
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
        check_columns(clinical, [id_column, *clinical_columns], os.path.basename(clinical_csv))
        clinical[id_column] = clinical[id_column].astype(str).str.strip()
        absent = [i for i in ids if i not in set(clinical[id_column])]
        if absent:
            raise ValueError(
                f"patient(s) {absent[:MAX_LISTED]} have no row in {os.path.basename(clinical_csv)}."
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
        f"{locate(source, line, i)}: {path} not found"
        for i, line, *paths in zip(
            ids, table["_line"], table["_ct"], table["_pt"], table["_mask"], strict=True
        )
        for path in paths
        if not os.path.exists(os.path.join(root, path))
    ]
    if missing:
        raise FileNotFoundError("HECKTOR files are missing:" + listing(missing))
    labels = tuple(int(v) for v in labels)
    empty = [
        i
        for i, path in zip(ids, table["_mask"], strict=True)
        if not _mask_has_labels(os.path.join(root, path), labels)
    ]
    if empty and not drop_empty_masks:
        raise ValueError(
            f"the label images of patient(s) {empty[:MAX_LISTED]}"
            f"{' ...' if len(empty) > MAX_LISTED else ''} contain none of the "
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
    return load_table(
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
