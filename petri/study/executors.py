"""Executors: where packs train. Both hand results to the driver, which alone writes the ledger
and the cell files (checkpoints, weights): the study directory lives with the driver only.

* ``local``: packs train one after another in this process; each epoch is
  written as it finishes.
* ``ray``: each pack is a Ray generator task (``num_gpus=1`` when training on CUDA) on
  the cluster at ``address`` (or a local Ray instance) that yields every epoch as it ends: its
  metrics, its cells' states (checkpoints) and finished cells' weights reach the driver then, not
  when the pack returns. A pack whose worker or node is lost is trained again from its cells'
  latest checkpoints (``Driver.lost`` re-packs them), up to ``RETRIES`` times.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
import traceback
from typing import Protocol

from ..data import DatasetSpec, get_spec, load, locate
from ..errors import PlaceError
from .plugins import load as load_plugins
from ..train.loop import Result, resolve_device, train_pack
from .packing import Pack

RETRIES = 3  # times a pack is resumed after losing its worker


class Driver(Protocol):
    """What an executor trains and whom it tells (``runner.Run``): the driver alone writes the ledger."""

    packs: list[Pack]
    data: str  # the data set's key (or its spec, read from a study folder)
    plugins: list[str]  # the study's plugins, resolved: a Ray worker imports them first
    checkpoint_every: float  # s: within a longer epoch, running cells are checkpointed this often

    def start(self, pack: Pack) -> None: ...

    def epoch(self, pack: Pack, epoch: int, results: list[Result]) -> None: ...

    def checkpoint(self, pack: Pack, results: list[Result]) -> None:
        """Running cells' states within a long epoch."""

    def done(self, pack: Pack, results: list[Result] | None, error: str | None) -> None: ...

    def lost(self, pack: Pack, error: str) -> list[Pack]:
        """A lost pack's unfinished cells, re-packed from their checkpoints."""


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def run_local(run: Driver) -> None:
    ds = load(run.data)
    for pack in run.packs:
        run.start(pack)
        try:
            results = train_pack(ds, pack.recipe, pack.members(), on_epoch=lambda e, r, p=pack: run.epoch(p, e, r),
                                 keep_state=True, on_checkpoint=lambda r, p=pack: run.checkpoint(p, r),
                                 checkpoint_every=run.checkpoint_every)
        except (KeyboardInterrupt, SystemExit, PlaceError):  # a full disk or a read-only place stops the whole run
            raise
        except Exception as e:  # noqa: BLE001 - a failing pack must not sink the study
            if os.environ.get("PETRI_DEBUG"):
                traceback.print_exc()
            run.done(pack, None, _error(e))
            continue
        run.done(pack, results, None)


def _train_stream(data: str | DatasetSpec, root: str | None, plugins: list[str], pack_blob: bytes,
                  checkpoint_every: float):
    """On a Ray worker: train a pack, yielding ("epoch", n, pickled results) after each epoch,
    ("checkpoint", pickled results) within a long one, and ("done", pickled results) at the end. The
    study's plugins are imported first, so that a pack naming a user's model unpickles (its spec
    class and factory are found by reference)."""
    load_plugins(plugins)
    pack = pickle.loads(pack_blob)
    items: queue.Queue = queue.Queue()

    def work():
        try:
            # each epoch pickled as it ends: a snapshot the next epoch cannot change while it waits
            results = train_pack(load(data, root), pack.recipe, pack.members(),
                                 on_epoch=lambda e, r: items.put(("epoch", e, pickle.dumps(r))), keep_state=True,
                                 on_checkpoint=lambda r: items.put(("checkpoint", pickle.dumps(r))),
                                 checkpoint_every=checkpoint_every)
            items.put(("done", pickle.dumps(results)))
        except BaseException as e:  # noqa: BLE001 - raised again in the generator, for the driver
            items.put(e)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = items.get()
        if isinstance(item, BaseException):
            raise item
        yield item
        if item[0] == "done":
            return


def run_ray(run: Driver, address: str | None = None) -> None:
    import ray

    from ..errors import PetriError

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("PETRI_")}})
        except Exception as e:  # noqa: BLE001
            raise PetriError(f"--address {address}: cannot connect to Ray ({_error(e)})") from None
    # workers get the spec, not the name (a data set registered by name in this process is unknown
    # to them), and read the files from where the driver found them
    spec = get_spec(run.data)
    found = locate(spec) if spec.source is None else None
    root = str(found.resolve()) if found is not None else None
    live: dict = {}  # generator -> (pack, tries)

    def submit(pack: Pack, tries: int) -> None:
        gpus = 1 if resolve_device(pack.recipe.device).type == "cuda" else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_train_stream)
        live[task.remote(spec, root, run.plugins or [], pickle.dumps(pack), run.checkpoint_every)] = (pack, tries)
        run.start(pack)

    for pack in run.packs:
        submit(pack, 0)
    while live:
        ready, _ = ray.wait(list(live), num_returns=1)
        gen = ready[0]
        pack, tries = live.pop(gen)
        try:
            item = ray.get(next(gen))
        except StopIteration:
            continue
        except ray.exceptions.RayTaskError as e:  # the pack's own code failed: its cells fail
            run.done(pack, None, _error(e.cause if getattr(e, "cause", None) else e))
            continue
        except ray.exceptions.RayError as e:  # its worker or node is gone: resume from the checkpoints
            if tries < RETRIES:
                for again in run.lost(pack, _error(e)):
                    submit(again, tries + 1)
            else:
                run.done(pack, None, f"lost its Ray worker {tries + 1} times ({_error(e)})")
            continue
        if item[0] == "epoch":
            run.epoch(pack, item[1], pickle.loads(item[2]))
            live[gen] = (pack, tries)
        elif item[0] == "checkpoint":
            run.checkpoint(pack, pickle.loads(item[1]))
            live[gen] = (pack, tries)
        else:
            run.done(pack, pickle.loads(item[1]), None)
