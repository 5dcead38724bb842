"""Figures (matplotlib, headless): learning curves, sweep heatmaps and lines, paired differences
(a forest plot), confusion matrices, the noise's sources, throughput. Accuracies are in percent
everywhere; an interval is clipped to what the metric can take (0-100 %); panels of one quantity share
one scale, so the same interval looks the same in each."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..analysis.findings import Row, point_key
from .stats import t_interval


def subplots(*args, **kwargs):
    """pyplot.subplots without pyplot: figures drawn headless, never touching the session's backend
    (a notebook's inline plots stay inline)."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)

METRICS = (("train_loss", "train loss (mean over the epoch's batches)"),
           ("train_acc", "train accuracy (mean over the epoch's batches)"),
           ("test_acc", "test accuracy"))


def save(fig, folder: Path, name: str) -> tuple[Path, bytes]:
    """Write NAME.png and NAME.svg; returns the PNG path and bytes (for inlining)."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    (folder / f"{name}.png").write_bytes(buf.getvalue())
    return folder / f"{name}.png", buf.getvalue()


def curves(epochs: list[dict], labels: dict[str, str], order: list[str], noisy_labels: bool = False,
           log_loss: bool = False):
    """Three panels, one line per label (mean over seeds) with a 95 % t-interval band, and a fourth with
    the learning rate of each epoch's last step when it changes over training (a schedule). ``order``:
    the labels in the order the study gives them (numbers as numbers)."""
    rates: dict[str, set] = {}
    for e in epochs:
        if e.get("lr") is not None and e["place"] in labels:
            rates.setdefault(e["place"], set()).add(e["lr"])
    scheduled = any(len(r) > 1 for r in rates.values())  # some cell's rate changed between epochs
    metrics = [*METRICS, *([("lr", "learning rate (last step of each epoch)")] if scheduled else [])]
    fig, axes = subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.8))
    series: dict[str, dict[int, dict[str, list[float]]]] = {}
    for e in epochs:
        label = labels.get(e["place"])
        if label is None:
            continue
        per_epoch = series.setdefault(label, {}).setdefault(e["epoch"], {m: [] for m, _ in metrics})
        for m, _ in metrics:
            if e.get(m) is not None:
                per_epoch[m].append(100 * e[m] if m.endswith("acc") else e[m])
    for ax, (metric, title) in zip(axes, metrics):
        for label in [x for x in order if x in series]:
            per_epoch = series[label]
            xs = [x for x in sorted(per_epoch) if per_epoch[x][metric]]  # evaluated epochs only (recipe.eval_every)
            stats = [t_interval(per_epoch[x][metric]) for x in xs]
            mean = np.array([s[0] for s in stats])
            hw = np.nan_to_num(np.array([s[1] for s in stats]))
            lo, hi = (mean - hw, mean + hw) if not metric.endswith("acc") else clip_band(mean, hw)
            (line,) = ax.plot(xs, mean, marker="o", ms=3, label=label)
            ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
        if metric == "train_acc" and noisy_labels:
            title = "train accuracy against the (noisy) training labels"
        ax.set_title(title.replace("accuracy", "accuracy (%)") if metric.endswith("acc") else title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if metric == "train_loss" and log_loss:
            ax.set_yscale("log")
    n = len(series)
    if n > 12:  # many lines: the legend beside the panels, in columns, not over the curves
        fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=7, ncol=max(1, n // 25 + 1), frameon=False)
    else:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def clip_band(mean: np.ndarray, hw: np.ndarray, lo: float = 0.0, hi: float = 100.0):
    """A mean ± half-width band in percent, clipped to what an accuracy can take."""
    return np.clip(mean - hw, lo, hi), np.clip(mean + hw, lo, hi)


def metric_axis(metric: str) -> tuple[str, float, str, str]:
    """How a figure shows the analysed ``metric``: (its name in words, the factor its values are drawn
    at, its unit, a difference's unit) — accuracies and other fractions in % and percentage points, any
    other metric in its own units."""
    from ..train.metrics import is_fraction

    words = metric.replace("_", " ").replace("acc", "accuracy")
    return (words, 100.0, "%", "percentage points") if is_fraction(metric) else (words, 1.0, "", f"{metric} units")


def heatmaps(rows: list[Row], variant: str, axes: tuple[str, str], scale_of: list[Row] | None = None,
             metric: str = "test_acc"):
    """2-D sweep: the analysed metric's mean, and the paired difference vs the reference (hatched: no
    better / worse verdict). ``scale_of``: the rows whose range the colour scales span (every grid of a
    study: one scale for all)."""
    words, k, unit, diff_unit = metric_axis(metric)
    ra, ca = axes
    pts = [r for r in rows if r.variant == variant]
    rvals = sorted({r.point[ra] for r in pts}, key=point_key)
    cvals = sorted({r.point[ca] for r in pts}, key=point_key)
    acc = np.full((len(rvals), len(cvals)), np.nan)
    diff = np.full_like(acc, np.nan)
    sig = np.zeros_like(acc, dtype=bool)
    for r in pts:
        i, j = rvals.index(r.point[ra]), cvals.index(r.point[ca])
        acc[i, j] = k * r.mean
        if r.effect:
            diff[i, j] = k * r.effect.mean
            sig[i, j] = r.verdict in ("better", "worse")
    fig, (a1, a2) = subplots(1, 2, figsize=(12, 5))
    span = [r for r in (scale_of or pts) if not np.isnan(r.mean)]
    means = [k * r.mean for r in span] or [0.0, 100.0]
    im = a1.imshow(acc, cmap="viridis", origin="upper", vmin=min(means), vmax=max(means))
    fig.colorbar(im, ax=a1, label=f"{words} ({unit})" if unit else words)
    a1.set_title(f"{variant}: mean {words}", fontsize=10)
    diffs = [abs(k * r.effect.mean) for r in span if r.effect and not np.isnan(r.effect.mean)]
    lim = max(diffs) if diffs and max(diffs) > 0 else 1.0
    im2 = a2.imshow(diff, cmap="RdBu", vmin=-lim, vmax=lim, origin="upper")
    fig.colorbar(im2, ax=a2, label=f"difference vs the reference ({diff_unit})")
    for i in range(len(rvals)):
        for j in range(len(cvals)):
            if np.isfinite(diff[i, j]) and not sig[i, j]:
                a2.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.4"))
    a2.set_title(f"{variant}: paired difference vs the reference (hatched: no better / worse verdict)", fontsize=10)
    for ax in (a1, a2):
        ax.set_xlabel(ca)
        ax.set_ylabel(ra)
        step = max(1, len(cvals) // 10)
        ax.set_xticks(range(0, len(cvals), step), [str(v) for v in cvals[::step]])
        ax.set_yticks(range(0, len(rvals), max(1, len(rvals) // 10)), [str(v) for v in rvals[::max(1, len(rvals) // 10)]])
    fig.tight_layout()
    return fig


def _yerr(means, hws, clip: bool = True):
    """Asymmetric error bars; in percent (``clip``) clipped to 0-100."""
    m, h = np.array(means, dtype=float), np.nan_to_num(np.array(hws, dtype=float))
    lo, hi = clip_band(m, h) if clip else (m - h, m + h)
    return np.vstack([m - lo, hi - m])


def numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweeps(rows: list[Row], panels: list[tuple[str, str]], train: dict[str, list[float]],
           reference: Row | None = None, noisy_labels: bool = False, metric: str = "test_acc"):
    """1-D sweeps, one panel per (variant, axis), all on one scale (the same error bar looks the same in
    every panel): the analysed metric (and, for accuracy, the train accuracy) vs the swept value, mean ±
    95 % CI; the reference drawn."""
    words, _, unit, _ = metric_axis(metric)
    cols = min(len(panels), 3)
    n_rows = (len(panels) + cols - 1) // cols
    fig, axes = subplots(n_rows, cols, figsize=(6.5 * cols if cols == 1 else 5.2 * cols, 4 * n_rows), squeeze=False,
                         sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (variant, axis) in zip(axes.flat, panels):
        _sweep_panel(ax, rows, variant, axis, train if metric == "test_acc" else {}, reference, noisy_labels, metric)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"final {'accuracy' if metric == 'test_acc' else words}" + (f" ({unit})" if unit else ""))
    fig.tight_layout()
    return fig


def _sweep_panel(ax, rows: list[Row], variant: str, axis: str, train: dict[str, list[float]], reference: Row | None,
                 noisy_labels: bool, metric: str = "test_acc") -> None:
    words, k, unit, _ = metric_axis(metric)
    clip = unit == "%"
    pts = sorted((r for r in rows if r.variant == variant), key=lambda r: point_key(r.point[axis]))
    xs = [r.point[axis] for r in pts]
    pos = xs if numeric(xs) else list(range(len(xs)))
    ax.errorbar(pos, [k * r.mean for r in pts], yerr=_yerr([k * r.mean for r in pts],
                [k * r.half_width for r in pts], clip), marker="o", capsize=3, label="test", zorder=3)  # on top
    if train:  # (train accuracy: drawn beside test accuracy only)
        tr = [t_interval(train.get(r.label, [])) for r in pts]
        ax.errorbar(pos, [100 * m for m, _ in tr], yerr=_yerr([100 * m for m, _ in tr], [100 * h for _, h in tr]),
                    marker="s", ms=8, mfc="none", capsize=3, zorder=2,  # hollow and larger: a test point inside shows
                    label="train (against noisy labels)" if noisy_labels else "train")
    if reference is not None and reference.variant != variant and not np.isnan(reference.mean):
        m, h = k * reference.mean, k * np.nan_to_num(reference.half_width)
        ax.axhline(m, color="0.3", ls="--", lw=1, label=f"reference: {reference.label} (test)")
        ax.axhspan(*(clip_band(np.array(m), np.array(h)) if clip else (m - h, m + h)), color="0.5", alpha=0.15)
    if numeric(xs) and all(x > 0 for x in xs) and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")  # values spanning decades
    ax.set_xticks(pos, [str(x) for x in xs])  # the swept values themselves, on any scale
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(axis)
    ax.set_title(f"{variant}: {'accuracy' if metric == 'test_acc' else words} vs {axis}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def interaction(rows: list[Row], variants: tuple[str, ...], axis: str, analysis):
    """A crossed design on one axis: one line per variant across the levels of ``axis``, mean ± 95 %
    t-interval over seeds (seaborn's hue= overlay), so an interaction shows as lines that are not parallel."""
    scale = 100 if analysis.percent else 1
    fig, ax = subplots(figsize=(6.5, 4))
    levels = sorted({r.point[axis] for r in rows if r.variant in variants and axis in r.point}, key=point_key)
    pos = levels if numeric(levels) else list(range(len(levels)))
    for v in variants:
        pts = {r.point[axis]: r for r in rows if r.variant == v and axis in r.point}
        xs = [p for p, lv in zip(pos, levels) if lv in pts]
        ms = [scale * pts[lv].mean for lv in levels if lv in pts]
        hs = [scale * pts[lv].half_width for lv in levels if lv in pts]
        ax.errorbar(xs, ms, yerr=_yerr(ms, hs) if analysis.percent else np.nan_to_num(hs), marker="o", capsize=3,
                    label=v)
    if numeric(levels) and all(x > 0 for x in levels) and max(levels) / min(levels) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(pos, [str(x) for x in levels])  # the swept values themselves, on any scale
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(axis)
    ax.set_ylabel(f"final {analysis.metric.replace('_', ' ')}" + (" (%)" if analysis.percent else ""))
    ax.set_title(f"{' vs '.join(variants)} across {axis}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusions(matrices: dict, classes: list[str]):
    """One panel per (variant, point) label: its confusion matrix (image counts summed over seeds), the
    colour each true class's row in percent of that class, the count written in each cell (up to 12
    classes), the classes by their full names."""
    n = len(matrices)
    cols = min(n, 3)
    rows_ = (n + cols - 1) // cols
    k = len(classes)
    side = 4.2 if k <= 12 else 3.4
    fig, axes = subplots(rows_, cols, figsize=(side * cols + 0.8, side * rows_ + 0.4), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    labels = [str(c) for c in classes]
    for ax, (label, m) in zip(axes.flat, matrices.items()):
        pct = 100 * m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        ax.set_title(label, fontsize=9)
        if k <= 12:  # counts readable at this size
            for i in range(k):
                for j in range(k):
                    if m[i, j]:
                        ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=5.5,
                                color="white" if pct[i, j] > 55 else "0.15")
        if k <= 20:
            ax.set_xticks(range(k), labels, fontsize=6, rotation=90)
            ax.set_yticks(range(k), labels, fontsize=6)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    fig.tight_layout()
    return fig


def forest(items: list[tuple[str, object]], xlabel: str, scale: float = 100):
    """Paired differences, one row each (label, ``family.Comparison``): mean and family-wise interval, and
    every seed's own difference as a dot, so a paired verdict is never read off overlapping unpaired
    bands; dashed: ±margin where one is set."""
    fig, ax = subplots(figsize=(7, max(2.2, 0.38 * len(items) + 1.2)))
    colors = {"better": "tab:green", "positive": "tab:green", "worse": "tab:red", "negative": "tab:red",
              "equivalent": "tab:blue"}
    for i, (_, e) in enumerate(items):
        color = colors.get(e.verdict, "0.35")
        if not np.isnan(e.mean):
            err = [[scale * np.nan_to_num(e.mean - e.lo_fw)], [scale * np.nan_to_num(e.hi_fw - e.mean)]]
            ax.errorbar(scale * e.mean, i, xerr=err, fmt="o", color=color, capsize=3)
        diffs = [scale * d for d in e.diffs.values()]
        ax.scatter(diffs, np.full(len(diffs), i) + 0.18, s=10, color=color, alpha=0.6)
    for m in {e.margin for _, e in items if e.margin}:
        for x in (-scale * m, scale * m):
            ax.axvline(x, color="tab:blue", lw=0.8, ls="--")
    ax.axvline(0, color="0.2", lw=1)
    ax.set_yticks(range(len(items)), [label for label, _ in items], fontsize=8)
    ax.set_ylim(len(items) - 0.4, -0.6)  # the first on top, its seeds' dots just below it
    ax.set_xlabel(xlabel)
    ax.set_title("Paired differences: mean and family-wise interval; dots: each seed's own difference", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def throughput(packs: list[tuple[str, int, float]]):
    """Training images/s per pack (label, K, aggregate images/s)."""
    fig, ax = subplots(figsize=(6.5, max(2.0, 0.35 * len(packs) + 1)))
    labels = [f"{lab} (K={k})" for lab, k, _ in packs]
    ax.barh(range(len(packs)), [v for _, _, v in packs], color="tab:green")
    ax.set_yticks(range(len(packs)), labels, fontsize=8)
    ax.set_xlabel("training images/s (all members of the pack)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def noise(spreads, factors: list[str], scale: float = 100, unit: str = "pp"):
    """One panel per (variant, point) of a crossed study (``variance.Spread``): each source's share of the
    seeds' variance, then the residual's, as a dot with its generalized 95 % interval; below them, on a
    row of its own, the share a finite test set explains by itself (binomial: no interval), an arrow at
    100 % where it is more than the whole spread. The title gives the SD over all its places."""
    shown = [s for s in spreads if s.parts]
    names = [*factors, "cell", "residual"]  # (the trained cell's own term where places resample cells)
    palette = dict(zip(names, ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                               "0.65"][:len(names) - 2] + ["tab:red", "0.45"]))
    heights = [len(s.parts) + (not np.isnan(s.test_share)) for s in shown]
    fig, axes = subplots(len(shown), 1, figsize=(7.5, 0.32 * sum(heights) + 0.75 * len(shown) + 0.6), squeeze=False,
                         sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, s in zip(axes[:, 0], shown):
        labels = []
        for i, p in enumerate(s.parts):
            share, lo, hi = 100 * p.share, 100 * p.share_low, 100 * p.share_high
            ax.plot([lo, hi], [i, i], color=palette[p.source], lw=2.5, solid_capstyle="butt", alpha=0.55)
            ax.plot(share, i, "o", color=palette[p.source], ms=6)
            name = "trained cell (interactions)" if p.source == "cell" else p.source
            labels.append(f"{name}  {share:.0f} % [{lo:.0f}, {hi:.0f}]")
        if not np.isnan(s.test_share):
            i = len(s.parts)
            ax.axhline(i - 0.5, color="0.75", lw=0.8)
            over = s.test_share > 1
            if s.measured:  # per example, with its interval (the cells resampled)
                lo, hi = (100 * v / s.total for v in (s.test_examples_low, s.test_examples_high))
                ax.plot([lo, min(hi, 100)], [i, i], color="black", lw=2.5, solid_capstyle="butt", alpha=0.4)
                labels.append(f"test set, per example  {100 * s.test_share:.0f} % [{lo:.0f}, {hi:.0f}]")
            else:
                labels.append(f"test set alone (binomial bound)  {100 * s.test_share:.0f} %")
            ax.plot(min(100 * s.test_share, 100), i, ">" if over else "D", color="black", ms=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(-1, 101)
        ax.grid(alpha=0.3, axis="x")
        point = f" ({', '.join(f'{k}={v}' for k, v in s.point.items())})" if s.point else ""
        ax.set_title(f"{s.variant}{point}: SD {scale * np.sqrt(s.total):.3g} {unit} (model total) over {s.n} places",
                     fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("share of the variance between seeds (%); line: generalized 95 % interval")
    fig.tight_layout()
    return fig
