"""What a report says about a study besides its statistics: where and how it ran, its recipes and
networks, its packs' throughput — read from the snapshot (``analysis.records``) and the study as last run."""

from __future__ import annotations

import datetime as dt
import json

from ..analysis.records import Snapshot, cell_label


def facts(snap: Snapshot) -> dict:
    """The run's facts for the report's header (a table of runs made elsewhere has few)."""
    from ..machine import kinds, mixed_note

    status: dict[str, int] = {}
    for p in snap.places:
        status[str(p.status)] = status.get(str(p.status), 0) + 1
    missing = [p for p in snap.places if not p.status.finished and str(p.status) != "diverged"]
    out = {"cells": f"{len(snap.places)} places", "status": ", ".join(f"{v} {k}" for k, v in sorted(status.items())),
           "missing": missing, "expected": len(snap.places), "machines": [], "mixed": None,
           "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "data": snap.source, "runs": 0}
    if snap.study is None:
        return out
    runs, last = snap.runs, snap.runs[-1]
    epochs = [{"machine": e.machine} for p in {p.hash: p for p in snap.places}.values() for e in p.epochs]
    wall = sum((r["finished"] or r["started"]) - r["started"] for r in runs)
    return out | {"data": _data_label(snap.study), "machines": list(kinds(epochs)), "mixed": mixed_note(epochs),
                  "petri": last["petri_version"], "commit": (last["git_commit"] or "—")[:12],
                  "torch": last["torch_version"], "device": last["device"], "host": last["host"],
                  "executor": last["executor"], "runs": len(runs), "wall": f"{wall:,.0f} s",
                  "cells": f"{len(snap.places)} of {len(snap.study.cells)} in the study"}


def _data_label(study) -> str:
    """The data set by name, with what identifies it: the official files' or the user's content checksum."""
    from ..data import get_spec

    spec = get_spec(study.data)
    if spec.source:
        return f"{spec.name} ({spec.source}; content sha256 {spec.identity[0][:12]})"
    return f"{spec.key} (official files, MD5 {spec.identity[0][:8]}…)"


def packs(snap: Snapshot):
    """(label, K, images/s) per pack; a label names the pack's model, variants and device, and its
    order, so two packs alike never share one."""
    device = {r["id"]: r["device"] for r in snap.runs}
    variants: dict[str, set] = {}
    for p in snap.places:
        variants.setdefault(p.hash, set()).add(p.variant)
    groups: dict[tuple, list[float]] = {}
    members: dict[tuple, set] = {}
    for p in {p.hash: p for p in snap.places}.values():  # a cell once, in however many places
        for e in p.epochs:
            if e.images_per_s is None:
                continue
            key = (p.started, p.run_id, p.config.get("recipe", {}).get("model", {}).get("name", "?"), e.pack_size)
            groups.setdefault(key, []).append(e.images_per_s * (e.pack_size or 1))
            members.setdefault(key, set()).update(variants[p.hash])
    out = []
    for i, ((started, run_id, name, k), vals) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0] or 0)), 1):
        vs = sorted(members[(started, run_id, name, k)])
        shown = ", ".join(vs[:3]) + (f" +{len(vs) - 3}" if len(vs) > 3 else "")
        out.append((f"#{i} {name} · {shown} · {device.get(run_id, '?')}", k or 1, sum(vals) / len(vals)))
    return out


def recipes(study) -> list[tuple[str, str, list[str]]]:
    """Each variant's fully resolved recipe and treatments, defaults included (its first sweep point),
    and the axes its sweep varies."""
    out = []
    for variant in study.variants:
        cells = [c for c in study.cells if c.variant == variant]
        c = cells[0]
        resolved = {"recipe": c.recipe.model_dump(mode="json"),
                    "treatments": [t.model_dump(mode="json", exclude_none=True) for t in c.treatments]}
        out.append((variant, json.dumps(resolved, indent=1), [k for k, _ in c.point]))
    return out


def networks(study) -> list[tuple[str, list[str], list[list[str]], int]]:
    """Each distinct network of the study: its name, the variants (and points) that use it, its layers
    as rows (layer, output shape, parameters per member) and its parameter count, as ``petri summary``."""
    from ..data import get_spec
    from ..specs import canonical

    dspec = get_spec(study.data)
    seen: dict[str, tuple] = {}
    for c in study.cells:
        key = json.dumps(canonical(c.recipe.model), sort_keys=True)
        if key not in seen:
            seen[key] = (c.recipe.model, [])
        label = cell_label(c.variant, dict(c.point))
        if label not in seen[key][1]:
            seen[key][1].append(label)
    out = []
    for model, users in seen.values():
        summary = model.summary(dspec.shape, len(dspec.classes))
        rows = [["input", "×".join(map(str, dspec.shape)), ""]]
        rows += [[" " * r.depth + r.label, "×".join(map(str, r.shape)), f"{r.params:,}"] for r in summary]
        out.append((model.label(), users, rows, sum(r.params for r in summary if r.depth == 0)))
    return out
