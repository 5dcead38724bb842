"""What a member costs in bytes: one model for the study's parse-time check, packing, the dry run and
the loop's shards.

A member holds float32 weights, their gradients and its optimiser's per-parameter state
(``OptimizerSpec.state_names``: Adam's two moments, a momentum buffer, ...), all as large as the
weights; training also needs a scratch copy and a batch's activations. A finished cell keeps its
final weights (and the best epoch's, with early stopping); a running one keeps checkpoints of its
weights, optimiser state and best weights.
"""

from __future__ import annotations

import math

from .recipe import Recipe

FLOAT = 4  # bytes: float32


def _params(recipe: Recipe, dspec) -> int:
    return recipe.model.n_params(dspec.shape, len(dspec.classes))


def copies(recipe: Recipe) -> int:
    """Parameter-sized tensors a member trains with: weights, gradients, the optimiser's state."""
    return 2 + len(recipe.optimizer.state_names())


def training_bytes(recipe: Recipe, dspec) -> tuple[int, int]:
    """(parameters per member, bytes of its weights, gradients and optimiser state)."""
    params = _params(recipe, dspec)
    return params, FLOAT * params * copies(recipe)


def member_bytes(recipe: Recipe, dspec) -> int:
    """Rough memory per member in a pack: its training tensors and a scratch copy, plus the activations
    of one training batch ×3 (kept for backward, gradients, temporaries)."""
    shape, n = dspec.shape, len(dspec.classes)
    return FLOAT * ((copies(recipe) + 1) * _params(recipe, dspec) + 3 * recipe.model.activations(shape, n)
                    * recipe.batch_size)


def weights_bytes(recipe: Recipe, dspec) -> int:
    """A finished cell's weight files: the final weights, and the best epoch's with early stopping."""
    return FLOAT * _params(recipe, dspec) * (1 + (recipe.early_stopping is not None))


def checkpoint_bytes(recipe: Recipe, dspec) -> int:
    """A running cell's checkpoints on disk at their largest: two (the newest is written before the older
    is removed), each its weights, optimiser state and best weights so far."""
    extra = len(recipe.optimizer.state_names()) + (recipe.early_stopping is not None)
    return 2 * FLOAT * _params(recipe, dspec) * (1 + extra)


def working_set_bytes(recipe: Recipe, dspec) -> int:
    """What one training step of a member touches, for sizing the loop's shards (``loop.shard_count``: a
    shard's working set near the caches): its weights, gradients and two optimiser moments, and a batch
    of float images (a fixed four copies, whatever the optimiser: shards change where members run,
    never their numbers)."""
    return FLOAT * (4 * _params(recipe, dspec) + recipe.batch_size * math.prod(dspec.shape))
