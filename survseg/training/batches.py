r"""One cohort batch builder and one batched forward pass, for every deep estimator.

:class:`CohortBatches` reads the training patients' volumes *once* at the start of ``fit``
into one contiguous float32 tensor (intensity-normalised once), on the device when it fits
there; a batch is then an ``index_select`` on that tensor, augmented with batched tensor ops
on the device (:func:`~survseg.training.augment.random_affine`, then
:func:`~survseg.training.augment.random_crop`). No per-batch read of the cohort's structured
array, no per-batch normalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .augment import random_affine, random_crop
from .inputs import image_tensor

__all__ = ["Batch", "CohortBatches", "forward_in_batches"]

_DEVICE_SHARE = 0.2  # on CUDA, keep the volumes on the GPU when they take < 20 % of its memory


@dataclass
class Batch:
    """A training batch: ``index`` (rows of the training set), device tensors."""

    index: torch.Tensor
    images: torch.Tensor
    masks: torch.Tensor | None = None
    tabular: torch.Tensor | None = None


class CohortBatches:
    """The training set of a cohort as device-ready tensors, and its augmented batches.

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
        Field(s) of the segmentation target, kept as a ``(n, K, D, H, W)`` float32 tensor,
        one channel per field (e.g. ``("mask", "nodes")`` for tumour and lymph nodes).
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
    storage : {"auto", "device", "cpu"}
        Where the volumes are kept: ``"auto"`` puts them on the device on the CPU, and on a
        GPU when they take less than a fifth of its memory (else in CPU memory, each batch
        copied over).
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
        self.device = device
        self.augment, self.generator = augment, generator
        rows = np.asarray(rows)
        shape = X[modalities[0]].shape[1:]
        self.crop = None if crop is None or tuple(crop) == tuple(shape) else tuple(crop)
        mask_fields = (
            []
            if mask_field is None
            else [mask_field]
            if isinstance(mask_field, str)
            else list(mask_field)
        )
        n_vol = len(modalities) + len(mask_fields) + len(raw_fields)
        where = (
            device
            if self._on_device(storage, len(rows) * n_vol * int(np.prod(shape)) * 4)
            else torch.device("cpu")
        )
        self.images = image_tensor(X, list(modalities), rows, device=where, intensity=intensity)
        if raw_fields:
            raw = image_tensor(X, list(raw_fields), rows, device=where)
            self.images = torch.cat([self.images, raw], dim=1)
        self.masks = None
        if mask_fields:
            self.masks = image_tensor(X, mask_fields, rows, device=where)
        self.tabular = None if tabular is None else torch.as_tensor(tabular, device=device)

    def _on_device(self, storage, nbytes) -> bool:
        if storage not in ("auto", "device", "cpu"):
            raise ValueError(f"storage must be 'auto', 'device' or 'cpu'; got {storage!r}.")
        if storage != "auto" or self.device.type != "cuda":
            return storage != "cpu"
        return nbytes < _DEVICE_SHARE * torch.cuda.get_device_properties(self.device).total_memory

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index, *, with_masks=True) -> Batch:
        """The augmented, cropped batch of training rows ``index`` (ints in 0 .. len - 1)."""
        sel = torch.as_tensor(np.asarray(index), device=self.images.device)
        images = self.images.index_select(0, sel).to(self.device, non_blocking=True)
        masks = None
        if with_masks and self.masks is not None:
            masks = self.masks.index_select(0, sel).to(self.device, non_blocking=True)
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
