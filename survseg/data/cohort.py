"""The cohort data model: one numpy structured array, one record per patient.

A cohort ``X`` holds, per patient,

* one **image field** per modality (``'pet'``, ``'ct'``, ``'t1'``, ...): a 3D ``float32``
  sub-array of shape ``(D, H, W)``, the same for every image field;
* optional **mask fields**: 3D ``uint8`` in {0, 1}; ``'mask'`` is the primary tumour (HECKTOR
  label 1, GTVp) and ``'nodes'`` the metastatic lymph nodes (label 2, GTVn; all zero for a
  patient without involved nodes);
* any number of **clinical fields**: scalars (``'age'``, ``'tnm_stage'``, ...);
* optionally the **voxel spacing**, a per-patient field ``'spacing'`` of 3 ``float64``
  values in mm, ``(D, H, W)`` order (the array axes). Being a field, it survives slicing,
  indexing, cross-validation splits, ``save_cohort``/``load_cohort`` and memory maps; the
  radiomics extractors measure in mm with it without being told.

A 3D field's role comes from its **name**, not its dtype (scanners store CT as ``int16``):
``'mask'``, ``'nodes'``, names ending in ``'_mask'`` and boolean fields are masks; every other
3D field is an image.

Because it is a plain ``ndarray``, ``X[train_idx]`` slices patients, ``X['pet']`` is an
``(n, D, H, W)`` view, and scikit-learn's ``cross_val_score``, ``GridSearchCV`` and joblib pass
it through unchanged. Survival outcomes live apart, in scikit-survival's structured ``y``
(:func:`sksurv.util.Surv.from_arrays`).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .errors import PatientError

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
    "cohort_spacing",
    "is_mask_name",
    "SPACING_FIELD",
]

MASK_FIELD = "mask"
#: Names of 3D fields that are masks whatever their dtype (besides ``*_mask`` and booleans).
MASK_NAMES = ("mask", "nodes")
#: The per-patient voxel spacing field: 3 float64 values in mm, (D, H, W) order.
SPACING_FIELD = "spacing"
NODES_FIELD = "nodes"


def _is_volume_field(dtype: np.dtype, name: str) -> bool:
    return len(dtype.fields[name][0].shape) == 3


def is_mask_name(name: str) -> bool:
    """Whether a 3D field called ``name`` is a mask by its name (``'mask'``, ``'nodes'``,
    ``'*_mask'``)."""
    return name in MASK_NAMES or name.endswith("_mask")


def _is_mask_field(dtype: np.dtype, name: str) -> bool:
    return is_mask_name(name) or dtype.fields[name][0].base == np.bool_


def image_fields(X: np.ndarray) -> list[str]:
    """Names of the image (modality) fields of a cohort, in field order.

    An image field is a 3D sub-array that is not a mask by its name (see
    :func:`mask_fields`), of any numeric dtype: a CT stored as ``int16`` is an image.
    """
    _require_structured(X)
    return [
        n for n in X.dtype.names if _is_volume_field(X.dtype, n) and not _is_mask_field(X.dtype, n)
    ]


def mask_fields(X: np.ndarray) -> list[str]:
    """Names of the label (mask) fields: 3D fields called ``'mask'``, ``'nodes'`` or
    ``'<anything>_mask'``, and 3D boolean fields."""
    _require_structured(X)
    return [n for n in X.dtype.names if _is_volume_field(X.dtype, n) and _is_mask_field(X.dtype, n)]


def _spacing_rows(spacing, n: int) -> np.ndarray:
    """``spacing`` (a number, 3 numbers or ``(n, 3)``) as an ``(n, 3)`` float64 array."""
    arr = np.asarray(spacing, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape == (3,):
        arr = np.broadcast_to(arr, (n, 3))
    if arr.shape != (n, 3):
        raise ValueError(
            f"spacing has shape {np.shape(spacing)}: give one number, 3 numbers (D, H, W) in mm "
            f"or one row of 3 per patient ({n}, 3)."
        )
    bad = ~(np.isfinite(arr) & (arr > 0)).all(axis=1)
    if bad.any():
        raise PatientError(
            f"spacing must be positive and finite (mm); got {arr[bad][0].tolist()} for "
            "{patient}" + (" (the first)." if bad.sum() > 1 else "."),
            patient=np.flatnonzero(bad),
        )
    return np.ascontiguousarray(arr)


def cohort_spacing(X: np.ndarray) -> np.ndarray | None:
    """The per-patient voxel spacing of ``X`` as an ``(n, 3)`` array (mm, ``(D, H, W)``), or
    ``None`` when ``X`` does not carry one.

    Raises
    ------
    ValueError
        The ``'spacing'`` field is not 3 numbers per patient, or holds a non-positive value
        (the message names the patient).
    """
    _require_structured(X)
    if SPACING_FIELD not in X.dtype.names:
        return None
    sub = X.dtype.fields[SPACING_FIELD][0]
    if sub.shape != (3,) or sub.base.kind not in "fiu":
        raise ValueError(
            f"field 'spacing' must hold 3 numbers per patient (mm, D, H, W order); it has "
            f"dtype {sub}."
        )
    return _spacing_rows(np.asarray(X[SPACING_FIELD]), len(X))


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


def volumes(*, mask=None, nodes=None, spacing=None, **fields) -> np.ndarray:
    """Build a cohort array from per-modality image stacks and clinical columns.

    Parameters
    ----------
    mask : array-like of shape (n_patients, D, H, W), optional
        Primary-tumour labels, stored as ``uint8`` in {0, 1}.
    spacing : float, sequence of 3 floats or array of shape (n_patients, 3), optional
        Voxel spacing in mm, ``(D, H, W)`` order (the array axes, i.e. SimpleITK's
        ``GetSpacing()`` reversed). Stored as the per-patient field ``'spacing'``; every
        radiomics extraction then measures in mm without being told. ``None``: no field.
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
    images, masks, clinical = {}, {}, {}
    if mask is not None:
        masks[MASK_FIELD] = np.asarray(mask)
    if nodes is not None:
        masks[NODES_FIELD] = np.asarray(nodes)
    for name, value in fields.items():
        arr = np.asarray(value)
        if arr.ndim == 4:
            (masks if is_mask_name(name) else images)[name] = arr
        elif arr.ndim == 1:
            clinical[name] = arr
        else:
            raise ValueError(
                f"field {name!r} has shape {arr.shape}: an image must be "
                "(n_patients, D, H, W) and a clinical covariate (n_patients,)."
            )
    if not images:
        raise ValueError("volumes() needs at least one image field, e.g. pet=... or ct=....")
    for name, m in masks.items():
        if m.ndim != 4:
            raise ValueError(f"{name} has shape {m.shape}; expected (n_patients, D, H, W).")
    shapes = {n: a.shape for n, a in {**images, **masks}.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"image and mask stacks differ in shape: {shapes}.")
    n = next(iter(shapes.values()))[0]
    bad = {k: len(v) for k, v in clinical.items() if len(v) != n}
    if bad:
        raise ValueError(
            f"clinical field lengths {bad} differ from the {n} patients in the images."
        )
    for name, m in masks.items():
        nonbinary = ~np.isin(m, (0, 1)).reshape(n, -1).all(axis=1)
        if nonbinary.any():
            i = int(np.flatnonzero(nonbinary)[0])
            raise PatientError(
                f"{name} must be binary (0/1); {{patient}} has values "
                f"{np.unique(m[i])[:10].tolist()}.",
                patient=i,
            )
    spatial = next(iter(shapes.values()))[1:]
    dtype = [(k, np.float32, spatial) for k in images]
    dtype += [(k, np.uint8, spatial) for k in masks]
    for k, v in clinical.items():
        dtype.append((k, v.dtype if v.dtype.kind in "biuf" else np.float64))
    if spacing is not None:
        spacing = _spacing_rows(spacing, n)
        dtype.append((SPACING_FIELD, np.float64, (3,)))
    X = np.empty(n, dtype=dtype)
    for k, v in {**images, **masks}.items():
        X[k] = v
    for k, v in clinical.items():
        X[k] = v
    if spacing is not None:
        X[SPACING_FIELD] = spacing
    return X


def from_dataframe(
    clinical: pd.DataFrame, *, mask=None, nodes=None, spacing=None, **images
) -> np.ndarray:
    """Build a cohort from a DataFrame of clinical columns plus image stacks.

    Rows of ``clinical`` are patients in the same order as the image stacks. Non-numeric
    columns must be encoded first (e.g. with ``pandas.get_dummies``). ``spacing`` is as for
    :func:`volumes`.
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
    clash = set(cols) & (set(images) | {MASK_FIELD, NODES_FIELD, SPACING_FIELD})
    if clash:
        raise ValueError(f"clinical columns {sorted(clash)} clash with image field names.")
    return volumes(mask=mask, nodes=nodes, spacing=spacing, **images, **cols)


def save_cohort(path: str | os.PathLike, X: np.ndarray) -> None:
    """Save a cohort as a ``.npy`` file that :func:`load_cohort` can memory-map.

    The file is written to a temporary file in the same folder and renamed over ``path``
    only when complete, so saving onto the very file ``X`` is memory-mapped from is safe,
    and a failed write (full or read-only disk, interruption) leaves ``path`` as it was.
    """
    _require_structured(X)
    from .store import atomic_path

    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=X.dtype, shape=X.shape)
        try:
            for start in range(0, len(X), 16):  # chunked: X may itself be a memmap
                out[start : start + 16] = X[start : start + 16]
            out.flush()
        finally:
            del out


def load_cohort(path: str | os.PathLike, mmap_mode: str | None = "r") -> np.ndarray:
    """Open a cohort saved by :func:`save_cohort`, memory-mapped by default.

    A memory-mapped cohort works with every estimator without being loaded whole:
    patients are read when indexed.
    """
    X = np.load(os.fspath(path), mmap_mode=mmap_mode, allow_pickle=False)
    _require_structured(X)
    return X
