r"""One cohort batch builder and one batched forward pass, for every deep estimator.

:class:`CohortBatches` either *preloads* the training patients' volumes at the start of
``fit`` into one contiguous float32 tensor (intensity-normalised once; masks as uint8), on the
device when it fits there, so that a batch is an ``index_select`` on that tensor; or, above a
size budget (:data:`PRELOAD_BUDGET`), reads each batch's patients from the cohort (a
memory-mapped one is then never resident) and normalises them on the device. Either way a
batch is then augmented with batched tensor ops on the device
(:func:`~survseg.training.augment.random_affine`, then
:func:`~survseg.training.augment.random_crop`), and the two give the same batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..data.mapped import CHUNK
from .augment import random_affine, random_crop
from .inputs import image_tensor, mask_tensor

__all__ = ["PRELOAD_BUDGET", "Batch", "CohortBatches", "forward_in_batches", "preload_storage"]

#: Largest training set (bytes: float32 images, uint8 masks) that ``preload="auto"`` reads
#: into memory at the start of ``fit``; a larger one is read batch by batch from the cohort.
PRELOAD_BUDGET = 512 * 2**20
_DEVICE_SHARE = 0.2  # on CUDA, keep the volumes on the GPU when they take < 20 % of its memory
_STORAGE = ("auto", "device", "cpu", "lazy")


def preload_storage(preload) -> str:
    """The :class:`CohortBatches` ``storage`` of an estimator's ``preload`` parameter.

    ``True`` -> ``"device"``, ``False`` -> ``"lazy"``, ``"auto"`` -> ``"auto"``.
    """
    return {"auto": "auto", True: "device", False: "lazy"}[preload]


@dataclass
class Batch:
    """A training batch: ``index`` (rows of the training set), device tensors."""

    index: torch.Tensor
    images: torch.Tensor
    masks: torch.Tensor | None = None
    tabular: torch.Tensor | None = None


class CohortBatches:
    """The training set of a cohort and its augmented, device-ready batches.

    Parameters
    ----------
    X : cohort
    rows : ndarray of int
        The training patients (rows of ``X``); batches index into them (0 .. len(rows) - 1).
    modalities : sequence of str
        Image fields, stacked as channels.
    device : torch.device
    intensity : dict
        A parsed ``intensity`` (:func:`~survseg.training.inputs.check_intensity`).
    mask_field : str, sequence of str or None
        Field(s) of the segmentation target, one channel per field (e.g. ``("mask",
        "nodes")`` for tumour and lymph nodes); kept as uint8, float32 in the batches.
    raw_fields : sequence of str, default=()
        Image fields appended as extra channels after ``modalities`` *without* intensity
        normalisation (e.g. the PET in SUV for uptake features), augmented with the images.
    tabular : ndarray of shape (n_rows, n_features), optional
        Standardised tabular inputs of the training patients.
    augment : dict or None
        Keyword arguments of :func:`~survseg.training.augment.random_affine`.
    crop : tuple of 3 int or None
        Random crop size (``None``: the whole volume).
    generator : torch.Generator
        On ``device``; draws the augmentation and crops.
    storage : {"auto", "device", "cpu", "lazy"}
        Where the volumes are kept. ``"device"``: read once, on the device; ``"cpu"``: read
        once, in CPU memory, each batch copied over; ``"lazy"``: not kept, each batch read
        from ``X`` (only its patients and the fields used). ``"auto"``: on a GPU, on the
        device when they take less than a fifth of its memory; otherwise read once into CPU
        memory (the device's, when it is the CPU) when they take at most
        :data:`PRELOAD_BUDGET` bytes, else lazy.

    Notes
    -----
    Preloaded and lazy batches are equal: intensity normalisation is per patient, and the
    same voxels go through the same operations. The memory held is ``len(rows) x (4 x images
    + masks) x voxels`` bytes preloaded, and one batch lazily. A patient whose image cannot
    be z-scored (constant) is reported here, before training, in both modes.
    """

    def __init__(
        self,
        X,
        rows,
        modalities,
        *,
        device,
        intensity=None,
        mask_field=None,
        raw_fields=(),
        tabular=None,
        augment=None,
        crop=None,
        generator=None,
        storage="auto",
    ):
        if storage not in _STORAGE:
            raise ValueError(f"storage must be one of {list(_STORAGE)}; got {storage!r}.")
        self.device = device
        self.augment, self.generator = augment, generator
        self.rows = np.asarray(rows, dtype=np.intp)
        self.modalities, self.raw_fields = list(modalities), list(raw_fields)
        self.intensity = intensity
        self.mask_fields = (
            []
            if mask_field is None
            else [mask_field]
            if isinstance(mask_field, str)
            else list(mask_field)
        )
        shape = X.dtype.fields[self.modalities[0]][0].shape
        self.crop = None if crop is None or tuple(crop) == tuple(shape) else tuple(crop)
        voxels = int(np.prod(shape))
        channels = len(self.modalities) + len(self.raw_fields)
        nbytes = len(self.rows) * voxels * (4 * channels + len(self.mask_fields))
        self.storage = self._where(storage, nbytes)
        self.X = X if self.storage is None else None
        self.images = self.masks = None
        if self.storage is None:
            self._check_zscore(X)
        else:
            self.images, self.masks = self._read(X, self.rows, self.storage)
        self.tabular = None if tabular is None else torch.as_tensor(tabular, device=device)

    def _where(self, storage, nbytes) -> torch.device | None:
        """The device the preloaded volumes go to, or ``None`` (lazy)."""
        if storage == "lazy":
            return None
        if storage == "device":
            return self.device
        if storage == "cpu":
            return torch.device("cpu")
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            if nbytes < _DEVICE_SHARE * total:
                return self.device
            return torch.device("cpu") if nbytes <= PRELOAD_BUDGET else None
        return self.device if nbytes <= PRELOAD_BUDGET else None

    def _read(self, X, rows, device, with_masks=True):
        """Normalised images (+ raw channels) and uint8 masks of cohort ``rows`` on ``device``."""
        shape = X.dtype.fields[self.modalities[0]][0].shape
        k = len(self.modalities)
        images = torch.empty(
            (len(rows), k + len(self.raw_fields), *shape), dtype=torch.float32, device=device
        )
        image_tensor(X, self.modalities, rows, intensity=self.intensity, out=images[:, :k])
        if self.raw_fields:
            image_tensor(X, self.raw_fields, rows, out=images[:, k:])
        masks = None
        if with_masks and self.mask_fields:
            masks = mask_tensor(X, self.mask_fields, rows, device=device)
        return images, masks

    def _check_zscore(self, X):
        """Lazy storage: raise now, not at some batch, for an image that cannot be z-scored
        (one chunk of patients in memory at a time)."""
        methods = self.intensity or {}
        for field in [f for f in self.modalities if methods.get(f, ("",))[0] == "zscore"]:
            for start in range(0, len(self.rows), CHUNK):
                rows = self.rows[start : start + CHUNK]
                image_tensor(X, [field], rows, intensity={field: methods[field]})

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, index, *, with_masks=True) -> Batch:
        """The augmented, cropped batch of training rows ``index`` (ints in 0 .. len - 1)."""
        index = np.asarray(index)
        if self.storage is None:  # lazy: read the batch's patients from the cohort
            images, masks = self._read(self.X, self.rows[index], self.device, with_masks)
            sel = torch.as_tensor(index, device=self.device)
        else:
            sel = torch.as_tensor(index, device=self.images.device)
            images = self.images.index_select(0, sel).to(self.device, non_blocking=True)
            masks = None
            if with_masks and self.masks is not None:
                masks = self.masks.index_select(0, sel).to(self.device, non_blocking=True)
        if masks is not None:
            masks = masks.float()
        if self.augment is not None:
            images, masks = random_affine(images, masks, **self.augment, generator=self.generator)
        if self.crop is not None:
            parts = random_crop(
                (images,) if masks is None else (images, masks), self.crop, self.generator
            )
            images, masks = parts if masks is not None else (parts[0], None)
        sel = sel.to(self.device)
        tab = None if self.tabular is None else self.tabular.index_select(0, sel)
        return Batch(index=sel, images=images, masks=masks, tabular=tab)


def forward_in_batches(fn: Callable, n: int, batch_size: int):
    """Apply ``fn(index) -> Tensor | tuple of Tensor`` to chunks of ``range(n)`` under
    ``torch.no_grad`` and concatenate the results over patients as float32 numpy arrays
    (a tuple when ``fn`` returns one)."""
    outs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            res = fn(np.arange(start, min(start + batch_size, n)))
            res = res if isinstance(res, tuple) else (res,)
            outs.append([r.detach().float().cpu().numpy() for r in res])
    cat = tuple(np.concatenate(parts, axis=0) for parts in zip(*outs, strict=True))
    return cat if len(cat) > 1 else cat[0]
