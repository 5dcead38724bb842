"""The layer vocabulary: one file per family, each layer a registered spec plus its population form."""

# registration order is the order `petri models` lists them in
from . import dense, conv, pool, norm, dropout, activation, residual  # noqa: F401,I001
from .base import LAYERS, Layer, LayerSpec, ParamDecl, Shape, ToImage, register_layer

__all__ = ["LAYERS", "Layer", "LayerSpec", "ParamDecl", "Shape", "ToImage", "register_layer"]
