"""Every rule that issues a verdict, checked against known truth.

Studies are simulated with a known true difference between two variants, written as a table of runs and
analysed by ``petri.analyse`` — the path every petri study takes from its places to its verdicts. For
each design the script prints the false-positive rate (a verdict of better / worse where the truth is no
difference; for equivalence: "equivalent" where the truth sits on the margin), the coverage of the
interval printed beside the verdict (its level is 95 % in a family of one), and the power (the share of
studies with a true effect called in the right direction; for equivalence: "equivalent" at Δ = 0) —
beside what the analysis petri used before gives on the same studies (a paired t over every place as if
each were an independent seed, p = 0 from zero spread, survivors only, equivalence on the (1 − α)
interval). Targets: false positives ≤ 5 % within Monte-Carlo error (≤ 6.0 % at 4,000 studies),
coverage ≥ 94 %.

    python benchmarks/inference.py                  # 4,000 studies per design, both cores (~20 min here)
    python benchmarks/inference.py --studies 400    # a quick look
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from multiprocessing import Pool

import numpy as np
import pandas as pd
from scipy import stats as st

ALPHA = 0.05
N_TEST = 10_000  # test images: accuracies move in steps of 1 / N_TEST
PP = 0.01  # one percentage point


def quantise(acc):
    return np.round(np.asarray(acc) * N_TEST) / N_TEST


@dataclass
class Design:
    name: str
    what: str  # parameters, in words
    make: object  # (rng, effect) -> DataFrame of runs
    effect: float  # the true difference of the power runs (metric units)
    null: float = 0.0  # the true difference of the false-positive runs
    options: dict = field(default_factory=dict)  # petri.analyse's
    kind: str = "difference"  # or "equivalence", "adaptive"


def plain(n: int, sd_pair: float = 0.004, shared: float = 0.003):
    """n independent seeds; each seed's two cells share part of their noise (what pairing removes)."""
    def make(rng, effect):
        s = rng.normal(0, shared, n)
        a = 0.9 + s + rng.normal(0, sd_pair / math.sqrt(2), n)
        b = 0.9 + effect + s + rng.normal(0, sd_pair / math.sqrt(2), n)
        return pd.DataFrame({"variant": ["a"] * n + ["b"] * n, "seed": [*range(n), *range(n)],
                             "test_acc": quantise(np.concatenate([a, b]))})
    return make


def crossed(levels: int, per_source: float = 0.003, resid: float = 0.002):
    """init × order crossed; each variant has its own init and order effects (different networks draw
    differently from the same seed), so the paired difference has a part per source."""
    def make(rng, effect):
        rows = []
        for v, shift in (("a", 0.0), ("b", effect)):
            ia, oa = rng.normal(0, per_source, levels), rng.normal(0, per_source, levels)
            for i in range(levels):
                for o in range(levels):
                    rows.append((v, i, o, 0.9 + shift + ia[i] + oa[o] + rng.normal(0, resid)))
        df = pd.DataFrame(rows, columns=["variant", "seed_init", "seed_order", "test_acc"])
        df["test_acc"] = quantise(df["test_acc"])
        return df
    return make


def resampled(levels: int = 3, init: float = 0.006, cell: float = 0.003, test: float = 0.0003):
    """noise-sources' shape: init × order × data trained cells, each scored on ``levels`` resamples of the
    test set (a ``test`` source). Each variant's init dominates and each trained cell has its own effect,
    which its resamples share; the resamples move both sides alike (paired on the same test images)."""
    def make(rng, effect):
        rows = []
        t = rng.normal(0, test, levels)
        for v, shift in (("a", 0.0), ("b", effect)):
            a, c = rng.normal(0, init, levels), rng.normal(0, cell, (levels,) * 3)
            for i, o, d, k in np.ndindex(*(levels,) * 4):
                rows.append((v, i, o, d, k, 0.9 + shift + a[i] + c[i, o, d] + t[k] + rng.normal(0, 0.0002)))
        df = pd.DataFrame(rows, columns=["variant", "seed_init", "seed_order", "seed_data", "seed_test", "test_acc"])
        df["test_acc"] = quantise(df["test_acc"])
        return df
    return make


def quantised(n: int, lam: float = 1.0):
    """The difference of two cells on one test set is a whole number of images: here the difference of
    two Poisson(λ) counts of images, a spread of about √(2λ) images."""
    def make(rng, effect):
        d = (rng.poisson(lam, n) - rng.poisson(lam, n)) / N_TEST + effect
        return pd.DataFrame({"variant": ["a"] * n + ["b"] * n, "seed": [*range(n), *range(n)],
                             "test_acc": np.concatenate([np.full(n, 0.9), 0.9 + d])})
    return make


def quantised_crossed(levels: int = 4, lam: float = 1.0):
    """init × order crossed, every difference a whole number of test images: each side's init and order
    effects are whole images (rounded normal, SD 1 image), its residual a Poisson(λ) count."""
    def make(rng, effect):
        rows = []
        for v, shift in (("a", 0.0), ("b", effect)):
            ia, oa = np.round(rng.normal(0, 1, levels)), np.round(rng.normal(0, 1, levels))
            for i in range(levels):
                for o in range(levels):
                    rows.append((v, i, o, 0.9 + shift + (ia[i] + oa[o] + rng.poisson(lam)) / N_TEST))
        return pd.DataFrame(rows, columns=["variant", "seed_init", "seed_order", "test_acc"])
    return make


def failing(n: int = 6, diverge: int = 3):
    """b has a's distribution, but diverges on the seeds where its run goes worst (so its survivors are
    its best runs): comparing survivors alone favours it."""
    def make(rng, effect):
        a = 0.9 + rng.normal(0, 0.004, n)
        b = 0.9 + effect + rng.normal(0, 0.004, n)
        worst = np.argsort(b)[:diverge]
        status = np.array(["done"] * n, dtype=object)
        status[worst] = "diverged"
        b = b.copy()
        b[worst] = np.nan
        return pd.DataFrame({"variant": ["a"] * n + ["b"] * n, "seed": [*range(n), *range(n)],
                             "test_acc": quantise(np.concatenate([a, b])), "status": ["done"] * n + list(status)})
    return make


def designs() -> list[Design]:
    out = [Design(f"seeds = {n}", "paired sd 0.4 pp, effect 0.5 pp", plain(n), 0.5 * PP) for n in (2, 3, 5, 10)]
    out += [Design(f"init {k} × order {k}", "each side 0.3 pp per source, residual 0.2 pp, effect 1 pp",
                   crossed(k), 1.0 * PP) for k in (3, 4, 5)]
    out += [Design("init 4 × order 4, residual only", "no per-source part in the difference, effect 0.3 pp",
                   crossed(4, per_source=0.0, resid=0.004), 0.3 * PP)]
    out += [Design("init 3 × order 3 × data 3, test 3", "a cell term: init dominant (0.6 pp), each trained cell "
                   "0.3 pp, its 3 test resamples shared; effect 2 pp", resampled(), 2.0 * PP)]
    out += [Design(f"quantised, seeds = {n}", "difference of two Poisson(1) image counts (±1-2 images)",
                   quantised(n), 3 / N_TEST) for n in (3, 5, 8)]
    out += [Design("quantised, init 4 × order 4", "whole-image init, order and residual parts (≈ 1 image "
                   "each); effect 3 images", quantised_crossed(), 3 / N_TEST)]
    out += [Design("failed cells: 3 of 6 diverge", "the diverging side's worst seeds; no true difference",
                   failing(), 0.0)]
    out += [Design("equivalence, seeds = 10", "margin 0.5 pp; false positive: 'equivalent' at Δ = margin; power: "
                   "at Δ = 0", plain(10), 0.0, null=0.5 * PP, options={"margin": 0.5}, kind="equivalence")]
    out += [Design("adaptive, seeds 3..12", "a look after every seed (10 looks), effect 0.8 pp", plain(12),
                   0.8 * PP, kind="adaptive")]
    return out


DESIGNS = designs()  # (by index: workers rebuild nothing, the closures stay in this process's fork)


def petri_verdict(df, options: dict, looks: int = 1):
    import petri

    c = petri.analyse(df, test_size=N_TEST, looks=looks, **options).view().findings.family[0]
    return c.verdict, c.interval


def old_verdict(df, margin: float | None, alpha: float = ALPHA):
    """The analysis petri used before: a t over every place with a value (survivors only), sd = 0 -> p = 0,
    equivalence on the two-sided (1 - α) interval (a family of one)."""
    keys = [c for c in df.columns if c.startswith("seed")]
    ok = df[df["test_acc"].notna()]
    a = ok[ok.variant == "a"].set_index(keys)["test_acc"]
    b = ok[ok.variant == "b"].set_index(keys)["test_acc"]
    d = (b - a).dropna().to_numpy()
    if len(d) < 2:
        return "too few seeds", (math.nan, math.nan)
    sd = d.std(ddof=1)
    if sd == 0:
        lo = hi = d.mean()
    else:
        lo, hi = st.ttest_1samp(d, 0).confidence_interval(1 - alpha)
    if margin is not None and -margin < lo and hi < margin:
        return "equivalent", (lo, hi)
    return ("better" if lo > 0 else "worse" if hi < 0 else "no detectable difference"), (lo, hi)


def adaptive(df: pd.DataFrame, options) -> tuple[str, tuple]:
    """Look after every seed from 3 to 12 at α / 10 each (petri's adaptive rule), stop once decided."""
    for n in range(3, 13):
        verdict, interval = petri_verdict(df[df["seed"] < n], options, looks=10)
        if verdict in ("better", "worse"):
            return verdict, interval
    return verdict, interval


def old_adaptive(df, options):
    for n in range(3, 13):  # (its α was split over the looks too)
        verdict, interval = old_verdict(df[df["seed"] < n], None, ALPHA / 10)
        if verdict in ("better", "worse"):
            return verdict, interval
    return verdict, interval


def one(args) -> dict:
    i, effect, seed = args
    design = DESIGNS[i]
    rng = np.random.default_rng(seed)
    df = design.make(rng, effect)
    margin = design.options.get("margin")
    if design.kind == "adaptive":
        new, old = adaptive(df, design.options), old_adaptive(df, design.options)
    else:
        new = petri_verdict(df, design.options)
        old = old_verdict(df, None if margin is None else margin * PP)
    return {"new": new, "old": old, "effect": effect}


def rates(results: list[dict], design: Design, key: str) -> dict:
    null = [r[key] for r in results if r["effect"] == design.null]
    alt = [r[key] for r in results if r["effect"] == design.effect]
    hit = (lambda v: v == "equivalent") if design.kind == "equivalence" else (lambda v: v in ("better", "worse"))
    fp = np.mean([hit(v) for v, _ in null])
    if design.kind == "equivalence":
        power = np.mean([hit(v) for v, _ in alt]) if alt else math.nan
    else:
        want = "better" if design.effect > 0 else "worse"
        power = np.mean([v == want for v, _ in alt]) if alt and design.effect else math.nan
    covered = [lo <= design.null <= hi for v, (lo, hi) in null if not math.isnan(lo) and v != "withheld"]
    cover = np.mean(covered) if covered else math.nan
    withheld = np.mean([v in ("withheld", "too few seeds") for v, _ in null])
    return {"fp": fp, "cover": cover, "power": power, "withheld": withheld}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=4000, help="simulated studies per design and truth")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="designs whose names start with these (default: every design)")
    args = ap.parse_args()
    t0 = time.time()
    rows = []
    with Pool(args.workers) as pool:
        for i, d in enumerate(DESIGNS):
            if args.only and not any(d.name.startswith(o) for o in args.only):
                continue
            jobs = [(i, e, 1_000_003 * i + 7 * k + (e != d.null)) for e in dict.fromkeys((d.null, d.effect))
                    for k in range(args.studies)]
            res = pool.map(one, jobs, chunksize=50)
            new, old = rates(res, d, "new"), rates(res, d, "old")
            mc = 1.96 * math.sqrt(ALPHA * (1 - ALPHA) / args.studies)
            rows.append((d, new, old))
            print(f"{d.name:34s} false pos {100 * new['fp']:5.2f} % (before {100 * old['fp']:5.2f} %)  coverage "
                  f"{100 * new['cover']:5.1f} % (before {100 * old['cover']:5.1f} %)  power {100 * new['power']:5.1f} % "
                  f"(before {100 * old['power']:5.1f} %)  withheld {100 * new['withheld']:4.1f} %"
                  + ("   ABOVE TARGET" if new["fp"] > ALPHA + mc else ""), flush=True)
    print(f"\n{args.studies} studies per design and truth, {time.time() - t0:.0f} s; Monte-Carlo 95 % margin on a "
          f"5 % rate: ±{100 * 1.96 * math.sqrt(ALPHA * (1 - ALPHA) / args.studies):.2f} pp\n")
    print("| design | parameters | false positives | (before) | coverage | (before) | power | (before) |")
    print("|---|---|---|---|---|---|---|---|")
    for d, new, old in rows:
        f = lambda x: "—" if math.isnan(x) else f"{100 * x:.1f} %"  # noqa: E731
        print(f"| {d.name} | {d.what} | {f(new['fp'])} | {f(old['fp'])} | {f(new['cover'])} | {f(old['cover'])} | "
              f"{f(new['power'])} | {f(old['power'])} |")


if __name__ == "__main__":
    main()
