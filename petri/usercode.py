"""The identity of a user's code: what a registered model factory, treatment or metric is keyed by.

Registered while a study's plugin file is imported (``study/plugins.py``), it is the digest of that
file's source; registered from a notebook or script, the digest of its own source. The digest enters
the hash of every cell whose numbers the code makes, so an edited plugin trains new cells.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
from contextlib import contextmanager

_loading: contextvars.ContextVar[str | None] = contextvars.ContextVar("petri_plugin_code", default=None)


def code(obj) -> str:
    """What identifies the code of a model factory, treatment class or metric being registered: the
    digest of the plugin file being imported, else (registered from a notebook or script) of ``obj``'s source."""
    digest = _loading.get()
    if digest:
        return digest
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        text = getattr(obj, "__qualname__", repr(obj))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def importing(digest: str | None):
    """While a plugin whose source has ``digest`` is imported: what it registers is keyed by that digest."""
    token = _loading.set(digest)
    try:
        yield
    finally:
        _loading.reset(token)
