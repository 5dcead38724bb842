"""The IDX format of MNIST and Fashion-MNIST (gzip-compressed).

Big-endian int32 header: magic (2051 images / 2049 labels), count, then rows and
cols for images; then raw uint8 data, row-major.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def _read_gzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e}); delete it and fetch it again") from None


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one gzip IDX file: images -> uint8 [N, H, W], labels -> uint8 [N]."""
    raw = _read_gzip(path)
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic, count = np.frombuffer(raw[:8], dtype=">i4")
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong IDX magic number {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file)"
        )
    if magic == IMAGES_MAGIC:
        rows, cols = np.frombuffer(raw[8:16], dtype=">i4")
        shape, offset = (int(count), int(rows), int(cols)), 16
    else:
        shape, offset = (int(count),), 8
    size = int(np.prod(shape))
    if len(raw) - offset != size:
        raise DataError(f"{path}: header says {shape} ({size} bytes) but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 [N, 1, H, W] and labels as int64 [N], counts checked."""
    x = read_idx(images, IMAGES_MAGIC)
    y = read_idx(labels, LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(f"{images}: {len(x)} images but {labels.name} has {len(y)} labels")
    return x[:, None].copy(), y.astype(np.int64)
