"""An adaptive study's looks (``seeds = { min, max, step, until }``): what each look keeps in the ledger
(``meta``, key ``adaptive``), how it reads while the study runs, and the figure of each comparison's
interval over the looks.

A look is a dict: ``seeds`` (the round's seeds), ``met`` (the target held), ``undecided`` (comparisons
without a verdict), ``widest`` (the widest family-wise interval, metric units) and ``comparisons``: per
comparison its ``label``, ``n``, ``mean``, family-wise interval ``lo`` / ``hi``, ``margin`` and
``verdict`` (metric units; None where it has no interval yet).
"""

from __future__ import annotations

import math

import matplotlib.ticker

from ..analysis.family import DECIDED

SHOWN = 12  # comparisons a look's lines and the figure show; the rest are counted


def _known(x) -> bool:
    return x is not None and not math.isnan(x)


def _value(x: float) -> float | None:
    return float(x) if _known(x) else None


def record(family: list, seeds: int, met: bool) -> dict:
    """One look at ``family`` (``family.Comparison``s after a round of ``seeds`` seeds), as the ledger keeps it."""
    comparisons = [{"label": c.label + (f" at {c.at}" if c.at else ""), "n": c.n, "mean": _value(c.mean),
                    "lo": _value(c.lo_fw), "hi": _value(c.hi_fw), "margin": c.margin, "verdict": c.verdict}
                   for c in family]
    widths = [c["hi"] - c["lo"] for c in comparisons if c["lo"] is not None and c["n"] >= 2]
    return {"seeds": seeds, "undecided": sum(1 for c in family if c.verdict not in DECIDED),
            "widest": max(widths) if widths else None, "met": met, "comparisons": comparisons}


def _width(c: dict) -> float:
    return math.inf if c["lo"] is None or c["n"] < 2 else c["hi"] - c["lo"]


def _done(c: dict, rule) -> bool:
    """Whether comparison ``c`` meets the study's target on its own."""
    return _width(c) < rule.width if rule.until == "width" else c["verdict"] in DECIDED


def target(rule, percent: bool, unit: str) -> str:
    if rule.until == "width":
        return f"every family-wise interval narrower than {_amount(rule.width, percent, unit)}"
    return "every comparison decided (better, worse or equivalent)"


def _amount(x: float, percent: bool, unit: str) -> str:
    return f"{100 * x:.2f} pp" if percent else f"{x:.4g} {unit}"


def lines(look: dict, rule, percent: bool, unit: str) -> list[str]:
    """Where each comparison stands after ``look``, one line each (those short of the target first)."""
    out = []
    comps = sorted(look["comparisons"], key=lambda c: (_done(c, rule), -_width(c)))
    for c in comps[:SHOWN]:
        if c["lo"] is None or c["n"] < 2:
            out.append(f"  {c['label']}: no interval yet ({c['n']} seeds)")
            continue
        scale = 100 if percent else 1
        fmt = "{:+.2f}" if percent else "{:+.4g}"
        where = fmt.format(scale * c["mean"]) + f" [{fmt.format(scale * c['lo'])}, {fmt.format(scale * c['hi'])}]"
        width = f"width {_amount(c['hi'] - c['lo'], percent, unit)}"
        mark = ("" if rule.until != "width" else " (< target)" if _done(c, rule) else " (≥ target)")
        out.append(f"  {c['label']}: {where}{' pp' if percent else ''}, {width}{mark}: {c['verdict'] or '—'}")
    if len(comps) > SHOWN:
        out.append(f"  … and {len(comps) - SHOWN} more, all meeting the target" if all(
            _done(c, rule) for c in comps[SHOWN:]) else f"  … and {len(comps) - SHOWN} more")
    return out


def headline(look: dict, rule, percent: bool, unit: str) -> str:
    """The look against the target: the widest interval, or how many comparisons are undecided."""
    m = len(look["comparisons"])
    if rule.until == "width":
        widest = look.get("widest")
        return f"target: {target(rule, percent, unit)}; widest now " + \
            ("— (too few seeds)" if widest is None else _amount(widest, percent, unit)) + \
            f", {sum(1 for c in look['comparisons'] if not _done(c, rule))} of {m} not yet"
    return f"target: {target(rule, percent, unit)}; {look['undecided']} of {m} comparison{'s' if m != 1 else ''} undecided"


def summary(state: dict | None) -> str | None:
    """One sentence on an adaptive study's looks against its target and why it stopped (or that it has not yet)."""
    if not state or not state.get("looks"):
        return None
    looks, rule = state["looks"], state.get("rule", {})
    percent, unit = state.get("percent", True), state.get("metric", "test_acc")
    if rule.get("until") == "width" and rule.get("width"):
        seen = ", ".join(f"{lk['seeds']} (widest " + (_amount(lk["widest"], percent, unit) if _known(lk.get("widest"))
                                                      else "—") + ")" for lk in looks)
        aim = f"every family-wise interval narrower than {_amount(rule['width'], percent, unit)}"
    else:
        seen = ", ".join(f"{lk['seeds']} ({lk['undecided']} undecided)" for lk in looks)
        aim = "every comparison decided"
    end = f"stopped at {looks[-1]['seeds']} seeds: {state['stopped']}" if state.get("stopped") else "not stopped yet"
    return f"Adaptive seeds until {aim}, looked at after {len(looks)} round(s) with {seen} seeds; {end}."


def figure(state: dict, percent: bool, unit: str):
    """Each comparison's family-wise interval (and mean) at each look, one panel per comparison on one
    y-range; zero and ±margin drawn. With a width target, a first panel: each interval's width over the
    looks against the target. None without looks that carry comparisons."""
    from .figures import subplots

    looks = [lk for lk in (state or {}).get("looks", []) if lk.get("comparisons")]
    if not looks:
        return None
    rule = state.get("rule", {})
    labels = list(dict.fromkeys(c["label"] for lk in looks for c in lk["comparisons"]))[:SHOWN]
    by_width = rule.get("until") == "width" and rule.get("width")
    n = len(labels) + bool(by_width)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows + 0.4), squeeze=False)
    scale, u = (100, "pp") if percent else (1, unit)
    panels = list(axes.flat)
    for ax in panels[n:]:
        ax.set_visible(False)
    colors = {"better": "tab:green", "positive": "tab:green", "worse": "tab:red", "negative": "tab:red",
              "equivalent": "tab:blue"}
    if by_width:
        ax = panels.pop(0)
        for label in labels:
            pts = [(lk["seeds"], c) for lk in looks for c in lk["comparisons"] if c["label"] == label and c["lo"] is not None]
            ax.plot([s for s, _ in pts], [scale * (c["hi"] - c["lo"]) for _, c in pts], marker="o", ms=3, label=label)
        ax.axhline(scale * rule["width"], color="0.2", ls="--", lw=1, label="target")
        widths = [scale * (c["hi"] - c["lo"]) for lk in looks for c in lk["comparisons"] if c["lo"] is not None]
        if widths and max(widths) >= 10 * scale * rule["width"]:
            ax.set_yscale("log")  # the target stays readable beside intervals many times wider
        ax.set_title("family-wise interval width", fontsize=9)
        ax.set_xlabel("seeds")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(f"width ({u})")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    share = panels[:len(labels)]
    for ax, label in zip(share, labels):
        for lk in looks:
            for c in lk["comparisons"]:
                if c["label"] != label or c["lo"] is None:
                    continue
                color = colors.get(c["verdict"], "0.35")
                ax.errorbar(lk["seeds"], scale * c["mean"], yerr=[[scale * (c["mean"] - c["lo"])],
                                                                   [scale * (c["hi"] - c["mean"])]],
                            fmt="o", color=color, capsize=3)
        margins = {c["margin"] for lk in looks for c in lk["comparisons"] if c["label"] == label and c["margin"]}
        for m in margins:
            for y in (-scale * m, scale * m):
                ax.axhline(y, color="tab:blue", lw=0.8, ls="--")
        ax.axhline(0, color="0.2", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("seeds")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(f"Δ ({u})")
        ax.grid(alpha=0.3)
    lows = [ax.get_ylim()[0] for ax in share]
    highs = [ax.get_ylim()[1] for ax in share]
    for ax in share:  # one y-range: the same interval looks the same in every panel
        ax.set_ylim(min(lows), max(highs))
    fig.tight_layout()
    return fig
