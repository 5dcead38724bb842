"""Per-cell files under a study directory: checkpoints while a cell trains, its weights once it is done.

Layout (``DIR/cells/<cell hash>/``):

* ``checkpoint-<epoch>.safetensors`` — the cell's complete training state after that epoch
  (``train.state.CellState``: parameters, buffers, optimiser state, random streams; early
  stopping and the step count in the file's metadata); ``checkpoint-<epoch>-<step>.safetensors``
  — ``step`` steps into the next epoch (a long epoch's checkpoint). The latest two are kept.
* ``weights.safetensors`` — the final weights as the ``torch.nn`` form's state_dict;
  ``best.safetensors`` — the best epoch's, when early stopping monitors a metric.
* ``predictions.safetensors`` — each finished cell's predicted class for every test image (``test``) and
  validation image (``val``) at its final epoch, and at its best epoch where early stopping chose one
  (``best.test``, ``best.val``), beside the true labels (``test.labels``, ``val.labels``): one byte an
  image (two beyond 256 classes), in the order of the split's images (``Results.subsets``).

Every file has a ``.json`` beside it with its sha256 and size. Both are written atomically
(temporary file, fsync, rename, fsync of the folder): a file is complete or absent. A file whose
checksum does not match is never loaded; a cell then falls back to its previous checkpoint, or to
epoch 1. safetensors, not pickle: loading a file cannot run code.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import PlaceError
from ..train.state import CellState

CELLS = "cells"
KEEP = 2  # checkpoints kept per cell: a torn or corrupt latest one falls back to the one before


def cell_dir(root: str | Path, cell_hash: str) -> Path:
    return Path(root) / CELLS / cell_hash


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> int:
    """Write ``tensors`` (safetensors) and ``meta`` beside it with the file's checksum; bytes written.
    A full disk or a read-only place is one line (nothing half-written is left: the writes are atomic)."""
    data = st_save({n: t.contiguous() for n, t in tensors.items()}, metadata={"petri": json.dumps(meta)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
        side = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "meta": meta}
        _write_atomic(path.with_suffix(".json"), json.dumps(side).encode())
    except OSError as e:
        for tmp in path.parent.glob(f".*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise PlaceError(f"{path.parent}: no space left on the device; every epoch committed so far is kept: free "
                             f"at least {max(1, 4 * len(data) >> 20)} MB (a cell's checkpoint is {len(data) / 1e6:,.1f} "
                             "MB) and run again") from None
        raise PlaceError(f"{path}: cannot write ({e.strerror}); the study directory must be writable for a run") from None
    return len(data)


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, meta) if the file and its checksum agree; None if either is missing, torn or corrupt."""
    try:
        side = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes()
        if len(data) != side["bytes"] or hashlib.sha256(data).hexdigest() != side["sha256"]:
            return None
        return st_load(data), side["meta"]
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    except Exception:  # noqa: BLE001 - safetensors' own errors for a damaged header
        return None


def _checkpoints(root, cell_hash: str) -> list[Path]:
    """Newest first: by (epoch, step into the next), from the names."""
    def when(p: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in p.stem.split("-")[1:] if part.isdigit())
    return sorted(cell_dir(root, cell_hash).glob("checkpoint-*.safetensors"), key=when, reverse=True)


def save_checkpoint(root, cell_hash: str, state: CellState) -> int:
    tensors = dict(state.tensors)
    if state.best is not None:
        tensors |= {f"best.{n}": t for n, t in state.best.items()}
    if state.best_predictions is not None:
        tensors |= {f"bestpred.{n}": t for n, t in state.best_predictions.items()}
    name = f"checkpoint-{state.epoch:05d}" + (f"-{state.inner:07d}" if state.inner else "") + ".safetensors"
    size = save(cell_dir(root, cell_hash) / name, tensors, state.to_meta())
    for old in _checkpoints(root, cell_hash)[KEEP:]:
        _remove(old)
    return size


def latest_checkpoint(root, cell_hash: str, epochs: int | None = None) -> CellState | None:
    """The newest checkpoint that verifies (and is before ``epochs``, the cell's budget), else None."""
    for path in _checkpoints(root, cell_hash):
        got = load(path)
        if got is None:
            continue
        tensors, meta = got
        if epochs is not None and meta["epoch"] >= epochs:
            continue
        best = {n[5:]: t for n, t in tensors.items() if n.startswith("best.")}
        preds = {n[9:]: t for n, t in tensors.items() if n.startswith("bestpred.")}
        state = {n: t for n, t in tensors.items() if not n.startswith(("best.", "bestpred."))}
        return CellState(meta["epoch"], meta["step"], state, meta.get("stopper"), best or None, meta.get("best_epoch"),
                         inner=meta.get("inner", 0), best_predictions=preds or None)
    return None


def remove_checkpoints(root, cell_hash: str) -> None:
    for path in _checkpoints(root, cell_hash):
        _remove(path)


def _remove(path: Path) -> None:
    for p in (path, path.with_suffix(".json")):
        p.unlink(missing_ok=True)


def save_weights(root, cell_hash: str, weights: dict[str, torch.Tensor], meta: dict,
                 best: dict[str, torch.Tensor] | None = None, best_epoch: int | None = None) -> int:
    folder = cell_dir(root, cell_hash)
    size = save(folder / "weights.safetensors", weights, meta)
    if best is not None:
        size += save(folder / "best.safetensors", best, meta | {"epoch": best_epoch})
    return size


PREDICTIONS = "predictions.safetensors"


def save_predictions(root, cell_hash: str, predictions: dict[str, torch.Tensor], meta: dict) -> int:
    """A finished cell's predicted classes and the true labels (see the module's layout)."""
    return save(cell_dir(root, cell_hash) / PREDICTIONS, predictions, meta)


def load_predictions(root, cell_hash: str) -> dict[str, torch.Tensor] | None:
    """A cell's kept predictions; None for a cell that kept none (trained before petri kept them), or
    whose file does not verify."""
    got = load(cell_dir(root, cell_hash) / PREDICTIONS)
    return None if got is None else got[0]


def weights_path(root, cell_hash: str, best: bool = False) -> Path:
    return cell_dir(root, cell_hash) / ("best.safetensors" if best else "weights.safetensors")


def clear(root, cell_hash: str) -> None:
    """Everything stored for a cell (it is trained again from epoch 1)."""
    shutil.rmtree(cell_dir(root, cell_hash), ignore_errors=True)


def disk_usage(root) -> int:
    """Bytes under the study directory (ledger, cell files, report)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
