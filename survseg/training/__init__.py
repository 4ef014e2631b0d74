"""Shared training machinery of the deep estimators: one loop, one recipe (validation split,
head-only L2, step schedule, monitors), one batch builder, device/seed handling, sampling and
augmentation, checkpoints."""

from .augment import random_affine, random_crop
from .batches import PRELOAD_BUDGET, Batch, CohortBatches, forward_in_batches, preload_storage
from .checkpoint import Checkpoint, EarlyStopping, bind_checkpoints, fit_fingerprint
from .device import make_generators, resolve_device, seed_from, seeded
from .inputs import Standardiser, check_intensity, image_tensor, mask_tensor, normalise
from .loop import TrainingResult, train
from .recipe import (
    MONITORS,
    assign_fitted,
    c_index_or_nan,
    head_l2_adam,
    monitor_key,
    step_schedule,
    validation_every,
    validation_split,
)
from .sampling import BalancedBatches, RandomBatches, balanced_batches, random_batches

__all__ = [
    "MONITORS",
    "PRELOAD_BUDGET",
    "BalancedBatches",
    "Batch",
    "Checkpoint",
    "EarlyStopping",
    "CohortBatches",
    "RandomBatches",
    "Standardiser",
    "TrainingResult",
    "assign_fitted",
    "balanced_batches",
    "bind_checkpoints",
    "c_index_or_nan",
    "check_intensity",
    "fit_fingerprint",
    "forward_in_batches",
    "head_l2_adam",
    "image_tensor",
    "make_generators",
    "mask_tensor",
    "monitor_key",
    "normalise",
    "preload_storage",
    "random_affine",
    "random_batches",
    "random_crop",
    "resolve_device",
    "seed_from",
    "seeded",
    "step_schedule",
    "train",
    "validation_every",
    "validation_split",
]
