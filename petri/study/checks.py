"""What a study is checked for beyond each field's type: sizes that fit the data set, what this machine
can do, where an error in a variant's merged recipe was written, and the reference point of a swept
baseline. Each says one line naming the file and the field."""

from __future__ import annotations

import os
import re

from ..errors import SpecError
from ..specs import echo
from ..train.memory import training_bytes
from ..train.recipe import Recipe

MAX_MEMBER_BYTES = 8 << 30  # one member's parameters, gradients and optimiser state: a typo beyond this


def check_sizes(recipe: Recipe, dspec, where: str) -> None:
    n_train = (recipe.train_size or dspec.n_train - recipe.val_size)
    if n_train + recipe.val_size > dspec.n_train:
        raise SpecError(f"{where}.recipe.train_size: train_size + val_size = {n_train + recipe.val_size} "
                        f"exceeds the {dspec.n_train} training images of {dspec.name}")
    sample = recipe.data_sample
    if sample and not sample.replace and (sample.size or n_train) >= n_train:
        raise SpecError(f"{where}.recipe.data_sample.size: a sample without replacement of {sample.size or n_train} "
                        f"of the {n_train} training images is every image; allowed: 1..{n_train - 1}, or "
                        "replace = true (a bootstrap sample)")
    n_train = recipe.epoch_images(dspec.n_train)
    if recipe.batch_size > n_train:
        raise SpecError(f"{where}.recipe.batch_size: {recipe.batch_size} exceeds the {n_train} training images; "
                        f"allowed: 1..{n_train}")
    if recipe.test_size and recipe.test_size > dspec.n_test:
        raise SpecError(f"{where}.recipe.test_size: {recipe.test_size} exceeds the {dspec.n_test} test images")


def check_machine(recipe: Recipe, dspec, where: str) -> None:
    """What this machine cannot do, said before anything trains: a device it lacks, a network whose
    parameters alone would not fit."""
    import torch

    if recipe.device == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"{where}.recipe.device: \"cuda\", but this machine has no CUDA device (torch "
                        f"{torch.__version__}); \"auto\" would pick the CPU here")
    params, need = training_bytes(recipe, dspec)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = MAX_MEMBER_BYTES
    if need > min(MAX_MEMBER_BYTES, ram // 2):
        raise SpecError(f"{where}.recipe.model: {params:,} parameters per member need about {need / 2**30:,.1f} GiB "
                        f"(weights, gradients, optimiser state); at most {min(MAX_MEMBER_BYTES, ram // 2) / 2**30:,.1f} "
                        f"GiB per member here (this machine has {ram / 2**30:,.0f} GiB)")


def blame(e: SpecError, vwhere: str, where: str, overrides: dict) -> SpecError:
    """An error in a variant's merged recipe, placed where the user wrote the field: the top-level
    [recipe] when the variant does not override it."""
    prefix, out = f"{vwhere}.recipe", []
    for msg in e.parts:
        key = re.match(r"\.(\w+)", msg[len(prefix):]) if msg.startswith(prefix) else None
        out.append(msg if key is None or key.group(1) in overrides else f"{where}: recipe{msg[len(prefix):]}")
    return type(e)(out)


def baseline_point(bp, baseline: str, cells: list, where: str) -> tuple[dict | str | None, list[str]]:
    """The reference point of a swept baseline, checked against its axes; a warning when its points are
    not compared for want of one (a study of one variant at one point compares nothing, and says nothing:
    it is a study of that variant's noise)."""
    points = list(dict.fromkeys(c.point for c in cells if c.variant == baseline))
    axes = [k for k, _ in points[0]] if points else []
    if bp is None:
        if len(points) > 1:
            return None, [f"{where}: baseline {baseline!r} is a sweep of {len(points)} points and no baseline_point is "
                          "set, so nothing is compared; set baseline_point = { " + ", ".join(f"{a} = ..." for a in axes)
                          + ' } or baseline_point = "best"']
        return None, []
    if bp == "best":
        if any(not c.recipe.val_size for c in cells if c.variant == baseline):
            raise SpecError(f"{where}: baseline_point = \"best\" would choose the reference on the test set and then "
                            "test every other point against it on the same images (every Δ biased); add val_size to "
                            f"{baseline!r}'s recipe (e.g. val_size = 5000: the best point is then chosen on validation "
                            "accuracy), or name the point: baseline_point = { "
                            + ", ".join(f"{a} = ..." for a in axes) + " }")
        return bp, []
    if not isinstance(bp, dict):
        raise SpecError(f"{where}: baseline_point: a table of {baseline!r}'s sweep values, e.g. "
                        "{ " + ", ".join(f"{a} = ..." for a in axes) + ' }, or "best" (got ' + echo(bp) + ")")
    if set(bp) != set(axes):
        raise SpecError(f"{where}: baseline_point: {baseline!r} sweeps {', '.join(axes) or 'nothing'}; give a value "
                        f"for each (got {', '.join(bp) or 'none'})")
    match = [p for p in points if all(_same_value(dict(p)[k], v) for k, v in bp.items())]
    if not match:
        values = "; ".join(f"{a}: {', '.join(str(v) for v in dict.fromkeys(dict(p)[a] for p in points))}" for a in axes)
        raise SpecError(f"{where}: baseline_point: no point of {baseline!r} has " +
                        ", ".join(f"{k}={v}" for k, v in bp.items()) + f"; its points have {values}")
    return dict(match[0]), []


def _same_value(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b
