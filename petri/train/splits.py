"""Deterministic train / validation / test subsets, shared by every cell of a study.

The subsets come from one fixed permutation (independent of cell seeds), so
all cells see the same images; ``ids`` keep each image's index in the full
split, which treatments use as the key for per-image randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import Dataset
from ..errors import SpecError
from ..rng import derive_seed
from .recipe import Recipe


@dataclass
class Split:
    x: torch.Tensor  # uint8 [N, C, H, W]
    y: torch.Tensor  # int64 [N]
    ids: torch.Tensor  # int64 [N]: index in the data set's full split


def _subset(x, y, ids) -> Split:
    return Split(x.index_select(0, ids), y.index_select(0, ids), ids)


def make_splits(data: Dataset, recipe: Recipe, device) -> tuple[Split, Split | None, Split]:
    train_ids, val_ids, test_ids = subset_ids(len(data.train_y), len(data.test_y), recipe, data.name)
    d = data.to(device)
    dev = lambda t: t.to(device)  # noqa: E731
    train = _subset(d.train_x, d.train_y, dev(train_ids))
    val = _subset(d.train_x, d.train_y, dev(val_ids)) if recipe.val_size else None
    test = _subset(d.test_x, d.test_y, dev(test_ids))
    if recipe.batch_size > len(train.y):
        raise SpecError(f"recipe: batch_size {recipe.batch_size} exceeds the {len(train.y)} training images")
    return train, val, test


def subset_ids(n_train: int, n_test: int, recipe: Recipe, name: str = "the data set"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The indices (int64, ascending) of the training, validation and test images a recipe uses in the
    data set's official splits: the same for every cell and seed (``Results.subsets`` gives them)."""
    want = (recipe.train_size or n_train - recipe.val_size) + recipe.val_size
    if want > n_train:
        raise SpecError(f"recipe: train_size + val_size = {want} exceeds the {n_train} training images of {name}")
    if recipe.test_size and recipe.test_size > n_test:
        raise SpecError(f"recipe: test_size {recipe.test_size} exceeds the {n_test} test images of {name}")
    if want == n_train and recipe.val_size == 0:
        order = torch.arange(n_train)
    else:
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(derive_seed(0, "subset/train")))
    val_ids, train_ids = order[:recipe.val_size], order[recipe.val_size:want]
    if recipe.test_size:
        test_ids = torch.randperm(n_test, generator=torch.Generator().manual_seed(derive_seed(0, "subset/test")))
        test_ids = test_ids[:recipe.test_size]
    else:
        test_ids = torch.arange(n_test)
    return train_ids.sort().values, val_ids.sort().values, test_ids.sort().values
