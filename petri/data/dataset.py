"""Loading a data set as uint8 tensors: the one entry point the rest of petri uses.

A data set is named by a key: a registered name (``mnist``), one of its label variants
(``cifar-100/coarse``), or the path of the user's own ``.npz`` file or image folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DataError
from . import cache, user
from .cifar import load_cifar_archive
from .idx import load_idx_pair
from .registry import CIFAR_BATCH_MD5, DATASETS, NAMED, DatasetSpec, registered
from .sources import ensure_files, locate, verify_file
from .svhn import read_svhn_mat


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
        """Identity of the data (part of every cell's hash)."""
        return hashlib.sha256("".join(self.spec.identity).encode()).hexdigest()[:16]

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(self.spec, *(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


def is_registered(key: str) -> bool:
    return key.partition("/")[0] in DATASETS or key in NAMED


def get_spec(key: str) -> DatasetSpec:
    """The spec of the data set ``key`` names (a user's data set is read, once, to know its shape)."""
    if isinstance(key, DatasetSpec):
        return key
    if key in NAMED:
        return user.spec_and_arrays(NAMED[key], key)[0]
    if is_registered(key) or not ("/" in key or "\\" in key or key.endswith(".npz") or Path(key).exists()):
        return registered(key)
    return user.spec_and_arrays(key)[0]


def _idx(spec, paths):
    train = load_idx_pair(paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"])
    test = load_idx_pair(paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
    return (*train, *test)


def _cifar(spec, paths):
    archive = spec.files[0]
    return load_cifar_archive(paths[archive.name], CIFAR_BATCH_MD5.get(archive.md5), spec.labels)


def _svhn(spec, paths):
    return (*read_svhn_mat(paths["train_32x32.mat"]), *read_svhn_mat(paths["test_32x32.mat"]))


# format -> parser of the official files: (spec, {file name: path}) -> train_x, train_y, test_x, test_y
FORMATS: dict[str, Callable] = {"idx": _idx, "cifar-python": _cifar, "svhn-mat": _svhn}


def _parse(spec: DatasetSpec, paths: dict) -> dict[str, np.ndarray]:
    arrays = dict(zip(cache.ARRAYS, FORMATS[spec.format](spec, paths)))
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


def load(name: str | DatasetSpec, root=None, device: torch.device | str = "cpu", allow_download: bool = True
         ) -> Dataset:
    """Load a data set by key (or spec), verified, via the array cache. ``root``: where its files are
    (default: PETRI_DATA, then the user cache; a download goes to the user cache)."""
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    if spec.source is not None:  # the user's own arrays or folder
        spec, arrays = user.spec_and_arrays(spec.source, spec.name)
    else:
        paths = ensure_files(spec, root, allow_download=allow_download)
        sources = [paths[f.name] for f in spec.files]
        key = hashlib.sha256(f"{spec.key}|{'|'.join(f.md5 for f in spec.files)}".encode()).hexdigest()
        arrays = cache.load(spec.key, key, sources)
        if arrays is None:
            for f in spec.files:  # a corrupt file is never parsed, let alone cached
                verify_file(spec, f, paths[f.name].parent.parent)
            arrays = _parse(spec, paths)
            cache.store(spec.key, key, sources, arrays)
    ds = Dataset(spec, *(torch.from_numpy(np.ascontiguousarray(arrays[a])) for a in cache.ARRAYS))
    return ds.to(device) if str(device) != "cpu" else ds


def verify(name: str | DatasetSpec, root=None) -> dict:
    """Checksums, parse and counts, bypassing the cache. Returns a summary; raises DataError."""
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    if spec.source is not None:
        spec, arrays = user.spec_and_arrays(spec.source, spec.name)
        folder = spec.source
    else:
        paths = ensure_files(spec, root, allow_download=False)
        for f in spec.files:
            verify_file(spec, f, paths[f.name].parent.parent)
        arrays = _parse(spec, paths)
        folder = str(locate(spec, root))
    return {
        "name": spec.key,
        "folder": folder,
        "train": int(len(arrays["train_y"])),
        "test": int(len(arrays["test_y"])),
        "train_per_class": np.bincount(arrays["train_y"], minlength=len(spec.classes)).tolist(),
        "test_per_class": np.bincount(arrays["test_y"], minlength=len(spec.classes)).tolist(),
        "note": user.rounding_note(spec.source),
    }
