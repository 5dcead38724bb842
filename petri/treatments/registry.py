"""Treatment registry: name -> typed treatment class, and one-line validation errors."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, TypeAdapter, ValidationError

from ..errors import SpecError
from .augment import Crop, Flip
from .intensity import Invert, Sparsify, Standardize
from .label_noise import LabelNoise
from .pixels import GaussianImages, PermutePixels, ShufflePixels
from .window import WindowDrop, WindowKeep

TREATMENTS = {cls.model_fields["name"].default: cls for cls in (
    Invert, Sparsify, Standardize, WindowKeep, WindowDrop, LabelNoise,
    PermutePixels, ShufflePixels, GaussianImages, Crop, Flip)}

TreatmentSpec = Annotated[Union[tuple(TREATMENTS.values())], Field(discriminator="name")]
_adapter = TypeAdapter(TreatmentSpec)


def parse_treatment(data: dict, where: str = "treatment"):
    """Validate one treatment dict; errors name the treatment, the parameter and what is allowed."""
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or name not in TREATMENTS:
        raise SpecError(f"{where}: unknown treatment {name!r}; known treatments: {', '.join(TREATMENTS)}")
    try:
        return _adapter.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "name"
        raise SpecError(f"{where}: treatment {name!r}, parameter {field!r}: {err['msg']} (got {err.get('input')!r})") from None
