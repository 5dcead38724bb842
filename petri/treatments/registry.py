"""The treatment registry: name -> typed treatment class. petri's treatments register where they are
defined (``@TREATMENTS.register``); a user's with ``petri.register_treatment``, keyed by its code."""

from __future__ import annotations

from ..errors import SpecError
from ..specs import Registry

TREATMENTS = Registry("treatment")


def parse_treatment(data, where: str = "treatment"):
    """Validate one treatment (a table, or a bare name: "invert"); errors name its place and parameter."""
    return TREATMENTS.parse(data, where)


def register_treatment(cls):
    """Register a ``petri.Treatment`` subclass (its ``name`` field a Literal with a default) so studies
    can name it; returns the class (usable as a decorator). The contract is in docs/treatments.md;
    the source of the plugin file (or of the class) becomes part of every cell that uses it, so an
    edited treatment trains new cells instead of reusing old ones."""
    from ..usercode import code
    from .base import Treatment

    if not (isinstance(cls, type) and issubclass(cls, Treatment)):
        raise SpecError(f"register_treatment: {cls!r} is not a subclass of petri.Treatment")
    if "name" not in cls.model_fields or cls.model_fields["name"].is_required():
        raise SpecError(f"register_treatment: {cls.__name__} needs a name field with a default, e.g. "
                        "name: Literal[\"brightness\"] = \"brightness\"")
    cls.code = code(cls)
    return TREATMENTS.register(cls)
