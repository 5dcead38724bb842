"""Model families in stacked (population) form, a registry by name."""

from .mlp import MLP
from .mnist_cnn import MnistCNN
from .network import Network
from .registry import MODELS, ModelSpec, build, parse_model
from .vgg import VGG

__all__ = ["MLP", "MODELS", "MnistCNN", "ModelSpec", "Network", "VGG", "build", "parse_model"]
