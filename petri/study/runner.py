"""Running a study: register cells, train what is missing, write every epoch to the ledger.

``run_study`` takes the folder's run lock, checks what changed since its cells ran, and trains the
plan (``planner.py``) on an executor (``executors.py``; an adaptive study: round by round, ``rounds.py``).
The executors call back into a ``Run``: it alone writes the ledger and the cells' files.
"""

from __future__ import annotations

import json
import math
import platform
import signal
import subprocess
import time
from contextlib import contextmanager
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
from ..data.sources import ensure_files
from ..errors import PetriError, PlaceError, SpecError, StoreError
from ..train.loop import Result, resolve_device
from . import cellstore
from .executors import run_local, run_ray
from .ledger import Ledger
from .lock import RunLock
from .packing import Pack, make_packs
from .planner import Plan, plan, plural, resume_points
from .rounds import Judge, run_rounds
from .snapshot import check_changes, freeze
from .spec import Study

CHECKPOINT_MINUTES = 5.0  # within an epoch longer than this, running cells are also checkpointed this often


def run_study(study: Study, out: str | Path, executor: str = "local", address: str | None = None,
              max_members: int | None = None, console: Console | None = None,
              checkpoint_minutes: float = CHECKPOINT_MINUTES, changed: bool = False, judge: Judge | None = None) -> dict:
    """Train every unfinished cell of ``study`` into ``out``; returns counts by status. Every epoch's
    end is checkpointed, and within a long epoch every ``checkpoint_minutes``. A plugin or data file
    that changed since the folder's finished cells ran stops the run in one line unless ``changed``.
    An adaptive study trains round by round until ``judge`` (the results side's look at its
    comparisons) finds its target met, or at its max; without a judge, its first round."""
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

    def train(s: Study) -> dict:
        return _run(s, out, executor, address, max_members, console, 60.0 * checkpoint_minutes, changed)

    with RunLock(out):  # one run per directory (every round of an adaptive study); the lock dies with the process
        return run_rounds(study, out, train, judge, console) if study.adaptive and judge else train(study)


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
    run = Run(study, ledger, p, run_id, console, checkpoint_every)
    previous = {sig: signal.signal(sig, run.polite.handler) for sig in (signal.SIGTERM, signal.SIGINT)} \
        if _main_thread() else {}
    status = "interrupted"
    try:
        with run.progress:
            if executor == "ray":
                run_ray(run, address)
            else:
                run_local(run)
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
    return {"trained": len(run.written), "skipped": p.skipped, **run.counts()}


class Run:
    """One run of a study into its folder, as an executor drives it (``executors.Driver``): the packs to
    train, and what happens when a pack starts, ends an epoch, checkpoints within a long one, finishes or
    loses its worker. It alone writes the ledger and the cells' files."""

    def __init__(self, study: Study, ledger: Ledger, p: Plan, run_id: int, console: Console, checkpoint_every: float):
        self.study, self.ledger, self.packs, self.run_id, self.console = study, ledger, p.packs, run_id, console
        self.data, self.plugins, self.checkpoint_every = study.data, study.plugins, checkpoint_every
        self.written: dict[str, str] = {}  # cell hash -> its final status, once its results are stored
        self.carried: dict[int, float] = {}  # per pack: seconds writing checkpoint files after its latest rows
        self.polite = _Polite()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task("starting", total=len(p.todo))
        self.number = {id(pk): i + 1 for i, pk in enumerate(p.packs)}  # a pack's number in messages

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.written.values():
            out[s] = out.get(s, 0) + 1
        return out

    def _name(self, pack: Pack) -> str:
        return f"pack {self.number[id(pack)]}/{len(self.packs)}"

    # --- what an executor calls ---------------------------------------------------------
    def start(self, pack: Pack) -> None:
        self.ledger.start_cells([c.hash for c in pack.cells], self.run_id, pack.start)
        for c in pack.cells:
            if c.hash not in pack.states:  # from epoch 1: nothing stored before counts
                cellstore.clear(self.ledger.dir, c.hash)
        self.progress.update(self.task, description=f"{self._name(pack)} (K={len(pack.cells)})")

    def epoch(self, pack: Pack, epoch: int, results: list[Result]) -> None:
        with self.polite.writing():
            self._write(pack, results, epoch)
        if not self.console.is_terminal:  # a log, CI, nohup: a line per finished epoch (no live bar there)
            done = [r.epochs[-1] for r in results if r.epochs and r.epochs[-1]["epoch"] == epoch]
            tested = [m["test_acc"] for m in done if m["test_acc"] is not None]  # (recipe.eval_every: not every epoch)
            if tested:
                self.console.print(f"{self._name(pack)} epoch {epoch}/{pack.recipe.epochs}: mean test accuracy "
                                   f"{100 * sum(tested) / len(tested):.2f} % over {plural(len(tested), 'cell')}",
                                   markup=False, highlight=False, soft_wrap=True)
        ips = sum(r.epochs[-1]["images_per_s"] for r in results if r.epochs and r.epochs[-1]["epoch"] == epoch)
        self.progress.update(self.task, description=f"{self._name(pack)} (K={len(pack.cells)}) "
                                                    f"epoch {epoch}/{pack.recipe.epochs} {ips:,.0f} img/s")

    def checkpoint(self, pack: Pack, results: list[Result]) -> None:
        """Each running cell's state, as a checkpoint within a long epoch (nothing enters the ledger)."""
        with self.polite.writing():
            self._save_states(pack, results)

    def done(self, pack: Pack, results: list[Result] | None, error: str | None) -> None:
        if not self.console.is_terminal:  # a log or a notebook: one line per pack instead of a live bar
            self.console.print(f"{self._name(pack)} (K={len(pack.cells)}): " +
                               (f"failed: {error}" if error else f"{plural(len(pack.cells), 'cell')} finished"),
                               markup=False, highlight=False, soft_wrap=True)
        if not error:
            with self.polite.writing():
                self._write(pack, results)
            return
        unfinished = [c for c in pack.cells if c.hash not in self.written]
        self.ledger.fail_cells([c.hash for c in unfinished], error)
        for c in unfinished:
            self.written[c.hash] = "failed"
        if self.console.is_terminal:  # (a log got its line above)
            self.console.print(f"[red]pack {self.number[id(pack)]} failed:[/red] {error}", markup=True, highlight=False)
        self.progress.update(self.task, completed=len(self.written))

    def lost(self, pack: Pack, error: str) -> list[Pack]:
        """A Ray worker died under ``pack``: its unfinished cells continue from their latest checkpoints."""
        remaining = [c for c in pack.cells if c.hash not in self.written]
        states = resume_points(self.ledger.dir, remaining)
        again = make_packs(remaining, len(pack.cells), states=states)
        for new in again:
            self.number[id(new)] = self.number[id(pack)]
        self.console.print(f"pack {self.number[id(pack)]} lost its worker ({error}); {len(remaining)} cells continue "
                           f"from {len(states)} checkpoints", soft_wrap=True, markup=False, highlight=False)
        return again

    # --- writing ------------------------------------------------------------------------
    def _write(self, pack: Pack, results: list[Result], epoch: int | None = None) -> None:
        """Weights of cells that finished, then the ledger (epoch rows and statuses, one transaction),
        then checkpoints of cells still running: a kill between any two steps loses at most the epoch
        in flight, and a cell the ledger calls done has its weights on disk. The seconds spent writing
        these files go to the rows' ``checkpoint_seconds`` (a checkpoint's to the pack's next rows)."""
        root = self.ledger.dir
        t = time.perf_counter()
        rows, finished, finals = [], [], {}
        for cell, r in zip(pack.cells, results):
            for m in r.epochs if epoch is None else r.epochs[-1:]:
                if epoch is None or m["epoch"] == epoch:
                    rows.append((cell.hash, m))
            if r.status != "running" and cell.hash not in self.written:
                last = r.epochs[-1]["epoch"] if r.epochs else None
                if r.weights is not None and self.study.keep_weights:
                    cellstore.save_weights(root, cell.hash, r.weights, {"epoch": last, **network_meta(cell)}, r.best,
                                           r.best_epoch)
                if r.predictions is not None:  # (kept whatever keep_weights says: a byte an image)
                    cellstore.save_predictions(root, cell.hash, r.predictions, {"epoch": last, "best_epoch": r.best_epoch})
                finished.append((cell.hash, r.status))
                if r.final is not None:
                    finals[cell.hash] = r.final
                self.written[cell.hash] = r.status
        spent = time.perf_counter() - t + self.carried.pop(id(pack), 0.0)
        if epoch is not None and rows:  # (the pack's last write repeats every row: nothing is added there)
            for _, m in rows:
                m["checkpoint_seconds"] = (m.get("checkpoint_seconds") or 0.0) + spent / len(rows)
        self.ledger.record_epoch(rows, finished, finals)
        if epoch is not None:
            t = time.perf_counter()
            self._save_states(pack, results)
            self.carried[id(pack)] = time.perf_counter() - t
        for cell, r in zip(pack.cells, results):
            if r.status != "running":
                cellstore.remove_checkpoints(root, cell.hash)
        self.progress.update(self.task, completed=len(self.written))

    def _save_states(self, pack: Pack, results: list[Result]) -> None:
        for cell, r in zip(pack.cells, results):
            if r.status == "running" and r.state is not None:
                cellstore.save_checkpoint(self.ledger.dir, cell.hash, r.state)
                r.state = None


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


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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
