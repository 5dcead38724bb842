"""Data interventions as batched tensor operations, a registry by name."""

from . import intensity, window, label_noise, pixels, augment  # noqa: F401,I001  (they register, in this order)
from .base import Treatment
from .pipeline import Pipeline
from .registry import TREATMENTS, parse_treatment, register_treatment

__all__ = ["TREATMENTS", "Pipeline", "Treatment", "parse_treatment", "register_treatment"]
