"""LeNet-5 (LeCun et al. 1998) as an ordinary PyTorch module, registered as a petri model.

A study names this file in `plugins` and the model by its registered name:

    plugins = ["lenet5.py"]
    [recipe]
    model = { name = "lenet5", activation = "tanh" }

petri builds one module per cell from the cell's seed, stacks the members' weights and trains them
together (torch.func), with the same ledger, statistics and reports as its built-in networks.
"""

from __future__ import annotations

from torch import nn

import petri


class LeNet5(nn.Module):
    """Two 5×5 convolutions with 2×2 average pooling, then dense 120 → 84 → classes."""

    def __init__(self, in_channels: int, n_classes: int, act: type[nn.Module] = nn.Tanh, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), act(), nn.Dropout(dropout),
            nn.Linear(120, 84), act(), nn.Linear(84, n_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def make_lenet5(input_shape: tuple, n_classes: int, activation: str = "tanh", dropout: float = 0.0) -> nn.Module:
    """LeNet-5 for 28×28 images; activation: tanh (the original) or relu."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    return LeNet5(input_shape[0], n_classes, act, dropout)


petri.register_model("lenet5", make_lenet5)
