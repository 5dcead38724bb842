"""Data sets: registry, official formats, your own arrays and folders, download + checksum, array cache."""

from .dataset import Dataset, get_spec, is_registered, load, verify
from .registry import DATASETS, DataFile, DatasetSpec
from .sources import data_root, data_roots, download, locate, missing_files, missing_message, user_data_dir

__all__ = ["DATASETS", "DataFile", "Dataset", "DatasetSpec", "data_root", "data_roots", "download", "get_spec",
           "is_registered", "load", "locate", "missing_files", "missing_message", "user_data_dir", "verify"]
