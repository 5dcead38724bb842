"""Population training: recipe, optimisers, early stopping, the loop."""

from .loop import Member, Result, resolve_device, train_pack
from .recipe import SGD, Adam, AdamW, EarlyStopping, Recipe, RMSprop, Schedule

__all__ = ["SGD", "Adam", "AdamW", "EarlyStopping", "RMSprop", "Member", "Recipe", "Result", "Schedule", "resolve_device", "train_pack"]
