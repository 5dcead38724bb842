"""Your own data: arrays in an ``.npz`` file, or image folders.

* ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``classes`` (names).
  Images uint8 (0-255), or float in [0, 1]; laid out [N, H, W], [N, H, W, C] or [N, C, H, W] with
  1 or 3 channels. Labels integers 0..C-1.
* a folder holding ``train/<class>/<image>`` and ``test/<class>/<image>`` (PNG, JPEG, ... anything
  Pillow reads); class names are the sub-folder names, sorted; all images of one size; grey if
  every image is, else RGB. A split's images are in the order of their file names (then class), so
  files named by index (00000.png, ...) keep the order of the arrays they were written from.

Both become the same uint8 [N, C, H, W] arrays as the registered sets, kept in the array cache
(keyed by the files' paths, sizes and mtimes, so nothing is read or hashed twice). A user data set's
identity is the sha256 of its arrays and class names: editing the file gives new cells.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import cache
from .sources import unreadable
from .registry import DatasetSpec

KEYS = ("x_train", "y_train", "x_test", "y_test")


def spec_and_arrays(path: str | Path, name: str | None = None) -> tuple[DatasetSpec, dict[str, np.ndarray]]:
    """The data set at ``path`` (an .npz file or a folder): its spec (named ``name``, else after the
    file) and arrays, validated."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{path}: no such file or folder; a data set is a registered name, an .npz file or a "
                        "folder with train/ and test/")
    p = p.resolve()
    if p.is_dir():
        sources, kind = _folder_files(p), "folder"
    elif p.suffix == ".npz":
        sources, kind = [p], "npz"
    else:
        raise DataError(f"{p}: not a data set; give an .npz file (x_train, y_train, x_test, y_test) or a folder "
                        "holding train/<class>/ and test/<class>/ images")
    key = hashlib.sha256(f"user|{kind}|{p}".encode()).hexdigest()
    try:
        got = cache.load(p.stem, key, sources)
    except OSError:
        got = None
    if got is None:
        arrays, classes = _read_npz(p) if kind == "npz" else _read_folder(p, sources)
        info = {"classes": list(classes), "checksum": _checksum(arrays, classes), "rounded": arrays.pop("rounded", None)}
        cache.store(p.stem, key, sources, arrays, info)
    else:
        info = got.pop("info")
        arrays = got
    ROUNDED[str(p)] = info.get("rounded")
    spec = DatasetSpec(name=name or p.stem, format=kind, files=(), classes=tuple(info["classes"]),
                       shape=tuple(arrays["train_x"].shape[1:]), n_train=len(arrays["train_y"]),
                       n_test=len(arrays["test_y"]), citation=f"your data: {p}", license="",
                       source=str(p), checksum_=info["checksum"])
    return spec, arrays


ROUNDED: dict[str, str | None] = {}  # a user data set's path -> the float dtype its images were rounded from


def rounding_note(source: str | None) -> str | None:
    """One line when a user's float images were stored as 8-bit."""
    dtype = ROUNDED.get(source) if source else None
    return (f"{source}: {dtype} images in [0, 1] are kept as 8-bit (x·255 rounded to the nearest integer, as "
            "PNGs of the same images would be): differences below 1/255 are lost") if dtype else None


def _checksum(arrays: dict[str, np.ndarray], classes) -> str:
    h = hashlib.sha256()
    for a in cache.ARRAYS:
        h.update(f"{a}{arrays[a].dtype}{arrays[a].shape}".encode())
        h.update(np.ascontiguousarray(arrays[a]).tobytes())
    h.update("\0".join(classes).encode())
    return h.hexdigest()[:32]


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing {', '.join(missing)}; an .npz data set holds "
                                f"{', '.join(KEYS)} (and optionally classes); it holds {', '.join(z.files) or 'nothing'}")
            raw = {k: z[k] for k in KEYS}
            classes = [str(c) for c in z["classes"]] if "classes" in z.files else None
    except DataError:
        raise
    except PermissionError as e:
        raise unreadable(path, e) from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    arrays = {}
    floats = sorted({str(raw[f"x_{s}"].dtype) for s in ("train", "test") if np.issubdtype(raw[f"x_{s}"].dtype, np.floating)})
    for split in ("train", "test"):
        arrays[f"{split}_x"] = _images(raw[f"x_{split}"], f"{path}: x_{split}")
        arrays[f"{split}_y"] = _labels(raw[f"y_{split}"], f"{path}: y_{split}", len(arrays[f"{split}_x"]))
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(f"{path}: training images are {_fmt(arrays['train_x'].shape[1:])}, test images "
                        f"{_fmt(arrays['test_x'].shape[1:])}; both splits need one image shape")
    n = int(max(arrays["train_y"].max(), arrays["test_y"].max())) + 1
    if classes is None:
        classes = [str(i) for i in range(n)]
    elif n > len(classes):
        raise DataError(f"{path}: labels go up to {n - 1} but classes names {len(classes)}; labels must be 0..{len(classes) - 1}")
    if floats:  # petri keeps images as uint8: float images are rounded to the nearest of 256 levels
        arrays["rounded"] = ", ".join(floats)
    return arrays, classes


def _fmt(shape) -> str:
    return "×".join(map(str, shape))


def _images(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 [N, C, H, W] from uint8 or float [0, 1] images in one of the accepted layouts."""
    if x.ndim not in (3, 4) or len(x) == 0:
        raise DataError(f"{where}: shape {x.shape}; images are [N, H, W], [N, H, W, C] or [N, C, H, W] with N ≥ 1")
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[3] in (1, 3):  # channels last (NumPy / Keras)
        x = x.transpose(0, 3, 1, 2)
    elif x.shape[1] not in (1, 3):
        raise DataError(f"{where}: shape {x.shape} has no 1- or 3-channel axis; images are [N, H, W], "
                        "[N, H, W, C] or [N, C, H, W] with C = 1 or 3")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{where}: holds NaN or infinite values; float images must lie in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise DataError(f"{where}: float values from {lo:g} to {hi:g}; float images must lie in [0, 1] "
                            "(or give uint8 0..255)")
        return np.ascontiguousarray(np.rint(x * 255).astype(np.uint8))
    raise DataError(f"{where}: dtype {x.dtype}; images are uint8 (0..255) or float in [0, 1]")


def _labels(y: np.ndarray, where: str, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: shape {y.shape}; labels are one integer per image, [N]")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{where}: dtype {y.dtype}; labels must be integers 0..C-1")
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images")
    if y.min() < 0:
        raise DataError(f"{where}: label {int(y.min())} is negative; labels must be 0..C-1")
    return y.astype(np.int64)


def _folder_files(root: Path) -> list[Path]:
    """Every file of train/ then test/, each split in the order of file names (then class names)."""
    files = []
    for split in ("train", "test"):
        d = root / split
        if not d.is_dir():
            raise DataError(f"{root}: no {split}/ folder; an image-folder data set holds train/<class>/ and "
                            "test/<class>/")
        found = [f for cls in d.iterdir() if cls.is_dir() and not cls.name.startswith(".")
                 for f in cls.iterdir() if f.is_file() and not f.name.startswith(".")]
        files += sorted(found, key=lambda f: (f.name, f.parent.name))
    return files


def _read_folder(root: Path, files: list[Path]):
    from PIL import Image, UnidentifiedImageError

    classes = sorted(c.name for c in (root / "train").iterdir() if c.is_dir() and not c.name.startswith("."))
    test_classes = sorted(c.name for c in (root / "test").iterdir() if c.is_dir() and not c.name.startswith("."))
    if not classes:
        raise DataError(f"{root / 'train'}: no class folders; put each class's images in train/<class>/")
    if test_classes != classes:
        gone = sorted(set(classes) - set(test_classes))
        extra = sorted(set(test_classes) - set(classes))
        what = (f"class folder(s) {', '.join(gone)} missing from test/" if gone else
                f"test/ has class folder(s) {', '.join(extra)} that train/ lacks")
        raise DataError(f"{root}: {what}; both splits need the same classes")
    images: dict[str, list] = {"train": [], "test": []}
    labels: dict[str, list] = {"train": [], "test": []}
    for f in files:
        split, cls = f.parent.parent.name, f.parent.name
        try:
            with Image.open(f) as im:
                im.load()
                images[split].append(im.copy())
        except PermissionError as e:
            raise unreadable(f, e) from None
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{f}: not an image Pillow can read ({type(e).__name__}); an image folder holds only "
                            "images") from None
        labels[split].append(classes.index(cls))
    for split in ("train", "test"):
        if not images[split]:
            raise DataError(f"{root / split}: no images; both splits need at least one")
    all_images = images["train"] + images["test"]
    grey = all(im.mode in ("L", "1", "I;16", "I") for im in all_images)
    mode = "L" if grey else "RGB"
    size = all_images[0].size
    arrays = {}
    for split in ("train", "test"):
        planes = []
        for im, f in zip(images[split], (x for x in files if x.parent.parent.name == split)):
            if im.size != size:
                raise DataError(f"{f}: {im.size[0]}×{im.size[1]} pixels, the others {size[0]}×{size[1]}; all "
                                "images of a data set need one size")
            a = np.asarray(im.convert(mode), dtype=np.uint8)
            planes.append(a[None] if grey else a.transpose(2, 0, 1))
        arrays[f"{split}_x"] = np.ascontiguousarray(np.stack(planes))
        arrays[f"{split}_y"] = np.asarray(labels[split], dtype=np.int64)
    return arrays, classes
