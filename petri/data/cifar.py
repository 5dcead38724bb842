"""The CIFAR "python version": pickled batches inside cifar-10-python.tar.gz / cifar-100-python.tar.gz.

Each batch is a pickled dict with b"data" (uint8 [n, 3072], channel-major 32x32 planes R, G, B),
the labels (CIFAR-10: b"labels"; CIFAR-100: b"fine_labels" and b"coarse_labels"), b"filenames".
CIFAR-10 holds data_batch_1..5 and test_batch, CIFAR-100 train and test. The batches are read
straight from the archive: a data directory may be read-only, so nothing is extracted next to it.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataError

LAYOUTS = {  # (training batches, test batches), by the archive's members
    "cifar-10": (tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
    "cifar-100": (("train",), ("test",)),
}


def _parse_batch(blob: bytes, where: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(blob, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        y = np.asarray(d[labels.encode()], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a data error
        raise DataError(f"{where}: not a CIFAR python batch with {labels!r} ({type(e).__name__}: {e})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: data has shape {data.shape}, expected [n, 3072]")
    if len(y) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(y)} labels")
    return data.reshape(-1, 3, 32, 32), y


def load_cifar_archive(archive: Path, batch_md5: dict[str, str] | None = None, labels: str = "labels"
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from an official tar.gz; batch MD5s checked if given."""
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable tar.gz archive ({e})") from None
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        layout = next((v for v in LAYOUTS.values() if v[0][0] in members), LAYOUTS["cifar-10"])
        names = layout[0] + layout[1]
        for name in names:
            if name not in members:
                raise DataError(f"{archive}: batch {name!r} missing (expected {', '.join(names)})")
            try:
                blob = tar.extractfile(members[name]).read()
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{archive}: cannot read {name} ({e})") from None
            if batch_md5 and hashlib.md5(blob).hexdigest() != batch_md5[name]:
                raise DataError(f"{archive}: checksum mismatch for {name}: expected {batch_md5[name]}, "
                                f"got {hashlib.md5(blob).hexdigest()}")
            parts[name] = _parse_batch(blob, f"{archive}:{name}", labels)
    train_x = np.concatenate([parts[n][0] for n in layout[0]])
    train_y = np.concatenate([parts[n][1] for n in layout[0]])
    test_x = np.concatenate([parts[n][0] for n in layout[1]])
    test_y = np.concatenate([parts[n][1] for n in layout[1]])
    return train_x, train_y, test_x, test_y
