"""One pyradiomics extraction: numpy volumes -> SimpleITK images -> feature vector.

These functions run in joblib workers, so they take and return plain picklable objects.
Arrays are in the cohort's ``(D, H, W)`` = ``(z, y, x)`` order; SimpleITK wants the spacing in
``(x, y, z)`` order, so it is reversed when the image is built.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

__all__ = [
    "to_sitk",
    "mask_bounding_box",
    "crop_box",
    "quiet_radiomics",
    "extract",
    "shell_masks",
    "node_burden",
    "BURDEN_FEATURES",
    "BURDEN_IMAGE_FEATURES",
]

#: Node-burden features computed once per patient (names after ``nodes_burden_``).
BURDEN_FEATURES = ("Present", "Count", "Volume", "LargestVolume")
#: Node-burden features computed per modality (``nodes_burden_<modality>_<name>``).
BURDEN_IMAGE_FEATURES = ("Integral", "Maximum")


def to_sitk(array: np.ndarray, spacing):
    """A SimpleITK image of a ``(D, H, W)`` array with voxel ``spacing`` given as ``(D, H, W)``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    return image


def mask_bounding_box(mask: np.ndarray):
    """``(lower, upper)`` inclusive voxel bounds of the non-zero voxels, or ``None`` if empty."""
    lower, upper = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lower.append(int(hit[0]))
        upper.append(int(hit[-1]))
    return lower, upper


def crop_box(shape, box, pad: int) -> tuple[slice, ...]:
    """Slices of the bounding ``box`` grown by ``pad`` voxels, clipped to ``shape``.

    The same region as pyradiomics' ``preCrop`` (``cropToTumorMask`` with ``padDistance``), so
    cropping here first gives pyradiomics the image it would have cropped itself, and a
    worker receives kilobytes instead of a whole volume.
    """
    lower, upper = box
    return tuple(
        slice(max(lo - pad, 0), min(hi + pad, n - 1) + 1)
        for lo, hi, n in zip(lower, upper, shape, strict=True)
    )


@contextlib.contextmanager
def quiet_radiomics():
    """Silence pyradiomics' INFO/WARNING logging and its warnings for one block, then restore.

    Its logger is at INFO by default: formatting thousands of records per patient costs time
    and fills the console with notes such as deprecated-feature warnings for features that
    were asked for on purpose.
    """
    logger = logging.getLogger("radiomics")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def extract(image: np.ndarray, mask: np.ndarray, spacing, config: dict):
    """Run pyradiomics on one image and mask.

    Parameters
    ----------
    image : ndarray of shape (D, H, W)
    mask : ndarray of shape (D, H, W), values in {0, 1}
    spacing : sequence of 3 floats, ``(D, H, W)`` order, in mm
    config : dict
        ``settings`` (pyradiomics settings), ``image_types`` (pyradiomics image type ->
        custom arguments) and ``classes`` (feature class -> feature names).

    Returns
    -------
    names : list of str
        pyradiomics names (``"original_glcm_Contrast"``, ``"wavelet-LLH_firstorder_Mean"``).
    values : ndarray of float64
    error : str or None
        pyradiomics' message when it rejects the mask (e.g. a single-voxel ROI); then
        ``names`` and ``values`` are empty.
    """
    from radiomics import featureextractor

    with quiet_radiomics():
        extractor = featureextractor.RadiomicsFeatureExtractor(**config["settings"])
        extractor.disableAllImageTypes()
        extractor.enableImageTypes(**{k: dict(v) for k, v in config["image_types"].items()})
        extractor.disableAllFeatures()
        extractor.enableFeaturesByName(**{k: list(v) for k, v in config["classes"].items()})
        try:
            result = extractor.execute(
                to_sitk(image.astype(np.float32, copy=False), spacing),
                to_sitk(mask.astype(np.uint8, copy=False), spacing),
                label=1,
            )
        except ValueError as exc:  # pyradiomics' mask checks (too small, 1D ROI, ...)
            return [], np.empty(0), str(exc)
    names = [k for k in result if not k.startswith("diagnostics_")]
    # GLCM's MCC comes from eigenvalues and can carry a round-off imaginary part: keep the real one.
    values = np.array([np.real(result[k]) for k in names], dtype=np.float64)
    return names, values, None


def shell_masks(mask: np.ndarray, spacing, distances) -> list[np.ndarray]:
    r"""Peritumoral shells: the voxels within given distances (mm) of a mask, the mask excluded.

    .. math:: \text{shell}_d = \{v : 0 < \operatorname{dist}(v, M) \le d\},

    where :math:`\operatorname{dist}(v, M)` is the Euclidean distance in mm from the centre of
    voxel :math:`v` to the nearest voxel centre of the mask :math:`M`, computed with an exact
    distance transform (:func:`scipy.ndimage.distance_transform_edt`) that takes the voxel
    ``spacing`` into account. This is the dilation of :math:`M` by a ball of radius
    :math:`d` minus :math:`M`, clipped to the image. Every shell starts at the mask's border
    (``distances=(3, 6)`` gives a 0-3 mm and a 0-6 mm ring, as in the HECKTOR 2022 entries).

    Parameters
    ----------
    mask : ndarray of shape (D, H, W)
        Binary mask (non-zero = inside).
    spacing : sequence of 3 floats
        Voxel size in mm, ``(D, H, W)`` order.
    distances : sequence of float
        Outer radii of the shells, in mm.

    Returns
    -------
    shells : list of ndarray of uint8
        One ``(D, H, W)`` mask per distance; all zero when ``mask`` is empty.
    """
    from scipy.ndimage import distance_transform_edt

    inside = np.asarray(mask) != 0
    shells = [np.zeros(inside.shape, dtype=np.uint8) for _ in distances]
    box = mask_bounding_box(inside)
    if box is None or not len(distances):
        return shells
    spacing = np.asarray(spacing, dtype=np.float64)
    # Voxels farther than the largest distance along any axis cannot be in a shell, so the
    # transform runs on the mask's box grown by that margin: same result, far less work.
    pad = int(np.ceil(max(distances) / spacing.min())) + 1
    region = crop_box(inside.shape, box, pad)
    distance = distance_transform_edt(~inside[region], sampling=spacing)
    for shell, d in zip(shells, distances, strict=True):
        shell[region] = (distance > 0) & (distance <= float(d))
    return shells


def node_burden(nodes: np.ndarray, images: dict, spacing) -> dict:
    r"""Node-burden features of one patient's lymph-node mask.

    With :math:`N` the node voxels, :math:`\Delta V` the voxel volume (mm³) and :math:`I` an
    image:

    - ``Present``: 1 if :math:`N` is not empty, else 0;
    - ``Count``: number of connected components of :math:`N` (26-connectivity: voxels
      sharing a face, an edge or a corner belong to the same node);
    - ``Volume``: :math:`|N|\,\Delta V` (mm³), ``LargestVolume``: that of the largest
      component;
    - per image ``m``: ``<m>_Integral`` :math:`= \sum_{v \in N} I_m(v)\,\Delta V` (for a PET
      in SUV, the total nodal uptake, SUV·mm³) and ``<m>_Maximum`` :math:`= \max_N I_m`
      (SUVmax of the nodes).

    Every feature is 0 for a patient without nodes.

    Parameters
    ----------
    nodes : ndarray of shape (D, H, W)
        Binary node mask.
    images : dict of str to ndarray
        Images on the same grid (modality -> volume).
    spacing : sequence of 3 floats
        Voxel size in mm.

    Returns
    -------
    dict of str to float
        Keyed by the names in :data:`BURDEN_FEATURES` and ``<modality>_<name>`` for
        :data:`BURDEN_IMAGE_FEATURES`.
    """
    from scipy.ndimage import label

    inside = np.asarray(nodes) != 0
    voxel = float(np.prod(np.asarray(spacing, dtype=np.float64)))
    out = dict.fromkeys(BURDEN_FEATURES, 0.0)
    for m in images:
        out.update({f"{m}_{name}": 0.0 for name in BURDEN_IMAGE_FEATURES})
    n_voxels = int(np.count_nonzero(inside))
    if n_voxels == 0:
        return out
    labels, count = label(inside, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())[1:]
    out.update(
        Present=1.0,
        Count=float(count),
        Volume=n_voxels * voxel,
        LargestVolume=float(sizes.max()) * voxel,
    )
    for m, image in images.items():
        values = np.asarray(image)[inside].astype(np.float64)
        out[f"{m}_Integral"] = float(values.sum()) * voxel
        out[f"{m}_Maximum"] = float(values.max())
    return out
