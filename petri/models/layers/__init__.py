"""The layer vocabulary: one file per family, each layer a registered spec plus its population form."""

from importlib import import_module

# first: each registers its layers, in `petri models`' order
for _module in ('dense', 'conv', 'pool', 'norm', 'dropout', 'activation', 'residual'):
    import_module(f".{_module}", __name__)
from .base import LAYERS, Layer, LayerSpec, ParamDecl, Shape, ToImage, register_layer

__all__ = ["LAYERS", "Layer", "LayerSpec", "ParamDecl", "Shape", "ToImage", "register_layer"]
