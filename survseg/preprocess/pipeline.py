"""The whole preprocessing of a cohort in one call: read, resample, register, crop, normalise.

For each patient (papers' Sec. 4.2 / 4.1):

1. read each modality (a DICOM PET becomes SUV), the tumour mask and, optionally, the
   lymph-node mask (each: selected labels of a label image -> {0, 1}; both may come from
   one HECKTOR label image, label 1 the tumour and label 2 the nodes);
2. choose the output grid: the reference modality's (CT's) grid resampled to ``spacing``, or,
   with a ``template``, the template CT's grid after rigid registration of the patient's CT to
   it (Mattes mutual information);
3. choose the box: ``crop_size`` voxels centred on the tumour centroid (AdaMSS), at a fixed
   physical position (DeepMTS, registered images), or the whole grid;
4. resample every modality once, straight onto the box (linear; nearest for both masks), padding
   outside the image with -1024 for CT and 0 otherwise. This equals resampling to ``spacing``
   and then cropping (:func:`~survseg.preprocess.resample_to_spacing` then
   :func:`~survseg.preprocess.crop_or_pad`), because the box is a sub-grid of the resampled
   grid, but never holds a whole-body 1 mm volume in memory;
5. normalise intensities per patient: PET z-score, CT window [-1024, 1024] -> [-1, 1] (or
   z-score).

Patients run in parallel with joblib (``n_jobs``), with a tqdm progress bar (``verbose``), and
each patient's result can be cached on disk (``memory``): one ``.npz`` file per patient, read
with ``allow_pickle=False``, with the geometry as JSON inside, so a cache folder holds data
only and reading it never runs code. The cache key includes each input file's path, size and
modification time and every preprocessing parameter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import joblib
import numpy as np
import SimpleITK as sitk
from joblib import delayed
from tqdm.auto import tqdm

from .._parallel import parallel_run
from ..data.io import read_image, read_pet, select_labels
from ..data.store import atomic_path
from .crop import box_around_point, crop_grid, mask_centroid
from .geometry import CaseGeometry, Grid
from .intensity import window, zscore
from .register import register_rigid
from .resample import grid_for_spacing, resample_to_reference

__all__ = ["Preprocessing", "Preprocessed", "PreprocessingError", "preprocess", "preprocess_case"]

MASK = "mask"
NODES = "nodes"
_INTENSITY_METHODS = ("zscore", "window", None)
_CROPS = ("tumour", "fixed", None)


class PreprocessingError(ValueError):
    """Preprocessing failed for one patient; the message names the patient."""


def _xyz(spacing):
    """A (D, H, W) spacing in SimpleITK's (x, y, z) order (a number stays a number)."""
    return spacing if np.ndim(spacing) == 0 else tuple(spacing)[::-1]


@dataclass(frozen=True)
class Preprocessing:
    """Parameters of the preprocessing pipeline (see :func:`preprocess`).

    The defaults are AdaMSS's (1 mm voxels, 160^3 box on the tumour, PET z-score, CT window);
    :meth:`deepmts` gives DeepMTS's.

    Parameters
    ----------
    spacing : float or tuple of 3 float or None
        Output voxel size in mm, ``(D, H, W)`` order (the cohort's array axes, i.e.
        SimpleITK's ``(z, y, x)``); a number means isotropic. ``None`` keeps the
        reference image's grid. Ignored with a ``template`` (its grid, resampled to
        ``spacing``, is used).
    reference : str
        Modality whose grid the others are resampled onto (and which is registered).
    template : path-like or SimpleITK.Image, optional
        CT of the template patient for rigid registration; ``None``: no registration.
    registration : mapping, optional
        Keyword arguments for :func:`~survseg.preprocess.register_rigid`.
    crop : {'tumour', 'fixed', None}
        ``'tumour'``: box centred on the centroid of the mask; ``'fixed'``: box centred on
        ``crop_center``; ``None``: no cropping (all patients must then share a grid shape).
    crop_size : int or tuple of 3 int
        Box size in voxels, ``(D, H, W)`` order: the cohort arrays get exactly this shape.
        An int gives a cube.
    crop_center : tuple of 3 float, optional
        Physical centre (mm) of a ``'fixed'`` box, in the template's space when registering;
        default: the centre of the (template or patient) grid.
    intensity : mapping of str to {'zscore', 'window', None}
        Normalisation per modality; modalities not named are left as they are.
    ct_window : tuple of 2 float
        HU window of ``'window'``, mapped to [-1, 1].
    pad_values : mapping of str to float
        Value outside the image per modality (default 0; CT -1024 HU).
    mask_labels : tuple of int, optional
        Labels of the label image that form the mask; ``None``: every non-zero label.
    nodes_labels : tuple of int, optional
        Labels of the ``'nodes'`` label image that form the lymph-node mask (HECKTOR:
        ``(2,)``); ``None``: every non-zero label. An empty node mask is valid (a patient
        without involved nodes), unlike an empty tumour mask.
    """

    spacing: float | tuple[float, float, float] | None = 1.0
    reference: str = "ct"
    template: str | os.PathLike | sitk.Image | None = None
    registration: Mapping | None = None
    crop: str | None = "tumour"
    crop_size: tuple[int, int, int] = (160, 160, 160)
    crop_center: tuple[float, float, float] | None = None
    intensity: Mapping[str, str | None] = field(
        default_factory=lambda: {"pet": "zscore", "ct": "window"}
    )
    ct_window: tuple[float, float] = (-1024.0, 1024.0)
    pad_values: Mapping[str, float] = field(default_factory=lambda: {"ct": -1024.0})
    mask_labels: tuple[int, ...] | None = None
    nodes_labels: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.crop not in _CROPS:
            raise ValueError(f"crop must be one of {_CROPS}; got {self.crop!r}.")
        size = np.asarray(self.crop_size)
        if size.ndim == 0:
            size = np.repeat(size, 3)
        if size.shape != (3,) or not np.issubdtype(size.dtype, np.integer) or (size < 1).any():
            raise ValueError(
                f"crop_size must be a positive integer or 3 of them (D, H, W); got "
                f"{self.crop_size!r}."
            )
        object.__setattr__(self, "crop_size", tuple(int(v) for v in size))
        if self.spacing is not None and np.ndim(self.spacing) == 1:
            object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        bad = {k: v for k, v in dict(self.intensity).items() if v not in _INTENSITY_METHODS}
        if bad:
            raise ValueError(f"intensity methods must be 'zscore', 'window' or None; got {bad}.")
        if self.crop_center is not None and np.shape(self.crop_center) != (3,):
            raise ValueError(
                f"crop_center must be a physical point (x, y, z) in mm; got {self.crop_center!r}."
            )
        if self.registration is not None and self.template is None:
            raise ValueError("registration parameters were given but no template to register to.")

    @classmethod
    def adamss(cls, **changes) -> Preprocessing:
        """AdaMSS (Sec. 4.1): 1 mm voxels, 160^3 box centred on the tumour, PET z-score, CT
        clipped to [-1024, 1024] HU and mapped to [-1, 1]."""
        return cls(**changes)

    @classmethod
    def deepmts(cls, template, crop_center=None, **changes) -> Preprocessing:
        """DeepMTS (Sec. 4.2): 1 mm voxels, rigid registration to ``template``, a fixed
        112x128x128 box (D, H, W; the paper's 128x128x112 in x, y, z) at ``crop_center``,
        PET and CT z-score."""
        params = dict(
            template=template,
            crop="fixed",
            crop_size=(112, 128, 128),
            crop_center=crop_center,
            intensity={"pet": "zscore", "ct": "zscore"},
        )
        params.update(changes)
        return cls(**params)

    def pad_value(self, modality: str) -> float:
        return float(dict(self.pad_values).get(modality, 0.0))


class Preprocessed(NamedTuple):
    """Result of :func:`preprocess`.

    Attributes
    ----------
    volumes : dict of str to ndarray
        One ``(n_patients, z, y, x)`` stack per modality (``float32``), ``'mask'`` and
        ``'nodes'`` (``uint8``, when given), ready for
        ``survseg.volumes(**volumes, spacing=result.spacing)``.
    geometries : list of CaseGeometry
        Per patient, where the arrays sit in the patient's original space (see
        :func:`~survseg.preprocess.to_original_space`).
    spacing : ndarray of shape (n_patients, 3)
        Each patient's voxel spacing on the output grid, mm, ``(D, H, W)`` order (the
        grids' SimpleITK ``(x, y, z)`` spacing reversed), for the cohort's ``'spacing'``
        field.
    """

    volumes: dict
    geometries: list

    @property
    def spacing(self) -> np.ndarray:
        return np.array([g.grid.spacing[::-1] for g in self.geometries], dtype=np.float64)


# ------------------------------------------------------------------------ one patient


def _load(value, name: str, p: Preprocessing) -> sitk.Image:
    if isinstance(value, sitk.Image):
        image = value
        if image.GetDimension() != 3:
            raise ValueError(f"{name} image must be 3D; got {image.GetDimension()}D.")
    elif name == "pet":
        image = read_pet(value)
    else:
        image = read_image(value)
    if name == MASK:
        return select_labels(image, p.mask_labels)
    if name == NODES:
        return select_labels(image, p.nodes_labels)
    return sitk.Cast(image, sitk.sitkFloat32)


def _check_mask_header(mask: sitk.Image, images: dict) -> None:
    """A mask with an image's voxel counts but another spacing has a wrong header: it
    would be resampled onto the wrong tissue (a mask on its own grid, e.g. a PET-sized
    one, is fine and resampled by physical position)."""
    for name, image in images.items():
        if mask.GetSize() == image.GetSize() and not np.allclose(
            mask.GetSpacing(), image.GetSpacing(), rtol=1e-3, atol=1e-4
        ):
            raise ValueError(
                f"the mask has the size of the {name!r} image {image.GetSize()} but spacing "
                f"{tuple(round(v, 4) for v in mask.GetSpacing())} mm instead of "
                f"{tuple(round(v, 4) for v in image.GetSpacing())} mm: its header is "
                "inconsistent with the image it was drawn on; fix the mask file's spacing."
            )


def _normalise(image: sitk.Image, method: str | None, p: Preprocessing) -> sitk.Image:
    if method == "zscore":
        return zscore(image)
    if method == "window":
        return window(image, *p.ct_window)
    return image


def _check_not_blank(images: dict, mask_array) -> None:
    """Raise if, in every modality, the mask covers one value no higher than the rest of the
    box (air, no uptake or padding): the mask is outside the body or misaligned (the rule of
    :func:`survseg.data.validation.check_image_content`)."""
    from ..data.validation import _blank_under

    inside = mask_array.reshape(-1) != 0
    flat = {n: sitk.GetArrayViewFromImage(im).reshape(1, -1) for n, im in images.items()}
    if _blank_under(flat, 0, inside):
        under = " and ".join(f"every {n!r} voxel is {v[0][inside][0]:g}" for n, v in flat.items())
        raise ValueError(
            f"the mask lies on a blank region after resampling and cropping: under it {under}, "
            "no higher than the rest of the box (air, no uptake or padding), so it is outside "
            "the body or not aligned with the images; check its origin, direction and spacing "
            "against the images'."
        )


def preprocess_case(
    case: Mapping, preprocessing: Preprocessing | None = None, *, template: sitk.Image | None = None
):
    """Preprocess one patient (see :func:`preprocess` for the steps).

    Parameters
    ----------
    case : mapping of str to path-like or SimpleITK.Image
        One entry per modality (``'ct'``, ``'pet'``, ...) and optionally ``'mask'`` and
        ``'nodes'`` (label images, possibly the same file); ``'nodes': None`` is a patient
        without nodes (an all-zero node mask).
    preprocessing : Preprocessing, optional
        Default ``Preprocessing()``.
    template : SimpleITK.Image, optional
        The template CT already on its output grid (``preprocess`` reads and resamples
        ``preprocessing.template`` once for all patients); default: read it from
        ``preprocessing.template``.

    Returns
    -------
    arrays : dict of str to ndarray
        ``(z, y, x)`` arrays: ``float32`` images and ``uint8`` masks (``'mask'``,
        ``'nodes'``).
    geometry : CaseGeometry
    """
    p = Preprocessing() if preprocessing is None else preprocessing
    if p.reference not in case:
        raise ValueError(
            f"the reference modality {p.reference!r} is not among the images "
            f"{sorted(case)}; set Preprocessing(reference=...)."
        )
    if p.template is not None and template is None:
        template = _template_image(p)
    missing = [name for name, value in case.items() if value is None and name != NODES]
    if missing:
        raise ValueError(
            f"no image given for {missing} (only 'nodes' may be None: a patient without nodes)."
        )
    images = {name: _load(value, name, p) for name, value in case.items() if value is not None}
    mask = images.pop(MASK, None)
    nodes = images.pop(NODES, None)
    if mask is not None and not sitk.GetArrayViewFromImage(mask).any():
        raise ValueError(
            "the mask is empty"
            + (f" for labels {tuple(p.mask_labels)}" if p.mask_labels is not None else "")
            + "."
        )
    reference = images[p.reference]
    if mask is not None:
        _check_mask_header(mask, images)

    # 2. output grid (and registration)
    transform = None
    if template is not None:
        transform = register_rigid(template, reference, **dict(p.registration or {}))
        grid = Grid.from_image(template)
    elif p.spacing is not None:
        grid = grid_for_spacing(reference, _xyz(p.spacing))
    else:
        grid = Grid.from_image(reference)

    # 3. the box
    if p.crop is not None:
        if p.crop == "tumour":
            if mask is None:
                raise ValueError("crop='tumour' needs a 'mask' for every patient.")
            centre = mask_centroid(mask)
            if transform is not None:  # patient space -> template space
                centre = np.asarray(transform.GetInverse().TransformPoint(tuple(centre)))
        else:
            centre = grid.center() if p.crop_center is None else np.asarray(p.crop_center)
        size = p.crop_size[::-1]  # (D, H, W) -> SimpleITK's (x, y, z)
        grid = crop_grid(grid, box_around_point(grid, centre, size), size)

    # 4. one resampling per modality, straight onto the box
    arrays, mask_array = {}, None
    if mask is not None:  # first: an empty box is the error to report
        out = resample_to_reference(mask, grid, transform=transform, interpolator="nearest")
        mask_array = sitk.GetArrayFromImage(out).astype(np.uint8, copy=False)
        if not mask_array.any():
            raise ValueError(
                "the mask is empty after resampling and cropping (the tumour "
                "is outside the box, or smaller than one output voxel)."
            )
    nodes_array = None
    if NODES in case:  # nodes outside the box, or none at all, give an all-zero mask
        if nodes is None:
            nodes_array = np.zeros(grid.shape, dtype=np.uint8)
        else:
            out = resample_to_reference(nodes, grid, transform=transform, interpolator="nearest")
            nodes_array = sitk.GetArrayFromImage(out).astype(np.uint8, copy=False)
    resampled = {
        name: resample_to_reference(
            image, grid, transform=transform, interpolator="linear", default_value=p.pad_value(name)
        )
        for name, image in images.items()
    }
    if mask_array is not None:  # a mask in the air would be reported as a constant image
        _check_not_blank(resampled, mask_array)
    for name, out in resampled.items():
        # 5. per-patient intensity normalisation
        try:
            out = _normalise(out, dict(p.intensity).get(name), p)
        except ValueError as error:
            raise ValueError(f"{name} image: {error}") from error
        arrays[name] = sitk.GetArrayFromImage(out).astype(np.float32, copy=False)
    if mask_array is not None:
        arrays[MASK] = mask_array
    if nodes_array is not None:
        arrays[NODES] = nodes_array
    geometry = CaseGeometry(
        grid=grid,
        original=Grid.from_image(reference),
        transform=None if transform is None else tuple(transform.GetParameters()),
        transform_center=None if transform is None else tuple(transform.GetCenter()),
    )
    return arrays, geometry


# ------------------------------------------------------------------------ the cohort


def _template_image(p: Preprocessing) -> sitk.Image:
    image = p.template if isinstance(p.template, sitk.Image) else read_image(p.template)
    image = sitk.Cast(image, sitk.sitkFloat32)
    if p.spacing is not None:
        image = resample_to_reference(
            image, grid_for_spacing(image, _xyz(p.spacing)), default_value=p.pad_value(p.reference)
        )
    return image


def _stamp(value):
    """What identifies an input for the cache: a file's path, size and modification time."""
    if value is None or isinstance(value, sitk.Image):
        return None  # hashed by value
    path = os.path.abspath(os.fspath(value))
    if os.path.isdir(path):  # DICOM series: every file counts
        entries = sorted(os.scandir(path), key=lambda e: e.name)
        return path, [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries]
    if not os.path.exists(path):
        return path, None
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


_CACHE_FORMAT = "survseg-preprocess-cache/1"
_GEOMETRY_KEY = "__geometry__"


def _cache_folder(memory) -> str | None:
    """The cache folder from ``memory`` (a path or a :class:`joblib.Memory`'s location)."""
    if memory is None:
        return None
    if isinstance(memory, joblib.Memory):
        memory = memory.location
        if memory is None:
            return None
    if not isinstance(memory, str | os.PathLike):
        raise TypeError(
            f"memory must be a folder path or a joblib.Memory; got {type(memory).__name__}."
        )
    return os.path.join(os.fspath(memory), "survseg_preprocess")


def _cache_key(case, stamps, p, template_grid) -> str:
    """Hash of everything a patient's result depends on (``joblib.hash`` pickles to hash,
    it never unpickles). SimpleITK images enter by their voxels and geometry."""

    def describe(v):
        if v is None:  # an optional input (nodes) this patient lacks
            return None
        if isinstance(v, sitk.Image):
            return (joblib.hash(sitk.GetArrayViewFromImage(v).copy()), Grid.from_image(v))
        return os.path.abspath(os.fspath(v))

    parts = (_CACHE_FORMAT, {k: describe(v) for k, v in sorted(case.items())}, stamps, p)
    return joblib.hash((*parts, template_grid))


def _geometry_to_json(geometry: CaseGeometry) -> str:
    return json.dumps(dataclasses.asdict(geometry))


def _geometry_from_json(text: str) -> CaseGeometry:
    raw = json.loads(text)

    def grid(d):
        return Grid(
            size=tuple(int(v) for v in d["size"]),
            spacing=tuple(float(v) for v in d["spacing"]),
            origin=tuple(float(v) for v in d["origin"]),
            direction=tuple(float(v) for v in d["direction"]),
        )

    def opt(v):
        return None if v is None else tuple(float(x) for x in v)

    return CaseGeometry(
        grid=grid(raw["grid"]),
        original=grid(raw["original"]),
        transform=opt(raw.get("transform")),
        transform_center=opt(raw.get("transform_center")),
    )


def _cache_read(path: str):
    """A cached patient, or ``None`` (absent, or unreadable: then it is recomputed)."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k != _GEOMETRY_KEY}
            geometry = _geometry_from_json(str(f[_GEOMETRY_KEY]))
        return arrays, geometry
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        warnings.warn(
            f"preprocessing cache file {path} is unreadable ({exc}); recomputing.",
            UserWarning,
            stacklevel=2,
        )
        return None


def _cache_write(path: str, arrays: dict, geometry: CaseGeometry) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays, **{_GEOMETRY_KEY: np.str_(_geometry_to_json(geometry))})


def _cached_case(cache_file, case, p, template_array, template_grid, case_id):
    """joblib task: one patient, served from / written to the cache file when given."""
    if cache_file is not None:
        hit = _cache_read(cache_file)
        if hit is not None:
            return hit
    arrays, geometry = _run_case(case, p, template_array, template_grid, case_id)
    if cache_file is not None:
        _cache_write(cache_file, arrays, geometry)
    return arrays, geometry


def _run_case(case, p, template_array, template_grid, case_id):
    # ``p.template`` holds the template's hash and the template itself comes as an array
    # (joblib memory-maps it into worker processes).
    template = None
    if template_array is not None:
        template = sitk.GetImageFromArray(template_array)
        template.SetSpacing(template_grid.spacing)
        template.SetOrigin(template_grid.origin)
        template.SetDirection(template_grid.direction)
    try:
        return preprocess_case(case, p, template=template)
    except (ValueError, RuntimeError, OSError) as error:
        raise PreprocessingError(f"patient {case_id!r}: {error}") from error


def preprocess(
    cases: Sequence[Mapping],
    preprocessing: Preprocessing | None = None,
    *,
    ids: Sequence[str] | None = None,
    n_jobs: int | None = None,
    memory=None,
    verbose: bool = False,
) -> Preprocessed:
    """Preprocess a cohort of PET/CT patients into stacks of equal-shape arrays.

    Parameters
    ----------
    cases : sequence of mapping
        One mapping per patient from modality name (``'ct'``, ``'pet'``, ...) and optionally
        ``'mask'`` and ``'nodes'`` (label images) to a file/folder path or a SimpleITK image;
        every patient has the same keys. ``'nodes': None`` is a patient without nodes.
        A PET given as a DICOM folder is converted to SUV; other PET files are taken as SUV.
    preprocessing : Preprocessing, optional
        The steps' parameters (default: ``Preprocessing()``, AdaMSS's).
    ids : sequence of str, optional
        Patient identifiers for error messages (default: positions).
    n_jobs : int, optional
        Patients processed in parallel (joblib; ``-1`` = all cores).
    memory : str, path-like or joblib.Memory, optional
        Cache folder (or a Memory, for its location) for per-patient results, kept in
        ``<folder>/survseg_preprocess/`` as ``.npz`` files read without unpickling;
        ``None``: no caching.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    Preprocessed
        ``(volumes, geometries)``: ``survseg.volumes(**volumes)`` builds the cohort.

    Raises
    ------
    PreprocessingError
        A patient failed (unreadable file, missing DICOM tag, empty mask, ...); the message
        names the patient.

    Examples
    --------
    >>> from survseg.preprocess import Preprocessing, preprocess         # doctest: +SKIP
    >>> cases = [{"ct": "p1_ct.nii.gz", "pet": "p1_pt.nii.gz", "mask": "p1_gtv.nii.gz"}]
    >>> volumes, geometries = preprocess(cases, Preprocessing.adamss())  # doctest: +SKIP
    >>> X = survseg.volumes(**volumes)                                   # doctest: +SKIP
    """
    p = Preprocessing() if preprocessing is None else preprocessing
    if not isinstance(p, Preprocessing):
        raise TypeError(f"preprocessing must be a Preprocessing, got {type(p).__name__}.")
    cases = list(cases)
    if not cases:
        raise ValueError("no patients to preprocess.")
    ids = [str(i) for i in range(len(cases))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(cases):
        raise ValueError(f"{len(ids)} ids for {len(cases)} patients.")
    keys = set(cases[0])
    for case_id, case in zip(ids, cases, strict=True):
        if not isinstance(case, Mapping):
            raise TypeError(
                f"patient {case_id!r}: a case must be a mapping of modality "
                f"name to image, got {type(case).__name__}."
            )
        if set(case) != keys:
            raise ValueError(
                f"patient {case_id!r} has images {sorted(case)} but patient "
                f"{ids[0]!r} has {sorted(keys)}; all patients need the same."
            )
    template_array = template_grid = None
    if p.template is not None:
        template = _template_image(p)
        template_array, template_grid = sitk.GetArrayFromImage(template), Grid.from_image(template)
        p = dataclasses.replace(p, template=f"template:{joblib.hash(template_array)}")

    folder = _cache_folder(memory)

    def cache_file(case):
        if folder is None:
            return None
        key = _cache_key(case, {k: _stamp(v) for k, v in case.items()}, p, template_grid)
        return os.path.join(folder, key + ".npz")  # a hash: patient ids never name files

    tasks = (
        delayed(_cached_case)(
            cache_file(case),
            {
                k: (v if v is None or isinstance(v, sitk.Image) else os.fspath(v))
                for k, v in case.items()
            },
            p,
            template_array,
            template_grid,
            case_id,
        )
        for case, case_id in zip(cases, ids, strict=True)
    )
    results = parallel_run(tasks, n_jobs=n_jobs, return_as="generator")
    volumes, geometries = {}, []
    for i, (arrays, geometry) in enumerate(
        tqdm(results, total=len(cases), desc="preprocess", disable=not verbose)
    ):
        if i == 0:
            volumes = {k: np.empty((len(cases), *a.shape), a.dtype) for k, a in arrays.items()}
        elif geometry.grid.shape != geometries[0].grid.shape:
            raise PreprocessingError(
                f"patient {ids[i]!r} has preprocessed shape {geometry.grid.shape} but patient "
                f"{ids[0]!r} has {geometries[0].grid.shape}: set crop='tumour' or 'fixed' (or "
                "a template) so that all patients share one shape."
            )
        for k, a in arrays.items():
            volumes[k][i] = a
        geometries.append(geometry)
    return Preprocessed(volumes, geometries)
