"""Executors: where packs train. Both hand results to the driver, which alone writes the ledger.

* ``local``: packs train one after another in this process; each epoch is
  written as it finishes.
* ``ray``: each pack is a Ray task (``num_gpus=1`` when training on CUDA) on
  the cluster at ``address`` (or a local Ray instance); a pack's epochs are
  written when its task returns (``on_done`` writes all of them).
"""

from __future__ import annotations

import os
import pickle
import traceback
from typing import Callable

from ..data import data_root, load
from ..plugins import load as load_plugins
from ..train.loop import Result, resolve_device, train_pack
from .packing import Pack

# callbacks the runner gives an executor
OnStart = Callable[[Pack], None]
OnEpoch = Callable[[Pack, int, list[Result]], None]
OnDone = Callable[[Pack, list[Result] | None, str | None], None]


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def run_local(packs: list[Pack], data: str, on_start: OnStart, on_epoch: OnEpoch, on_done: OnDone) -> None:
    ds = load(data)
    for pack in packs:
        on_start(pack)
        try:
            results = train_pack(ds, pack.recipe, pack.members(), on_epoch=lambda e, r, p=pack: on_epoch(p, e, r),
                                 keep_state=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - a failing pack must not sink the study
            if os.environ.get("PETRI_DEBUG"):
                traceback.print_exc()
            on_done(pack, None, _error(e))
            continue
        on_done(pack, results, None)


def _train_task(data: str, root: str, plugins: list[str], pack_blob: bytes) -> list[Result]:
    """On a Ray worker: the study's plugins are imported first, so that a pack naming a user's model
    unpickles (its spec class and factory are found by reference)."""
    load_plugins(plugins)
    pack = pickle.loads(pack_blob)
    return train_pack(load(data, root), pack.recipe, pack.members())


def run_ray(packs: list[Pack], data: str, on_start: OnStart, on_epoch: OnEpoch, on_done: OnDone,
            address: str | None = None, plugins: list[str] | None = None) -> None:
    import ray

    from ..errors import PetriError

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("PETRI_")}})
        except Exception as e:  # noqa: BLE001
            raise PetriError(f"--address {address}: cannot connect to Ray ({_error(e)})") from None
    root = str(data_root().resolve())
    futures = {}
    for pack in packs:
        gpus = 1 if resolve_device(pack.recipe.device).type == "cuda" else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_train_task)
        futures[task.remote(data, root, plugins or [], pickle.dumps(pack))] = pack
        on_start(pack)
    pending = list(futures)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        pack = futures[done[0]]
        try:
            results = ray.get(done[0])
        except Exception as e:  # noqa: BLE001
            on_done(pack, None, _error(e))
            continue
        on_done(pack, results, None)
