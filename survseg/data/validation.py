"""Input validation shared by every estimator: plain-worded errors for bad ``X`` and ``y``."""

from __future__ import annotations

import numpy as np

from .cohort import (
    NODES_FIELD,
    SPACING_FIELD,
    _require_structured,
    clinical_fields,
    cohort_spacing,
    image_fields,
    mask_fields,
)
from .errors import PatientError
from .mapped import release_pages

__all__ = [
    "check_cohort",
    "check_survival",
    "check_masks",
    "survival_arrays",
    "cohort_signature",
    "check_fitted_cohort",
    "check_nodes",
    "check_image_content",
]

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
    images = [n for n in image_fields(X) if n != mask_field]
    named_masks = [n for n in (modalities or ()) if n in mask_fields(X) or n == mask_field]
    if named_masks:
        raise ValueError(
            f"field(s) {named_masks} are masks (by their name), not images; an image modality "
            "needs another name (masks are 'mask', 'nodes', '*_mask' or boolean fields)."
        )
    if not images:
        raise ValueError(
            f"X has no image field (a 3D sub-array such as 'pet' or 'ct'); "
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
            f"this estimator needs tumour masks: X has no {mask_field!r} field "
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
                raise PatientError(
                    f"clinical field {c!r} is NaN or infinite for {{patient}}; impute it first.",
                    patient=np.flatnonzero(bad),
                )
    cohort_spacing(X)  # a malformed 'spacing' field names the patient
    if check_values:
        # a chunk of patients at a time (X[start:stop] is a view); integer images cannot hold
        # NaN; the pages read from a memory-mapped cohort are released after each chunk, so
        # that a full scan does not leave the whole file resident in this process
        floating = [n for n in images if np.issubdtype(X.dtype.fields[n][0].base, np.inexact)]
        try:
            for start in range(0, len(X), _CHUNK):
                chunk = X[start : start + _CHUNK]
                for name in floating:
                    finite = np.isfinite(chunk[name]).reshape(len(chunk), -1).all(axis=1)
                    if not finite.all():
                        i = start + int(np.flatnonzero(~finite)[0])
                        raise PatientError(
                            f"image field {name!r} has NaN or infinite voxels for {{patient}}.",
                            patient=i,
                        )
                release_pages(X)
        finally:
            release_pages(X)
        if require_mask:
            check_masks(X, mask_field)
        if NODES_FIELD in X.dtype.names:
            check_nodes(X)
    return X


def check_masks(X, mask_field: str = "mask") -> None:
    """Raise if a mask is not binary or is empty for some patient (names the patient)."""
    try:
        _check_masks(X, mask_field)
    finally:
        release_pages(X)


def _check_masks(X, mask_field):
    for start in range(0, len(X), _CHUNK):
        m = np.asarray(X[mask_field][start : start + _CHUNK])
        nonbinary = ~np.isin(m, (0, 1)).reshape(len(m), -1).all(axis=1)
        if nonbinary.any():
            j = int(np.flatnonzero(nonbinary)[0])
            raise PatientError(
                f"mask field {mask_field!r} is not binary for {{patient}}: found values "
                f"{np.unique(m[j])[:10].tolist()}; select the label(s) that form the tumour first.",
                patient=start + j,
            )
        empty = ~m.reshape(len(m), -1).any(axis=1)
        if empty.any():
            i = start + int(np.flatnonzero(empty)[0])
            raise PatientError(f"mask field {mask_field!r} is empty for {{patient}}.", patient=i)


def _blank_under(flat, j, inside) -> bool:
    """Whether every modality holds one value under the mask, no higher than outside it."""
    for values in flat.values():
        under = values[j][inside]
        if under.max() != under.min():
            return False
        outside = values[j][~inside]
        if outside.size and under[0] > np.median(outside):
            return False
    return True


def check_image_content(X, modalities, *, mask_field: str | None = None) -> None:
    r"""Raise if a patient's image carries nothing a network can learn from.

    Two faults of the data (issue 15), each reported as what it is:

    * a **blank tumour region**: for some patient, in *every* modality, all voxels under
      ``mask_field`` hold one value :math:`c` no higher than the median of the image outside
      the mask (the background: air, zero uptake or crop padding). A real tumour has varying
      uptake and tissue density, brighter than its surroundings in PET, so the mask lies
      outside the body or is not aligned with the images (origin, direction, spacing, or a
      crop that missed the body). Checked first: it also explains a volume cropped around
      such a mask coming out blank.
    * a **constant image**: :math:`\max_v x_v = \min_v x_v` over a patient's whole volume in
      one modality (e.g. an all-zero PET): a missing or blank image, which per-patient
      z-scoring cannot normalise (:math:`\sigma = 0`) and from which nothing is learned.

    Reads ``X`` in chunks of patients (a memory-mapped cohort is never loaded whole).

    Parameters
    ----------
    X : cohort
    modalities : sequence of str
        The image fields the network reads.
    mask_field : str, optional
        The tumour mask field to check against the images (skipped when ``None`` or absent).

    Raises
    ------
    ValueError
        Naming the field(s), the patients (rows of ``X``), the voxel values and what to check.
    """
    modalities = list(modalities)
    use_mask = mask_field is not None and mask_field in X.dtype.names
    blank, blank_values = [], {}
    constant = {m: [] for m in modalities}
    constant_value = {}
    try:
        for start in range(0, len(X), _CHUNK):
            chunk = X[start : start + _CHUNK]
            flat = {m: np.asarray(chunk[m], np.float64).reshape(len(chunk), -1) for m in modalities}
            masks = np.asarray(chunk[mask_field]).reshape(len(chunk), -1) != 0 if use_mask else None
            for j in range(len(chunk)):
                i = start + j
                if masks is not None and masks[j].any() and _blank_under(flat, j, masks[j]):
                    value = tuple(f"{flat[m][j][masks[j]][0]:g}" for m in modalities)
                    blank.append(i)
                    blank_values.setdefault(value, []).append(i)
                    continue
                for m in modalities:
                    if flat[m][j].max() == flat[m][j].min():
                        constant[m].append(i)
                        constant_value.setdefault(m, f"{flat[m][j][0]:g}")
            release_pages(X)  # a memory-mapped cohort's pages, after each chunk
    finally:
        release_pages(X)
    problems, groups = [], {}
    if blank:
        values, rows = next(iter(blank_values.items()))
        under = " and ".join(f"every {m!r} voxel is {v}" for m, v in zip(modalities, values))
        groups.update(blank=blank, blank_first=rows[0])
        problems.append(
            f"the tumour mask {mask_field!r} of {{blank}} lies on a blank region: under "
            f"it {under} ({{blank_first}}), no higher than the rest of the image "
            "(background: air, no uptake or padding), so the mask is outside the body or not "
            "aligned with the images; check its origin, direction and spacing against the "
            "images', and the crop"
        )
    for k, (m, rows) in enumerate(constant.items()):
        if rows:
            groups.update({f"constant{k}": rows, f"constant{k}_first": rows[0]})
            problems.append(
                f"image field {m!r} is constant for {{constant{k}}} (every voxel "
                f"{constant_value[m]} for {{constant{k}_first}}): a missing or blank image, "
                "which cannot be normalised or learned from; supply the image or leave the "
                "patient(s) out"
            )
    if problems:
        raise PatientError("; ".join(problems) + ".", **groups)


def check_nodes(X, field: str = NODES_FIELD) -> None:
    """Raise if a lymph-node mask is not binary for some patient (names the patient).

    Empty node masks are valid: many patients have no involved nodes.
    """
    try:
        _check_nodes(X, field)
    finally:
        release_pages(X)


def _check_nodes(X, field):
    for start in range(0, len(X), _CHUNK):
        m = np.asarray(X[field][start : start + _CHUNK])
        bad = ((m != 0) & (m != 1)).reshape(len(m), -1).any(axis=1)
        if bad.any():
            i = start + int(np.flatnonzero(bad)[0])
            values = np.unique(m[int(np.flatnonzero(bad)[0])])
            raise PatientError(
                f"field {field!r} (lymph-node masks) is not binary for {{patient}}: found "
                f"values {values[:10].tolist()}; select the node label(s) first.",
                patient=i,
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
        raise PatientError(
            "survival time is NaN for {patient}.", patient=np.flatnonzero(np.isnan(time))
        )
    if (time < 0).any():
        raise PatientError(
            "survival time is negative for {patient}.", patient=np.flatnonzero(time < 0)
        )
    if not np.isfinite(time).all():
        raise PatientError(
            "survival time is infinite for {patient}.", patient=np.flatnonzero(~np.isfinite(time))
        )
    if require_events and not event.any():
        raise ValueError(
            "y has no events (all patients censored): a survival model cannot be fitted."
        )
    return np.ascontiguousarray(event, dtype=bool), time


def survival_arrays(y):
    """``(event, time)`` of a survival array without requiring events (for scoring)."""
    return check_survival(y, require_events=False)


def cohort_signature(X, fields=None) -> dict:
    """What an estimator fitted on ``X`` expects of the cohorts it predicts on.

    Parameters
    ----------
    X : cohort
    fields : sequence of str, optional
        The fields the estimator reads; default: every field of ``X``.

    Returns
    -------
    signature : dict
        ``{"fields": {name: {"kind": "image"|"mask"|"clinical"|"spacing", "dtype": str,
        "shape": list}}, "volume_shape": [D, H, W] or None}``, JSON-serialisable (it goes
        into model-file headers).
    """
    _require_structured(X)
    names = list(X.dtype.names) if fields is None else list(fields)
    images, masks = set(image_fields(X)), set(mask_fields(X))
    out = {}
    for n in names:
        if n not in X.dtype.names:
            raise ValueError(f"field {n!r} not in X; its fields are {list(X.dtype.names)}.")
        sub = X.dtype.fields[n][0]
        kind = (
            "image"
            if n in images
            else "mask"
            if n in masks
            else "spacing"
            if n == SPACING_FIELD
            else "clinical"
        )
        out[n] = {"kind": kind, "dtype": sub.base.str, "shape": list(sub.shape)}
    shapes = [v["shape"] for v in out.values() if v["kind"] in ("image", "mask")]
    return {"fields": out, "volume_shape": shapes[0] if shapes else None}


def check_fitted_cohort(
    estimator, X, *, optional=("mask",), check_shape=True, signature=None, name=None
) -> np.ndarray:
    """Check that ``X`` looks like the cohort ``estimator`` was fitted on; return ``X``.

    Called at the start of every ``predict`` path. The expectation is the estimator's
    ``cohort_signature_`` (:func:`cohort_signature` recorded at fit) when it has one;
    otherwise it is read from the fitted attributes the estimators already have
    (``modalities_``/``modalities``, ``clinical_``/``clinical``, ``image_shape_``).

    Parameters
    ----------
    estimator : fitted estimator
    X : cohort
    optional : sequence of str
        Fields that may be absent at predict (the tumour mask of a segmenting model).
    check_shape : bool
        Whether the volume size must equal the training size (the deep networks learned at
        one size; radiomics features are measured in mm and need not).
    signature : dict, optional
        A recorded :func:`cohort_signature` to check against instead of the estimator's.
    name : str, optional
        How to call the model in messages (default: the estimator's class name).

    Raises
    ------
    ValueError
        Naming the missing field, or the training and the new volume sizes, or a field that
        changed kind (image vs mask) or dtype kind, or a cohort that lost the voxel spacing
        the estimator was fitted with.
    """
    _require_structured(X)
    name = name or type(estimator).__name__
    if signature is None:
        signature = getattr(estimator, "cohort_signature_", None)
    if signature is None:
        fields = {}
        for attr in ("modalities_", "modalities"):
            mods = getattr(estimator, attr, None)
            if mods is not None:
                mods = (mods,) if isinstance(mods, str) else mods
                fields.update({m: {"kind": "image"} for m in mods})
                break
        for attr in ("clinical_", "clinical"):
            clin = getattr(estimator, attr, None)
            if isinstance(clin, (list, tuple)):
                fields.update({c: {"kind": "clinical"} for c in clin})
                break
        shape = getattr(estimator, "image_shape_", None)
        signature = {"fields": fields, "volume_shape": None if shape is None else list(shape)}
    have = X.dtype.names
    missing = [
        f for f in signature["fields"] if f not in have and f not in optional and f != SPACING_FIELD
    ]
    if missing:
        raise ValueError(
            f"X lacks the field(s) {missing} that {name} was fitted with; its fields are "
            f"{list(have)}."
        )
    images, masks = set(image_fields(X)), set(mask_fields(X))
    for f, spec in signature["fields"].items():
        if f not in have:
            continue
        kind = spec.get("kind")
        now = "image" if f in images else "mask" if f in masks else None
        if kind in ("image", "mask") and now != kind:
            raise ValueError(
                f"field {f!r} was {'an' if kind == 'image' else 'a'} {kind} when {name} was "
                f"fitted but is {'not a 3D field' if now is None else 'a ' + now} in X."
            )
        if "dtype" in spec and kind in ("clinical", "spacing"):
            before, after = np.dtype(spec["dtype"]), X.dtype.fields[f][0].base
            if (before.kind in "biuf") != (after.kind in "biuf"):
                raise ValueError(
                    f"field {f!r} had dtype {before} when {name} was fitted; X has {after}."
                )
    expected = signature.get("volume_shape")
    if check_shape and expected is not None:
        vols = [f for f in signature["fields"] if f in have and f in images | masks]
        if vols:
            got = tuple(X.dtype.fields[vols[0]][0].shape)
            if got != tuple(expected):
                raise ValueError(
                    f"X has volumes of shape {got} (D, H, W) but {name} was fitted on "
                    f"{tuple(expected)}: preprocess the new patients as the training ones "
                    "(same spacing, crop and crop size)."
                )
    if SPACING_FIELD in signature["fields"] and SPACING_FIELD not in have:
        raise ValueError(
            f"{name} was fitted on a cohort that carries its voxel spacing ('spacing' field); "
            "X does not: build it with spacing=... (mm)."
        )
    return X
