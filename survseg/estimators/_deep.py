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

__all__ = ["DeepSurvivalBase", "image_tensor"]


def image_tensor(X, fields, index=None, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Stack cohort fields into a ``(n, len(fields), D, H, W)`` tensor.

    Only the patients in ``index`` are read, so a memory-mapped cohort is never loaded whole.
    """
    rows = X if index is None else X[np.asarray(index)]
    arr = np.stack([np.asarray(rows[f], dtype=np.float32) for f in fields], axis=1)
    return torch.from_numpy(arr).to(device=device, dtype=dtype)


class DeepSurvivalBase(SurvivalMixin, BaseEstimator):
    """Base class: holds a fitted ``network_`` and knows how to move, batch and save it.

    Subclasses define ``__init__`` (parameters only, including ``device``,
    ``predict_batch_size``), ``fit`` and ``predict``. Fitted networks are pickled on the CPU
    so an estimator trained on a GPU unpickles on a CPU-only machine and vice versa; the
    network moves to ``device`` again on first use.
    """

    def _device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "auto"))

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
                res = fn(image_tensor(X, fields, idx, device=dev), idx)
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
