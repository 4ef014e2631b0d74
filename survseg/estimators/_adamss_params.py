"""AdaMSSRegressor's parameters: their constraints, the checks sklearn's cannot express, and
the settings derived from them at ``fit`` (training crop, augmentation, validation split)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["PAPER_AUGMENTATION"]


#: The authors' affine augmentation: translation +-10 % of the size, zoom 0.9-1.1, shear and
#: rotation +-10 degrees (translations are given here as a fraction of each axis).
PAPER_AUGMENTATION = {
    "max_translation": 0.1,
    "max_rotation": 10.0,
    "scale": (0.9, 1.1),
    "max_shear": 10.0,
}
_PAPER_ITER = 10_000  # the paper's iterations per stage; schedules and validation scale to max_iter
_PAPER_VALIDATE_EVERY = 200
_CROP_RATIO = 112 / 160  # the paper's random crop relative to its volume


class _AdaMSSParams:
    """Parameter validation and derived training settings of :class:`AdaMSSRegressor`."""

    _parameter_constraints = {
        "modalities": [list, tuple],
        "intensity": [dict, None],
        "mask_field": [str],
        "clinical": [None, list, tuple],
        "learning_strategy": [StrOptions({"ssl", "mtl", "stl"})],
        "fusion": [StrOptions({"adaptive", "early", "late", "intermediate"})],
        "radiomics": ["boolean"],
        "radiomics_params": [None, dict],
        "correlation_threshold": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_radiomics_features": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "n_intervals": [Interval(numbers.Integral, 1, None, closed="left")],
        "single_channels": [list, tuple],
        "fuse_channels": [list, tuple],
        "n_convs": [list, tuple],
        "hidden_features": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "l2": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_segmentation": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter_survival": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "stage1_lr": [list, tuple],
        "stage2_lr": [list, tuple],
        "lr_milestones": [list, tuple],
        "focal_alpha": [Interval(numbers.Real, 0, 1, closed="both")],
        "focal_gamma": [Interval(numbers.Real, 0, None, closed="left")],
        "crop_size": [
            None,
            StrOptions({"auto"}),
            Interval(numbers.Integral, 1, None, closed="left"),
            list,
            tuple,
        ],
        "augmentation": [None, dict, "boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "validate_every": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "monitor": [None, StrOptions({"c_index", "nll"})],
        "mask_threshold": [Interval(numbers.Real, 0, 1, closed="neither")],
        "predict_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "amp": ["boolean"],
        "verbose": ["verbose"],
    }

    def _check_params(self):
        self._validate_params()
        if self.learning_strategy == "mtl" and self.radiomics:
            raise ValueError(
                "learning_strategy='mtl' trains one network on both tasks from the start, so "
                "there are no stage-I masks to extract radiomics from: set radiomics=False "
                "(the paper's learning-strategy ablation ran without radiomics)."
            )
        modalities = (
            (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        )
        if not modalities or len(set(modalities)) != len(modalities):
            raise ValueError(
                f"modalities must name distinct image fields; got {self.modalities!r}."
            )
        self._intensity()  # raises on a bad intensity parameter
        n_lr = len(self.lr_milestones) + 1
        for name in ("stage1_lr", "stage2_lr"):
            lrs = getattr(self, name)
            if len(lrs) != n_lr or any(not v > 0 for v in lrs):
                raise ValueError(
                    f"{name} must hold {n_lr} positive learning rates (one more than "
                    f"lr_milestones); got {lrs!r}."
                )
        ms = list(self.lr_milestones)
        if any(not 0 < m < 1 for m in ms) or ms != sorted(ms):
            raise ValueError(f"lr_milestones must be increasing fractions in (0, 1); got {ms}.")
        return modalities

    def _crop(self, shape, multiple):
        if self.crop_size is None:
            return tuple(shape)
        if isinstance(self.crop_size, str):  # "auto"
            crop = [
                max(multiple, min(s, multiple * round(s * _CROP_RATIO / multiple))) for s in shape
            ]
        else:
            crop = (
                [self.crop_size] * 3
                if isinstance(self.crop_size, numbers.Integral)
                else list(self.crop_size)
            )
            if len(crop) != 3 or any(c > s or c % multiple for c, s in zip(crop, shape)):
                raise ValueError(
                    f"crop_size {self.crop_size!r} must be 3 sizes (or one) no larger than the "
                    f"volume {tuple(shape)} and divisible by {multiple}."
                )
        return tuple(int(c) for c in crop)

    def _augment(self, shape):
        if self.augmentation is False:
            return None
        if self.augmentation is True or self.augmentation is None:
            params = dict(PAPER_AUGMENTATION)
        else:
            params = dict(self.augmentation)
        allowed = {"max_translation", "max_rotation", "scale", "max_shear", "flip_axes"}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(
                f"augmentation has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}."
            )
        t = np.broadcast_to(np.asarray(params.get("max_translation", 0.0), float), (3,))
        params["max_translation"] = tuple(float(v) for v in t * np.asarray(shape))
        return params

    def _split(self, event, seed):
        n = len(event)
        idx = np.arange(n)
        if self.validation_fraction == 0:
            return idx, idx[:0]
        n_val = max(1, int(round(self.validation_fraction * n)))
        if n - n_val < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n - n_val} training "
                f"patient(s) of {n}; use more patients or validation_fraction=0."
            )
        stratify = event if min(event.sum(), (~event).sum()) >= 2 else None
        train_idx, val_idx = train_test_split(
            idx, test_size=n_val, random_state=seed % (2**32), stratify=stratify
        )
        return np.sort(train_idx), np.sort(val_idx)
