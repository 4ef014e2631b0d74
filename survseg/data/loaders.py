"""Deprecated location of the cohort loaders: use :mod:`survseg.datasets`.

``survseg.data.loaders.load_manifest`` and ``load_hecktor`` still work in this release, with a
``DeprecationWarning``; they will be removed in the next one. The loaders moved next to
:func:`~survseg.datasets.make_petct_cohort`, as scikit-learn keeps ``load_*`` beside
``make_*``, and so that ``survseg.data`` no longer depends on ``survseg.preprocess``.
"""

import warnings
from importlib import import_module

_MOVED = {
    "load_manifest": "survseg.datasets.manifest",
    "load_hecktor": "survseg.datasets.hecktor",
}

__all__: list[str] = []  # nothing new should be imported from here


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"survseg.data.loaders.{name} moved to survseg.datasets.{name}; the old import "
            "path will be removed in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MOVED))
