"""Treatment registry: name -> typed treatment class; errors name the treatment's place and parameter."""

from __future__ import annotations

from ..specs import Registry
from .augment import Crop, Flip
from .intensity import Invert, Sparsify, Standardize
from .label_noise import LabelNoise
from .pixels import GaussianImages, PermutePixels, ShufflePixels
from .window import WindowDrop, WindowKeep

TREATMENTS = Registry("treatment")
for _cls in (Invert, Sparsify, Standardize, WindowKeep, WindowDrop, LabelNoise,
             PermutePixels, ShufflePixels, GaussianImages, Crop, Flip):
    TREATMENTS.register(_cls)


def parse_treatment(data, where: str = "treatment"):
    """Validate one treatment (a table, or a bare name: "invert")."""
    return TREATMENTS.parse(data, where)
