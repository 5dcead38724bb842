"""Ledgers written without training: a study's real cells (parsed, hashed, registered as a run would)
with made-up epochs whose numbers follow a known model, so the results side can be tested on every
shipped study in milliseconds.

Each cell's final test accuracy is ``base + effect(variant, point) + Σ_source a_source[seed] + e``
(the per-source parts only in a crossed study), rounded to whole test images as a real accuracy is;
losses and the other metrics are functions of it. Everything is a deterministic function of the cell's
hash and seeds, so the same study gives the same ledger on every machine.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from petri.study.ledger import Ledger
from petri.study.spec import Study


def _u(*tags) -> float:
    """A number in [0, 1) from its tags (stable across runs and machines)."""
    h = hashlib.blake2b("/".join(map(str, tags)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2 ** 64


def _normal(*tags) -> float:
    u1, u2 = max(_u(*tags, 1), 1e-12), _u(*tags, 2)
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def accuracy(study: Study, cell, sd: float = 0.004, source_sd: float = 0.003) -> float:
    """The model above; ``n_test`` images set the rounding."""
    from petri.data import get_spec

    n = cell.recipe.test_size or get_spec(study.data).n_test
    effect = 0.02 * (_u("variant", cell.variant) - 0.5) + 0.01 * (_u("point", cell.variant, cell.point) - 0.5)
    parts = 0.0
    if cell.sources is not None:
        for s, seed in cell.sources.own:
            parts += source_sd * _normal("source", s, seed, cell.variant)
    acc = 0.9 + effect + parts + sd * _normal("cell", cell.hash)
    return round(min(max(acc, 0.0), 1.0) * n) / n


def write(study: Study, directory: str | Path, statuses: dict[str, str] | None = None,
          value=accuracy) -> Path:
    """Write ``study``'s ledger into ``directory`` with every cell finished (``statuses``: a cell hash ->
    another status, e.g. diverged); returns the directory."""
    directory = Path(directory)
    ledger = Ledger(directory, create=True)
    try:
        ledger.claim(study.name)
        run = ledger.start_run({"petri_version": "test", "git_commit": "test", "torch_version": "test", "device": "cpu",
                                "host": "test", "executor": "local"},
                               study.text, study.profile, study.data_override, study.path, study.seeds, None)
        cells = list({c.hash: c for c in study.cells}.values())
        ledger.register(study.cells)  # every place, as a run registers them
        ledger.start_cells([c.hash for c in cells], run)
        epochs = study.cells[0].recipe.epochs
        rows, finished, finals = [], [], {}
        for c in cells:
            acc = value(study, c)
            status = (statuses or {}).get(c.hash, "done")
            n_classes = 10
            for e in range(1, epochs + 1):
                a = acc - 0.02 * (epochs - e)
                rows.append((c.hash, {"epoch": e, "train_loss": 1.5 * (1 - a), "train_acc": a + 0.01,
                                      "val_loss": None, "val_acc": None, "test_loss": 1.4 * (1 - a), "test_acc": a,
                                      "images_per_s": 1000.0, "seconds": 1.0, "pack_size": 1, "machine": "test",
                                      "train_eval_loss": 1.3 * (1 - a), "train_eval_acc": a + 0.015, "lr": 1e-3}))
            finished.append((c.hash, status))
            right = [round(100 * acc)] * n_classes
            finals[c.hash] = {"ece": 0.05 * (1 - acc), "class_acc": [acc] * n_classes,
                              "confusion": [[r if i == j else (100 - r) // (n_classes - 1) for j in range(n_classes)]
                                            for i, r in enumerate(right)]}
        ledger.record_epoch(rows, finished, finals)
        ledger.finish_run(run, "done")
        if "test" in (study.crossing or {}):  # a test source scores each place on a resample of kept predictions
            _predictions(study, directory, cells, value)
    finally:
        ledger.close()
    return directory


def _predictions(study, directory: Path, cells, value) -> None:
    """Per-example predictions that give each cell its accuracy: right on a cell-specific share of the
    test images (which ones: a permutation from its hash), one class off elsewhere."""
    import numpy as np
    import torch

    from petri.data import get_spec
    from petri.study.cellstore import save_predictions

    for c in cells:
        n = c.recipe.test_size or get_spec(study.data).n_test
        labels = np.arange(n) % 10
        order = np.random.default_rng(int(c.hash[:8], 16)).permutation(n)
        pred = (labels + 1) % 10
        right = order[:round(value(study, c) * n)]
        pred[right] = labels[right]
        save_predictions(directory, c.hash, {"test": torch.from_numpy(pred.astype(np.uint8)),
                                             "test.labels": torch.from_numpy(labels.astype(np.uint8))}, {})


def canonical(obj) -> str:
    """JSON with floats at 10 significant digits (NaN as null), for goldens."""
    def fix(x):
        if isinstance(x, float):
            return None if math.isnan(x) else float(f"{x:.10g}")
        if isinstance(x, dict):
            return {str(k): fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x
    return json.dumps(fix(obj), indent=1, sort_keys=True, default=str)
