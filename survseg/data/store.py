"""A preprocessed cohort on disk: the folder ``survseg preprocess`` writes and the other
commands read.

Layout of a dataset folder::

    X.npy          the cohort (memory-mapped on load, see survseg.data.cohort.save_cohort)
    y.npy          survival outcomes (scikit-survival structured array), if known
    patients.json  patient ids, per-patient geometry (to map predictions back to the
                   original image space) and free-form metadata (preprocessing settings)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cohort import load_cohort, save_cohort
from .names import check_patient_ids
from .validation import check_survival

__all__ = ["Dataset", "save_dataset", "load_dataset", "atomic_path", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name next to ``path``; on success it is renamed over ``path``.

    The rename is atomic on one file system, so readers see the old file or the complete new
    one, never a truncated one, and a file that is memory-mapped while it is replaced keeps
    its old contents for the mapping. On an error the temporary file is removed and ``path``
    is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_mode(path: str) -> int:
    """The existing file's permissions, else the default for a new file (0o666 & ~umask)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


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
    """Write a dataset folder (created if needed) and return its path.

    Patient ids must be safe file names (:func:`survseg.data.names.safe_file_name`): they
    name the mask files ``survseg predict`` writes. Every file is written to a temporary
    name and renamed when complete (:func:`atomic_path`), so re-saving a dataset that was
    loaded from the same folder (memory-mapped) is safe.
    """
    path = Path(path)
    n = len(X)
    ids = check_patient_ids(patient_ids if patient_ids is not None else range(n))
    if len(ids) != n:
        raise ValueError(f"{len(ids)} patient ids for {n} patients.")
    if geometries is not None and len(geometries) != n:
        raise ValueError(f"{len(geometries)} geometries for {n} patients.")
    if y is not None:
        check_survival(y, n, require_events=False)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "patient_ids": ids,
        "geometries": _jsonable(geometries),
        "metadata": _jsonable(metadata or {}),
    }
    text = json.dumps(meta, indent=1)  # fails (unserialisable metadata) before any write
    save_cohort(path / "X.npy", X)
    if y is not None:
        with atomic_path(path / "y.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, y, allow_pickle=False)
    elif (path / "y.npy").exists():
        (path / "y.npy").unlink()
    write_text_atomic(path / "patients.json", text)
    return path


def load_dataset(path: str | os.PathLike, mmap_mode: str | None = "r") -> Dataset:
    """Read a dataset folder written by :func:`save_dataset` (``X`` memory-mapped)."""
    path = Path(path)
    if not path.is_dir() or not (path / "X.npy").exists():
        raise FileNotFoundError(
            f"{path} is not a survseg dataset folder (no X.npy); create one with "
            "`survseg preprocess` or survseg.data.store.save_dataset."
        )
    X = _read_npy(path / "X.npy", lambda f: load_cohort(f, mmap_mode=mmap_mode))
    y = None
    if (path / "y.npy").exists():
        y = _read_npy(path / "y.npy", lambda f: np.load(f, allow_pickle=False))
        try:
            check_survival(y, len(X), require_events=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path / 'y.npy'}: {exc}") from None
    meta = _read_patients(path / "patients.json", len(X))
    return Dataset(
        X=X,
        y=y,
        patient_ids=meta.get("patient_ids", [str(i) for i in range(len(X))]),
        geometries=meta.get("geometries"),
        metadata=meta.get("metadata", {}),
    )


def _read_npy(file: Path, read):
    try:
        return read(file)
    except (ValueError, TypeError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{file} is not a readable survseg array file: {exc}") from None


def _read_patients(file: Path, n: int) -> dict:
    """``patients.json``, checked: every problem names the file."""
    if not file.exists():
        return {}
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file} must hold a JSON object; it holds a {type(meta).__name__}.")
    ids = meta.get("patient_ids")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) != n:
            raise ValueError(
                f"{file}: 'patient_ids' must be a list of the {n} patients of X.npy; got "
                + (f"{len(ids)} ids." if isinstance(ids, list) else f"a {type(ids).__name__}.")
            )
        try:
            meta["patient_ids"] = check_patient_ids(ids)
        except ValueError as exc:
            raise ValueError(f"{file}: {exc}") from None
    geoms = meta.get("geometries")
    if geoms is not None and (not isinstance(geoms, list) or len(geoms) != n):
        raise ValueError(f"{file}: 'geometries' must be a list of one record per patient ({n}).")
    if not isinstance(meta.get("metadata", {}), dict):
        raise ValueError(f"{file}: 'metadata' must be a JSON object.")
    return meta
