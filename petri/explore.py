"""Looking before (or beside) a study: train one model without a ledger (``fit``), a network's layers
(``summary``), what a study can name (``catalog``) and what its treatments do to images (``preview``).
Part of the public API (``petri.fit``, ...; every CLI command is one such call)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import PetriError, PlaceError, SpecError

if TYPE_CHECKING:
    from .models import ModelSpec
    from .study.spec import Study


@dataclass
class Trained:
    """One model trained by ``petri.fit``: its ``status`` (done, stopped-early, diverged), its
    ``epochs`` (a DataFrame: ``epoch`` and the metrics, as in ``Results.epochs()``) and ``model``, the
    trained network as a plain ``torch.nn.Module`` in eval mode (None if it diverged)."""

    status: str
    epochs: Any
    model: Any


def fit(recipe: dict, data: str = "mnist", seed: int = 0, on_epoch: Callable[[dict], None] | None = None) -> Trained:
    """Train one model from a recipe (a study's ``recipe`` table as a dict) on ``data``, without a
    study or a ledger: a quick look before writing a study. ``on_epoch`` gets each epoch's metrics."""
    import pandas as pd

    from .analysis.records import EPOCH_COLUMNS
    from .data import get_spec, load
    from .study.recipes import recipe_from_dict
    from .train import Member, train_pack

    recipe = recipe_from_dict(recipe, "recipe")
    dspec = get_spec(data)
    recipe.model.check(dspec.shape, len(dspec.classes), "recipe.model")
    seen = 0

    def log(epoch, results):
        nonlocal seen
        for m in results[0].epochs[seen:]:
            if on_epoch is not None:
                on_epoch(dict(m))
        seen = len(results[0].epochs)

    result = train_pack(load(dspec), recipe, [Member(seed)], on_epoch=log, keep_state=True)[0]
    model = None
    if result.weights is not None:
        model = recipe.model.module(dspec.shape, len(dspec.classes))
        model.load_state_dict(result.weights, strict=True)
        model.eval()
    cols = ["epoch", *EPOCH_COLUMNS, "images_per_s", "seconds"]
    epochs = pd.DataFrame([{c: e.get(c) for c in cols} for e in result.epochs], columns=cols)
    return Trained(result.status, epochs.astype({"epoch": "int64"}), model)


def preview(study: Study | str | Path | dict, variants: list[str] | None = None, n: int = 8,
            to: str | Path | None = None):
    """What the study's treatments do: for each variant (default all), its first ``n`` training images as
    epoch 1 trains on them and its first ``n`` test images, treated as its first cell sees them. Returns
    the matplotlib Figure, or with ``to`` writes it there (PNG) and returns the path."""
    from .api import load_study
    from .report.figures import save
    from .report.preview import preview as draw
    from .study.spec import Study

    study = study if isinstance(study, Study) else load_study(study)
    unknown = [v for v in variants or [] if v not in study.variants]
    if unknown:
        raise SpecError(f"variant {unknown[0]!r} is not in {study.name}; variants: {', '.join(study.variants)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise SpecError(f"n: the images per row, 1..64 (got {n!r})")
    fig = draw(study, variants, n)
    if to is None:
        return fig
    to = Path(to)
    try:
        path, _ = save(fig, to.parent if str(to.parent) else Path("."), to.stem)
    except OSError as e:
        raise PlaceError(f"{to}: cannot write the preview ({e.strerror}); choose a writable place") from None
    return path


def summary(model: str | list | dict | ModelSpec, data: str = "mnist"):
    """A network's layers on a data set, like Keras' ``model.summary()``: a DataFrame with ``layer``
    (str; a residual block's body indented), ``depth`` (int64, nesting), ``output_shape`` (one member's,
    a tuple) and ``params`` (int64, per member). ``model``: a preset name or table, a layer list, or a
    registered module's name, as a study writes it."""
    import pandas as pd

    from .data import get_spec
    from .models import ModelSpec, parse_model

    spec = model if isinstance(model, ModelSpec) else parse_model(model, "model")
    try:
        dspec = get_spec(data)
    except PetriError as e:
        raise SpecError(f"data: {e}") from None
    spec.check(dspec.shape, len(dspec.classes), "model")
    rows = [{"layer": "  " * r.depth + r.label, "depth": r.depth, "output_shape": tuple(r.shape), "params": r.params}
            for r in spec.summary(dspec.shape, len(dspec.classes))]
    return pd.DataFrame(rows, columns=["layer", "depth", "output_shape", "params"]).astype(
        {"depth": "int64", "params": "int64"})


CATALOG_KINDS = ("model", "layer", "optimizer", "schedule", "treatment")


def catalog(name: str | None = None):
    """What a study can name. Without ``name``: every registered model (preset), layer, optimizer,
    learning-rate schedule and treatment as a DataFrame (``kind``, ``name``, ``parameters``, ``about``). With ``name``: its
    parameters (``kind``, ``parameter``, ``type``, ``default``, ``description``; ``default`` is
    "required" for a parameter without one)."""
    import pandas as pd

    from .specs import describe_fields, first_paragraph

    registries = _registries()
    if name is None:
        rows = [{"kind": kind, "name": n,
                 "parameters": ", ".join(p if d == "required" else f"{p}={d}" for p, _, d, _ in describe_fields(cls)),
                 "about": getattr(cls, "about", "") or first_paragraph(cls.__doc__)}
                for kind, reg in registries.items() for n, cls in reg.items()]
        return pd.DataFrame(rows, columns=["kind", "name", "parameters", "about"])
    found = [(kind, reg[name]) for kind, reg in registries.items() if name in reg]
    if not found:
        raise SpecError(f"{name!r} is no {', '.join(CATALOG_KINDS[:-1])} or {CATALOG_KINDS[-1]}; known: "
                        + "; ".join(f"{k}s: {r.known()}" for k, r in registries.items()))
    rows = [{"kind": kind, "parameter": p, "type": t, "default": d, "description": text}
            for kind, cls in found for p, t, d, text in describe_fields(cls)]
    return pd.DataFrame(rows, columns=["kind", "parameter", "type", "default", "description"])


def _registries() -> dict:
    from .models import LAYERS, MODELS
    from .train.recipe import OPTIMIZERS, SCHEDULES
    from .treatments import TREATMENTS

    return dict(zip(CATALOG_KINDS, (MODELS, LAYERS, OPTIMIZERS, SCHEDULES, TREATMENTS)))
