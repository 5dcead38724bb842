"""Data interventions as batched tensor operations, a registry by name."""

from .base import Treatment
from .pipeline import Pipeline
from .registry import TREATMENTS, TreatmentSpec, parse_treatment

__all__ = ["TREATMENTS", "Pipeline", "Treatment", "TreatmentSpec", "parse_treatment"]
