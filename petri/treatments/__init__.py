"""Data interventions as batched tensor operations, a registry by name."""

from importlib import import_module

# first: each family registers its treatments, in this order
for _module in ('intensity', 'window', 'label_noise', 'pixels', 'augment'):
    import_module(f".{_module}", __name__)
from .base import Treatment
from .pipeline import Pipeline
from .registry import TREATMENTS, parse_treatment, register_treatment

__all__ = ["TREATMENTS", "Pipeline", "Treatment", "parse_treatment", "register_treatment"]
