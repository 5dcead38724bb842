"""The CIFAR-10 "python version": pickled batches inside cifar-10-python.tar.gz.

Each batch is a pickled dict with b"data" (uint8 [n, 3072], channel-major
32x32 planes R, G, B), b"labels" (list of int), b"batch_label", b"filenames".
The batches are read straight from the archive: a data directory may be
read-only, so nothing is extracted next to it.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)


def _parse_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(blob, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a data error
        raise DataError(f"{where}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: data has shape {data.shape}, expected [n, 3072]")
    if len(labels) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar_archive(
    archive: Path, batch_md5: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from the official tar.gz; batch MD5s checked if given."""
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable tar.gz archive ({e})") from None
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for name in TRAIN_BATCHES + TEST_BATCHES:
            if name not in members:
                raise DataError(f"{archive}: batch {name!r} missing (expected {', '.join(TRAIN_BATCHES + TEST_BATCHES)})")
            try:
                blob = tar.extractfile(members[name]).read()
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{archive}: cannot read {name} ({e})") from None
            if batch_md5 and hashlib.md5(blob).hexdigest() != batch_md5[name]:
                raise DataError(
                    f"{archive}: checksum mismatch for {name}: expected {batch_md5[name]}, "
                    f"got {hashlib.md5(blob).hexdigest()}"
                )
            parts[name] = _parse_batch(blob, f"{archive}:{name}")
    train_x = np.concatenate([parts[n][0] for n in TRAIN_BATCHES])
    train_y = np.concatenate([parts[n][1] for n in TRAIN_BATCHES])
    test_x, test_y = parts["test_batch"]
    return train_x, train_y, test_x, test_y
