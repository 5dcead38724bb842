"""Data sets: registry, official formats, download + checksum, array cache."""

from .dataset import Dataset, load, verify
from .registry import DATASETS, DataFile, DatasetSpec, get_spec
from .sources import data_root, download, missing_files

__all__ = ["DATASETS", "DataFile", "Dataset", "DatasetSpec", "data_root", "download",
           "get_spec", "load", "missing_files", "verify"]
