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
    """A study file, model, optimiser or treatment spec is invalid (exit code 2). ``parts``: each mistake
    when there are several (the message joins them), so a file's mistakes are reported in one run."""

    exit_code = 2

    def __init__(self, message: str | list[str]):
        parts = [" ".join(str(m).split()) for m in (message if isinstance(message, list) else [message])]
        self.parts = list(dict.fromkeys(parts))
        n = len(self.parts)
        heads = {m.split(": ", 1)[0] for m in self.parts}  # the file they are in, said once
        head = heads.pop() + ": " if len(heads) == 1 and all(": " in m for m in self.parts) else ""
        super().__init__(self.parts[0] if n == 1 else f"{head}{n} mistakes: " + " | ".join(
            f"({i}) {m[len(head):]}" for i, m in enumerate(self.parts, 1)))


class StoreError(PetriError):
    """The ledger is missing, broken, or belongs to another study."""

    exit_code = 2


class PlaceError(PetriError):
    """Where petri reads or writes is in the way: a damaged ledger, a full disk, a read-only or missing
    folder (exit code 1: the input was fine, the environment is not)."""
