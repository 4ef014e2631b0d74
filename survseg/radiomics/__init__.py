"""Radiomics: pyradiomics features of a cohort, and the papers' redundancy filter."""

from .cache import clear_cache
from .correlation import CorrelationFilter
from .extractor import RadiomicsExtractor

__all__ = ["RadiomicsExtractor", "CorrelationFilter", "clear_cache"]
