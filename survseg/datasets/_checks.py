"""Parameter validation for the synthetic cohort generator: plain-worded errors."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["check_int", "check_real", "check_shape", "check_node_range", "check_coef"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_int(name, value, minimum):
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_real(name, value, lo=-np.inf, hi=np.inf, *, closed=True):
    """A finite float in ``[lo, hi]`` (``closed``) or ``(lo, hi)``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    value = float(value)
    inside = (lo <= value <= hi) if closed else (lo < value < hi)
    if not (inside and np.isfinite(value)):
        left, right = "[]" if closed else "()"
        raise ValueError(f"{name} must be finite and in {left}{lo}, {hi}{right}; got {value}.")
    return value


def check_shape(shape, minimum=16):
    if not isinstance(shape, Sequence | np.ndarray) or len(shape) != 3:
        raise ValueError(f"shape must be a tuple of 3 ints (D, H, W), got {shape!r}.")
    if not all(_is_int(s) for s in shape):
        raise TypeError(f"shape must hold ints, got {shape!r}.")
    if min(shape) < minimum:
        raise ValueError(f"each side of shape must be >= {minimum} voxels, got {tuple(shape)}.")
    return tuple(int(s) for s in shape)


def check_node_range(n_nodes, maximum=6):
    pair = (n_nodes, n_nodes) if _is_int(n_nodes) else n_nodes
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"n_nodes must be an int or a pair (lo, hi), got {n_nodes!r}.") from None
    if not (_is_int(lo) and _is_int(hi)):
        raise TypeError(f"n_nodes must hold ints, got {n_nodes!r}.")
    if not 0 <= lo <= hi <= maximum:
        raise ValueError(f"n_nodes must satisfy 0 <= lo <= hi <= {maximum}, got {n_nodes!r}.")
    return int(lo), int(hi)


def check_coef(coef, defaults: Mapping) -> dict:
    """``defaults`` updated with the finite overrides in ``coef`` (unknown keys rejected)."""
    beta = dict(defaults)
    if coef is None:
        return beta
    if not isinstance(coef, Mapping):
        raise TypeError(f"coef must be a dict of coefficients, got {type(coef).__name__}.")
    unknown = sorted(set(coef) - set(defaults))
    if unknown:
        raise ValueError(f"unknown coef key(s) {unknown}; valid keys are {sorted(defaults)}.")
    for key, value in coef.items():
        beta[key] = check_real(f"coef[{key!r}]", value)
    return beta
