"""Where a study's time went: training, evaluation, checkpoints, start-up and packing, and the report.

Every epoch row holds its cell's share of its pack's seconds training, evaluating and saving states
(``ledger`` module: the shares of a pack's rows sum to the pack's time); every run holds its start
and end. What the runs took beyond their packs' epochs is start-up and packing: reading the study and
the data, building each pack (splits, networks, treatments), and the ledger's own writes. The report's
time is not in the ledger (a report only reads it): ``report_seconds`` is given by whoever timed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ledger import Ledger


@dataclass(frozen=True)
class TimeSplit:
    """Seconds of wall time. ``total``: the runs' wall time, plus the report's when known."""

    training: float
    evaluation: float
    checkpoints: float
    startup: float  # start-up and packing: the runs' time outside their packs' epochs
    runs: int
    report: float | None = None

    @property
    def total(self) -> float:
        return self.training + self.evaluation + self.checkpoints + self.startup + (self.report or 0.0)

    def parts(self) -> dict[str, float]:
        """Each part's seconds, by name as the split is printed."""
        out = {"training": self.training, "evaluation": self.evaluation, "checkpoints": self.checkpoints,
               "start-up and packing": self.startup}
        return out | ({"report": self.report} if self.report is not None else {})

    def line(self) -> str:
        """ "time: 3.2 min over 1 run — training 61 %, evaluation 22 %, ..." """
        total = self.total or 1.0
        parts = ", ".join(f"{name} {100 * s / total:.0f} %" for name, s in self.parts().items())
        return f"time: {duration(self.total)} over {self.runs} run{'s' * (self.runs != 1)} — {parts}"


def time_split(directory: str | Path, report_seconds: float | None = None) -> TimeSplit | None:
    """A study folder's split; None when its ledger records no epoch's seconds (written before they were)."""
    ledger = Ledger(directory)
    try:
        with ledger.snapshot():
            if "train_seconds" not in {r["name"] for r in ledger.query("PRAGMA table_info(epochs)")}:
                return None  # a ledger no run has opened since the columns came (readers never add them)
            sums = ledger.query("SELECT SUM(train_seconds) AS t, SUM(eval_seconds) AS e, "
                                "SUM(checkpoint_seconds) AS c FROM epochs")[0]
            runs = ledger.query("SELECT r.started, COALESCE(r.finished, (SELECT MAX(COALESCE(c.finished, c.started)) "
                                "FROM cells c WHERE c.run_id = r.id), r.started) AS ended FROM runs r")
    finally:
        ledger.close()
    return split((sums["t"], sums["e"], sums["c"]), [(r["started"], r["ended"]) for r in runs], report_seconds)


def split(seconds: tuple, runs: list[tuple[float, float]], report_seconds: float | None = None) -> TimeSplit | None:
    """The split from the epochs' summed (training, evaluation, checkpoint) seconds and each run's (start,
    end) — a run without an end (killed) ends at its cells' latest timestamp; None without epoch seconds."""
    if seconds[0] is None:
        return None
    wall = sum(max(0.0, end - start) for start, end in runs)
    parts = seconds[0], seconds[1] or 0.0, seconds[2] or 0.0
    return TimeSplit(*parts, startup=max(0.0, wall - sum(parts)), runs=len(runs), report=report_seconds)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:,.1f} s" if seconds < 10 else f"{seconds:,.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"
