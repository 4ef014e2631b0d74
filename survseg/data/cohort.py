"""The cohort data model: one numpy structured array, one record per patient.

A cohort ``X`` holds, per patient,

* one **image field** per modality (``'pet'``, ``'ct'``, ``'t1'``, ...): a 3D ``float32``
  sub-array of shape ``(D, H, W)``, the same for every image field;
* optional **mask fields**: 3D ``uint8`` in {0, 1}; ``'mask'`` is the primary tumour (HECKTOR
  label 1, GTVp) and ``'nodes'`` the metastatic lymph nodes (label 2, GTVn; all zero for a
  patient without involved nodes);
* any number of **clinical fields**: scalars (``'age'``, ``'tnm_stage'``, ...).

Because it is a plain ``ndarray``, ``X[train_idx]`` slices patients, ``X['pet']`` is an
``(n, D, H, W)`` view, and scikit-learn's ``cross_val_score``, ``GridSearchCV`` and joblib pass
it through unchanged. Survival outcomes live apart, in scikit-survival's structured ``y``
(:func:`sksurv.util.Surv.from_arrays`).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

__all__ = [
    "volumes",
    "from_dataframe",
    "image_fields",
    "mask_fields",
    "clinical_fields",
    "volume_shape",
    "clinical_frame",
    "save_cohort",
    "load_cohort",
]

MASK_FIELD = "mask"
NODES_FIELD = "nodes"


def _is_volume_field(dtype: np.dtype, name: str) -> bool:
    return len(dtype.fields[name][0].shape) == 3


def image_fields(X: np.ndarray) -> list[str]:
    """Names of the image (modality) fields of a cohort, in field order.

    An image field is a 3D sub-array of floating dtype.
    """
    _require_structured(X)
    return [
        n
        for n in X.dtype.names
        if _is_volume_field(X.dtype, n) and np.issubdtype(X.dtype.fields[n][0].base, np.floating)
    ]


def mask_fields(X: np.ndarray) -> list[str]:
    """Names of the label (mask) fields: 3D sub-arrays of integer or boolean dtype."""
    _require_structured(X)
    return [
        n
        for n in X.dtype.names
        if _is_volume_field(X.dtype, n)
        and not np.issubdtype(X.dtype.fields[n][0].base, np.floating)
    ]


def clinical_fields(X: np.ndarray) -> list[str]:
    """Names of the scalar (clinical covariate) fields."""
    _require_structured(X)
    return [n for n in X.dtype.names if X.dtype.fields[n][0].shape == ()]


def volume_shape(X: np.ndarray) -> tuple[int, int, int]:
    """The ``(D, H, W)`` shape shared by the volume fields of ``X``."""
    for n in X.dtype.names:
        if _is_volume_field(X.dtype, n):
            return tuple(X.dtype.fields[n][0].shape)
    raise ValueError("X has no 3D image field.")


def clinical_frame(X: np.ndarray, columns=None) -> pd.DataFrame:
    """Clinical fields of ``X`` as a float DataFrame (one row per patient)."""
    cols = clinical_fields(X) if columns is None else list(columns)
    missing = [c for c in cols if c not in (X.dtype.names or ())]
    if missing:
        raise ValueError(
            f"clinical field(s) {missing} not in X; X has clinical fields {clinical_fields(X)}."
        )
    return pd.DataFrame({c: np.asarray(X[c], dtype=np.float64) for c in cols})


def _require_structured(X) -> None:
    if not isinstance(X, np.ndarray) or X.dtype.names is None:
        raise TypeError(
            "X must be a survseg cohort: a numpy structured array with one record per "
            "patient (build one with survseg.volumes(pet=..., ct=..., mask=...)); "
            f"got {type(X).__name__}"
            + (f" of dtype {X.dtype}" if isinstance(X, np.ndarray) else "")
            + "."
        )


def volumes(*, mask=None, nodes=None, **fields) -> np.ndarray:
    """Build a cohort array from per-modality image stacks and clinical columns.

    Parameters
    ----------
    mask : array-like of shape (n_patients, D, H, W), optional
        Primary-tumour labels, stored as ``uint8`` in {0, 1}.
    nodes : array-like of shape (n_patients, D, H, W), optional
        Lymph-node labels (all involved nodes of a patient in one binary mask), stored as
        ``uint8`` in {0, 1}; an all-zero mask is a patient without nodes.
    **fields : array-like
        A 4D array ``(n_patients, D, H, W)`` becomes an image field (``float32``); a 1D
        array ``(n_patients,)`` becomes a clinical field (its dtype is kept, integers and
        floats alike). Names are free: ``pet=``, ``ct=``, ``t1=``, ``age=``, ...

    Returns
    -------
    X : ndarray, structured, shape (n_patients,)

    Examples
    --------
    >>> import numpy as np, survseg
    >>> pet = np.random.rand(3, 8, 8, 8); ct = np.random.rand(3, 8, 8, 8)
    >>> X = survseg.volumes(pet=pet, ct=ct, age=[61.0, 55.0, 70.0])
    >>> X["pet"].shape, X.dtype.names
    ((3, 8, 8, 8), ('pet', 'ct', 'age'))
    """
    images, clinical = {}, {}
    for name, value in fields.items():
        arr = np.asarray(value)
        if arr.ndim == 4:
            images[name] = arr
        elif arr.ndim == 1:
            clinical[name] = arr
        else:
            raise ValueError(
                f"field {name!r} has shape {arr.shape}: an image must be "
                "(n_patients, D, H, W) and a clinical covariate (n_patients,)."
            )
    if not images:
        raise ValueError("volumes() needs at least one image field, e.g. pet=... or ct=....")
    labels = {}
    for name, value in ((MASK_FIELD, mask), (NODES_FIELD, nodes)):
        if value is not None:
            value = np.asarray(value)
            if value.ndim != 4:
                raise ValueError(f"{name} has shape {value.shape}; expected (n_patients, D, H, W).")
            labels[name] = value
    shapes = {n: a.shape for n, a in {**images, **labels}.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"image and mask stacks differ in shape: {shapes}.")
    n = next(iter(shapes.values()))[0]
    bad = {k: len(v) for k, v in clinical.items() if len(v) != n}
    if bad:
        raise ValueError(
            f"clinical field lengths {bad} differ from the {n} patients in the images."
        )
    for name, value in labels.items():
        values = np.unique(value)
        if not np.isin(values, (0, 1)).all():
            bad_voxels = (~np.isin(value, (0, 1))).reshape(n, -1).any(axis=1)
            raise ValueError(
                f"{name} must be binary (0/1); found values {values[:10].tolist()} "
                f"(first for patient {int(np.flatnonzero(bad_voxels)[0])})."
            )
    spatial = next(iter(shapes.values()))[1:]
    dtype = [(k, np.float32, spatial) for k in images]
    dtype += [(k, np.uint8, spatial) for k in labels]
    for k, v in clinical.items():
        dtype.append((k, v.dtype if v.dtype.kind in "biuf" else np.float64))
    X = np.empty(n, dtype=dtype)
    for k, v in {**images, **labels}.items():
        X[k] = v
    for k, v in clinical.items():
        X[k] = v
    return X


def from_dataframe(clinical: pd.DataFrame, *, mask=None, nodes=None, **images) -> np.ndarray:
    """Build a cohort from a DataFrame of clinical columns plus image stacks.

    Rows of ``clinical`` are patients in the same order as the image stacks. Non-numeric
    columns must be encoded first (e.g. with ``pandas.get_dummies``).
    """
    if not isinstance(clinical, pd.DataFrame):
        raise TypeError(f"clinical must be a pandas DataFrame, got {type(clinical).__name__}.")
    non_numeric = [c for c in clinical.columns if not pd.api.types.is_numeric_dtype(clinical[c])]
    if non_numeric:
        raise ValueError(
            f"clinical columns {non_numeric} are not numeric; encode them first "
            "(e.g. pandas.get_dummies)."
        )
    cols = {str(c): clinical[c].to_numpy() for c in clinical.columns}
    clash = set(cols) & (set(images) | {MASK_FIELD, NODES_FIELD})
    if clash:
        raise ValueError(f"clinical columns {sorted(clash)} clash with image field names.")
    return volumes(mask=mask, nodes=nodes, **images, **cols)


def save_cohort(path: str | os.PathLike, X: np.ndarray) -> None:
    """Save a cohort as a ``.npy`` file that :func:`load_cohort` can memory-map."""
    _require_structured(X)
    out = np.lib.format.open_memmap(os.fspath(path), mode="w+", dtype=X.dtype, shape=X.shape)
    for start in range(0, len(X), 16):  # chunked: X may itself be a memmap
        out[start : start + 16] = X[start : start + 16]
    out.flush()
    del out


def load_cohort(path: str | os.PathLike, mmap_mode: str | None = "r") -> np.ndarray:
    """Open a cohort saved by :func:`save_cohort`, memory-mapped by default.

    A memory-mapped cohort works with every estimator without being loaded whole:
    patients are read when indexed.
    """
    X = np.load(os.fspath(path), mmap_mode=mmap_mode, allow_pickle=False)
    _require_structured(X)
    return X
