"""Loading a study's plugins: Python files or modules that register models (``petri.register_model``).

A study names them with ``plugins = ["mymodels.py", "mypackage.models"]``: a path (relative to the
study file) or an importable module name. Each is imported once per process; what it registers is
tagged with the sha256 of its source, which enters the hash of every cell using it (editing the
file gives new cells, never silently reused ones).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from .errors import SpecError

_loaded: dict[str, str | None] = {}  # resolved plugin -> the source's digest when it was imported


def resolve(entry: str, base: Path) -> str:
    """A file entry as an absolute path (relative to the study's folder); a module name as is."""
    if entry.endswith(".py") or "/" in entry or "\\" in entry:
        p = Path(entry)
        return str((p if p.is_absolute() else base / p).resolve())
    return entry


def load(entries: list[str], where: str = "plugins") -> None:
    """Import each resolved plugin (paths or module names) unless already imported in this process."""
    from .models.plugin import _loading

    for i, entry in enumerate(entries):
        loc = f"{where}[{i}]"
        if entry.endswith(".py"):
            path = Path(entry)
            try:
                source = path.read_bytes()
            except OSError as e:
                raise SpecError(f"{loc}: cannot read {entry} ({e.strerror})") from None
            digest = hashlib.sha256(source).hexdigest()[:16]
            if _loaded.get(entry) == digest:  # imported, unchanged since (an edited file is imported again)
                continue
            name = f"petri_plugin_{hashlib.sha256(entry.encode()).hexdigest()[:12]}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            token = _loading.set(digest)
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001 - the user's code: say what went wrong, in one line
                del sys.modules[name]
                raise SpecError(f"{loc}: importing {entry} failed: {type(e).__name__}: {e}") from None
            finally:
                _loading.reset(token)
        else:
            if entry in _loaded:
                continue
            try:
                spec = importlib.util.find_spec(entry)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                raise SpecError(f"{loc}: no file or module {entry!r}; give a path ending in .py (relative to the "
                                "study file) or an importable module name")
            origin = Path(spec.origin) if spec.origin and spec.origin != "built-in" else None
            digest = hashlib.sha256(origin.read_bytes()).hexdigest()[:16] if origin and origin.is_file() else None
            token = _loading.set(digest)
            try:
                importlib.import_module(entry)
            except Exception as e:  # noqa: BLE001
                raise SpecError(f"{loc}: importing {entry} failed: {type(e).__name__}: {e}") from None
            finally:
                _loading.reset(token)
        _loaded[entry] = digest
