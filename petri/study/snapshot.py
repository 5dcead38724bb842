"""What a study folder keeps so that it is read without the live files: a copy of each plugin file's
source as its cells ran (``DIR/plugins/<sha256>.py``), and the data set's identity (name or content
checksum, shapes, classes). ``show``, ``report``, ``export``, ``open_study`` and ``load_model`` read the
study from these; a copied, archived or shared folder gives the same numbers and weights. A run (and a
dry run) stops in one line when a plugin or data file changed since the folder's cells ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from ..data import get_spec
from ..data.registry import DataFile, DatasetSpec
from ..errors import PlaceError, StoreError

FOLDER = "plugins"


def spec_json(spec: DatasetSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_json(d: dict) -> DatasetSpec:
    d = dict(d)
    d["files"] = tuple(DataFile(f["name"], f["md5"], tuple(f["urls"])) for f in d["files"])
    d["classes"], d["shape"] = tuple(d["classes"]), tuple(d["shape"])
    d["variants"] = tuple((n, lab, tuple(cs)) for n, lab, cs in d["variants"])
    return DatasetSpec(**d)


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def freeze(entries: list[str], resolved: list[str], spec: DatasetSpec, directory: Path) -> dict:
    """Copy each plugin file into ``directory/plugins/`` (by content; written atomically) and return
    what a run row keeps: {"plugins": {entry as written: stored file}, "data": the data set's spec}."""
    stored = {}
    folder = directory / FOLDER
    for entry, path in zip(entries, resolved):
        if not path.endswith(".py"):  # an importable module: its source is not copied
            continue
        source = Path(path).read_bytes()
        name = f"{hashlib.sha256(source).hexdigest()[:16]}.py"
        target = folder / name
        if not target.is_file():
            try:
                folder.mkdir(exist_ok=True)
                tmp = folder / f".{name}.{os.getpid()}.tmp"
                tmp.write_bytes(source)
                os.replace(tmp, target)
            except OSError as e:
                raise PlaceError(f"{folder}: cannot keep a copy of plugin {entry} ({e.strerror})") from None
        stored[entry] = f"{FOLDER}/{name}"
    return {"plugins": stored, "data": spec_json(spec)}


def changes(frozen: dict | None, entries: list[str], resolved: list[str], spec: DatasetSpec) -> list[str]:
    """What differs between the files a study's cells last ran with and the live ones, in words."""
    if not frozen:
        return []
    out = []
    for entry, path in zip(entries, resolved):
        was = frozen.get("plugins", {}).get(entry)
        if was and path.endswith(".py") and Path(was).stem != digest(path):
            out.append(f"plugin {entry}")
    data = frozen.get("data")
    if data and spec.source and data.get("checksum_") != spec.checksum_:
        out.append(f"data {spec.source}")
    return out


def check_changes(study, ledger, allowed: bool) -> None:
    """One line, and no training, when a plugin or data file differs from what the folder's finished
    cells ran with (unless ``allowed``): those cells keep their numbers, the changed file makes new ones."""
    from .ledger import FINISHED

    last = ledger.query("SELECT frozen FROM runs WHERE frozen IS NOT NULL ORDER BY id DESC LIMIT 1")
    what = changes(json.loads(last[0]["frozen"]) if last else None, study.plugin_entries, study.plugins,
                   get_spec(study.data))
    if not what or allowed:
        return
    new = {c.hash for c in study.cells}
    kept = [c for c in ledger.cells() if c["status"] in FINISHED and c["hash"] not in new]
    if kept:
        variants = ", ".join(sorted({c["variant"] for c in kept}))
        raise StoreError(f"{ledger.dir}: {' and '.join(what)} changed since these cells ran ({len(kept)} finished "
                         f"cells of {variants} keep their numbers; show and report read them as they ran); restore "
                         "the file, or run with --changed to train the changed study's cells beside them")
