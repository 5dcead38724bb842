"""Data interventions as batched tensor operations, a registry by name."""

from .base import Treatment
from .pipeline import Pipeline
from .registry import TREATMENTS, parse_treatment

__all__ = ["TREATMENTS", "Pipeline", "Treatment", "parse_treatment"]
