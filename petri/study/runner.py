"""Running a study: register cells, train what is missing, write every epoch to the ledger."""

from __future__ import annotations

import json
import math
import platform
import signal
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .. import __version__
from ..data import get_spec
from .snapshot import changes, freeze
from ..data.sources import ensure_files
from ..errors import PetriError, PlaceError, SpecError, StoreError
from ..train.loop import resolve_device
from . import cellstore
from .executors import run_local, run_ray
from .ledger import FINISHED, Ledger
from .lock import RunLock
from .packing import Pack, make_packs, member_bytes, split_by
from .spec import Study
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


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_facts(device: str, executor: str) -> dict:
    return {"petri_version": __version__, "git_commit": _git_commit(), "torch_version": torch.__version__,
            "device": device, "host": platform.node(), "executor": executor}


class _Polite:
    """Ctrl-C and SIGTERM end a run, but never while it writes what a finished epoch needs (its ledger
    rows, then its checkpoints): a signal that arrives then is acted on once the writing is done, so a
    resume recomputes no finished epoch."""

    def __init__(self):
        self.depth, self.pending = 0, False

    def handler(self, signum, frame):
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def writing(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt


CHECKPOINT_MINUTES = 5.0  # within an epoch longer than this, running cells are also checkpointed this often


def run_study(study: Study, out: str | Path, executor: str = "local", address: str | None = None,
              max_members: int | None = None, console: Console | None = None,
              checkpoint_minutes: float = CHECKPOINT_MINUTES, changed: bool = False) -> dict:
    """Train every unfinished cell of ``study`` into ``out``; returns counts by status. Every epoch's
    end is checkpointed, and within a long epoch every ``checkpoint_minutes``. A plugin or data file
    that changed since the folder's finished cells ran stops the run in one line unless ``changed``."""
    if not (isinstance(checkpoint_minutes, (int, float)) and 0 < checkpoint_minutes < math.inf):
        raise SpecError(f"checkpoint_minutes (--checkpoint-minutes): must be a number > 0 (got {checkpoint_minutes!r})")
    console = console or Console(stderr=True)
    spec = get_spec(study.data)
    if spec.source is None:  # the files first: a missing data set stops the run before it starts
        ensure_files(spec)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out}: is a file; a study directory is a folder (petri creates it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PlaceError(f"--out {out}: cannot create the study directory ({e.strerror})") from None
    with RunLock(out):  # one run per directory; the lock dies with the process
        return _run(study, out, executor, address, max_members, console, 60.0 * checkpoint_minutes, changed)


def _run(study: Study, out: Path, executor: str, address: str | None, max_members: int | None,
         console: Console, checkpoint_every: float, changed: bool = False) -> dict:
    ledger = Ledger(out, create=True)
    ledger.claim(study.name)
    check_changes(study, ledger, changed)
    frozen = freeze(study.plugin_entries, study.plugins, get_spec(study.data), out)
    ledger.register(study.cells)
    p = plan(study, ledger, max_members)
    path = str(Path(study.path).resolve()) if Path(study.path).is_file() else None
    if not p.todo:
        console.print(f"{study.name}: all {len(study.cells)} cells already finished in {ledger.path}; nothing to train")
        last = ledger.query("SELECT study_text, profile, data_override, seeds, frozen FROM runs ORDER BY id DESC LIMIT 1")
        if last and (last[0]["study_text"], last[0]["profile"], last[0]["data_override"], last[0]["seeds"],
                     last[0]["frozen"]) != (study.text, study.profile, study.data_override, json.dumps(study.seeds),
                                            json.dumps(frozen)):  # e.g. new questions in [analysis]: shown from now on
            ledger.finish_run(ledger.start_run(run_facts("cpu", executor), study.text, study.profile,
                                               study.data_override, path, study.seeds, frozen), "done")
        ledger.close()
        return {"trained": 0, "skipped": p.skipped}
    device = resolve_device(p.packs[0].recipe.device)
    run_id = ledger.start_run(run_facts(str(device), executor), study.text, study.profile, study.data_override, path,
                              study.seeds, frozen)
    console.print(f"{study.name}: {plural(len(p.todo), 'cell')} to train in {plural(len(p.packs), 'pack')} on {device} "
                  f"({p.skipped} already finished" + (f", {p.resumed} continue from a checkpoint" if p.resumed else "")
                  + (f", {p.within} of them from within an epoch" if p.within else "") + ")",
                  soft_wrap=True)
    written: dict[str, str] = {}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
    task = progress.add_task("starting", total=len(p.todo))
    pack_no = {id(pk): i + 1 for i, pk in enumerate(p.packs)}

    def on_start(pack):
        ledger.start_cells([c.hash for c in pack.cells], run_id, pack.start)
        for c in pack.cells:
            if c.hash not in pack.states:  # from epoch 1: nothing stored before counts
                cellstore.clear(ledger.dir, c.hash)
        progress.update(task, description=f"pack {pack_no[id(pack)]}/{len(p.packs)} (K={len(pack.cells)})")

    polite = _Polite()

    def write(pack, results, epoch=None):
        with polite.writing():
            _write(pack, results, epoch)

    carried: dict[int, float] = {}  # per pack: seconds writing checkpoint files after its latest rows

    def _write(pack, results, epoch=None):
        """Weights of cells that finished, then the ledger (epoch rows and statuses, one transaction),
        then checkpoints of cells still running: a kill between any two steps loses at most the epoch
        in flight, and a cell the ledger calls done has its weights on disk. The seconds spent writing
        these files go to the rows' ``checkpoint_seconds`` (a checkpoint's to the pack's next rows)."""
        t = time.perf_counter()
        rows, finished, finals = [], [], {}
        for cell, r in zip(pack.cells, results):
            for m in r.epochs if epoch is None else r.epochs[-1:]:
                if epoch is None or m["epoch"] == epoch:
                    rows.append((cell.hash, m))
            if r.status != "running" and cell.hash not in written:
                if r.weights is not None and study.keep_weights:
                    cellstore.save_weights(ledger.dir, cell.hash, r.weights, {"epoch": r.epochs[-1]["epoch"] if
                                           r.epochs else None, **network_meta(cell)}, r.best, r.best_epoch)
                if r.predictions is not None:  # (kept whatever keep_weights says: a byte an image)
                    cellstore.save_predictions(ledger.dir, cell.hash, r.predictions,
                                               {"epoch": r.epochs[-1]["epoch"] if r.epochs else None,
                                                "best_epoch": r.best_epoch})
                finished.append((cell.hash, r.status))
                if r.final is not None:
                    finals[cell.hash] = r.final
                written[cell.hash] = r.status
        spent = time.perf_counter() - t + carried.pop(id(pack), 0.0)
        if epoch is not None and rows:  # (the pack's last write repeats every row: nothing is added there)
            for _, m in rows:
                m["checkpoint_seconds"] = (m.get("checkpoint_seconds") or 0.0) + spent / len(rows)
        ledger.record_epoch(rows, finished, finals)
        if epoch is not None:
            t = time.perf_counter()
            _save_states(pack, results)
            carried[id(pack)] = time.perf_counter() - t
        for cell, r in zip(pack.cells, results):
            if r.status != "running":
                cellstore.remove_checkpoints(ledger.dir, cell.hash)
        progress.update(task, completed=len(written))

    def save_states(pack, results):
        """Each running cell's state, as a checkpoint (after an epoch, or within a long one: then
        nothing enters the ledger)."""
        with polite.writing():
            _save_states(pack, results)

    def _save_states(pack, results):
        for cell, r in zip(pack.cells, results):
            if r.status == "running" and r.state is not None:
                cellstore.save_checkpoint(ledger.dir, cell.hash, r.state)
                r.state = None

    def on_epoch(pack, epoch, results):
        write(pack, results, epoch)
        if not console.is_terminal:  # a log, CI, nohup: a line per finished epoch (no live bar there)
            done = [r.epochs[-1] for r in results if r.epochs and r.epochs[-1]["epoch"] == epoch]
            tested = [m["test_acc"] for m in done if m["test_acc"] is not None]  # (recipe.eval_every: not every epoch)
            if tested:
                console.print(f"pack {pack_no[id(pack)]}/{len(p.packs)} epoch {epoch}/{pack.recipe.epochs}: "
                              f"mean test accuracy {100 * sum(tested) / len(tested):.2f} % over "
                              f"{plural(len(tested), 'cell')}", markup=False, highlight=False, soft_wrap=True)
        ips = sum(r.epochs[-1]["images_per_s"] for r in results if r.epochs and r.epochs[-1]["epoch"] == epoch)
        progress.update(task, description=f"pack {pack_no[id(pack)]}/{len(p.packs)} (K={len(pack.cells)}) "
                                          f"epoch {epoch}/{pack.recipe.epochs} {ips:,.0f} img/s")

    def on_lost(pack, error):
        """A Ray worker died under ``pack``: its unfinished cells continue from their latest checkpoints."""
        remaining = [c for c in pack.cells if c.hash not in written]
        states = resume_points(ledger.dir, remaining)
        again = make_packs(remaining, len(pack.cells), states=states)
        for new in again:
            pack_no[id(new)] = pack_no[id(pack)]
        console.print(f"pack {pack_no[id(pack)]} lost its worker ({error}); {len(remaining)} cells continue from "
                      f"{len(states)} checkpoints", soft_wrap=True, markup=False, highlight=False)
        return again

    def on_done(pack, results, error):
        if not console.is_terminal:  # a log or a notebook: one line per pack instead of a live bar
            console.print(f"pack {pack_no[id(pack)]}/{len(p.packs)} (K={len(pack.cells)}): " +
                          (f"failed: {error}" if error else f"{plural(len(pack.cells), 'cell')} finished"),
                          markup=False, highlight=False, soft_wrap=True)
        if error:
            unfinished = [c for c in pack.cells if c.hash not in written]
            ledger.fail_cells([c.hash for c in unfinished], error)
            for c in unfinished:
                written[c.hash] = "failed"
            if console.is_terminal:  # (a log got its line above)
                console.print(f"[red]pack {pack_no[id(pack)]} failed:[/red] {error}", markup=True, highlight=False)
            progress.update(task, completed=len(written))
        else:
            write(pack, results)

    previous = {sig: signal.signal(sig, polite.handler) for sig in (signal.SIGTERM, signal.SIGINT)} \
        if _main_thread() else {}
    status = "interrupted"
    try:
        with progress:
            if executor == "ray":
                run_ray(p.packs, study.data, on_start, on_epoch, on_done, save_states, checkpoint_every, address,
                        study.plugins, on_lost)
            else:
                run_local(p.packs, study.data, on_start, on_epoch, on_done, save_states, checkpoint_every)
        status = "done"
    except KeyboardInterrupt:
        console.print("interrupted: finished epochs and cells are kept; run the same command to resume")
        raise
    finally:
        try:  # best effort: if the disk is full these fail too, and the error that stopped the run is the one to say
            ledger.interrupt_running()
            ledger.finish_run(run_id, status)
        except PetriError:
            pass
        ledger.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counts: dict[str, int] = {}
    for s in written.values():
        counts[s] = counts.get(s, 0) + 1
    return {"trained": len(written), "skipped": p.skipped, **counts}


def plural(n: int, word: str) -> str:
    """ "1 cell", "2 cells"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def network_meta(cell) -> dict:
    """What a weights file says about its network, so it can be rebuilt without petri: the model's name and
    parameters, the input shape and classes, and for layer lists every layer resolved (defaults included)
    in the order of the ``nn.Sequential`` whose state_dict the file holds (keys ``<index>.<param>``)."""
    spec = get_spec(cell.data)
    model = cell.recipe.model
    meta = {"model": model.name, "model_params": model.model_dump(mode="json"), "input_shape": list(spec.shape),
            "classes": list(spec.classes)}
    if hasattr(model, "resolved"):
        meta["layers"] = [layer.model_dump(mode="json") for layer in model.resolved(spec.shape, len(spec.classes))]
    return meta


def check_changes(study: Study, ledger: Ledger, allowed: bool) -> None:
    """One line, and no training, when a plugin or data file differs from what the folder's finished
    cells ran with (unless ``allowed``): those cells keep their numbers, the changed file makes new ones."""
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


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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


def describe_plan(study: Study, p: Plan, out: Path, worst: tuple[Study, list[Pack]] | None = None) -> list[str]:
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
        mem = member_bytes(r, pack.cells[0].data) * len(pack.cells)
        images = r.epoch_images(get_spec(pack.cells[0].data).n_train) * (r.epochs - pack.start) * len(pack.cells)
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
    checkpoints (two per cell, removed when the cell finishes)."""
    weights, peak = 0, 0
    for pack in p.packs:
        spec = get_spec(pack.cells[0].data)
        params = pack.recipe.model.n_params(spec.shape, len(spec.classes))
        es = pack.recipe.early_stopping
        copies = 2 if es is not None else 1
        if study.keep_weights:
            weights += 4 * params * copies * len(pack.cells)
        states = {"adam": 2, "adamw": 2, "rmsprop": 1 + bool(getattr(pack.recipe.optimizer, "centered", False))}
        n_opt = states.get(pack.recipe.optimizer.name, 0) + (getattr(pack.recipe.optimizer, "momentum", 0) > 0)
        peak = max(peak, 2 * 4 * params * (1 + n_opt + (copies - 1)) * len(pack.cells))
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


def human_bytes(n: int) -> str:
    """1234567 -> "1.2 MB" (decimal units, as disk sizes are sold)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"
