"""One `petri run` per study directory at a time.

``DIR/.petri.lock`` carries an advisory lock (``flock``) for as long as a run trains: the kernel
drops it when the process ends, however it ends (kill -9 included), so a lock is never stale. A
second run on the same directory is refused in one line naming the holder; ``petri show`` knows a
cell marked running is in fact interrupted when nobody holds the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path

from ..errors import PlaceError, StoreError

NAME = ".petri.lock"


class RunLock:
    def __init__(self, directory: str | Path):
        self.path = Path(directory) / NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise PlaceError(f"{self.path}: cannot create the run lock ({e.strerror}); a run needs a writable "
                             "study directory") from None
        for attempt in range(10):  # a `petri show` may hold it shared for an instant
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 9:
                    os.close(fd)
                    raise StoreError(f"{self.path.parent}: {describe(holder(self.path.parent))} is training this "
                                     "study; wait for it to finish, or stop it (finished epochs are kept)") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "since": time.time()}).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def holder(directory: str | Path) -> dict | None:
    """Who trains in ``directory`` now ({pid, host, since}), or None if nobody does."""
    path = Path(directory) / NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(h: dict | None) -> str:
    if not h:
        return "another petri run"
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.get("since", 0)))
    return f"another petri run (pid {h.get('pid', '?')} on {h.get('host', '?')}, since {since})"
