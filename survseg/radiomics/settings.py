r"""Feature-set definitions: which pyradiomics features, on which images, with which bin widths.

The papers' set (DeepMTS Sec. 4.3, AdaMSS Appendix A) is, per image modality, first-order (19),
GLCM (24), GLRLM (16), GLSZM (16) and NGTDM (5) features on the original image and on its 8
wavelet decompositions, plus 16 shape features of the mask counted once:
:math:`2 \times 9 \times 80 + 16 = 1456` for PET/CT.

pyradiomics 3 enables 18 first-order and 14 shape features by default; its "deprecated" ones
must be named to be computed. To reach the papers' counts we add

* ``firstorder``: ``StandardDeviation`` (the 19th, equal to the square root of ``Variance``);
* ``shape``: ``Compactness1`` and ``Compactness2`` (two of the three deprecated shape
  features; the third is ``SphericalDisproportion``). The papers do not say which 16 they
  counted. All three deprecated ones are monotone functions of ``Sphericity``, so whichever two
  are chosen they have Spearman correlation 1 with it and the correlation filter removes them:
  the choice cannot change a fitted model.

The authors' released parameter file (``Params_Radiomics.yaml`` of the AdaMSS code) differs
from both papers' text: it enables pyradiomics' defaults only (18 first-order, 14 shape) and
also GLDM. We follow the papers' text and expose everything as parameters; their file's bin
widths (25 on the original image, 10 on the wavelet images) are our default.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

__all__ = [
    "PAPER_FEATURE_CLASSES",
    "PAPER_IMAGE_TYPES",
    "DEFAULT_BIN_WIDTH",
    "IMAGE_TYPES",
    "resolve_feature_classes",
    "resolve_image_types",
    "resolve_bin_width",
]

#: Texture/intensity classes computed per modality and image in the papers.
PAPER_FEATURE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "ngtdm", "shape")
#: Deprecated pyradiomics features added to the defaults to reach the papers' counts.
PAPER_EXTRA_FEATURES = {
    "firstorder": ("StandardDeviation",),
    "shape": ("Compactness1", "Compactness2"),
}
PAPER_IMAGE_TYPES = ("original", "wavelet")
#: Bin widths of the authors' parameter file, per image type (CT-like intensity scale).
DEFAULT_BIN_WIDTH = {"original": 25.0, "wavelet": 10.0}

#: Our lower-case image-type names -> pyradiomics image-type names.
IMAGE_TYPES = {
    "original": "Original",
    "wavelet": "Wavelet",
    "log": "LoG",
    "square": "Square",
    "squareroot": "SquareRoot",
    "logarithm": "Logarithm",
    "exponential": "Exponential",
    "gradient": "Gradient",
    "lbp3d": "LBP3D",
}


def _pyradiomics_classes() -> dict:
    from radiomics import getFeatureClasses

    return getFeatureClasses()


def resolve_feature_classes(feature_classes) -> dict[str, tuple[str, ...]]:
    """Turn the ``feature_classes`` parameter into ``{class: (feature names, ...)}``.

    Parameters
    ----------
    feature_classes : None, sequence of str, or mapping
        ``None``: the papers' set (see the module docstring). A sequence of class names: each
        class with pyradiomics' default (non-deprecated) features. A mapping
        ``{class: None | [feature, ...]}``: ``None`` means the defaults, a list names the
        features (deprecated ones included if named). ``'shape'`` is computed once per
        patient from the mask; every other class once per modality and image type.

    Returns
    -------
    dict
        Class name -> tuple of feature names, every name checked against pyradiomics.
    """
    available = _pyradiomics_classes()
    if feature_classes is None:
        spec = {c: None for c in PAPER_FEATURE_CLASSES}
        extras = PAPER_EXTRA_FEATURES
    elif isinstance(feature_classes, str):
        raise TypeError(
            f"feature_classes must be a sequence of class names or a dict, not the string "
            f"{feature_classes!r}; write ({feature_classes!r},)."
        )
    elif isinstance(feature_classes, Mapping):
        spec, extras = dict(feature_classes), {}
    else:
        spec, extras = {c: None for c in feature_classes}, {}
    if not spec:
        raise ValueError("feature_classes is empty: no feature would be extracted.")
    out = {}
    for cls, names in spec.items():
        if cls == "shape2D":
            raise ValueError("shape2D is for 2D images; survseg volumes are 3D: use 'shape'.")
        if cls not in available:
            choices = sorted(c for c in available if c != "shape2D")
            raise ValueError(f"unknown feature class {cls!r}; pyradiomics offers {choices}.")
        known = available[cls].getFeatureNames()  # name -> is_deprecated
        if names is None:
            chosen = [n for n, deprecated in known.items() if not deprecated]
            chosen += [n for n in extras.get(cls, ()) if n not in chosen]
        else:
            if isinstance(names, str):
                names = [names]
            chosen = list(dict.fromkeys(names))
            unknown = [n for n in chosen if n not in known]
            if unknown:
                raise ValueError(
                    f"unknown {cls} feature(s) {unknown}; pyradiomics offers {sorted(known)}."
                )
            if not chosen:
                raise ValueError(f"feature class {cls!r} lists no feature.")
        out[cls] = tuple(chosen)
    return out


def resolve_image_types(image_types) -> dict[str, dict]:
    """Turn ``image_types`` into ``{name: pyradiomics custom arguments}`` (lower-case names).

    Accepts ``None`` (the papers' original + wavelet), a sequence of names from
    :data:`IMAGE_TYPES` or a mapping name -> argument dict (e.g. ``{"original": {}, "log":
    {"sigma": [1.0, 3.0]}}``).
    """
    if image_types is None:
        image_types = PAPER_IMAGE_TYPES
    if isinstance(image_types, str):
        image_types = (image_types,)
    if isinstance(image_types, Mapping):
        spec = {str(k).lower(): dict(v or {}) for k, v in image_types.items()}
    else:
        spec = {str(k).lower(): {} for k in image_types}
    if not spec:
        raise ValueError("image_types is empty: name at least 'original'.")
    unknown = [k for k in spec if k not in IMAGE_TYPES]
    if unknown:
        raise ValueError(f"unknown image type(s) {unknown}; choose from {sorted(IMAGE_TYPES)}.")
    if "log" in spec and "sigma" not in spec["log"]:
        raise ValueError('the "log" image type needs sigma values: {"log": {"sigma": [1.0, 3.0]}}.')
    for name, args in spec.items():
        if "binWidth" in args or "binCount" in args:
            raise ValueError(
                f"set the bin width of {name!r} through the bin_width parameter, not in image_types."
            )
    return spec


def _positive(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"bin width {where} must be a positive number; got {value!r}.")
    return float(value)


def _per_image_type(value, image_types, where: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in IMAGE_TYPES]
        if unknown:
            raise ValueError(
                f"bin width {where} has unknown image type(s) {unknown}; "
                f"image types are {sorted(IMAGE_TYPES)}."
            )
        if "original" not in value:
            raise ValueError(
                f"bin width {where} must give 'original' (used for image types it does not name)."
            )
        widths = {k: _positive(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {t: widths.get(t, widths["original"]) for t in image_types}
    width = _positive(value, where)
    return {t: width for t in image_types}


def resolve_bin_width(bin_width, modalities, image_types) -> dict[str, dict[str, float]]:
    """Turn ``bin_width`` into ``{modality: {image_type: width}}``.

    Parameters
    ----------
    bin_width : None, float, or mapping
        ``None``: :data:`DEFAULT_BIN_WIDTH` (25 original, 10 wavelet) for every modality.
        A number: that width everywhere. A mapping keyed by image type (``{"original": 25,
        "wavelet": 10}``): the same for every modality. A mapping keyed by modality, each value
        a number or such a per-image-type mapping (``{"pet": 0.25, "ct": {"original": 25,
        "wavelet": 10}}``); every modality must be given. Image types a mapping does not name
        use its ``"original"`` width.
    modalities : sequence of str
    image_types : sequence of str
    """
    if bin_width is None:
        bin_width = DEFAULT_BIN_WIDTH
    if isinstance(bin_width, Mapping) and bin_width and all(k in IMAGE_TYPES for k in bin_width):
        per_type = _per_image_type(bin_width, image_types, "")
        return {m: dict(per_type) for m in modalities}
    if isinstance(bin_width, Mapping):
        missing = [m for m in modalities if m not in bin_width]
        extra = [k for k in bin_width if k not in modalities]
        if missing or extra:
            raise ValueError(
                f"bin_width is keyed by modality but does not match the modalities {list(modalities)}"
                + (f": missing {missing}" if missing else "")
                + (f"; unknown keys {extra}" if extra else "")
                + "."
            )
        return {m: _per_image_type(bin_width[m], image_types, f"for {m!r}") for m in modalities}
    per_type = _per_image_type(bin_width, image_types, "")
    return {m: dict(per_type) for m in modalities}
