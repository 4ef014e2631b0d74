"""A preprocessed cohort on disk: the folder ``survseg preprocess`` writes and the other
commands read.

Layout of a dataset folder::

    X.npy          the cohort (memory-mapped on load, see survseg.data.cohort.save_cohort)
    y.npy          survival outcomes (scikit-survival structured array), if known
    patients.json  patient ids, per-patient geometry (to map predictions back to the
                   original image space) and free-form metadata (preprocessing settings)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cohort import load_cohort, save_cohort
from .validation import check_survival

__all__ = ["Dataset", "save_dataset", "load_dataset"]


@dataclass
class Dataset:
    """A cohort with its outcomes, patient ids and geometry."""

    X: np.ndarray
    y: np.ndarray | None = None
    patient_ids: list = field(default_factory=list)
    geometries: list | None = None
    metadata: dict = field(default_factory=dict)


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _jsonable(value.to_dict())
    return value


def save_dataset(path, X, y=None, patient_ids=None, geometries=None, metadata=None) -> Path:
    """Write a dataset folder (created if needed) and return its path."""
    path = Path(path)
    n = len(X)
    ids = [str(i) for i in (patient_ids if patient_ids is not None else range(n))]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} patient ids for {n} patients.")
    if geometries is not None and len(geometries) != n:
        raise ValueError(f"{len(geometries)} geometries for {n} patients.")
    if y is not None:
        check_survival(y, n, require_events=False)
    path.mkdir(parents=True, exist_ok=True)
    save_cohort(path / "X.npy", X)
    if y is not None:
        np.save(path / "y.npy", y, allow_pickle=False)
    elif (path / "y.npy").exists():
        (path / "y.npy").unlink()
    meta = {
        "patient_ids": ids,
        "geometries": _jsonable(geometries),
        "metadata": _jsonable(metadata or {}),
    }
    (path / "patients.json").write_text(json.dumps(meta, indent=1))
    return path


def load_dataset(path: str | os.PathLike, mmap_mode: str | None = "r") -> Dataset:
    """Read a dataset folder written by :func:`save_dataset` (``X`` memory-mapped)."""
    path = Path(path)
    if not path.is_dir() or not (path / "X.npy").exists():
        raise FileNotFoundError(
            f"{path} is not a survseg dataset folder (no X.npy); create one with "
            "`survseg preprocess` or survseg.data.store.save_dataset."
        )
    X = load_cohort(path / "X.npy", mmap_mode=mmap_mode)
    y = np.load(path / "y.npy", allow_pickle=False) if (path / "y.npy").exists() else None
    meta = (
        json.loads((path / "patients.json").read_text())
        if (path / "patients.json").exists()
        else {}
    )
    return Dataset(
        X=X,
        y=y,
        patient_ids=meta.get("patient_ids", [str(i) for i in range(len(X))]),
        geometries=meta.get("geometries"),
        metadata=meta.get("metadata", {}),
    )
