"""Population training: recipe, optimisers, early stopping, the loop."""

from .loop import Member, Result, resolve_device, train_pack
from .recipe import SGD, Adam, EarlyStopping, Recipe, Schedule

__all__ = ["SGD", "Adam", "EarlyStopping", "Member", "Recipe", "Result", "Schedule", "resolve_device", "train_pack"]
