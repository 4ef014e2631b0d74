"""Cohort data model, validation, reading of PET/CT images and SUV, dataset folders (the loaders
of cohorts from disk are in :mod:`survseg.datasets`)."""

from .cohort import (
    clinical_fields,
    clinical_frame,
    from_dataframe,
    image_fields,
    load_cohort,
    mask_fields,
    save_cohort,
    volume_shape,
    volumes,
)
from .errors import PatientError, PatientWarning
from .validation import check_cohort, check_masks, check_nodes, check_survival

__all__ = [
    "PatientError",
    "PatientWarning",
    "check_cohort",
    "check_masks",
    "check_nodes",
    "check_survival",
    "clinical_fields",
    "clinical_frame",
    "from_dataframe",
    "image_fields",
    "load_cohort",
    "mask_fields",
    "save_cohort",
    "volume_shape",
    "volumes",
]
