"""What a run will do before it does it: the plan (the unfinished cells, packed; interrupted ones from
their checkpoints) and, for ``--dry-run``, the plan in lines: cells, packs, memory, disk and time.

Memory and disk come from one model of what a member holds (``train.memory``); time from the rates
measured on this machine (``study.estimate``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..data import get_spec
from ..errors import StoreError
from ..train.memory import checkpoint_bytes, member_bytes, weights_bytes
from . import cellstore
from .ledger import FINISHED, Ledger
from .packing import Pack, make_packs, split_by
from .spec import Study, at_round
from .timing import duration


@dataclass
class Plan:
    todo: list
    packs: list[Pack]
    skipped: int
    resumed: int = 0  # cells continuing from a checkpoint
    within: int = 0  # ... of them from one taken within an epoch


def plan(study: Study, ledger: Ledger | None, max_members: int | None, exclude: set[str] = frozenset()) -> Plan:
    """What is left to train, packed; an interrupted cell continues from its latest valid checkpoint.
    ``exclude``: cells to count as finished (an adaptive study's earlier rounds, in a dry run)."""
    statuses = ledger.statuses() if ledger else {}
    distinct = list({c.hash: c for c in reversed(study.cells)}.values())[::-1]  # a cell in several places: once
    todo = [c for c in distinct if statuses.get(c.hash) not in FINISHED and c.hash not in exclude]
    states = resume_points(ledger.dir, [c for c in todo if statuses.get(c.hash) in ("running", "failed", "interrupted")]) \
        if ledger else {}
    return Plan(todo, make_packs(todo, max_members, states=states), len(distinct) - len(todo), len(states),
                sum(1 for s in states.values() if s.inner))


def resume_points(root: Path, cells: list) -> dict:
    """Cell hash -> the state it continues from (its latest valid checkpoint), for those that have one."""
    states = {c.hash: cellstore.latest_checkpoint(root, c.hash, c.recipe.epochs) for c in cells}
    return {h: state for h, state in states.items() if state is not None}


def dry_run(study: Study, out: Path, max_members: int | None = None, changed: bool = False) -> list[str]:
    """What ``run_study`` would do, in lines (``describe``), refusing where it would refuse; reads an
    existing ledger (to skip finished cells), never writes one."""
    from ..data import missing_message
    from .lock import describe as holder_text
    from .lock import holder
    from .snapshot import check_changes

    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out}: is a file; a study directory is a folder (petri creates it)")
    ledger = Ledger(out) if (out / "petri.sqlite").is_file() else None
    try:
        if ledger and ledger.study_name() not in (None, study.name):
            raise StoreError(f"{ledger.path}: this ledger belongs to study {ledger.study_name()!r}, not "
                             f"{study.name!r}; use another --out directory")
        if ledger:
            check_changes(study, ledger, changed)
        first = plan(study, ledger, max_members)
        worst = None
        if study.adaptive:  # every round a run of its own, training the seeds it adds
            packs, seen, most = list(first.packs), {c.hash for c in study.cells}, study
            for n in study.adaptive.rounds()[1:]:
                most = at_round(study, n)
                packs += plan(most, ledger, max_members, exclude=seen).packs
                seen |= {c.hash for c in most.cells}
            worst = (most, packs)
        lines = describe(study, first, out, worst)
    finally:
        if ledger:
            ledger.close()
    if (who := holder(out)) is not None:
        lines.append(f"  {holder_text(who)} is training in {out} now: `petri run` would stop at once (one run per folder)")
    missing = missing_message(get_spec(study.data))
    return lines + ([f"  data: {missing}"] if missing else [])


def shape_text(study: Study) -> str:
    """"24 cells (2 variants with 8 sweep points × 3 seeds)", and how many places share a cell."""
    points = Counter(c.variant for c in study.cells if c.seed == study.seeds[0])
    total, S = sum(points.values()), len(study.seeds)
    what = (f"{len(points)} variant{'s' * (len(points) != 1)} × {S} seed{'s' * (S != 1)}" if total == len(points) else
            f"{len(points)} variant{'s' * (len(points) != 1)} with {total} sweep points × {S} seed{'s' * (S != 1)}")
    distinct = len({c.hash for c in study.cells})
    shared = f"; {len(study.cells) - distinct} of them the same cell as another place (trained once)" \
        if distinct < len(study.cells) else ""
    return f"{len(study.cells)} cells ({what}{shared})"


def describe(study: Study, p: Plan, out: Path, worst: tuple[Study, list[Pack]] | None = None) -> list[str]:
    """Lines for --dry-run: cells, packs, memory, disk, and the time this machine will take
    (``study.estimate``: measured rates of each pack shape, cached per machine). ``worst``: an adaptive
    study at its most seeds and the packs of all its rounds, priced beside its first round."""
    from .estimate import estimate

    lines = [f"{study.name}: {shape_text(study)}; {p.skipped} already finished, {len(p.todo)} to train in "
             f"{plural(len(p.packs), 'pack')}"]
    est = estimate(study, p.packs, out) if p.packs else None
    total_images = 0
    reasons = split_by(p.packs)
    for i, pack in enumerate(p.packs, 1):
        r = pack.recipe
        spec = get_spec(pack.cells[0].data)
        mem = member_bytes(r, spec) * len(pack.cells)
        images = r.epoch_images(spec.n_train) * (r.epochs - pack.start) * len(pack.cells)
        total_images += images
        rate = est.rates.get(id(pack)) if est else None
        lines.append(f"  pack {i}: K={len(pack.cells)} {r.model.name} batch {r.batch_size} × {r.epochs - pack.start} "
                     f"epochs, ~{mem / 2**20:,.0f} MiB, variants {', '.join(sorted({c.variant for c in pack.cells}))}"
                     + (f", ~{rate:,.0f} img/s" if rate else "") + (f" — its own pack: {reasons[i - 1]}" if reasons[i - 1] else ""))
    if est is not None:
        stops = " (the epoch budget: early stopping may end cells sooner)" if any(
            pk.recipe.early_stopping for pk in p.packs) else ""
        head = f"first round ({len(study.seeds)} seeds)" if worst else f"{total_images:,} training images in all"
        lines.append(f"  {head}: about {_split_text(est)} on this machine{stops}")
        if worst:
            w = estimate(worst[0], worst[1], out)
            looks = len(study.adaptive.rounds())
            if w is not None:
                w.add("start-up and packing", (looks - 1) * LOOK_SECONDS)
                lines.append(f"  at most {len(worst[0].seeds)} seeds ({looks} looks, each a run): about {_split_text(w)}")
        lines.append(f"  (pack shapes timed now: {est.measured}, from this machine's cache: {est.cached})")
    elif p.packs:
        lines.append(f"  {total_images:,} training images in all (no time estimate: the data set is not here)")
    weights, peak = disk_needed(study, p)
    kept = predictions_needed(p)
    lines.append(f"  disk: {human_bytes(weights)} of trained weights" + (" (keep_weights = false: none)" if not
                 study.keep_weights else "") + f", {human_bytes(kept)} of per-example predictions, up to "
                 f"{human_bytes(peak)} of checkpoints while a pack trains")
    return lines


LOOK_SECONDS = 1.0  # an adaptive study's look after a round: the ledger read, the family analysed (this machine class)


def _split_text(est) -> str:
    """ "3.2 min (training 1.9 min, evaluation 40 s, ...)" """
    parts = ", ".join(f"{name} {duration(s)}" for name, s in est.parts.items())
    return f"{duration(est.total)} ({parts})"


def disk_needed(study: Study, p: Plan) -> tuple[int, int]:
    """Bytes of final (and best) weights the cells to train will keep, and of the largest pack's
    checkpoints (removed when its cells finish)."""
    weights, peak = 0, 0
    for pack in p.packs:
        spec = get_spec(pack.cells[0].data)
        if study.keep_weights:
            weights += weights_bytes(pack.recipe, spec) * len(pack.cells)
        peak = max(peak, checkpoint_bytes(pack.recipe, spec) * len(pack.cells))
    return weights, peak


def predictions_needed(p: Plan) -> int:
    """Bytes of the per-example predictions the cells to train will keep: a byte an image (two beyond 256
    classes) of the test and validation splits, predicted and true, and again at the best epoch with early
    stopping (cellstore)."""
    total = 0
    for pack in p.packs:
        spec = get_spec(pack.cells[0].data)
        r = pack.recipe
        images = (r.test_size or spec.n_test) + (r.val_size or 0)
        width = 1 if len(spec.classes) <= 256 else 2
        splits = 2 * (1 + bool(r.val_size)) + 2 * (r.early_stopping is not None)  # tensors in a cell's file
        total += (width * images * (2 + (r.early_stopping is not None)) + HEADER * splits) * len(pack.cells)
    return total


HEADER = 100  # bytes of a safetensors header per tensor (its name, dtype, shape, offsets, the metadata), about


def plural(n: int, word: str) -> str:
    """ "1 cell", "2 cells"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def human_bytes(n: int) -> str:
    """1234567 -> "1.2 MB" (decimal units, as disk sizes are sold)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"
