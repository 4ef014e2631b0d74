r"""Extraction backends behind :class:`~survseg.radiomics.RadiomicsExtractor`.

``"pyradiomics"`` (the default) runs pyradiomics on the CPU (:func:`survseg.radiomics.compute.extract`).
``"fastrad"`` runs `fastrad <https://pypi.org/project/fastrad/>`_, a PyTorch reimplementation
of pyradiomics' feature classes, for the per-modality (intensity and texture) features that computes on a CUDA device when there is one (``"auto"``)
and on the CPU otherwise. It claims parity with pyradiomics within :math:`10^{-4}`; survseg's
test suite checks the features it is used for against pyradiomics on the same cases
(``tests/radiomics/test_backends.py``) rather than taking that on trust.

fastrad covers less than pyradiomics: the original image only (no wavelet or other filters),
fixed bin width (no ``binCount``), no resampling and none of pyradiomics' other settings. A
configuration it cannot compute is refused at ``fit`` with the setting named, never computed
differently. Its outputs are renamed to pyradiomics' names (``glcm:joint_average`` ->
``original_glcm_JointAverage``), so the columns of :class:`RadiomicsExtractor` are the same
whichever backend computed them. One value is recomputed here: fastrad 1.0's first-order
``Median`` is ``torch.median``, the lower of the two middle values when the ROI has an even
number of voxels (measured 6e-4 to 1e-3 relative off pyradiomics); the backend takes numpy's
median of the ROI, as pyradiomics does. The shape features (of the mask alone, computed once
per patient, a small part of the work) stay with pyradiomics: fastrad 1.0's mesh volume
differed from pyradiomics' by up to 5.8e-4 relative (``MeshVolume``, and through it
``Sphericity`` and ``SurfaceVolumeRatio``) on one of eight 64^3 cases of
:func:`survseg.datasets.make_petct_cohort`.

Install with ``pip install fastrad`` (pure Python; it uses the installed torch, so a CPU-only
torch stays CPU-only; for a GPU, install a CUDA build of torch first).
"""

from __future__ import annotations

import warnings

import numpy as np

from .compute import extract as extract_pyradiomics

__all__ = ["BACKENDS", "check_backend", "extract_unit", "fastrad_name"]

#: Names accepted by ``RadiomicsExtractor(backend=...)``.
BACKENDS = ("pyradiomics", "fastrad")

# pyradiomics settings every survseg configuration carries; fastrad needs none of them
# (survseg crops to the mask before extraction, which is what preCrop/padDistance do).
_NEUTRAL_SETTINGS = {"label", "additionalInfo", "padDistance", "preCrop", "binWidth"}
# tokens of fastrad's snake_case names that pyradiomics does not simply capitalise
_SPECIAL_TOKENS = {"mcc": "MCC", "3d": "3D", "2d": "2D", "10th": "10", "90th": "90"}


def fastrad_name(name: str) -> str:
    """fastrad's ``"<class>:<snake_case>"`` feature name -> pyradiomics' ``"original_<class>_<Name>"``.

    Examples
    --------
    >>> fastrad_name("glcm:joint_average")
    'original_glcm_JointAverage'
    >>> fastrad_name("firstorder:10th_percentile")
    'original_firstorder_10Percentile'
    >>> fastrad_name("shape:maximum_3d_diameter")
    'original_shape_Maximum3DDiameter'
    """
    cls, _, feature = name.partition(":")
    words = [_SPECIAL_TOKENS.get(w, w[:1].upper() + w[1:]) for w in feature.split("_")]
    return f"original_{cls}_{''.join(words)}"


def _fastrad():
    try:
        import fastrad
    except ImportError as exc:
        raise ImportError(
            "backend='fastrad' needs the fastrad package: pip install fastrad (it computes on "
            "the GPU with a CUDA build of torch, on the CPU otherwise)."
        ) from exc
    return fastrad


def check_backend(backend: str, config: dict) -> dict:
    """Validate ``backend`` against a resolved extractor configuration.

    Parameters
    ----------
    backend : {"pyradiomics", "fastrad"}
    config : dict
        ``RadiomicsExtractor``'s per-unit configuration (``settings``, ``image_types``,
        ``classes``).

    Returns
    -------
    dict
        ``config`` unchanged for pyradiomics; for fastrad, a copy whose units also carry
        ``"backend": "fastrad <version>"`` (so cached features of the two backends never mix).

    Raises
    ------
    ValueError
        For an unknown backend or a setting fastrad does not implement.
    ImportError
        When fastrad is asked for and not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    if backend == "pyradiomics":
        return config
    fastrad = _fastrad()
    from fastrad.extractor import _FEATURE_MAP

    out = {}
    for unit, cfg in config.items():
        if unit == "shape":  # mask-only, once per patient: pyradiomics (see the module docstring)
            out[unit] = cfg
            continue
        where = "the shape features" if unit == "shape" else f"modality {unit!r}"
        types = set(cfg["image_types"])
        if types != {"Original"}:
            raise ValueError(
                f"backend='fastrad' computes features on the original image only; {where} "
                f"asks for {sorted(types)}. Use image_types=('original',) or "
                "backend='pyradiomics'."
            )
        unsupported = sorted(
            k
            for k, v in cfg["settings"].items()
            if k not in _NEUTRAL_SETTINGS and not (k == "binCount" and v is None)
        )
        if unsupported:
            raise ValueError(
                f"backend='fastrad' does not implement the pyradiomics setting(s) {unsupported} "
                f"({where}); use backend='pyradiomics' for them."
            )
        if unit != "shape" and "binWidth" not in cfg["settings"]:
            raise ValueError(f"backend='fastrad' needs a bin width ({where}).")
        missing = sorted(set(cfg["classes"]) - set(_FEATURE_MAP))
        if missing:
            raise ValueError(
                f"backend='fastrad' has no feature class {missing} ({where}); it has "
                f"{sorted(_FEATURE_MAP)}."
            )
        out[unit] = {**cfg, "backend": f"fastrad {getattr(fastrad, '__version__', '')}".strip()}
        _check_names(out[unit], where)
    return out


_CHECKED: set = set()


class _MissingFeatures(RuntimeError):
    """fastrad did not compute a feature that the configuration asks for."""


def _check_names(cfg, where):
    """Run fastrad once on a small sphere: every requested feature must come out of it."""
    key = repr(sorted((c, tuple(f)) for c, f in cfg["classes"].items()))
    if key in _CHECKED:
        return
    n = 12
    grid = np.indices((n, n, n)) - (n - 1) / 2
    mask = (np.sqrt((grid**2).sum(axis=0)) <= n / 3).astype(np.uint8)
    image = (mask + np.indices((n, n, n))[0] % 2).astype(np.float32)
    probe = {**cfg, "settings": {**cfg["settings"], "binWidth": 1.0}}
    try:
        _extract_fastrad(image, mask, (1.0, 1.0, 1.0), probe)
    except _MissingFeatures as exc:
        raise ValueError(f"backend='fastrad' ({where}): {exc}") from None
    _CHECKED.add(key)


def extract_unit(image: np.ndarray, mask: np.ndarray, spacing, config: dict):
    """One extraction with the backend named in ``config`` (pyradiomics when none is).

    Same contract as :func:`survseg.radiomics.compute.extract`: ``(names, values, error)``
    with pyradiomics' feature names; ``error`` is the backend's message when it rejects the
    mask (then ``names`` and ``values`` are empty).
    """
    if not str(config.get("backend", "pyradiomics")).startswith("fastrad"):
        return extract_pyradiomics(image, mask, spacing, config)
    return _extract_fastrad(image, mask, spacing, config)


def _extract_fastrad(image, mask, spacing, config):
    import torch

    fastrad = _fastrad()
    spacing = tuple(float(s) for s in spacing)  # (D, H, W) = fastrad's (z, y, x)
    classes = config["classes"]
    settings = fastrad.FeatureSettings(
        feature_classes=list(classes),
        bin_width=float(config["settings"].get("binWidth", 1.0)),
        device="cuda" if torch.cuda.is_available() else "cpu",  # fastrad's "auto" fails here
        spacing=spacing,
    )
    extractor = fastrad.FeatureExtractor(settings)
    img = fastrad.MedicalImage(torch.from_numpy(np.asarray(image, dtype=np.float32)), spacing)
    roi = fastrad.Mask(torch.from_numpy(np.asarray(mask, dtype=np.uint8)), spacing)
    try:
        with warnings.catch_warnings():  # pyradiomics does not warn on anisotropic grids
            warnings.filterwarnings("ignore", message=".*is not isotropic.*")
            result = extractor.extract(img, roi)
    except ValueError as exc:  # fastrad's mask checks (empty ROI, ...)
        return [], np.empty(0), str(exc)
    got = {fastrad_name(k): v for k, v in result.items()}
    if "original_firstorder_Median" in got:
        # fastrad 1.0 takes torch.median, the lower middle value of an even count;
        # pyradiomics (numpy) averages the two middle values
        got["original_firstorder_Median"] = float(np.median(np.asarray(image)[mask > 0]))
    names, values, absent = [], [], []
    for cls, features in classes.items():
        for feature in features:
            name = f"original_{cls}_{feature}"
            if name not in got:
                absent.append(name)
                continue
            names.append(name)
            values.append(float(np.real(got[name])))
    if absent:
        raise _MissingFeatures(
            f"fastrad did not compute {absent[:8]}{' ...' if len(absent) > 8 else ''}; "
            "use backend='pyradiomics' for these features."
        )
    return names, np.asarray(values, dtype=np.float64), None
