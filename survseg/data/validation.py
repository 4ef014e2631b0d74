"""Input validation shared by every estimator: plain-worded errors for bad ``X`` and ``y``."""

from __future__ import annotations

import numpy as np

from .cohort import _require_structured, clinical_fields, image_fields, mask_fields

__all__ = ["check_cohort", "check_survival", "check_masks", "check_nodes", "survival_arrays"]

NODES_FIELD = "nodes"

_CHUNK = 8  # patients read at a time, so a memory-mapped cohort is never loaded whole


def check_cohort(
    X,
    *,
    modalities=None,
    require_mask: bool = False,
    mask_field: str = "mask",
    clinical=None,
    check_values: bool = True,
    require_nodes: bool = False,
) -> np.ndarray:
    """Check that ``X`` is a usable survseg cohort and return it unchanged.

    Parameters
    ----------
    X : ndarray, structured
        The cohort (see :func:`survseg.volumes`).
    modalities : sequence of str, optional
        Image fields the caller needs; ``None`` means all image fields.
    require_mask : bool
        Whether ``mask_field`` must be present, binary and non-empty for every patient.
    mask_field : str
        Name of the mask field.
    clinical : sequence of str, optional
        Clinical fields the caller needs; they must exist and be finite.
    check_values : bool
        Scan voxels for NaN/inf (chunked over patients), and check that the ``'nodes'``
        field, when present, is binary.
    require_nodes : bool
        Whether the ``'nodes'`` field (lymph-node masks) must be present. When present it is
        always checked: same shape as the images, integer dtype and (with ``check_values``)
        values in {0, 1}; an all-zero patient (no involved nodes) is valid. It is never an
        image or a clinical field.

    Raises
    ------
    TypeError, ValueError
        With a message that names the field, the patient and the problem.
    """
    _require_structured(X)
    if X.ndim != 1:
        raise ValueError(f"X must be 1D (one record per patient); got shape {X.shape}.")
    if len(X) == 0:
        raise ValueError("X holds no patients.")
    images = image_fields(X)
    non_float_volumes = [n for n in mask_fields(X) if n != mask_field and n in (modalities or ())]
    if non_float_volumes:
        raise TypeError(
            f"image field(s) {non_float_volumes} have dtype "
            f"{[str(X.dtype.fields[n][0].base) for n in non_float_volumes]}; images must be "
            "floating point (float32)."
        )
    if not images:
        raise ValueError(
            f"X has no image field (a 3D float sub-array such as 'pet' or 'ct'); "
            f"its fields are {list(X.dtype.names)}."
        )
    if modalities is not None:
        missing = [m for m in modalities if m not in images]
        if missing:
            raise ValueError(
                f"modality field(s) {missing} not in X; its image fields are {images}."
            )
        images = list(modalities)
    vols = images + [n for n in mask_fields(X) if n in (mask_field, NODES_FIELD)]
    shapes = {n: X.dtype.fields[n][0].shape for n in vols}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"image and mask fields differ in shape: {shapes}.")
    if mask_field in X.dtype.names:
        base = X.dtype.fields[mask_field][0].base
        if np.issubdtype(base, np.floating) or len(X.dtype.fields[mask_field][0].shape) != 3:
            raise TypeError(
                f"mask field {mask_field!r} has dtype {X.dtype.fields[mask_field][0]}; "
                "expected a 3D uint8 sub-array with values in {0, 1}."
            )
    elif require_mask:
        raise ValueError(
            f"this estimator needs tumour masks at fit: X has no {mask_field!r} field "
            f"(its fields are {list(X.dtype.names)})."
        )
    if NODES_FIELD in X.dtype.names:
        sub = X.dtype.fields[NODES_FIELD][0]
        integer = np.issubdtype(sub.base, np.integer) or sub.base == np.bool_
        if not integer or len(sub.shape) != 3:
            raise TypeError(
                f"field {NODES_FIELD!r} (lymph-node masks) has dtype {sub}; expected a 3D "
                "uint8 sub-array with values in {0, 1}."
            )
    elif require_nodes:
        raise ValueError(
            f"lymph-node masks are needed: X has no {NODES_FIELD!r} field (its fields are "
            f"{list(X.dtype.names)}); add them with survseg.volumes(..., nodes=...)."
        )
    if clinical:
        have = clinical_fields(X)
        missing = [c for c in clinical if c not in have]
        if missing:
            raise ValueError(
                f"clinical field(s) {missing} not in X; its clinical fields are {have}."
            )
        for c in clinical:
            bad = ~np.isfinite(np.asarray(X[c], dtype=np.float64))
            if bad.any():
                raise ValueError(
                    f"clinical field {c!r} is NaN or infinite for patient(s) "
                    f"{np.flatnonzero(bad)[:10].tolist()}; impute it first."
                )
    if check_values:
        for start in range(0, len(X), _CHUNK):
            chunk = X[start : start + _CHUNK]
            for name in images:
                finite = np.isfinite(chunk[name]).reshape(len(chunk), -1).all(axis=1)
                if not finite.all():
                    i = start + int(np.flatnonzero(~finite)[0])
                    raise ValueError(
                        f"image field {name!r} has NaN or infinite voxels for patient {i}."
                    )
        if require_mask:
            check_masks(X, mask_field)
        if NODES_FIELD in X.dtype.names:
            check_nodes(X)
    return X


def check_masks(X, mask_field: str = "mask") -> None:
    """Raise if a mask is not binary or is empty for some patient (names the patient)."""
    for start in range(0, len(X), _CHUNK):
        m = np.asarray(X[mask_field][start : start + _CHUNK])
        values = np.unique(m)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"mask field {mask_field!r} is not binary: found values {values[:10].tolist()}; "
                "select the label(s) that form the tumour first."
            )
        empty = ~m.reshape(len(m), -1).any(axis=1)
        if empty.any():
            i = start + int(np.flatnonzero(empty)[0])
            raise ValueError(f"mask field {mask_field!r} is empty for patient {i}.")


def check_nodes(X, field: str = NODES_FIELD) -> None:
    """Raise if a lymph-node mask is not binary for some patient (names the patient).

    Empty node masks are valid: many patients have no involved nodes.
    """
    for start in range(0, len(X), _CHUNK):
        m = np.asarray(X[field][start : start + _CHUNK])
        bad = ((m != 0) & (m != 1)).reshape(len(m), -1).any(axis=1)
        if bad.any():
            i = start + int(np.flatnonzero(bad)[0])
            values = np.unique(m[int(np.flatnonzero(bad)[0])])
            raise ValueError(
                f"field {field!r} (lymph-node masks) is not binary for patient {i}: found "
                f"values {values[:10].tolist()}; select the node label(s) first."
            )


def check_survival(y, n_samples: int | None = None, *, require_events: bool = True):
    """Check a scikit-survival outcome array and return ``(event, time)``.

    Parameters
    ----------
    y : structured ndarray
        Built with :func:`sksurv.util.Surv.from_arrays`: a boolean event field and a float
        time field, in that order.
    n_samples : int, optional
        Number of patients in ``X``, to check the lengths agree.
    require_events : bool
        Raise if no patient has an event (a Cox or discrete-time model cannot be fitted).

    Returns
    -------
    event : ndarray of bool
    time : ndarray of float64
    """
    if not isinstance(y, np.ndarray) or y.dtype.names is None or len(y.dtype.names) != 2:
        raise TypeError(
            "y must be a survival array with an event and a time field, built with "
            "sksurv.util.Surv.from_arrays(event, time); got "
            + (f"an array of dtype {y.dtype}" if isinstance(y, np.ndarray) else type(y).__name__)
            + "."
        )
    event_name, time_name = y.dtype.names
    event = np.asarray(y[event_name])
    if event.dtype != bool:
        raise TypeError(
            f"the first field of y ({event_name!r}) must be boolean (event indicator); "
            f"got {event.dtype}. Use sksurv.util.Surv.from_arrays(event, time)."
        )
    time = np.ascontiguousarray(y[time_name], dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1D; got shape {y.shape}.")
    if n_samples is not None and len(y) != n_samples:
        raise ValueError(f"X has {n_samples} patients but y has {len(y)}.")
    if np.isnan(time).any():
        raise ValueError(
            f"survival time is NaN for patient(s) {np.flatnonzero(np.isnan(time))[:10].tolist()}."
        )
    if (time < 0).any():
        raise ValueError(
            f"survival time is negative for patient(s) {np.flatnonzero(time < 0)[:10].tolist()}."
        )
    if not np.isfinite(time).all():
        raise ValueError("survival time is infinite for some patient.")
    if require_events and not event.any():
        raise ValueError(
            "y has no events (all patients censored): a survival model cannot be fitted."
        )
    return np.ascontiguousarray(event, dtype=bool), time


def survival_arrays(y):
    """``(event, time)`` of a survival array without requiring events (for scoring)."""
    return check_survival(y, require_events=False)
