"""Tables from the ledger: per-variant summaries (the end-of-run and `petri show` table)."""

from __future__ import annotations

import json
import math

from ..errors import PetriError, StoreError
from ..study.ledger import Ledger
from ..study.spec import Study, parse_study
from .stats import t_interval


def last_study(ledger: Ledger) -> Study | None:
    """The study as last run (file text, profile, data override), re-parsed; None if never run."""
    row = ledger.db.execute("SELECT study_text, profile, data_override FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    if not row:
        return None
    try:
        return parse_study(row[0], f"{ledger.study_name()} (as last run)", row[2], row[1])
    except PetriError as e:
        raise StoreError(f"{ledger.path}: the stored study file no longer parses ({e})") from None


def current_hashes(ledger: Ledger) -> set[str] | None:
    """Hashes of the cells of the study as last run (older cells stay in the ledger, unshown)."""
    study = last_study(ledger)
    return {c.hash for c in study.cells} if study else None


def cell_rows(ledger: Ledger) -> list[dict]:
    rows = ledger.final_metrics()
    keep = current_hashes(ledger)
    return [r for r in rows if keep is None or r["hash"] in keep]


def variant_summary(rows: list[dict]) -> list[dict]:
    """Per (variant, point): n finished, mean final test accuracy and 95 % half-width, status counts."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["point"]), []).append(r)
    out = []
    for (variant, point), rs in groups.items():
        accs = [r["test_acc"] for r in rs if r["status"] in ("done", "stopped-early") and r["test_acc"] is not None]
        mean, hw = t_interval(accs)
        counts: dict[str, int] = {}
        for r in rs:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        label = ", ".join(f"{k}={v}" for k, v in json.loads(point).items())
        out.append({"variant": variant, "point": label, "n": len(accs), "cells": len(rs), "mean": mean,
                    "half_width": hw, "status": counts})
    return out


def fmt_acc(mean: float, hw: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{100 * mean:.2f} %" + ("" if math.isnan(hw) else f" ± {100 * hw:.2f}")
