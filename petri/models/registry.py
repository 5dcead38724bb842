"""Model registry: the typed spec of every model family, selected by ``name``."""

from __future__ import annotations

from typing import Annotated, Union

import torch
from pydantic import Field, TypeAdapter

from .mlp import MLP
from .mnist_cnn import MnistCNN
from .network import Network
from .vgg import VGG

ModelSpec = Annotated[Union[MLP, MnistCNN, VGG], Field(discriminator="name")]
MODELS = {"mlp": MLP, "mnist_cnn": MnistCNN, "vgg": VGG}
_adapter = TypeAdapter(ModelSpec)


def parse_model(data: dict) -> MLP | MnistCNN | VGG:
    """Validate a model spec dict (raises pydantic.ValidationError)."""
    return _adapter.validate_python(data)


def build(spec, in_shape: tuple[int, int, int], n_classes: int, seeds: list[int],
          device: torch.device | str = "cpu") -> Network:
    """A population network of ``len(seeds)`` members of ``spec``."""
    return Network(spec.layers(tuple(in_shape), n_classes), in_shape, seeds, init=spec.init, device=device)
