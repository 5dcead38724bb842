"""SVHN cropped digits: the official MATLAB files train_32x32.mat and test_32x32.mat, read with scipy.

Each holds X, uint8 [32, 32, 3, N] (height, width, channel, image), and y, [N, 1] with labels
1..10 where 10 is the digit 0: petri's label is the digit (10 -> 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and digit labels int64 [N] from one official .mat file."""
    import scipy.io

    try:
        m = scipy.io.loadmat(path)
        x, y = m["X"], np.asarray(m["y"]).reshape(-1)
    except (ValueError, KeyError, OSError, TypeError, NotImplementedError) as e:
        raise DataError(f"{path}: not an SVHN .mat file with X and y ({type(e).__name__}: {e})") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(f"{path}: X has shape {x.shape} ({x.dtype}), expected uint8 [32, 32, 3, N]")
    if len(y) != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: labels outside 1..10")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), (y % 10).astype(np.int64)
