"""Population training: recipe, optimisers, early stopping, the loop."""

from .loop import Member, Result, resolve_device, train_pack
from .recipe import SCHEDULES, SGD, Adam, AdamW, Constant, Cosine, EarlyStopping, OneCycle, Recipe, RMSprop, Schedule, StepDecay

__all__ = ["SCHEDULES", "SGD", "Adam", "AdamW", "Constant", "Cosine", "EarlyStopping", "OneCycle", "RMSprop", "Member",
           "Recipe", "Result", "Schedule", "StepDecay", "resolve_device", "train_pack"]
