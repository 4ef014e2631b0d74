"""Common machinery of the deep survseg estimators (DeepMTS, AdaMSS): device, tensors from a
cohort, batched inference, pickling across CPU and GPU, weight files."""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..base import SurvivalMixin
from ..training.device import resolve_device

__all__ = ["DeepSurvivalBase", "check_intensity", "image_tensor"]


def check_intensity(intensity, modalities) -> dict:
    """Validate an ``intensity`` parameter: ``{field: method}`` over the image fields.

    A method is ``"zscore"``, ``"window"`` (CT: [-1024, 1024] HU to [-1, 1]),
    ``("window", low, high)`` or ``None`` (left as given). Returns ``{field: (name, args)}``.
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


def _normalise(images: torch.Tensor, fields, methods: dict) -> torch.Tensor:
    """Per-patient intensity normalisation of ``(n, C, D, H, W)`` images, channel by channel.

    Matches :func:`survseg.preprocess.zscore` (population standard deviation) and
    :func:`survseg.preprocess.window`, so a model given raw SUV/HU images with ``intensity``
    sees what it would see after :func:`survseg.preprocess.preprocess`.
    """
    channels = []
    for c, field in enumerate(fields):
        x = images[:, c]
        name, args = methods.get(field, (None, ()))
        if name == "zscore":
            flat = x.reshape(len(x), -1).double()
            mean = flat.mean(1)
            std = flat.std(1, correction=0)
            if not bool((std > 0).all()):
                raise ValueError(
                    f"intensity: a patient's {field!r} image is constant, so it cannot be z-scored."
                )
            shape = (-1,) + (1,) * (x.dim() - 1)
            x = ((x.double() - mean.view(shape)) / std.view(shape)).to(images.dtype)
        elif name == "window":
            low, high = args
            x = 2.0 * (x.clamp(low, high) - low) / (high - low) - 1.0
        channels.append(x)
    return torch.stack(channels, dim=1)


def image_tensor(
    X, fields, index=None, *, device=None, dtype=torch.float32, intensity=None
) -> torch.Tensor:
    """Stack cohort fields into a ``(n, len(fields), D, H, W)`` tensor.

    Only the patients in ``index`` are read, so a memory-mapped cohort is never loaded whole.
    ``intensity`` (a validated :func:`check_intensity` dict) normalises each patient's images
    on the device.
    """
    rows = X if index is None else X[np.asarray(index)]
    arr = np.stack([np.asarray(rows[f], dtype=np.float32) for f in fields], axis=1)
    images = torch.from_numpy(arr).to(device=device, dtype=dtype)
    if intensity:
        images = _normalise(images, fields, intensity)
    return images


class DeepSurvivalBase(SurvivalMixin, BaseEstimator):
    """Base class: holds a fitted ``network_`` and knows how to move, batch and save it.

    Subclasses define ``__init__`` (parameters only, including ``device``,
    ``predict_batch_size``), ``fit`` and ``predict``. Fitted networks are pickled on the CPU
    so an estimator trained on a GPU unpickles on a CPU-only machine and vice versa; the
    network moves to ``device`` again on first use.
    """

    def _device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "auto"))

    def _intensity(self) -> dict:
        """The validated ``intensity`` parameter (``{}`` when the images are used as given)."""
        return check_intensity(getattr(self, "intensity", None), self._modality_names())

    def _modality_names(self) -> tuple:
        modalities = getattr(self, "modalities", ())
        return (modalities,) if isinstance(modalities, str) else tuple(modalities)

    def _network(self) -> torch.nn.Module:
        """The fitted network on this estimator's device, in eval mode."""
        check_is_fitted(self, "network_")
        dev = self._device()
        if next(self.network_.parameters()).device != dev:
            self.network_.to(dev)
        return self.network_.eval()

    def _predict_in_batches(self, fn, X, fields, batch_size=None):
        """Apply ``fn(images_tensor, index) -> Tensor | tuple`` over ``X`` in chunks.

        Returns numpy arrays concatenated over patients (a tuple if ``fn`` returns one).
        """
        batch_size = batch_size or getattr(self, "predict_batch_size", None) or 4
        dev = self._device()
        outs = []
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                idx = np.arange(start, min(start + batch_size, len(X)))
                images = image_tensor(X, fields, idx, device=dev, intensity=self._intensity())
                res = fn(images, idx)
                res = res if isinstance(res, tuple) else (res,)
                outs.append([r.detach().float().cpu().numpy() for r in res])
        cat = tuple(np.concatenate(parts, axis=0) for parts in zip(*outs, strict=True))
        return cat if len(cat) > 1 else cat[0]

    def save_weights(self, path: str | os.PathLike) -> None:
        """Save the fitted network's ``state_dict`` with ``torch.save``."""
        check_is_fitted(self, "network_")
        torch.save(self.network_.state_dict(), os.fspath(path))

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights saved by :meth:`save_weights` into the fitted network (strictly:
        every key must match)."""
        check_is_fitted(self, "network_")
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        self.network_.load_state_dict(state, strict=True)

    def __getstate__(self):
        state = self.__dict__.copy()
        for key, value in state.items():
            if isinstance(value, torch.nn.Module):
                state[key] = value.to("cpu")
        return state
