"""Data sets from Python: the ones a study can name (``datasets``), your own named (``register_dataset``)
or written (``save_dataset``), checked (``verify_dataset``) or fetched (``fetch_dataset``). Part of the
public API (``petri.datasets``, ...); ``petri data`` is a shell over it."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError


def datasets(root: str | Path | None = None):
    """The data sets a study can name, as a DataFrame: ``name``, ``channels``, ``height``, ``width``,
    ``classes``, ``train``, ``test`` (int64), ``variants`` (other label sets, e.g. ``cifar-100/coarse``),
    ``files`` (the folder holding them, NA if missing; looked for under ``root``, else PETRI_DATA, then
    the user cache; a named data set of your own: its file or folder) and ``citation``. The registered
    sets first, then your own named with ``register_dataset``."""
    import pandas as pd

    from . import DATASETS, get_spec, locate
    from .registry import NAMED

    rows = []
    for spec in [*DATASETS.values(), *(get_spec(n) for n in NAMED)]:
        found = spec.source or locate(spec, root)
        c, h, w = spec.shape
        rows.append({"name": spec.name, "channels": c, "height": h, "width": w, "classes": len(spec.classes),
                     "train": spec.n_train, "test": spec.n_test,
                     "variants": ", ".join(f"{spec.name}/{v} ({len(cl)} classes)" for v, _, cl in spec.variants),
                     "files": None if not found else spec.source or str(found / spec.name),
                     "citation": spec.citation})
    cols = ["name", "channels", "height", "width", "classes", "train", "test", "variants", "files", "citation"]
    return pd.DataFrame(rows, columns=cols)


def register_dataset(name: str, source: str | Path) -> Path:
    """Name your own data set (an .npz file or an image folder, as a study's ``data = "path"`` takes)
    so that studies can write ``data = "name"``, like a registered set. It is read and checked now;
    cells are keyed by its content, so a named and a path reference give the same cells.
    Re-registering a name replaces it; the registered sets' names cannot be taken. In a study run from
    the command line, register it in a plugin (``plugins = ["mydata.py"]``). Returns the resolved path."""
    from . import DATASETS, user
    from .registry import NAMED

    if not isinstance(name, str) or not name or any(ch in name for ch in "/\\") or name.endswith(".npz") \
            or not name.isprintable() or name != name.strip():
        raise SpecError(f"register_dataset: name {name!r}: a short name without slashes or spaces around it, "
                        "not ending in .npz (e.g. \"digits\")")
    if name in DATASETS:
        raise SpecError(f"register_dataset: {name!r} is a registered data set; choose another name")
    path = Path(source).expanduser().resolve()
    user.spec_and_arrays(path, name)  # a bad data set is refused now, in one line, not at the first run
    NAMED[name] = str(path)
    return path


def verify_dataset(name: str, root: str | Path | None = None) -> dict:
    """Check a data set's files (checksums, every file parsed, images per class), bypassing the cache.
    Returns ``name``, ``folder``, ``train``, ``test``, ``train_per_class``, ``test_per_class``."""
    from . import verify

    return verify(name, root)


def fetch_dataset(name: str, root: str | Path | None = None) -> Path | None:
    """Download a registered data set's missing files (PETRI_MIRROR first if set) into ``root`` (default:
    the user cache), verify and cache them; returns the folder holding them (None for your own data)."""
    from . import get_spec, load, locate

    spec = get_spec(name)
    load(spec, root)
    where = locate(spec, root) if spec.source is None else None
    return where / spec.name if where else None


def save_dataset(path: str | Path, x_train, y_train, x_test, y_test, classes=None) -> Path:
    """Write arrays as a petri data set (an .npz a study names with ``data = "path"``), checked as a
    study would check them; returns the path."""
    import numpy as np

    from . import user

    path = Path(path)
    if path.suffix != ".npz":
        raise SpecError(f"save_dataset: {path}: the file name must end in .npz")
    arrays = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train), "x_test": np.asarray(x_test),
              "y_test": np.asarray(y_test)}
    if classes is not None:
        arrays["classes"] = np.asarray([str(c) for c in classes])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    user.spec_and_arrays(path)  # refuses bad arrays now, in one line, not at the first run
    return path
