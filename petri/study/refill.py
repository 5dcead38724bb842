"""Per-example predictions for cells trained before petri kept them.

A finished cell whose weights were kept is evaluated again as its test split saw it (its test-time
treatments, the plain module in eval mode: the count of correct images the ledger recorded, exactly)
and its predicted classes are written as a cell trained today writes them (``cellstore``'s
``predictions.safetensors``), marked ``"refilled": true`` in the file's metadata. The best epoch's
predictions come from its best-epoch weights where early stopping kept them. The run lock is held, so a
run cannot write the study meanwhile; cells that already have predictions are left as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import load
from ..train.shard import compact_classes
from ..train.splits import make_splits
from ..treatments.pipeline import Pipeline
from . import cellstore
from .current import current_study
from .ledger import FINISHED, Ledger
from .lock import RunLock
from .trained import cell_module

BATCH = 1000  # test images per forward pass (memory only: the classes do not depend on it)


def _classes(module: torch.nn.Module, pipe: Pipeline, split, n_classes: int) -> torch.Tensor:
    """The module's predicted class of every image of ``split`` [n], kept as the trainer keeps them."""
    out = [torch.zeros(0, dtype=torch.int64)]
    with torch.inference_mode():
        for i in range(0, len(split.y), BATCH):
            x = pipe.images(split.x[i:i + BATCH][None], split.ids[i:i + BATCH][None], "test", 0)[0]
            out.append(module(x).argmax(-1))
    return compact_classes(torch.cat(out), n_classes)


def refill(directory: str | Path) -> dict[str, int]:
    """Write the predictions of every finished cell that has kept weights but no predictions. Returns
    counts: {"refilled", "kept" (had predictions already), "without weights" (cannot be refilled)}."""
    directory = Path(directory)
    counts = {"refilled": 0, "kept": 0, "without weights": 0}
    with RunLock(directory):
        ledger = Ledger(directory)
        try:
            statuses = ledger.statuses()
        finally:
            ledger.close()
        study = current_study(directory)
        data: dict = {}
        for cell in study.cells:
            if statuses.get(cell.hash) not in FINISHED:
                continue
            if cellstore.load_predictions(directory, cell.hash) is not None:
                counts["kept"] += 1
                continue
            if not cellstore.weights_path(directory, cell.hash).exists():
                counts["without weights"] += 1
                continue
            if cell.data not in data:
                data[cell.data] = load(cell.data, allow_download=False)
            ds = data[cell.data]
            n_classes = len(ds.spec.classes)
            train, val, test = make_splits(ds, cell.recipe, torch.device("cpu"))
            pipe = Pipeline([list(cell.treatments)], [cell.seeds], ds.spec.shape, n_classes, train.x, ds.train_y,
                            torch.device("cpu"))
            splits = {"test": test, **({"val": val} if val is not None and len(val.y) else {})}
            preds: dict[str, torch.Tensor] = {}
            for best in (False, True):
                if best and not cellstore.weights_path(directory, cell.hash, best=True).exists():
                    continue
                module = cell_module(directory, cell, best)
                for name, split in splits.items():
                    preds[f"best.{name}" if best else name] = _classes(module, pipe, split, n_classes)
            for name, split in splits.items():
                preds[f"{name}.labels"] = compact_classes(split.y, n_classes)
            cellstore.save_predictions(directory, cell.hash, preds, {"refilled": True})  # (a full disk: one line)
            counts["refilled"] += 1
    return counts
