"""Adaptive seeds: a study trained in rounds (``seeds = { min, max, step, until }``), each round a run,
looked at between rounds, inside the run's lock.

After each round the results side looks at every comparison (``Judge``: ``petri.api`` gives it, so
this room needs nothing of the analysis); the study stops when its target is met or at its max. Each
look and the reason for stopping are kept in the ledger (``meta``, key ``adaptive``), written here
only; a killed study resumes where it was (the looks are recomputed from the ledger).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .ledger import Ledger
from .spec import Study, at_round


@dataclass(frozen=True)
class Look:
    """One look at a round's comparisons, as the results side made it."""

    record: dict  # what the ledger keeps of it (``report.looks.record``: each comparison's interval, ``met``)
    met: bool  # the study's target holds
    target: str  # the target, in words
    metric: str
    percent: bool  # the metric is shown in percent
    headline: str  # the look against the target, in a line
    lines: list[str]  # where each comparison stands


Judge = Callable[[Path, Study], Look]  # (the study folder, the study at this round) -> the look at it


def run_rounds(study: Study, out: Path, train: Callable[[Study], dict], judge: Judge, console) -> dict:
    """Train ``study``'s rounds with ``train`` (one run each) until its target is met or its max; returns
    the counts of every round together."""
    rule, looks, counts = study.adaptive, [], {}
    for n in rule.rounds():
        now = at_round(study, n)
        for k, v in train(now).items():
            counts[k] = counts.get(k, 0) + v
        look = judge(out, now)
        looks.append(look.record)
        last = look.met or n == rule.max
        reason = (f"target met: {look.target}" if look.met else f"max reached ({rule.max} seeds)") if last else None
        ledger = Ledger(out, create=True)
        try:
            ledger.note("adaptive", {"looks": looks, "stopped": reason, "at": time.time() if last else None,
                                     "rule": {"min": rule.min, "max": rule.max, "step": rule.step, "until": rule.until,
                                              "width": rule.width},
                                     "metric": look.metric, "percent": look.percent})
        finally:
            ledger.close()
        console.print("\n".join([f"{study.name}: look {len(looks)} of at most {rule.looks}, {n} seeds; " + look.headline
                                 + (f"; stopped: {reason}" if last else "; more seeds"), *look.lines]),
                      markup=False, highlight=False, soft_wrap=True)
        if last:
            break
    return counts
