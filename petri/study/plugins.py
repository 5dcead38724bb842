"""Loading a study's plugins: Python files or modules that register models, treatments, metrics and data sets.

A study names them with ``plugins = ["mymodels.py", "mypackage.models"]``: a path (relative to the
study file) or an importable module name. Each is imported once per process, before the study is
parsed (``import_plugins``): the parser reads what they registered. What a plugin registers is tagged
with the sha256 of its source (``usercode``), which enters the hash of every cell whose numbers it
makes: a model or treatment of the cells that use it, a metric of every cell of the study (each
records its study's metrics). Editing the file gives new cells, never silently reused ones.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from ..usercode import importing

_loaded: dict[str, str | None] = {}  # resolved plugin -> the source's digest when it was imported
_made: dict[str, dict] = {}  # resolved plugin -> what its import registered: {(kind, name): class or metric}


def metrics(entries: list[str]) -> list[str]:
    """The metrics (``petri.register_metric``) that the plugins ``entries`` (resolved, loaded) registered."""
    return list(dict.fromkeys(name for e in entries for kind, name in _made.get(e, {}) if kind == "metric"))


def resolve(entry: str, base: Path) -> str:
    """A file entry as an absolute path (relative to the study's folder); a module name as is."""
    if entry.endswith(".py") or "/" in entry or "\\" in entry:
        p = Path(entry)
        return str((p if p.is_absolute() else base / p).resolve())
    return entry


def load(entries: list[str], where: str = "plugins") -> None:
    """Import each resolved plugin (paths or module names) unless already imported in this process."""
    for i, entry in enumerate(entries):
        loc = f"{where}[{i}]"
        if entry.endswith(".py"):
            path = Path(entry)
            try:
                source = path.read_bytes()
            except OSError as e:
                raise SpecError(f"{loc}: cannot read {entry} ({e.strerror})") from None
            digest = hashlib.sha256(source).hexdigest()[:16]
            if _loaded.get(entry) == digest and _intact(entry):  # imported, unchanged since (an edited file is
                continue  # imported again, and so is one whose names another file registered since)
            name = f"petri_plugin_{hashlib.sha256(entry.encode()).hexdigest()[:12]}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            before = _registered()
            try:
                with importing(digest):
                    spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001 - the user's code: say what went wrong, in one line
                del sys.modules[name]
                raise SpecError(f"{loc}: importing {entry} failed: {type(e).__name__}: {e}") from None
        else:
            if entry in _loaded and _intact(entry):
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
            before = _registered()
            try:
                with importing(digest):
                    if entry in sys.modules:  # imported before (by the user's code, or displaced since): run it
                        importlib.reload(sys.modules[entry])  # again, so that what it registers is counted as its own
                    else:
                        importlib.import_module(entry)
            except Exception as e:  # noqa: BLE001
                raise SpecError(f"{loc}: importing {entry} failed: {type(e).__name__}: {e}") from None
        _loaded[entry] = digest
        _made[entry] = {k: v for k, v in _registered().items() if before.get(k) is not v}


def _registered() -> dict:
    """Every model, treatment and metric registered now: {(kind, name): its class or metric}."""
    from ..models.base import MODELS
    from ..train.metrics import METRICS
    from ..treatments import TREATMENTS

    return {**{("model", n): c for n, c in MODELS.items()}, **{("treatment", n): c for n, c in TREATMENTS.items()},
            **{("metric", n): m for n, m in METRICS.items()}}


def _intact(entry: str) -> bool:
    """Whether what ``entry`` registered is still what is registered under those names."""
    now = _registered()
    return all(now.get(k) is v for k, v in _made.get(entry, {}).items())


@dataclass(frozen=True)
class Plugins:
    """A study's plugins, imported: as the file writes them, resolved, and the metrics they registered."""

    entries: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # absolute paths or module names
    metrics: list[str] = field(default_factory=list)


def import_plugins(entries: list[str], where: str, base_dir: Path, frozen: dict | None = None,
                   root: Path | None = None) -> Plugins:
    """Import a study's plugins (paths relative to ``base_dir``); ``frozen`` (with the study folder
    ``root``): the copies its cells ran with (``snapshot.freeze``), whatever became of the live files."""
    resolved = [resolve(p, base_dir) for p in entries]
    if frozen:
        resolved = [str(root / frozen["plugins"][e]) if e in frozen.get("plugins", {}) else p
                    for e, p in zip(entries, resolved)]
    load(resolved, f"{where}: plugins")
    return Plugins(list(entries), resolved, metrics(resolved))
