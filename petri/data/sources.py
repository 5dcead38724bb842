"""Where a data set's files come from: the data roots, checksums, downloads.

Files live at ``<root>/<dataset>/<official name>``. They are looked for in an explicit root if one is
given, else in ``PETRI_DATA`` and then the per-user cache. Missing files are downloaded
(``PETRI_MIRROR`` first if set, then the official URL and its mirrors) with pooch, which checks the
MD5 and never leaves a corrupt file behind — into the explicit root, else into the user cache:
never into ``PETRI_DATA`` (a shared, possibly read-only folder) unless the user names it
(``petri data fetch NAME --root DIR``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

from ..errors import DataError, PlaceError
from .registry import DataFile, DatasetSpec


def user_data_dir() -> Path:
    """Where downloads go unless the user names a root: the per-user cache."""
    return Path(platformdirs.user_cache_dir("petri")) / "datasets"


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Where files are looked for, in order."""
    if root is not None:
        return [Path(root)]
    roots = [Path(os.environ["PETRI_DATA"])] if os.environ.get("PETRI_DATA") else []
    return roots + [user_data_dir()]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The first place files are looked for (``petri data list`` shows it)."""
    return data_roots(root)[0]


def _where(root: str | os.PathLike | None = None) -> str:
    env = os.environ.get("PETRI_DATA")
    searched = ", ".join(str(r) for r in data_roots(root))
    return searched + ("" if root is not None else f" (PETRI_DATA={env})" if env else " (PETRI_DATA not set)")


def locate(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path | None:
    """The first root holding all of the data set's files, or None."""
    return next((r for r in data_roots(root) if not missing_files(spec, r)), None)


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise unreadable(path, e) from None
    return h.hexdigest()


def unreadable(path, e: OSError) -> PlaceError:
    """A data file petri may not read: a place error (exit 1), in one line."""
    return PlaceError(f"{path}: cannot read this data file ({e.strerror}); give petri read access to it "
                      f"(e.g. chmod a+r {path})")


def missing_files(spec: DatasetSpec, root: Path) -> list[str]:
    return [f.name for f in spec.files if not (root / spec.name / f.name).is_file()]


def verify_file(spec: DatasetSpec, f: DataFile, root: Path) -> Path:
    """The path of ``f`` under ``root`` after checking its MD5; a mismatch is an error."""
    path = root / spec.name / f.name
    if not path.is_file():
        raise DataError(f"{spec.name}: {f.name} not found in {path.parent}")
    actual = md5sum(path)
    if actual != f.md5:
        raise DataError(
            f"{path}: checksum mismatch: expected MD5 {f.md5}, got {actual}; "
            "the file is corrupt or not the official one, delete it and fetch again"
        )
    return path


def _urls(spec: DatasetSpec, f: DataFile) -> list[str]:
    mirror = os.environ.get("PETRI_MIRROR")
    own = [f"{mirror.rstrip('/')}/{spec.name}/{f.name}"] if mirror else []
    return own + list(f.urls)


def download(spec: DatasetSpec, root: Path, timeout_s: float = 30.0) -> list[Path]:
    """Download every missing file of ``spec`` into ``<root>/<name>/``, checksum-verified."""
    import pooch  # imported here: only downloads need it
    import requests

    pooch.get_logger().setLevel("WARNING")  # petri says what went wrong itself, in one line
    folder = root / spec.name
    fetched = []
    for name in missing_files(spec, root):
        f = spec.file(name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"{spec.name}: cannot create {folder} to download into ({e.strerror})") from None
        errors = []
        for url in _urls(spec, f):
            try:
                path = pooch.retrieve(
                    url, known_hash=f"md5:{f.md5}", fname=f.name, path=folder,
                    progressbar=False, downloader=pooch.HTTPDownloader(timeout=timeout_s),
                )
                fetched.append(Path(path))
                break
            except ValueError as e:  # pooch: hash mismatch (the bad file is already removed)
                if "hash" not in str(e).lower():
                    raise
                errors.append(f"{url}: checksum mismatch (expected MD5 {f.md5}), file discarded")
            except (requests.RequestException, OSError) as e:
                errors.append(f"{url}: {type(e).__name__}")
        else:
            mismatch = any("checksum mismatch" in e for e in errors)
            hint = "" if mismatch else " (no network?)"
            raise DataError(
                f"{spec.name}: could not download {f.name}{hint}: {'; '.join(errors)}; "
                f"copy the official file into {folder} or set PETRI_DATA to a folder holding {spec.name}/{f.name}"
            )
    return fetched


def missing_message(spec: DatasetSpec, root: str | os.PathLike | None = None) -> str | None:
    """None if the files are there; else which are missing, where petri looked, and how to get them."""
    if locate(spec, root) is not None:
        return None
    first = data_roots(root)[0]
    target = Path(root) if root is not None else user_data_dir()
    return (f"{spec.name}: missing {', '.join(missing_files(spec, first))} (searched {_where(root)}); "
            f"`petri data fetch {spec.name}` downloads them into {target / spec.name}, or copy the official files "
            f"into a {spec.name}/ folder there or under PETRI_DATA")


def ensure_files(spec: DatasetSpec, root: str | os.PathLike | None = None, allow_download: bool = True
                 ) -> dict[str, Path]:
    """Paths of all files of ``spec``, downloading the missing ones (into ``root`` if given, else the
    user cache) if allowed."""
    found = locate(spec, root)
    if found is None:
        if not allow_download:
            raise DataError(missing_message(spec, root))
        found = Path(root) if root is not None else user_data_dir()
        download(spec, found)
    return {f.name: found / spec.name / f.name for f in spec.files}
