"""A study file's text -> its table of fields, with the top level checked: the fields allowed, the profile
applied, the name, the plugins as written, the data set named, ``keep_weights``.

A study is TOML (or, built in code with ``petri.load_study(dict)``, JSON); every mistake is one line
naming the file and the field.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from ..errors import PetriError, PlaceError, SpecError
from ..specs import echo

MAX_STUDY_BYTES = 16 << 20  # a study file is text a person writes: anything larger is not one
TOP_KEYS = {"name", "data", "seeds", "baseline", "baseline_point", "recipe", "variants", "description", "profiles",
            "plugins", "keep_weights", "analysis", "networks"}
PROFILE_KEYS = {"recipe", "seeds", "description"}
_NAME = re.compile(r"[^\W_][\w .+-]{0,99}")  # letters of any script, digits, space . _ + - (a folder name)


def read(path: str | Path) -> str:
    """A study file's text; one line when it is no such file, too large, or not text."""
    p = Path(path)
    try:
        if p.is_dir():
            raise SpecError(f"{p}: is a folder; give the study's TOML file")
        if p.stat().st_size > MAX_STUDY_BYTES:
            raise SpecError(f"{p}: {p.stat().st_size:,} bytes; a study file is at most {MAX_STUDY_BYTES >> 20} MB of text")
        blob = p.read_bytes()
    except OSError as e:
        raise SpecError(f"{p}: cannot read study file ({e.strerror})") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: not UTF-8 text (byte {e.start}); a study file is TOML text") from None
    if "\0" in text:
        raise SpecError(f"{p}: holds a NUL byte (at character {text.index(chr(0))}); a study file is TOML text")
    return text


def decode(text: str, path: str, profile: str | None = None) -> dict:
    """The study's table of fields (TOML, or JSON for a study built in code), ``[profiles.NAME]`` applied."""
    try:
        if text.lstrip().startswith("{"):  # a study built in code (petri.load_study(dict)) is kept as JSON
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: malformed JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None  # (its message quotes no value)
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply (arrays or tables inside one another); a study needs a few "
                        "levels at most") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a study is a table of fields (name, data, recipe, variants, ...)")
    where = Path(path).name
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown field {echo(sorted(unknown)[0])}; allowed: {', '.join(sorted(TOP_KEYS))}")
    return _apply_profile(raw, profile, where)


def _apply_profile(raw: dict, profile: str | None, where: str) -> dict:
    from .recipes import merge

    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise SpecError(f"{where}: profiles: must be tables like [profiles.cpu] with recipe and/or seeds")
    for name, p in profiles.items():
        extra = set(p) - PROFILE_KEYS
        if extra:
            raise SpecError(f"{where}: profiles.{name}: unknown field {sorted(extra)[0]!r}; allowed: recipe, seeds, description")
    if profile is None:
        return raw
    if profile not in profiles:
        known = ", ".join(profiles) or "none defined"
        raise SpecError(f"{where}: --profile {profile!r} is not a profile of this study; profiles: {known}")
    out = dict(raw)
    chosen = profiles[profile]
    if "recipe" in chosen:
        if not isinstance(chosen["recipe"], dict) or not isinstance(raw.get("recipe"), dict):
            raise SpecError(f"{where}: profiles.{profile}.recipe: must be a table of recipe overrides")
        try:
            out["recipe"] = merge(raw["recipe"], chosen["recipe"])
        except SpecError as e:
            raise SpecError(f"{where}: profiles.{profile}.recipe.{e}") from None
    if "seeds" in chosen:
        out["seeds"] = chosen["seeds"]
    return out


def plugin_entries(raw: dict, where: str) -> list[str]:
    """The plugins as the file writes them (paths relative to it, or module names)."""
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise SpecError(f"{where}: plugins: must be a list of Python files or module names, e.g. [\"mymodels.py\"]")
    return list(plugins)


def study_name(raw: dict, where: str) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{where}: name: missing or empty; give the study a name (a string)")
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise SpecError(f"{where}: name: {echo(name)} is not allowed; a study name is 1-100 letters, digits, spaces "
                        "and . _ - + (it names the run folder: no path separators or control characters)")
    return name


def dataset(raw: dict, where: str, data_override: str | None, base_dir: Path, frozen: dict | None):
    """(the data set's key, its spec): ``--data`` or the study's ``data``, a registered name or a user's
    file (relative to the study's folder); ``frozen``: its identity as the cells ran, no file needed."""
    from ..data import DATASETS, get_spec
    from .snapshot import spec_from_json

    data = data_override or raw.get("data")
    if isinstance(data, dict) and set(data) == {"path"}:
        data = data["path"]
    if not isinstance(data, str) or not data:
        raise SpecError(f"{where}: data: missing; a registered data set ({', '.join(DATASETS)}), or the "
                        "path of your .npz file or image folder")
    if frozen and frozen.get("data"):  # the data set's identity as the cells ran: no file needs to exist
        dspec = spec_from_json(frozen["data"])
        return dspec.key, dspec
    data = data_key(data, Path.cwd() if data_override else base_dir)
    try:
        return data, get_spec(data)
    except PlaceError:
        raise  # the data is fine, the place is not (an unreadable file): exit 1, as such
    except PetriError as e:
        raise SpecError(f"{where}: data: {e}") from None


def data_key(ref: str, base: Path) -> str:
    """A registered name as it is; a user's file or folder as its absolute path (relative to ``base``)."""
    from ..data import is_registered

    p = Path(ref).expanduser()
    full = p if p.is_absolute() else base / p
    if is_registered(ref) or not ("/" in ref or "\\" in ref or ref.endswith(".npz") or full.exists()):
        return ref  # a name (registered, or unknown: get_spec says which are known)
    return str(full.resolve())


def keep_weights(raw: dict, where: str) -> bool:
    keep = raw.get("keep_weights", True)
    if not isinstance(keep, bool):
        raise SpecError(f"{where}: keep_weights: must be true or false (got {echo(keep)})")
    return keep
