"""Where each shipped study's time goes, and what `--dry-run` said it would take.

Every study file in studies/ runs as scripts/reproduce-cpu.sh runs it: with its `cpu` profile where it
has one, and CIFAR-10 studies on Fashion-MNIST (CIFAR-10 is not on these machines). For each, in a
fresh folder: `petri run --dry-run` (timed: what the user waits for, and its estimate), `petri run`
(timed: the whole command, report included: the actual time), then `petri report` again (timed, less
a petri process's start-up: the report's part); the study's split comes from its ledger
(``petri.study.timing``): training, evaluation, checkpoints, and start-up and packing (the rest of
the run's process: interpreter, imports, data, building packs, the ledger).

    PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/study_time.py [--out DIR] [--only NAME ...]
        [--no-dry-run] [--json FILE]

A ledger written before epochs recorded their seconds (an older petri on PYTHONPATH) gets its split
from what every version records: an epoch's pack seconds (training and evaluation) and its images/s.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTED = 0.0  # s: a petri process's start-up (interpreter, imports), measured first


def runs() -> list[tuple[str, list[str]]]:
    """(name, the arguments after the study file) of every shipped study, as reproduce-cpu.sh runs it."""
    out = []
    for path in sorted((ROOT / "studies").glob("*.toml")):
        spec = tomllib.loads(path.read_text())
        args = ["--profile", "cpu"] if "cpu" in spec.get("profiles", {}) else []
        args += ["--data", "fashion-mnist"] if spec.get("data") == "cifar-10" else []
        out.append((path.stem, args))
    return out


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return seconds, r.stdout + r.stderr


def legacy_split(folder: Path) -> dict:
    """Training and evaluation seconds from an older ledger: each (pack, epoch) once — its rows share
    the pack's images/s; their ``seconds`` (training and evaluation) is each shard's, the pack's the
    largest — training = the epoch's images / images/s."""
    from petri.data import get_spec
    from petri.train.recipe import Recipe

    db = sqlite3.connect(folder / "petri.sqlite")
    packs: dict[tuple, tuple[float, float]] = {}
    for config, run_id, epoch, seconds, ips in db.execute(
            "SELECT c.config, c.run_id, e.epoch, e.seconds, e.images_per_s FROM epochs e JOIN cells c ON c.hash = e.cell_hash"):
        cfg = json.loads(config)
        train = Recipe.model_validate(cfg["recipe"]).epoch_images(get_spec(cfg["data"]).n_train) / ips
        key = (run_id, epoch, ips)
        packs[key] = (train, max(seconds, packs.get(key, (0.0, 0.0))[1]))
    return {"training": sum(t for t, _ in packs.values()), "evaluation": sum(s - t for t, s in packs.values()),
            "checkpoints": None}


def measure(name: str, args: list[str], out: Path, dry: bool) -> dict:
    try:
        from petri.study.timing import time_split
    except ImportError:  # an older petri
        def time_split(folder, report_seconds):
            return None

    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    petri = [sys.executable, "-m", "petri.cli", "run", str(ROOT / "studies" / f"{name}.toml"), *args, "--out", str(folder)]
    row: dict = {"study": name, "args": " ".join(args)}
    if dry:  # as the first dry run on a machine: an empty rate cache (one filled under another load misleads)
        from petri.study.estimate import cache_file

        cache_file().unlink(missing_ok=True)
        row["dry_run_s"], text = timed([*petri, "--dry-run"])
        row["estimate"] = [line.strip() for line in text.splitlines() if re.search(r"\babout\b|\bestimate", line)]
    row["run_s"], _ = timed(petri)
    report_s, _ = timed([sys.executable, "-m", "petri.cli", "report", str(folder)])
    row["report_s"] = max(0.0, report_s - STARTED)
    split = time_split(folder, row["report_s"])
    if split is not None:
        row |= {"training": split.training, "evaluation": split.evaluation, "checkpoints": split.checkpoints}
    else:
        row |= legacy_split(folder)
    known = sum(v for k, v in row.items() if k in ("training", "evaluation", "checkpoints", "report_s") and v)
    row["startup"] = row["run_s"] - known  # the run's process beyond its packs' epochs and its report
    row["total"] = row["run_s"]
    return row


def show(row: dict) -> str:
    parts = [(k, row[k]) for k in ("training", "evaluation", "checkpoints", "startup") if row.get(k) is not None]
    parts.append(("report", row["report_s"]))
    text = ", ".join(f"{k} {v:,.1f} s ({100 * v / row['total']:.0f} %)" for k, v in parts)
    dry = f"; dry run {row['dry_run_s']:.1f} s: {' | '.join(row['estimate'])}" if "dry_run_s" in row else ""
    return f"{row['study']} {row['args']}: total {row['total']:,.1f} s — {text}{dry}"


def main() -> None:
    global STARTED
    STARTED, _ = timed([sys.executable, "-c", "import petri.report.build, petri.study.runner"])
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/petri-study-time"))
    ap.add_argument("--only", nargs="+", help="study names (file stems in studies/)")
    ap.add_argument("--no-dry-run", action="store_true", help="skip timing --dry-run")
    ap.add_argument("--json", type=Path, help="also write every row as JSON here")
    args = ap.parse_args()
    rows = []
    for name, extra in runs():
        if args.only and name not in args.only:
            continue
        rows.append(measure(name, extra, args.out, not args.no_dry_run))
        print(show(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    total = sum(r["total"] for r in rows)
    print(f"all {len(rows)} studies: {total / 60:,.1f} min")


if __name__ == "__main__":
    main()
