"""What a study will take on this machine: the time a dry run states.

The estimate adds, for every pack of the plan, what ``train.cost.measure`` timed for its shape here
(building the pack; an optimiser step; an evaluated image; capturing the members' states) times
what the pack will do (steps, evaluated images per epoch by ``eval_every``, a checkpoint per epoch
written at this disk's measured rate), and for the run the process's own start-up (this dry run's
age: interpreter, imports, the study file), loading the data and the report. Early stopping may end
cells sooner: the estimate is for the epoch budget. An adaptive study is priced for its first round
and for its most seeds (each round a run of its own).

Measurements are cached per machine (``rates.json`` in petri's cache folder, keyed by
``machine.machine()``, the threads, the pack's shape and size and its members' kinds of treatment), so a
second dry run of a study measures nothing; entries older than ``MAX_AGE``, and those taken while the
machine was oversubscribed (it is quieter now), are measured again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..data import get_spec
from ..errors import PetriError
from ..machine import machine
from ..train.cost import PackCost
from ..train.shard import TRAIN_EVAL
from .packing import Pack, pack_key

MAX_AGE = 30 * 86400  # s: a cached measurement older than this is taken again
MEASURED_BATCH = 512  # images per member: larger batches are timed at this size, their step scaled
# The report: figures and tables, measured on this machine class (benchmarks/README.md) as a fixed part
# and a part per place (variant, point, seed).
REPORT_FIXED, REPORT_PER_PLACE = 4.0, 0.01  # s, s


@dataclass
class Estimate:
    """Seconds by part; ``measured``: the pack shapes timed now (the rest came from the cache)."""

    parts: dict[str, float] = field(default_factory=dict)
    measured: int = 0
    cached: int = 0
    rates: dict[int, float] = field(default_factory=dict)  # id(pack) -> training images/s of the whole pack

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def add(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + seconds


def cache_file() -> Path:
    from ..data.cache import cache_dir

    return cache_dir().parent / "rates.json"


def _key(pack: Pack) -> str:
    treatments = sorted({json.dumps([t.name for t in c.treatments]) for c in pack.cells})  # kinds, not parameters
    return json.dumps([machine(), torch.get_num_threads(), pack_key(pack.cells[0]), len(pack.cells), treatments])


def _read_cache() -> dict:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(path)
    except OSError:  # a read-only cache: the next dry run measures again
        pass


def _load() -> float:
    """The machine's load average over the last minute per core (0 where the system does not say)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 0.0


def _fresh(hit: dict | None) -> bool:
    """Whether a cached measurement may be used: younger than ``MAX_AGE``, and not taken while more
    processes wanted the cores than there were (load per core above 1) unless the machine is as busy now."""
    if not hit or time.time() - hit["at"] >= MAX_AGE:
        return False
    measured_under = hit.get("load", 0.0)
    return measured_under <= 1.0 or _load() >= measured_under


def pack_cost(pack: Pack, ds, cache: dict) -> tuple[PackCost, bool]:
    """(the pack's measured cost, whether it was measured now)."""
    from ..train.cost import measure

    key = _key(pack)
    hit = cache.get(key)
    if _fresh(hit):
        return PackCost(**hit["cost"]), False
    r = pack.recipe
    # A batch above MEASURED_BATCH images is timed at that size and its step scaled by the batch's ratio
    # (at batch 5,000 two warm-up steps of a CNN pack alone would take most of a minute).
    small = r.model_copy(update={"batch_size": MEASURED_BATCH}) if r.batch_size > MEASURED_BATCH else r
    cost = measure(ds, small, pack.members())
    if small is not r:
        cost = replace(cost, step=cost.step * r.batch_size / MEASURED_BATCH)
    cache[key] = {"at": time.time(), "load": _load(), "cost": cost.to_json()}
    return cost, True


@dataclass(frozen=True)
class Writes:
    """How this machine writes a cell file (safetensors, checksum, fsync, rename): bytes per second of a
    large one, and the seconds any one costs (a finished cell writes two: weights and predictions)."""

    rate: float
    latency: float


def write_rate(cache: dict, near: Path) -> Writes:
    from .cellstore import save

    key = json.dumps([machine(), "writes"])
    hit = cache.get(key)
    if hit and time.time() - hit["at"] < MAX_AGE:
        return Writes(hit["rate"], hit["latency"])
    place = next((p for p in [near, *near.parents] if p.is_dir()), Path(tempfile.gettempdir()))
    try:
        with tempfile.TemporaryDirectory(dir=place) as tmp:
            t = time.perf_counter()
            size = save(Path(tmp) / "probe.safetensors", {"x": torch.zeros(8 << 20)}, {})  # 32 MB
            rate = size / (time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(4):
                save(Path(tmp) / f"small{i}.safetensors", {"x": torch.zeros(16)}, {})
            latency = (time.perf_counter() - t) / 4
    except (OSError, PetriError):
        return Writes(200e6, 0.01)  # (an unwritable place: the run would say so)
    cache[key] = {"at": time.time(), "rate": rate, "latency": latency}
    return Writes(rate, latency)


def process_age() -> float:
    """Seconds since this process started (interpreter, imports, parsing the study): what a run spends
    before it trains, too. 0 where /proc is missing."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return max(0.0, float(f.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return 0.0


def pack_seconds(pack: Pack, cost: PackCost, write: Writes) -> dict[str, float]:
    """The pack's seconds by part from its measured cost."""
    r = pack.recipe
    spec = get_spec(pack.cells[0].data)
    n = r.epoch_images(spec.n_train)
    split_n = (r.train_size or spec.n_train - r.val_size)  # the training split (its first images are evaluated)
    steps = math.ceil(n / r.batch_size)
    test_n = r.test_size or spec.n_test
    epochs = range(pack.start + 1, r.epochs + 1)
    tested = sum(1 for e in epochs if e % r.eval_every == 0 or e == r.epochs)
    images = len(epochs) * r.val_size + tested * (test_n + min(TRAIN_EVAL, split_n))
    return {"start-up and packing": cost.startup, "training": len(epochs) * steps * cost.step,
            "evaluation": images * cost.eval_image,
            "checkpoints": len(epochs) * (cost.capture + cost.state_bytes / write.rate)
            + len(pack.cells) * 2 * write.latency}  # each finished cell's weights and predictions


def estimate(study, packs: list[Pack], out: Path) -> Estimate | None:
    """The study's seconds on this machine by part (None without its data set here)."""
    from ..data import load

    est = Estimate()
    est.add("start-up and packing", process_age())
    t = time.perf_counter()
    try:
        ds = load(study.data, allow_download=False)
    except PetriError:
        return None
    est.add("start-up and packing", time.perf_counter() - t)
    cache = _read_cache()
    write = write_rate(cache, out)
    for pack in packs:
        cost, now = pack_cost(pack, ds, cache)
        est.measured += now
        est.cached += not now
        for part, seconds in pack_seconds(pack, cost, write).items():
            est.add(part, seconds)
        est.rates[id(pack)] = len(pack.cells) * pack.recipe.batch_size / cost.step
    _write_cache(cache)
    est.add("report", REPORT_FIXED + REPORT_PER_PLACE * len(study.cells))
    return est
