"""Study files: TOML -> validated spec -> cells.

A study is a base recipe, named variants (treatments and recipe overrides)
and seeds. Any parameter written ``{ values = [...] }`` or
``{ range = [start, stop] }`` / ``{ range = [start, stop, step] }`` (stop
excluded) is a sweep axis; axes multiply. A cell is (variant, sweep point,
seed); its identity is the hash of its resolved config.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import plugins as load_plugins
from ..data import get_spec
from ..errors import PetriError, PlaceError, SpecError
from ..models import parse_model
from ..rng import SOURCES, Seeds
from ..specs import canonical, echo, fmt_loc, translate
from ..train.recipe import Recipe, parse_optimizer, parse_schedule
from ..treatments import parse_treatment
from ..train.metrics import is_fraction, user_metrics
from .crossing import combinations, config_seed, is_crossing, parse_crossing
from .questions import ADAPTIVE_KEYS, Adaptive, Analysis, parse_adaptive, parse_analysis
from .snapshot import spec_from_json

# Bump when a change alters what training computes: old cells get new hashes.
# 2: the optimiser update comes straight from PyTorch's fused kernel; the loss gradient is scaled once.
# 3: dense layers with fewer than 16 outputs compute their products transposed (other summation order);
#    dense BatchNorm reduces each feature in one pass (the same bits on any number of threads).
# 4: crop, flip, shuffle_pixels and gaussian_images draw per image from rng.per_image; gaussian_images uses
#    both Box-Muller outputs and a two-pass std; shuffle_pixels breaks hash ties by pixel (other values).
# 5: an mlp takes permute_pixels into its first layer's weights (other summation order); affines after a
#    permutation fold into the conversion; shuffle_pixels and gaussian_images take each image's draw
#    from a fixed pool, assigned by a per-cell random bijection (other values).
# 6: a cell's config is hashed without the fields at their defaults (adding an optional field no longer
#    re-keys stored cells); models are layer lists (the presets train the same numbers as before).
SEMANTICS = 6
MAX_CELLS = 100_000  # cells in one study: counted from the axes (arithmetic) before any is built
MAX_SEEDS = 10_000
MAX_SEED = 2**31 - 1  # seeds are integers 0..MAX_SEED
MAX_MEMBER_BYTES = 8 << 30  # one member's parameters, gradients and optimiser state: a typo beyond this
TOP_KEYS = {"name", "data", "seeds", "baseline", "baseline_point", "recipe", "variants", "description", "profiles",
            "plugins", "keep_weights", "analysis", "networks"}
PROFILE_KEYS = {"recipe", "seeds", "description"}


@dataclass(frozen=True)
class Cell:
    variant: str
    point: tuple[tuple[str, Any], ...]  # sweep axis label -> value
    seed: int
    recipe: Recipe
    treatments: tuple
    data: str
    hash: str
    config: str  # canonical JSON of everything that defines the cell
    sources: Seeds | None = None  # a crossed study's seeds per random source (None: ``seed`` drives all)
    metrics: tuple[str, ...] = ()  # users' metrics it records (its study's: train.metrics), beside petri's own

    @property
    def seeds(self) -> int | Seeds:
        """What the training loop draws from: the plain seed, or each source's own."""
        return self.sources or self.seed

    @property
    def point_label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.point)


@dataclass
class Study:
    """A parsed study. ``text`` is the file as written; the profile and data override used are kept
    so that the ledger (and reports) can reconstruct exactly the cells that were run."""

    name: str
    data: str
    seeds: list[int]
    baseline: str
    variants: dict[str, dict]
    recipe: dict
    text: str
    path: str
    cells: list[Cell]
    profile: str | None = None
    data_override: str | None = None
    plugins: list[str] = field(default_factory=list)  # resolved: absolute paths or module names
    keep_weights: bool = True  # each finished cell's final (and best) weights under DIR/cells/
    baseline_point: dict | str | None = None  # in a swept baseline: the reference point, or "best"
    warnings: list[str] = field(default_factory=list)  # said at parse time (nothing to compare, ...)
    analysis: Analysis = field(default_factory=Analysis)  # the comparisons, metric and margin it asks for
    adaptive: Adaptive | None = None  # seeds in rounds until the answer is clear (seeds: the current round's)
    crossing: dict[str, list[int]] | None = None  # crossed seeds: source -> its seeds (seeds: the place numbers)
    axes: dict[str, list] = field(default_factory=dict)  # sweep axis label -> its path in a variant's tree
    plugin_entries: list[str] = field(default_factory=list)  # plugins as the file writes them

    @property
    def reference(self) -> str:
        """What every Δ is against, in words."""
        if self.baseline_point == "best":
            return f"the best point of {self.baseline!r} (by mean final validation accuracy)"
        if isinstance(self.baseline_point, dict):
            return f"{self.baseline!r} at " + ", ".join(f"{k}={v}" for k, v in self.baseline_point.items())
        return repr(self.baseline)


def recipe_from_dict(d: dict, where: str = "recipe") -> Recipe:
    """A validated recipe; every wrong field of it (its model's, optimizer's and schedule's too) in one error."""
    if not isinstance(d, dict):
        raise SpecError(f"{where}: must be a table")
    if "model" not in d:
        raise SpecError(f"{where}.model: missing; a model such as {{ name = \"mlp\", hidden = [64] }} or a list of layers")
    d, mistakes, said = dict(d), [], []
    opt = d.get("optimizer")
    if isinstance(opt, dict) and "name" not in opt:  # { lr = 0.01 } tunes the default optimiser
        d["optimizer"] = {"name": Recipe.model_fields["optimizer"].default.name, **opt}
    for key, parse in (("model", parse_model), ("optimizer", parse_optimizer), ("schedule", parse_schedule)):
        if key in d:
            try:
                d[key] = parse(d[key], f"{where}.{key}")
            except SpecError as e:  # said here; the rest of the recipe is still checked
                mistakes += e.parts
                said.append(f"{where}.{key}:")
                del d[key]
    try:
        recipe = Recipe.model_validate(d, strict=True)
    except ValidationError as e:  # (a model said above is "missing" here)
        mistakes += [m for m in translate(e, where, Recipe).parts if not m.startswith(tuple(said))]
    if mistakes:
        raise SpecError(mistakes)
    return recipe


def _merge(base: dict, over: dict) -> dict:
    """Deep merge of recipe dicts; a sub-table with a different ``name`` replaces the base one."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "model":  # a list of layers or a bare name is a model table too
            v, out[k] = _model_table(v), _model_table(out.get(k))
        if k == "layers" and isinstance(v, dict) and not _is_axis(v) and isinstance(out.get(k), list):
            out[k] = _patch_layers(out[k], v)  # { 8 = "relu" }: the inherited list with layer 8 replaced
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _is_axis(v) \
                and v.get("name", out[k].get("name")) == out[k].get("name"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _patch_layers(layers: list, patch: dict) -> list:
    """A layer list with some positions replaced: ``{ 8 = "relu", 3 = { name = "dropout", p = 0.2 } }``."""
    out = copy.deepcopy(layers)
    for key, layer in patch.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(layers)):
            raise SpecError(f"model.layers.{key}: a patch of the inherited layer list names positions 0.."
                            f"{len(layers) - 1} (layers = {{ 2 = \"relu\" }}); or write the whole list")
        out[int(key)] = copy.deepcopy(layer)
    return out


def _use_networks(recipe, networks: dict):
    """A recipe (dict) whose model names one of the study's [networks] (``"lenet"`` or ``{ name = "lenet" }``)
    gets that layer list. A sweep over models keeps the names as its values (its points read "lenet")
    and each point's recipe is resolved here once the value is set."""
    if not isinstance(recipe, dict) or "model" not in recipe or not networks:
        return recipe
    m = recipe["model"]
    name = m if isinstance(m, str) else m.get("name") if isinstance(m, dict) and set(m) == {"name"} else None
    return recipe | {"model": copy.deepcopy(networks[name])} if name in networks else recipe


def _networks(raw, where: str) -> dict[str, list]:
    """The study's [networks]: name -> a layer list, each written once and named by recipes."""
    from ..models import MODELS

    nets = raw if raw is not None else {}
    if not isinstance(nets, dict) or not all(isinstance(v, list) and v for v in nets.values()):
        raise SpecError(f"{where}: networks: a table of named layer lists, e.g. [networks] lenet = [\"flatten\", ...]")
    clash = [n for n in nets if n in MODELS]
    if clash:
        raise SpecError(f"{where}: networks.{clash[0]}: is a model's name already ({MODELS.known()}); choose another")
    return nets


def _model_table(v):
    if isinstance(v, list):
        return {"name": "layers", "layers": v}
    if isinstance(v, str):
        return {"name": v}
    if isinstance(v, dict) and "layers" in v and "name" not in v and not _is_axis(v):
        return {"name": "layers", **v}
    return v


def _is_axis(v) -> bool:
    return isinstance(v, dict) and set(v) in ({"values"}, {"range"})


def _axis_values(v: dict, where: str) -> list:
    if "values" in v:
        vals = v["values"]
        if not isinstance(vals, list) or not vals:
            raise SpecError(f"{where}: values must be a non-empty list")
        return vals
    r = v["range"]
    if not isinstance(r, list) or len(r) not in (2, 3) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r):
        raise SpecError(f"{where}: range must be [start, stop] or [start, stop, step] with numbers")
    start, stop, step = (r + [1])[:3]
    if step == 0 or (step > 0 and start >= stop) or (step < 0 and start <= stop):
        raise SpecError(f"{where}: range {r} is empty; stop is excluded and step must move start towards stop")
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, stop, step))
    n = int(round((stop - start) / step + 0.5 - 1e-9))
    return [round(start + i * step, 12) for i in range(n) if (start + i * step < stop if step > 0 else start + i * step > stop)]


def _find_axes(node, path, where, out):
    if _is_axis(node):
        out.append((path, _axis_values(node, f"{where}{fmt_loc(path) and '.' + fmt_loc(path) if path else ''}")))
    elif isinstance(node, dict):
        for k, v in node.items():
            _find_axes(v, path + [k], where, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _find_axes(v, path + [i], where, out)


def _set(node, path, value):
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def value_at(cell: Cell, path: list):
    """What ``cell`` used at a sweep axis's ``path`` (["recipe", "optimizer", "lr"], ["treatments", 0, "p"]),
    defaults included; a layer or other named table as its name; None where the cell has no such place."""
    node: Any = {"recipe": cell.recipe.model_dump(mode="json"),
                 "treatments": [t.model_dump(mode="json") for t in cell.treatments]}
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node["name"] if isinstance(node, dict) and "name" in node else node


def _labels(paths: list[list]) -> list[str]:
    """Short axis labels: the last key, or more of the path where two would clash."""
    labels = [fmt_loc(p[-2:]) if isinstance(p[-1], int) and len(p) > 1 else str(p[-1]) for p in paths]  # layers[2]
    for depth in range(2, 6):
        if len(set(labels)) == len(labels):
            break
        labels = [fmt_loc(p[-depth:]) if labels.count(lab) > 1 else lab for p, lab in zip(paths, labels)]
    return labels


def cell_hash(config: dict) -> tuple[str, str]:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


def parse_study(text: str, path: str = "<study>", data_override: str | None = None,
                profile: str | None = None, base_dir: Path | None = None, seeds_now: int | None = None,
                frozen: dict | None = None, root: Path | None = None) -> Study:
    """Parse and validate a study; ``profile`` applies ``[profiles.NAME]`` (recipe and seeds overrides);
    ``seeds_now``: an adaptive study's current round (its first seeds_now seeds; default its min).
    ``frozen`` (with the study folder ``root``): the plugins' stored sources and the data set's identity
    as its cells ran (``snapshot.freeze``), read instead of the live files.
    Plugins named by a relative path are found in ``base_dir`` (default: the study file's folder)."""
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
    raw = _apply_profile(raw, profile, where)
    base_dir = base_dir or (Path(path).parent if Path(path).is_file() else Path.cwd())
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise SpecError(f"{where}: plugins: must be a list of Python files or module names, e.g. [\"mymodels.py\"]")
    entries = list(plugins)
    plugins = [load_plugins.resolve(p, base_dir) for p in plugins]
    if frozen:  # reading a study folder: its plugins as the cells ran, whatever became of the live files
        plugins = [str(root / frozen["plugins"][e]) if e in frozen.get("plugins", {}) else p
                   for e, p in zip(entries, plugins)]
    load_plugins.load(plugins, f"{where}: plugins")
    metrics = _own_metrics(raw, plugins)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{where}: name: missing or empty; give the study a name (a string)")
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise SpecError(f"{where}: name: {echo(name)} is not allowed; a study name is 1-100 letters, digits, spaces "
                        "and . _ - + (it names the run folder: no path separators or control characters)")
    data = data_override or raw.get("data")
    if isinstance(data, dict) and set(data) == {"path"}:
        data = data["path"]
    if not isinstance(data, str) or not data:
        raise SpecError(f"{where}: data: missing; a registered data set ({', '.join(_dataset_names())}), or the "
                        "path of your .npz file or image folder")
    if frozen and frozen.get("data"):  # the data set's identity as the cells ran: no file needs to exist
        dspec = spec_from_json(frozen["data"])
        data = dspec.key
    else:
        data = data_key(data, Path.cwd() if data_override else base_dir)
        try:
            dspec = get_spec(data)
        except PlaceError:
            raise  # the data is fine, the place is not (an unreadable file): exit 1, as such
        except PetriError as e:
            raise SpecError(f"{where}: data: {e}") from None
    seeds = raw.get("seeds", 1)
    adaptive = crossing = None
    if isinstance(seeds, dict) and is_crossing(seeds):  # crossed sources: places numbered 0.. (crossing.py)
        crossing = parse_crossing(seeds, where, MAX_SEEDS, MAX_SEED)
        seeds = math.prod(len(v) for v in crossing.values())
        if seeds > MAX_SEEDS:
            raise SpecError(f"{where}: seeds: {seeds:,} combinations of seeds; at most {MAX_SEEDS:,} per variant")
    elif isinstance(seeds, dict) and not set(seeds) <= ADAPTIVE_KEYS:
        raise SpecError(f"{where}: seeds: {echo(sorted(set(seeds) - ADAPTIVE_KEYS)[0])} is not allowed "
                        f"here; a table of seeds either crosses random sources {{ init = 5, order = 5 }} (sources: "
                        f"{', '.join(SOURCES)}, rest) or is adaptive {{ min = 3, max = 30 }} (min, max, step, until)")
    elif isinstance(seeds, dict):  # adaptive: the round's seeds (seeds_now), min at first
        analysis_raw = raw.get("analysis") if isinstance(raw.get("analysis"), dict) else {}
        adaptive = parse_adaptive(seeds, where, MAX_SEEDS, is_fraction(str(analysis_raw.get("metric", "test_acc"))))
        seeds = min(max(seeds_now or adaptive.min, adaptive.min), adaptive.max)
    if isinstance(seeds, bool) or not (isinstance(seeds, int) and 1 <= seeds <= MAX_SEEDS or isinstance(seeds, list)
                                       and 0 < len(seeds) <= MAX_SEEDS and all(isinstance(s, int) and not isinstance(
                                           s, bool) and 0 <= s <= MAX_SEED for s in seeds)):
        raise SpecError(f"{where}: seeds: must be a count 1..{MAX_SEEDS:,}, a list of up to {MAX_SEEDS:,} integers "
                        f"0..{MAX_SEED}, a table of crossed random sources {{ init = 5, order = 5 }} (sources: "
                        f"{', '.join(SOURCES)}, rest), or an adaptive table {{ min = 3, max = 30 }} (got {echo(seeds)})")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(dict.fromkeys(seeds))
    base = raw.get("recipe")
    if not isinstance(base, dict):
        raise SpecError(f"{where}: recipe: missing or not a table; a table with at least model")
    networks = _networks(raw.get("networks"), where)
    base = _use_networks(base, networks)
    variants = raw.get("variants") or {}
    if isinstance(variants, dict) and networks:
        variants = {k: v | {"recipe": _use_networks(v["recipe"], networks)} if isinstance(v, dict) and
                    "recipe" in v else v for k, v in variants.items()}
    if not isinstance(variants, dict) or not variants:
        raise SpecError(f"{where}: variants: none defined; add at least [variants.<name>]")
    baseline = raw.get("baseline", next(iter(variants)))
    if not isinstance(baseline, str) or baseline not in variants:
        raise SpecError(f"{where}: baseline: {echo(baseline)} is not a variant; variants: {', '.join(variants)}")
    _count_cells(base, variants, adaptive.max if adaptive else len(seeds), where)

    cells: list[Cell] = []
    places = combinations(crossing) if crossing else None
    axis_paths: dict[str, list] = {}
    errors: list[str] = []  # every variant is checked: a file's mistakes are reported together (a mistake in
    for vname, v in variants.items():  # the shared [recipe] once, whichever variants meet it)
        try:
            cells += _variant_cells(vname, v, where, base, data, dspec, frozen, seeds, places, crossing, axis_paths,
                                    networks, metrics)
        except SpecError as e:
            errors += e.parts
    if errors:
        raise SpecError(errors)
    study = Study(name, dspec if frozen else data, seeds, baseline, variants, base, text, str(path), cells)
    study.plugin_entries = entries
    study.baseline_point, study.warnings = _baseline_point(raw.get("baseline_point"), baseline, cells, where)
    study.profile, study.data_override, study.plugins = profile, data_override, plugins
    study.analysis = parse_analysis(raw.get("analysis"), variants, where, len(dspec.classes))
    study.adaptive, study.crossing, study.axes = adaptive, crossing, axis_paths
    if adaptive:
        study.analysis.looks = adaptive.looks
    study.keep_weights = raw.get("keep_weights", True)
    if not isinstance(study.keep_weights, bool):
        raise SpecError(f"{where}: keep_weights: must be true or false (got {echo(study.keep_weights)})")
    return study


_NAME = re.compile(r"[^\W_][\w .+-]{0,99}")  # letters of any script, digits, space . _ + - (a folder name)


def _own_metrics(raw: dict, plugins: list[str]) -> dict[str, str]:
    """The users' metrics a study's cells record -> their code: what its plugins register and the
    metric it compares (``[analysis] metric``, also one registered from a notebook)."""
    analysis = raw.get("analysis") if isinstance(raw.get("analysis"), dict) else {}
    named = [analysis["metric"]] if isinstance(analysis.get("metric"), str) else []
    return user_metrics([*load_plugins.metrics(plugins), *named])


def _variant_cells(vname: str, v, where: str, base: dict, data, dspec, frozen, seeds: list[int], places,
                   crossing, axis_paths: dict, networks: dict, metrics: dict[str, str]) -> list[Cell]:
    """One variant's cells (each sweep point × seed), validated; errors name the variant's field."""
    cells: list[Cell] = []
    vwhere = f"{where}: variants.{vname}"
    if not isinstance(v, dict):
        raise SpecError(f"{vwhere}: must be a table")
    extra = set(v) - {"treatments", "recipe", "description"}
    if extra:
        raise SpecError(f"{vwhere}: unknown field {echo(sorted(extra)[0])}; allowed: treatments, recipe, description")
    if not isinstance(v.get("recipe", {}), dict):
        raise SpecError(f"{vwhere}.recipe: must be a table of recipe overrides (got {echo(v['recipe'])})")
    treatments = v.get("treatments", [])
    if not isinstance(treatments, list) or not all(isinstance(t, (dict, str)) for t in treatments):
        raise SpecError(f"{vwhere}.treatments: must be a list of treatments like \"invert\" or "
                        f"{{ name = \"sparsify\", threshold = 0.5 }}")
    try:
        tree = {"recipe": _merge(base, v.get("recipe", {})), "treatments": treatments}
    except SpecError as e:
        raise SpecError(f"{vwhere}.recipe.{e}") from None
    if "model" in tree["recipe"]:
        tree["recipe"]["model"] = _model_table(tree["recipe"]["model"])
    axes: list = []
    try:
        _find_axes(tree, [], vwhere, axes)
    except SpecError as e:
        raise _blame(e, vwhere, where, v.get("recipe", {})) from None
    labels = _labels([p for p, _ in axes])
    for label, (p, _) in zip(labels, axes):
        axis_paths.setdefault(label, p)
    for combo in itertools.product(*[vals for _, vals in axes]):
        resolved = copy.deepcopy(tree)
        for (p, _), val in zip(axes, combo):
            _set(resolved, p, val)
        mistakes: list[str] = []  # the recipe's and the treatments' together
        try:
            recipe = recipe_from_dict(_use_networks(resolved["recipe"], networks), f"{vwhere}.recipe")
            _check_sizes(recipe, dspec, vwhere)
            recipe.model.check(dspec.shape, len(dspec.classes), f"{vwhere}.recipe.model")
        except SpecError as e:
            mistakes += _blame(e, vwhere, where, v.get("recipe", {})).parts
        ts = []
        for i, t in enumerate(resolved["treatments"]):
            try:
                ts.append(parse_treatment(t, f"{vwhere}.treatments[{i}]"))
                ts[-1].check(dspec.shape)
            except SpecError as e:
                mistakes += e.parts
            except ValueError as e:
                mistakes.append(f"{vwhere}.treatments[{i}] ({ts[-1].name}): {e}")
        if mistakes:
            raise SpecError(mistakes)
        ts = tuple(ts)
        _check_machine(recipe, dspec, vwhere)
        point = tuple(zip(labels, combo))
        used = recipe.random_sources()
        for seed in seeds:
            own = places[seed] if crossing else None
            h, config = cell_hash(_config(data, dspec, recipe, ts, config_seed(own, used) if own else seed, metrics))
            cells.append(Cell(vname, point, seed, recipe, ts, dspec if frozen else data, h, config, own, tuple(metrics)))
    return cells


def _blame(e: SpecError, vwhere: str, where: str, overrides: dict) -> SpecError:
    """An error in a variant's merged recipe, placed where the user wrote the field: the top-level
    [recipe] when the variant does not override it."""
    prefix, out = f"{vwhere}.recipe", []
    for msg in e.parts:
        key = re.match(r"\.(\w+)", msg[len(prefix):]) if msg.startswith(prefix) else None
        out.append(msg if key is None or key.group(1) in overrides else f"{where}: recipe{msg[len(prefix):]}")
    return type(e)(out)


def _count_cells(base: dict, variants: dict, n_seeds: int, where: str) -> None:
    """Refuse a study over MAX_CELLS before building any cell: the count is the product of each
    variant's axis lengths (computed, not enumerated: a float range with a tiny step is counted too)."""
    total = 0
    for vname, v in variants.items():
        if not isinstance(v, dict):
            continue
        over = v.get("recipe", {})
        try:
            tree = {"recipe": _merge(base, over if isinstance(over, dict) else {}), "treatments": v.get("treatments", [])}
        except SpecError:
            continue  # (the variant's own check says what is wrong)
        n = 1
        for length in _axis_lengths(tree, f"{where}: variants.{vname}"):
            n *= length
            if n * n_seeds > MAX_CELLS:
                break
        total += n * n_seeds
        if total > MAX_CELLS:
            raise SpecError(f"{where}: variants.{vname}: the study has over {MAX_CELLS:,} cells (at least {total:,} with "
                            f"{n_seeds} seeds); split it into smaller studies, or sweep fewer values")


def _axis_lengths(node, where: str):
    if _is_axis(node):
        yield _axis_len(node, where)
    elif isinstance(node, dict):
        for v in node.values():
            yield from _axis_lengths(v, where)
    elif isinstance(node, list):
        for v in node:
            yield from _axis_lengths(v, where)


def _axis_len(v: dict, where: str) -> int:
    if "values" in v:
        return len(v["values"]) if isinstance(v["values"], list) else 1
    r = v["range"]
    if not isinstance(r, list) or len(r) not in (2, 3) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in r):
        raise SpecError(f"{where}: range must be [start, stop] or [start, stop, step] with finite numbers (got {echo(r)})")
    start, stop, step = (r + [1])[:3]
    if step == 0:
        raise SpecError(f"{where}: range {echo(r)}: step must not be 0")
    n = (stop - start) / step
    return max(0, math.ceil(n)) if math.isfinite(n) and n < 10 * MAX_CELLS else 10 * MAX_CELLS


def _baseline_point(bp, baseline: str, cells: list[Cell], where: str) -> tuple[dict | str | None, list[str]]:
    """The reference point of a swept baseline, checked against its axes; a warning when its points are
    not compared for want of one (a study of one variant at one point compares nothing, and says nothing:
    it is a study of that variant's noise)."""
    points = list(dict.fromkeys(c.point for c in cells if c.variant == baseline))
    axes = [k for k, _ in points[0]] if points else []
    if bp is None:
        if len(points) > 1:
            return None, [f"{where}: baseline {baseline!r} is a sweep of {len(points)} points and no baseline_point is "
                          "set, so nothing is compared; set baseline_point = { " + ", ".join(f"{a} = ..." for a in axes)
                          + ' } or baseline_point = "best"']
        return None, []
    if bp == "best":
        if any(not c.recipe.val_size for c in cells if c.variant == baseline):
            raise SpecError(f"{where}: baseline_point = \"best\" would choose the reference on the test set and then "
                            "test every other point against it on the same images (every Δ biased); add val_size to "
                            f"{baseline!r}'s recipe (e.g. val_size = 5000: the best point is then chosen on validation "
                            "accuracy), or name the point: baseline_point = { "
                            + ", ".join(f"{a} = ..." for a in axes) + " }")
        return bp, []
    if not isinstance(bp, dict):
        raise SpecError(f"{where}: baseline_point: a table of {baseline!r}'s sweep values, e.g. "
                        "{ " + ", ".join(f"{a} = ..." for a in axes) + ' }, or "best" (got ' + echo(bp) + ")")
    if set(bp) != set(axes):
        raise SpecError(f"{where}: baseline_point: {baseline!r} sweeps {', '.join(axes) or 'nothing'}; give a value "
                        f"for each (got {', '.join(bp) or 'none'})")
    match = [p for p in points if all(_same_value(dict(p)[k], v) for k, v in bp.items())]
    if not match:
        values = "; ".join(f"{a}: {', '.join(str(v) for v in dict.fromkeys(dict(p)[a] for p in points))}" for a in axes)
        raise SpecError(f"{where}: baseline_point: no point of {baseline!r} has " +
                        ", ".join(f"{k}={v}" for k, v in bp.items()) + f"; its points have {values}")
    return dict(match[0]), []


def _same_value(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b


def _apply_profile(raw: dict, profile: str | None, where: str) -> dict:
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
        out["recipe"] = _merge(raw["recipe"], chosen["recipe"])
    if "seeds" in chosen:
        out["seeds"] = chosen["seeds"]
    return out


def _config(data, dspec, recipe: Recipe, ts, seed, metrics: dict[str, str]) -> dict:
    r = canonical(recipe)
    for unlearned in ("device", "eval_batch_size"):  # neither changes what is learned
        r.pop(unlearned, None)
    # a user's data set is its content (whatever its file is called or where it lies)
    config = {"data": "user" if dspec.source else data, "data_md5": dspec.identity, "recipe": r,
              "treatments": [canonical(t) for t in ts], "seed": seed, "semantics": SEMANTICS}
    if recipe.model.code_id():  # a user's module: its source is part of what the cell is
        config["model_code"] = recipe.model.code_id()
    if any(t.code for t in ts):  # a user's treatment: likewise
        config["treatment_code"] = [t.code for t in ts]
    if metrics:  # users' metrics the cell records: their code makes its numbers too
        config["metric_code"] = metrics
    return config


def _check_machine(recipe: Recipe, dspec, where: str) -> None:
    """What this machine cannot do, said before anything trains: a device it lacks, a network whose
    parameters alone would not fit."""
    import torch

    if recipe.device == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"{where}.recipe.device: \"cuda\", but this machine has no CUDA device (torch "
                        f"{torch.__version__}); \"auto\" would pick the CPU here")
    params = recipe.model.n_params(dspec.shape, len(dspec.classes))
    need = 4 * params * 4  # float32 weights, gradients, two optimiser moments
    try:
        import os

        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = MAX_MEMBER_BYTES
    if need > min(MAX_MEMBER_BYTES, ram // 2):
        raise SpecError(f"{where}.recipe.model: {params:,} parameters per member need about {need / 2**30:,.1f} GiB "
                        f"(weights, gradients, optimiser state); at most {min(MAX_MEMBER_BYTES, ram // 2) / 2**30:,.1f} "
                        f"GiB per member here (this machine has {ram / 2**30:,.0f} GiB)")


def _check_sizes(recipe: Recipe, dspec, where):
    n_train = (recipe.train_size or dspec.n_train - recipe.val_size)
    if n_train + recipe.val_size > dspec.n_train:
        raise SpecError(f"{where}.recipe.train_size: train_size + val_size = {n_train + recipe.val_size} "
                        f"exceeds the {dspec.n_train} training images of {dspec.name}")
    sample = recipe.data_sample
    if sample and not sample.replace and (sample.size or n_train) >= n_train:
        raise SpecError(f"{where}.recipe.data_sample.size: a sample without replacement of {sample.size or n_train} "
                        f"of the {n_train} training images is every image; allowed: 1..{n_train - 1}, or "
                        "replace = true (a bootstrap sample)")
    n_train = recipe.epoch_images(dspec.n_train)
    if recipe.batch_size > n_train:
        raise SpecError(f"{where}.recipe.batch_size: {recipe.batch_size} exceeds the {n_train} training images; "
                        f"allowed: 1..{n_train}")
    if recipe.test_size and recipe.test_size > dspec.n_test:
        raise SpecError(f"{where}.recipe.test_size: {recipe.test_size} exceeds the {dspec.n_test} test images")


def data_key(ref: str, base: Path) -> str:
    """A registered name as it is; a user's file or folder as its absolute path (relative to ``base``)."""
    from ..data import is_registered

    p = Path(ref).expanduser()
    full = p if p.is_absolute() else base / p
    if is_registered(ref) or not ("/" in ref or "\\" in ref or ref.endswith(".npz") or full.exists()):
        return ref  # a name (registered, or unknown: get_spec says which are known)
    return str(full.resolve())


def _dataset_names():
    from ..data import DATASETS

    return list(DATASETS)


MAX_STUDY_BYTES = 16 << 20  # a study file is text a person writes: anything larger is not one


def load_study(path: str | Path, data_override: str | None = None, profile: str | None = None) -> Study:
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
    return parse_study(text, str(p), data_override, profile)
