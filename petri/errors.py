"""One exception type for every user-facing failure.

A PetriError carries a single line that names the file, the field and what is
allowed. The CLI prints it to stderr without a traceback and exits non-zero;
library callers can catch it like any other exception.
"""


class PetriError(Exception):
    """A user-facing error: bad input, bad data, a refused operation."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


class DataError(PetriError):
    """A data set is missing, corrupt, or cannot be fetched."""


class SpecError(PetriError):
    """A study file, model, optimiser or treatment spec is invalid (exit code 2)."""

    exit_code = 2


class StoreError(PetriError):
    """The ledger is missing, broken, or belongs to another study."""

    exit_code = 2


class PlaceError(PetriError):
    """Where petri reads or writes is in the way: a damaged ledger, a full disk, a read-only or missing
    folder (exit code 1: the input was fine, the environment is not)."""
