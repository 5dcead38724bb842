"""Models: the layer vocabulary, networks as layer lists, presets, and user modules; a registry by name."""

from importlib import import_module

# first: each registers its model, in this order
for _module in ('mlp', 'mnist_cnn', 'vgg', 'sequential'):
    import_module(f".{_module}", __name__)
from .plugin import ModuleNetwork, PluginModel, register_model
from .base import MODELS, LayerModel, ModelSpec, SummaryRow, parse_model
from .layers import LAYERS
from .mlp import MLP
from .mnist_cnn import MnistCNN
from .network import Network
from .sequential import Layers
from .vgg import VGG


def build(spec: ModelSpec, in_shape, n_classes: int, seeds: list[int], device="cpu"):
    """A population network of ``len(seeds)`` members of ``spec``."""
    return spec.build(tuple(in_shape), n_classes, seeds, device)


__all__ = ["LAYERS", "MLP", "MODELS", "LayerModel", "Layers", "MnistCNN", "ModelSpec", "Network", "SummaryRow", "VGG",
           "ModuleNetwork", "PluginModel", "build", "parse_model", "register_model"]
