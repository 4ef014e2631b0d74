"""Shared training machinery: one loop, device/seed handling, sampling, augmentation, schedules."""

from .augment import random_affine, random_crop
from .device import make_generators, resolve_device, seeded
from .loop import TrainingResult, train
from .sampling import balanced_batches, random_batches
from .schedule import scaled_step_lr

__all__ = [
    "TrainingResult",
    "balanced_batches",
    "make_generators",
    "random_affine",
    "random_batches",
    "random_crop",
    "resolve_device",
    "scaled_step_lr",
    "seeded",
    "train",
]
