"""petri: controlled deep-learning experiments on small image data sets."""

import os

# MKL's strict conditional numerical reproducibility: a GEMM gives the same bits on any number of
# threads, so a cell's numbers do not depend on its pack size or shard layout (K = 1 trains on all
# threads, a member of a larger pack on one). Measured at no cost here (benchmarks/README.md). It must
# be set before MKL's first GEMM in the process, hence at import; a value the user set is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

_PUBLIC = {  # name -> module that defines it; imported on first use, so `petri --help` stays quick
    "load_study": "petri.api",
    "run": "petri.api",
    "dry_run": "petri.api",
    "open_study": "petri.api",
    "Results": "petri.results",
    "analyse": "petri.api",
    "load_model": "petri.study.trained",
    "register_model": "petri.models.plugin",
    "register_treatment": "petri.treatments.registry",
    "Treatment": "petri.treatments.base",
    "Context": "petri.treatments.base",
    "register_metric": "petri.train.metrics",
    "save_dataset": "petri.data.public",
    "register_dataset": "petri.data.public",
    "fit": "petri.explore",
    "Trained": "petri.explore",
    "summary": "petri.explore",
    "preview": "petri.explore",
    "catalog": "petri.explore",
    "datasets": "petri.data.public",
    "verify_dataset": "petri.data.public",
    "fetch_dataset": "petri.data.public",
    "PetriError": "petri.errors",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'petri' has no attribute {name!r}")


__all__ = ["__version__", *_PUBLIC]


def __dir__():
    """The public API, loaded lazily, for tab completion and help(petri)."""
    return sorted([*globals(), *_PUBLIC])
