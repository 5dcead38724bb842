"""Loading a data set as uint8 tensors: the one entry point the rest of petri uses."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from . import cache
from .cifar import load_cifar_archive
from .idx import load_idx_pair
from .registry import CIFAR10_BATCH_MD5, DatasetSpec, get_spec
from .sources import data_root, ensure_files, verify_file


@dataclass
class Dataset:
    """Train and test splits as resident tensors.

    ``train_x``/``test_x``: uint8 [N, C, H, W] (0 = background for MNIST);
    ``train_y``/``test_y``: int64 [N].
    """

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def checksum(self) -> str:
        """Identity of the source files (part of every cell's hash)."""
        return hashlib.sha256("".join(f.md5 for f in self.spec.files).encode()).hexdigest()[:16]

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(self.spec, *(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


def _parse(spec: DatasetSpec, paths: dict) -> dict[str, np.ndarray]:
    if spec.format == "idx":
        train_x, train_y = load_idx_pair(paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"])
        test_x, test_y = load_idx_pair(paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
    elif spec.format == "cifar-python":
        batch_md5 = CIFAR10_BATCH_MD5 if spec.files[0].md5 == "c58f30108f718f92721af3b95e74349a" else None
        train_x, train_y, test_x, test_y = load_cifar_archive(paths[spec.files[0].name], batch_md5)
    else:  # pragma: no cover - registry entries are fixed
        raise DataError(f"{spec.name}: unknown format {spec.format!r}")
    arrays = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
    _check(spec, arrays)
    return arrays


def _check(spec: DatasetSpec, a: dict[str, np.ndarray]) -> None:
    for split, n in (("train", spec.n_train), ("test", spec.n_test)):
        x, y = a[f"{split}_x"], a[f"{split}_y"]
        if tuple(x.shape[1:]) != spec.shape:
            raise DataError(f"{spec.name}: {split} images have shape {tuple(x.shape[1:])}, expected {spec.shape}")
        if n and len(x) != n:
            raise DataError(f"{spec.name}: {split} split has {len(x)} images, expected {n}")
        if len(y) and (y.min() < 0 or y.max() >= len(spec.classes)):
            raise DataError(f"{spec.name}: {split} labels outside 0..{len(spec.classes) - 1}")


def load(
    name: str | DatasetSpec, root=None, device: torch.device | str = "cpu", allow_download: bool = True
) -> Dataset:
    """Load a data set by name (or spec), verified, via the array cache."""
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    root = data_root(root)
    paths = ensure_files(spec, root, allow_download=allow_download)
    sources = [paths[f.name] for f in spec.files]
    key = hashlib.sha256(f"{spec.name}|{'|'.join(f.md5 for f in spec.files)}".encode()).hexdigest()
    arrays = cache.load(spec.name, key, sources)
    if arrays is None:
        for f in spec.files:  # a corrupt file is never parsed, let alone cached
            verify_file(spec, f, root)
        arrays = _parse(spec, paths)
        cache.store(spec.name, key, sources, arrays)
    ds = Dataset(spec, *(torch.from_numpy(np.ascontiguousarray(arrays[a])) for a in cache.ARRAYS))
    return ds.to(device) if str(device) != "cpu" else ds


def verify(name: str | DatasetSpec, root=None) -> dict:
    """Checksums, parse and counts, bypassing the cache. Returns a summary; raises DataError."""
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    root = data_root(root)
    paths = ensure_files(spec, root, allow_download=False)
    for f in spec.files:
        verify_file(spec, f, root)
    arrays = _parse(spec, paths)
    return {
        "name": spec.name,
        "folder": str(root / spec.name),
        "train": int(len(arrays["train_y"])),
        "test": int(len(arrays["test_y"])),
        "train_per_class": np.bincount(arrays["train_y"], minlength=len(spec.classes)).tolist(),
        "test_per_class": np.bincount(arrays["test_y"], minlength=len(spec.classes)).tolist(),
    }
