"""A fast array cache for parsed data sets.

Parsing gzip IDX costs ~1 s for MNIST; loading .npy costs milliseconds. The
cache lives in ``PETRI_CACHE`` (else the per-user cache dir), never beside the
data files, which may be read-only or shared. An entry is keyed by the source
files' checksums and stat fingerprints (so a replaced source file rebuilds
it) and carries a CRC32 per array (so a corrupt entry is detected and rebuilt).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import platformdirs

ARRAYS = ("train_x", "train_y", "test_x", "test_y")
FORMAT = 1  # bump when the cached layout changes


def cache_dir() -> Path:
    env = os.environ.get("PETRI_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("petri")) / "arrays"


def fingerprint(paths: list[Path]) -> list[list]:
    """Cheap identity of source files: (path, size, mtime in ns)."""
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def _entry(name: str, key: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:40]
    return cache_dir() / f"{safe}-{key[:16]}"


def load(name: str, key: str, sources: list[Path]) -> dict[str, np.ndarray] | None:
    """The cached arrays (and ``"info"``, what was stored with them), or None if absent, stale (sources
    changed) or corrupt."""
    folder = _entry(name, key)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("sources") != fingerprint(sources):
            return None
        arrays = {a: np.load(folder / f"{a}.npy", allow_pickle=False) for a in ARRAYS}
        if any(_crc(arrays[a]) != meta["crc32"][a] for a in ARRAYS):
            return None
        return arrays | {"info": meta.get("info", {})}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


def store(name: str, key: str, sources: list[Path], arrays: dict[str, np.ndarray], info: dict | None = None) -> None:
    """Write an entry atomically (temporary files, then rename); failures are non-fatal. ``info``
    (JSON) is kept with it: a user data set's classes and checksum."""
    folder = _entry(name, key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for a in ARRAYS:
            tmp = folder / f".{a}.{os.getpid()}.npy"
            np.save(tmp, arrays[a], allow_pickle=False)
            os.replace(tmp, folder / f"{a}.npy")
        meta = {"format": FORMAT, "key": key, "sources": fingerprint(sources),
                "crc32": {a: _crc(arrays[a]) for a in ARRAYS}, "info": info or {}}
        tmp = folder / f".meta.{os.getpid()}.json"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, folder / "meta.json")
    except OSError:
        pass  # a cache that cannot be written only costs speed
