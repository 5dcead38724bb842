"""Study files: TOML -> a validated, frozen study -> cells.

A study is a base recipe, named variants (treatments and recipe overrides) and seeds. Any parameter
written ``{ values = [...] }`` or ``{ range = [start, stop, step] }`` is a sweep axis (``sweeps.py``);
axes multiply. A cell is (variant, sweep point, seed); its identity is the hash of its resolved config.

Parsing goes by concern: the file's text and top-level fields (``decode.py``), the study's plugins
imported before the parser reads what they registered (``plugins.py``), the seeds in any form
(``seeds.py``), named networks (``networks.py``), each variant's recipe merged and validated
(``recipes.py``), its sweeps, and the checks against the data set and this machine (``checks.py``).
Every mistake of a file is said at once, one line naming the file and the field.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..rng import Seeds
from ..specs import canonical, echo
from ..train.metrics import is_fraction, user_metrics
from ..train.recipe import Recipe
from ..treatments import parse_treatment
from .checks import baseline_point, blame, check_machine, check_sizes
from .crossing import config_seed
from .decode import dataset, decode, keep_weights, plugin_entries, read, study_name
from .networks import parse_networks, use_networks
from .plugins import Plugins, import_plugins
from .questions import Analysis, parse_analysis
from .recipes import merge, model_table, recipe_from_dict
from .seeds import Adaptive, Seeding, parse_seeds
from .sweeps import axis_length, axis_values, axis_where, count_cells, find_axes, labels, set_at

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
VARIANT_KEYS = {"treatments", "recipe", "description"}


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


@dataclass(frozen=True)
class Study:
    """A parsed study, never changed once parsed. ``text`` is the file as written; the profile and data
    override used are kept so that the ledger (and reports) can reconstruct exactly the cells that were run."""

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


def load_study(path: str | Path, data_override: str | None = None, profile: str | None = None) -> Study:
    return parse_study(read(path), str(path), data_override, profile)


def parse_study(text: str, path: str = "<study>", data_override: str | None = None,
                profile: str | None = None, base_dir: Path | None = None, seeds_now: int | None = None,
                frozen: dict | None = None, root: Path | None = None) -> Study:
    """Parse and validate a study; ``profile`` applies ``[profiles.NAME]`` (recipe and seeds overrides);
    ``seeds_now``: an adaptive study's current round (its first seeds_now seeds; default its min).
    ``frozen`` (with the study folder ``root``): the plugins' stored sources and the data set's identity
    as its cells ran (``snapshot.freeze``), read instead of the live files.
    Plugins named by a relative path are found in ``base_dir`` (default: the study file's folder); they
    are imported here, before the study is built from what they registered."""
    raw = decode(text, path, profile)
    where = Path(path).name
    base_dir = base_dir or (Path(path).parent if Path(path).is_file() else Path.cwd())
    plugins = import_plugins(plugin_entries(raw, where), where, base_dir, frozen, root)
    return build_study(raw, text, path, plugins, data_override, profile, base_dir, seeds_now, frozen)


def at_round(study: Study, seeds: int) -> Study:
    """An adaptive study at its round of ``seeds`` seeds (the same file, profile and data)."""
    return parse_study(study.text, study.path, study.data_override, study.profile, None, seeds)


def build_study(raw: dict, text: str, path: str, plugins: Plugins, data_override: str | None = None,
                profile: str | None = None, base_dir: Path | None = None, seeds_now: int | None = None,
                frozen: dict | None = None) -> Study:
    """The study from its decoded fields (``decode``) and its imported ``plugins``."""
    where = Path(path).name
    analysis_raw = raw.get("analysis") if isinstance(raw.get("analysis"), dict) else {}
    named = [analysis_raw["metric"]] if isinstance(analysis_raw.get("metric"), str) else []
    metrics = user_metrics([*plugins.metrics, *named])  # what its cells record: their code is part of them
    name = study_name(raw, where)
    data, dspec = dataset(raw, where, data_override, base_dir or Path.cwd(), frozen)
    seeding = parse_seeds(raw.get("seeds", 1), where, is_fraction(str(analysis_raw.get("metric", "test_acc"))),
                          seeds_now)
    base = raw.get("recipe")
    if not isinstance(base, dict):
        raise SpecError(f"{where}: recipe: missing or not a table; a table with at least model")
    networks = parse_networks(raw.get("networks"), where)
    base = use_networks(base, networks)
    variants = raw.get("variants") or {}
    if isinstance(variants, dict) and networks:
        variants = {k: v | {"recipe": use_networks(v["recipe"], networks)} if isinstance(v, dict) and
                    "recipe" in v else v for k, v in variants.items()}
    if not isinstance(variants, dict) or not variants:
        raise SpecError(f"{where}: variants: none defined; add at least [variants.<name>]")
    baseline = raw.get("baseline", next(iter(variants)))
    if not isinstance(baseline, str) or baseline not in variants:
        raise SpecError(f"{where}: baseline: {echo(baseline)} is not a variant; variants: {', '.join(variants)}")

    trees: dict[str, tuple | SpecError] = {}
    for vname, v in variants.items():
        try:
            trees[vname] = _tree(vname, v, where, base)
        except SpecError as e:
            trees[vname] = e
    count_cells({vname: [n for _, _, n in t[1]] for vname, t in trees.items() if not isinstance(t, SpecError)},
                seeding.most, where)
    cells: list[Cell] = []
    axis_paths: dict[str, list] = {}
    errors: list[str] = []  # every variant is checked: a file's mistakes are reported together (a mistake in
    for vname, tree in trees.items():  # the shared [recipe] once, whichever variants meet it)
        try:
            if isinstance(tree, SpecError):
                raise tree
            cells += _variant_cells(vname, variants[vname], *tree, where, data, dspec, frozen, seeding, axis_paths,
                                    networks, metrics)
        except SpecError as e:
            errors += e.parts
    if errors:
        raise SpecError(errors)
    point, warnings = baseline_point(raw.get("baseline_point"), baseline, cells, where)
    analysis = parse_analysis(raw.get("analysis"), variants, where, len(dspec.classes),
                              looks=seeding.adaptive.looks if seeding.adaptive else 1)
    return Study(name, dspec if frozen else data, seeding.seeds, baseline, variants, base, text, str(path), cells,
                 profile, data_override, plugins.resolved, keep_weights(raw, where), point, warnings, analysis,
                 seeding.adaptive, seeding.crossing, axis_paths, plugins.entries)


def _tree(vname: str, v, where: str, base: dict) -> tuple[dict, list[tuple[list, dict, int]]]:
    """A variant's tree (its merged recipe and its treatments) and its sweep axes (path, axis, length)."""
    vwhere = f"{where}: variants.{vname}"
    if not isinstance(v, dict):
        raise SpecError(f"{vwhere}: must be a table")
    extra = set(v) - VARIANT_KEYS
    if extra:
        raise SpecError(f"{vwhere}: unknown field {echo(sorted(extra)[0])}; allowed: treatments, recipe, description")
    if not isinstance(v.get("recipe", {}), dict):
        raise SpecError(f"{vwhere}.recipe: must be a table of recipe overrides (got {echo(v['recipe'])})")
    treatments = v.get("treatments", [])
    if not isinstance(treatments, list) or not all(isinstance(t, (dict, str)) for t in treatments):
        raise SpecError(f"{vwhere}.treatments: must be a list of treatments like \"invert\" or "
                        f"{{ name = \"sparsify\", threshold = 0.5 }}")
    try:
        tree = {"recipe": merge(base, v.get("recipe", {})), "treatments": treatments}
    except SpecError as e:
        raise SpecError(f"{vwhere}.recipe.{e}") from None
    if "model" in tree["recipe"]:
        tree["recipe"]["model"] = model_table(tree["recipe"]["model"])
    try:
        return tree, [(p, axis, axis_length(axis, axis_where(vwhere, p))) for p, axis in find_axes(tree)]
    except SpecError as e:
        raise blame(e, vwhere, where, v.get("recipe", {})) from None


def _variant_cells(vname: str, v: dict, tree: dict, axes: list, where: str, data, dspec, frozen, seeding: Seeding,
                   axis_paths: dict, networks: dict, metrics: dict[str, str]) -> list[Cell]:
    """One variant's cells (each sweep point × seed), validated; errors name the variant's field."""
    cells: list[Cell] = []
    vwhere = f"{where}: variants.{vname}"
    names = labels([p for p, _, _ in axes])
    for label, (p, _, _) in zip(names, axes):
        axis_paths.setdefault(label, p)
    places = seeding.places()
    for combo in itertools.product(*[axis_values(axis, axis_where(vwhere, p)) for p, axis, _ in axes]):
        resolved = copy.deepcopy(tree)
        for (p, _, _), val in zip(axes, combo):
            set_at(resolved, p, val)
        mistakes: list[str] = []  # the recipe's and the treatments' together
        try:
            recipe = recipe_from_dict(use_networks(resolved["recipe"], networks), f"{vwhere}.recipe")
            check_sizes(recipe, dspec, vwhere)
            recipe.model.check(dspec.shape, len(dspec.classes), f"{vwhere}.recipe.model")
        except SpecError as e:
            mistakes += blame(e, vwhere, where, v.get("recipe", {})).parts
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
        check_machine(recipe, dspec, vwhere)
        point = tuple(zip(names, combo))
        used = recipe.random_sources()
        for seed in seeding.seeds:
            own = places[seed] if places else None
            h, config = cell_hash(_config(data, dspec, recipe, ts, config_seed(own, used) if own else seed, metrics))
            cells.append(Cell(vname, point, seed, recipe, ts, dspec if frozen else data, h, config, own, tuple(metrics)))
    return cells


def cell_hash(config: dict) -> tuple[str, str]:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


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
