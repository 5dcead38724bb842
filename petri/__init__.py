"""petri: controlled deep-learning experiments on small image data sets."""

__version__ = "0.1.0"

_PUBLIC = {  # name -> module that defines it; imported on first use, so `petri --help` stays quick
    "register_model": "petri.models.plugin",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'petri' has no attribute {name!r}")


__all__ = ["__version__", *_PUBLIC]
