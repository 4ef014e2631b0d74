"""A table of patients (one row each: image paths, outcomes, clinical columns) read into a
survseg cohort: the core that :func:`~survseg.datasets.load_manifest` and
:func:`~survseg.datasets.load_hecktor` share.

Every patient's images go through :func:`survseg.preprocess.preprocess`, so that all patients
share one array shape; every bad cell is reported with its line and patient.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sksurv.util import Surv

from ..data.cohort import from_dataframe
from ..preprocess import Preprocessing, preprocess

MAX_LISTED = 10
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def listing(problems: list[str]) -> str:
    """The first ``MAX_LISTED`` problems, one an indented line, and how many more there are."""
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return f"\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else "")


def locate(source: str, line: int, patient: str) -> str:
    """Where a problem is: ``'<table> line <n> (patient '<id>')'``."""
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
            problems.append(f"{locate(source, line, patient)}: {column!r} is {value!r}")
            events.append(False)
    if problems:
        raise ValueError(
            f"event column {column!r} must hold 0/1 (or true/false):" + listing(problems)
        )
    return np.asarray(events, dtype=bool)


def _times(values: pd.Series, ids, lines, source: str, column: str) -> np.ndarray:
    times = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    problems = [
        f"{locate(source, line, patient)}: {column!r} is {value!r}"
        for value, time, patient, line in zip(values, times, ids, lines, strict=True)
        if not (np.isfinite(time) and time >= 0)
    ]
    if problems:
        raise ValueError(
            f"time column {column!r} must hold non-negative numbers:" + listing(problems)
        )
    return times


def check_columns(table: pd.DataFrame, needed: Sequence[str], source: str) -> None:
    """Raise a ``ValueError`` naming the ``needed`` columns that ``table`` lacks."""
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: column(s) {missing} not found; its columns are {list(table.columns)}."
        )


def load_table(
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
    """Read the patients of ``table`` into ``(X, y, patient_ids[, geometries])``.

    Parameters are those of :func:`~survseg.datasets.load_manifest`, resolved: ``ids`` and
    ``lines`` (the table's line numbers, for error messages) have one entry per row,
    ``base_dir`` is where relative paths start, ``source`` names the table in messages. Every
    missing file and bad cell is collected and raised at once, each with its line and patient.
    """
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
        check_columns(table, [nodes_column], source)
    if (time_column is None) != (event_column is None):
        raise ValueError("time_column and event_column are both None (no outcomes) or both named.")
    outcome_columns = [time_column, event_column] if time_column is not None else []
    check_columns(table, [*path_columns.values(), *outcome_columns, *clinical_columns], source)
    duplicated = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicated:
        raise ValueError(f"{source}: patient id(s) {duplicated} appear more than once.")

    cases, problems = [], []
    for row, (_, record) in enumerate(table.iterrows()):
        case = {}
        for field, column in path_columns.items():
            value = record[column]
            where = locate(source, lines[row], ids[row])
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
                    where = locate(source, lines[row], ids[row])
                    problems.append(f"{where}: {nodes_column!r} file not found: {path}")
                case["nodes"] = path
        cases.append(case)
    if problems:
        raise FileNotFoundError("image files are missing:" + listing(problems))

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
