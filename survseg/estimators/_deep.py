"""What the deep survseg estimators (DeepMTS, AdaMSS, DeepSurv) share as estimators: the
constraints of their common parameters, the device, the fitted network, weight files and
pickling across CPU and GPU. Their training recipe is in :mod:`survseg.training`."""

from __future__ import annotations

import numbers
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..base import SurvivalMixin
from ..data.cohort import NODES_FIELD, cohort_spacing
from ..data.validation import check_nodes
from ..evaluation.metrics import dice_score
from ..training.device import resolve_device

__all__ = [
    "DEEP_PARAMETER_CONSTRAINTS",
    "DeepSurvivalBase",
    "autocast",
    "mean_dice",
    "region_channel",
    "segmented_regions",
    "voxel_ml",
]

#: Constraints of the parameters every cohort deep estimator has, under one vocabulary.
DEEP_PARAMETER_CONSTRAINTS = {
    "modalities": [list, tuple],
    "intensity": [None, dict],
    "mask_field": [str],
    "network_params": [None, dict],
    "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "lr_milestones": [list, tuple],
    "head_l2": [Interval(numbers.Real, 0, None, closed="left")],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
    "validate_every": [None, Interval(numbers.Integral, 1, None, closed="left")],
    "monitor": [None, StrOptions({"c_index", "loss", "dice"})],
    "mask_threshold": [Interval(numbers.Real, 0, 1, closed="neither")],
    "predict_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "device": [str, torch.device],
    "amp": [StrOptions({"auto"}), "boolean"],
    "verbose": ["verbose"],
    "callbacks": [None, list, tuple],
}


def autocast(device: torch.device, amp) -> torch.autocast:
    """Mixed precision on CUDA when ``amp`` is True or "auto" (bfloat16 where supported)."""
    if device.type == "cuda" and amp in ("auto", True):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def segmented_regions(X, mask_field: str, nodes_field: str | None):
    """``(region names, mask fields)`` a segmenting estimator learns, read from ``X`` at fit.

    ``("tumour", "nodes")`` with ``[mask_field, nodes_field]`` when ``nodes_field`` is a
    field of ``X`` (its values are checked: binary, all-zero patients valid), else
    ``("tumour",)`` with ``[mask_field]``. The two fields must differ.
    """
    names = X.dtype.names or ()
    if nodes_field is None or nodes_field not in names:
        return ("tumour",), [mask_field]
    if nodes_field == mask_field:
        raise ValueError(
            f"nodes_field and mask_field are both {mask_field!r}; the tumour and the lymph "
            "nodes need two fields."
        )
    if nodes_field != NODES_FIELD:  # check_cohort checks the default field itself
        check_nodes(X, nodes_field)
    return ("tumour", "nodes"), [mask_field, nodes_field]


def region_channel(est, region) -> int:
    """Output channel of ``region`` in a fitted estimator's ``regions_`` (clear error if not)."""
    check_is_fitted(est, "regions_")
    if region not in est.regions_:
        raise ValueError(
            f"region must be one of {list(est.regions_)} (the regions this model was fitted "
            f"to segment); got {region!r}."
            + (
                " To segment the lymph nodes, fit with their labels in X (the nodes_field "
                "field, 'nodes' by default)."
                if region == "nodes"
                else ""
            )
        )
    return est.regions_.index(region)


def voxel_ml(X) -> np.ndarray:
    """Voxel volume of each patient in ml (1 mm^3 when the cohort has no spacing)."""
    spacing = cohort_spacing(X)
    if spacing is None:
        return np.full(len(X), 1e-3, dtype=np.float32)
    return (np.prod(spacing, axis=1) / 1000.0).astype(np.float32)


def mean_dice(truth, pred) -> float:
    """Mean Dice over the patients whose label is not empty (NaN when none is)."""
    present = np.asarray(truth).reshape(len(truth), -1).any(axis=1)
    if not present.any():
        return float("nan")
    return float(np.mean(dice_score(truth[present], pred[present])))


class DeepSurvivalBase(SurvivalMixin, BaseEstimator):
    """Base class: holds a fitted ``network_`` and knows how to move and save it.

    Subclasses define ``__init__`` (parameters only, including ``device``), ``fit`` and
    ``predict``. Fitted networks are pickled on the CPU so an estimator trained on a GPU
    unpickles on a CPU-only machine and vice versa; the network moves to ``device`` again on
    first use.
    """

    def _device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "auto"))

    def _amp(self, device) -> bool:
        return device.type == "cuda" and getattr(self, "amp", False) in ("auto", True)

    def _modality_names(self) -> tuple:
        modalities = getattr(self, "modalities", ())
        names = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"modalities must name distinct image fields; got {modalities!r}.")
        return names

    def _module(self, name="network_") -> torch.nn.Module:
        """A fitted network on this estimator's device, in eval mode."""
        check_is_fitted(self, name)
        net = getattr(self, name)
        dev = self._device()
        if next(net.parameters()).device != dev:
            net.to(dev)
        return net.eval()

    def _network(self) -> torch.nn.Module:
        return self._module("network_")

    def save_weights(self, path: str | os.PathLike, *, overwrite: bool = False):
        """Write the fitted networks and metadata without a pickle
        (:func:`survseg.persistence.save_weights`); :meth:`from_weights` reads it back."""
        from ..persistence import save_weights

        return save_weights(path, self, overwrite=overwrite)

    @classmethod
    def from_weights(cls, path: str | os.PathLike):
        """The fitted estimator of a :meth:`save_weights` file, predicting as the saved one.

        Nothing is unpickled (:func:`survseg.persistence.load_weights`).

        Examples
        --------
        >>> model.save_weights("deepmts.weights")  # doctest: +SKIP
        >>> shared = DeepMTSRegressor.from_weights("deepmts.weights")  # doctest: +SKIP
        """
        from ..persistence import ModelFileError, load_weights

        model = load_weights(path)
        if not isinstance(model, cls):
            raise ModelFileError(
                f"{os.fspath(path)} holds a {type(model).__name__}, not a {cls.__name__}."
            )
        return model

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load network weights into this fitted estimator's networks, strictly (every key
        must match): from a :meth:`save_weights` file, or a ``state_dict`` of ``network_``
        saved with ``torch.save`` (read with ``weights_only=True``)."""
        import zipfile

        check_is_fitted(self, "network_")
        path = os.fspath(path)
        weights_file = False
        if zipfile.is_zipfile(path):  # torch.save writes a zip archive too
            with zipfile.ZipFile(path) as zf:
                weights_file = "header.json" in zf.namelist()
        if weights_file:
            from ..persistence import _read_weights

            _, states = _read_weights(path)
        else:
            states = {"network_": torch.load(path, map_location="cpu", weights_only=True)}
        for key, state in states.items():
            getattr(self, key).load_state_dict(state, strict=True)

    def _networks_from_fitted(self) -> dict:
        """``{attribute: untrained network}`` shaped as the fitted ones, built from the
        parameters and the other fitted attributes (for :meth:`from_weights`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be rebuilt from weights.")

    def __getstate__(self):
        state = self.__dict__.copy()
        for key, value in state.items():
            if isinstance(value, torch.nn.Module):
                state[key] = value.to("cpu")
        return state


def label_map(prob, threshold: float) -> np.ndarray:
    r"""HECKTOR-style label image of region probabilities ``prob`` ``(n, R, D, H, W)``:
    :math:`\ell_v = 1 + \arg\max_k p_{k,v}` where :math:`\max_k p_{k,v} > t`, else 0
    (exclusive labels; a tie goes to the lower label), uint8 ``(n, D, H, W)``."""
    prob = np.asarray(prob)
    best = prob.max(axis=1)
    label = prob.argmax(axis=1)  # the first maximum: ties go to the lower label
    return np.where(best > threshold, label + 1, 0).astype(np.uint8)
