"""Network inputs from a cohort: intensity normalisation (parsed once), image tensors read field
by field in chunks of patients into contiguous float32 storage, masks as uint8, and the
standardiser of tabular inputs (clinical, radiomics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.errors import PatientError
from ..data.mapped import CHUNK, read_field

__all__ = ["Standardiser", "check_intensity", "image_tensor", "mask_tensor", "normalise"]


def check_intensity(intensity, modalities) -> dict:
    """Parse an ``intensity`` parameter: ``{field: method}`` over the image fields.

    A method is ``"zscore"``, ``"window"`` (CT: [-1024, 1024] HU to [-1, 1]),
    ``("window", low, high)`` or ``None`` (left as given). Returns ``{field: (name, args)}``,
    which estimators keep as the fitted ``intensity_``.

    Raises
    ------
    ValueError
        Naming the field and the bad method.
    """
    if intensity is None:
        return {}
    if not isinstance(intensity, dict):
        raise ValueError(
            "intensity must be None or a dict {image field: 'zscore' | 'window' | "
            f"('window', low, high) | None}}; got {intensity!r}."
        )
    unknown = sorted(set(intensity) - set(modalities))
    if unknown:
        raise ValueError(
            f"intensity names {unknown}, which are not among the modalities {list(modalities)}."
        )
    methods = {}
    for field, method in intensity.items():
        if method is None:
            continue
        if method == "zscore":
            methods[field] = ("zscore", ())
        elif method == "window":
            methods[field] = ("window", (-1024.0, 1024.0))
        elif isinstance(method, tuple | list) and len(method) == 3 and method[0] == "window":
            low, high = float(method[1]), float(method[2])
            if not low < high:
                raise ValueError(f"intensity[{field!r}]: window needs low < high; got {method!r}.")
            methods[field] = ("window", (low, high))
        else:
            raise ValueError(
                f"intensity[{field!r}] must be 'zscore', 'window', ('window', low, high) "
                f"or None; got {method!r}."
            )
    return methods


def normalise(images: torch.Tensor, fields, methods: dict, rows=None) -> torch.Tensor:
    r"""Per-patient intensity normalisation of ``(n, C, D, H, W)`` images, channel by channel.

    ``"zscore"``: :math:`(x - \bar x) / s` with the patient's mean and population standard
    deviation (as :func:`survseg.preprocess.zscore`); ``"window"``: :math:`2 (\mathrm{clip}(x,
    l, h) - l) / (h - l) - 1` (as :func:`survseg.preprocess.window`). Channels of ``fields``
    without a method (e.g. masks) are left as they are.

    Raises
    ------
    ValueError
        When a patient's image to z-score is constant (``rows`` gives the patients' indices in
        the cohort, for the message).
    """
    if images.shape[0] == 0:
        return images
    channels = []
    for c, field in enumerate(fields):
        x = images[:, c]
        name, args = methods.get(field, (None, ()))
        if name == "zscore":
            flat = x.flatten(1).double()
            mean = flat.mean(1)
            std = flat.std(1, correction=0)
            flat_std = std.cpu().numpy()
            if not (flat_std > 0).all():
                bad = int(np.flatnonzero(~(flat_std > 0))[0])
                patient = bad if rows is None else int(np.asarray(rows)[bad])
                raise PatientError(
                    f"intensity: the {field!r} image of {{patient}} is constant, so it cannot "
                    "be z-scored.",
                    patient=patient,
                )
            shape = (-1,) + (1,) * (x.dim() - 1)
            x = ((x.double() - mean.view(shape)) / std.view(shape)).to(images.dtype)
        elif name == "window":
            low, high = args
            x = 2.0 * (x.clamp(low, high) - low) / (high - low) - 1.0
        channels.append(x)
    return torch.stack(channels, dim=1)


def image_tensor(
    X,
    fields,
    index=None,
    *,
    device=None,
    dtype=torch.float32,
    intensity=None,
    out=None,
    chunk=CHUNK,
) -> torch.Tensor:
    """Stack cohort fields of the patients ``index`` into one ``(n, len(fields), D, H, W)``
    contiguous tensor on ``device``, normalised by ``intensity`` (a :func:`check_intensity`
    dict).

    The tensor is allocated once and filled ``chunk`` patients at a time, field by field
    (:func:`survseg.data.mapped.read_field`): a structured ``X[index]``, which would copy every
    field of the rows (all volumes, masks, clinical values), is never made, and the
    temporary memory is one chunk. Normalisation is per patient, so doing it chunk by chunk
    gives the values of the whole set at once. The pages of a memory-mapped cohort are
    released after reading (:func:`survseg.data.mapped.release_pages`). ``out``, when
    given, is the ``(n, len(fields), D, H, W)`` tensor (or view) to fill instead.
    """
    rows = np.arange(len(X)) if index is None else np.asarray(index, dtype=np.intp)
    fields = list(fields)
    shape = X.dtype.fields[fields[0]][0].shape
    if out is None:
        device = torch.device("cpu") if device is None else torch.device(device)
        out = torch.empty((len(rows), len(fields), *shape), dtype=dtype, device=device)
    device, dtype = out.device, out.dtype
    buf = np.empty((min(chunk, len(rows)), len(fields), *shape), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        sel = rows[start : start + chunk]
        part = buf[: len(sel)]
        for c, f in enumerate(fields):
            read_field(X, f, sel, part[:, c], chunk=chunk)
        images = torch.from_numpy(part).to(device=device, dtype=dtype)
        if intensity:
            images = normalise(images, fields, intensity, rows=sel)
        out[start : start + len(sel)] = images
    return out


def mask_tensor(X, fields, index=None, *, device=None, chunk=CHUNK) -> torch.Tensor:
    """Masks of the patients ``index`` as one ``(n, len(fields), D, H, W)`` uint8 tensor on
    ``device`` (a quarter of float32's memory); convert them to float per batch, on the
    device. Read as :func:`image_tensor` reads images."""
    rows = np.arange(len(X)) if index is None else np.asarray(index, dtype=np.intp)
    fields = list(fields)
    shape = X.dtype.fields[fields[0]][0].shape
    arr = np.empty((len(rows), len(fields), *shape), dtype=np.uint8)
    for c, f in enumerate(fields):
        read_field(X, f, rows, arr[:, c], chunk=chunk)
    return torch.from_numpy(arr).to(device)


@dataclass
class Standardiser:
    r"""z-scores of tabular inputs with training statistics: :math:`z = (x - \mu) / \sigma`.

    :math:`\mu`, :math:`\sigma` are the NaN-ignoring mean and population standard deviation of
    the training rows (:math:`\sigma = 1` for a constant column). A missing value (NaN, e.g. a
    radiomics feature pyradiomics could not compute) becomes 0, the training mean.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values) -> Standardiser:
        values = np.asarray(values, dtype=np.float64)
        if values.shape[1] == 0:
            return cls(np.zeros(0), np.zeros(0))
        scale = np.nanstd(values, axis=0)
        return cls(np.nanmean(values, axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, values) -> np.ndarray:
        z = (np.asarray(values, dtype=np.float64) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0).astype(np.float32)
