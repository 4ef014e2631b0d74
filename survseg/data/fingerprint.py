"""Process-independent fingerprints of estimator parameters and cohorts, the keys under
which fold results (:func:`survseg.evaluation.benchmark`) and training checkpoints
(:class:`survseg.training.Checkpoint`) are reused."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

__all__ = ["data_fingerprint", "estimator_key", "stable_description"]


def stable_description(value):
    """A JSON-able, process-independent description of a parameter value."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        cls = type(value)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": {
                k: stable_description(v) for k, v in sorted(value.get_params(deep=False).items())
            },
        }
    if isinstance(value, dict):
        return {
            str(k): stable_description(v)
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
        }
    if isinstance(value, list | tuple):
        return [stable_description(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def estimator_key(estimator) -> str:
    """SHA-256 of an estimator's class and (nested) parameters, stable across processes.

    Parameters that are estimators are described by their own class and parameters,
    arrays by the hash of their bytes, functions by their qualified name.
    """
    text = json.dumps(stable_description(estimator), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _hash_cohort(h, X, n_sampled: int) -> None:
    h.update(repr((X.dtype.descr, X.shape)).encode())
    if not len(X):
        return
    picks = np.unique(np.linspace(0, len(X) - 1, min(n_sampled, len(X))).round().astype(int))
    for i in picks:  # whole records of evenly spaced patients (a memmap reads only these)
        h.update(np.ascontiguousarray(X[i : i + 1]).tobytes())
    scalars = [n for n in X.dtype.names or () if X.dtype.fields[n][0].shape == ()]
    for n in scalars:  # every patient's clinical values
        h.update(np.ascontiguousarray(X[n]).tobytes())


def data_fingerprint(X, y, X_test=None, y_test=None, *, n_sampled: int = 16) -> str:
    """SHA-256 of the data a benchmark runs on.

    It covers ``X``'s dtype (fields, shapes) and length, the full records of ``n_sampled``
    evenly spaced patients, every patient's scalar (clinical) fields, all of ``y``, and the
    same for the test cohort. Hashing every voxel of a large memory-mapped cohort would read
    it whole; two cohorts that differ only in voxels of patients not sampled share a
    fingerprint.
    """
    h = hashlib.sha256()
    _hash_cohort(h, X, n_sampled)
    h.update(np.ascontiguousarray(y).tobytes() + repr(y.dtype.descr).encode())
    if X_test is not None:
        h.update(b"test")
        _hash_cohort(h, X_test, n_sampled)
    if y_test is not None:
        h.update(np.ascontiguousarray(y_test).tobytes())
    return h.hexdigest()
