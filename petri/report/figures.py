"""Figures (matplotlib, headless): learning curves, sweep heatmaps and lines, throughput."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .analysis import Row  # noqa: E402
from .stats import t_interval  # noqa: E402

METRICS = (("train_loss", "train loss (mean over the epoch's batches)"),
           ("train_acc", "train accuracy (mean over the epoch's batches)"),
           ("test_acc", "test accuracy"))


def save(fig, folder: Path, name: str) -> tuple[Path, bytes]:
    """Write NAME.png and NAME.svg; returns the PNG path and bytes (for inlining)."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    (folder / f"{name}.png").write_bytes(buf.getvalue())
    return folder / f"{name}.png", buf.getvalue()


def curves(epochs: list[dict], labels: dict[str, str], log_loss: bool = False):
    """Three panels, one line per variant (mean over seeds) with a 95 % t-interval band."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    series: dict[str, dict[int, dict[str, list[float]]]] = {}
    for e in epochs:
        label = labels.get(e["cell_hash"])
        if label is None:
            continue
        per_epoch = series.setdefault(label, {}).setdefault(e["epoch"], {m: [] for m, _ in METRICS})
        for m, _ in METRICS:
            if e[m] is not None:
                per_epoch[m].append(e[m])
    for ax, (metric, title) in zip(axes, METRICS):
        for label, per_epoch in sorted(series.items()):
            xs = sorted(per_epoch)
            stats = [t_interval(per_epoch[x][metric]) for x in xs]
            mean = np.array([s[0] for s in stats])
            hw = np.nan_to_num(np.array([s[1] for s in stats]))
            (line,) = ax.plot(xs, mean, marker="o", ms=3, label=label)
            ax.fill_between(xs, mean - hw, mean + hw, alpha=0.2, color=line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if metric == "train_loss" and log_loss:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def heatmaps(rows: list[Row], variant: str, axes: tuple[str, str]):
    """2-D sweep: mean test accuracy, and the paired difference vs baseline (non-significant hatched)."""
    ra, ca = axes
    pts = [r for r in rows if r.variant == variant]
    rvals = sorted({r.point[ra] for r in pts})
    cvals = sorted({r.point[ca] for r in pts})
    acc = np.full((len(rvals), len(cvals)), np.nan)
    diff = np.full_like(acc, np.nan)
    sig = np.zeros_like(acc, dtype=bool)
    for r in pts:
        i, j = rvals.index(r.point[ra]), cvals.index(r.point[ca])
        acc[i, j] = 100 * r.mean
        if r.effect:
            diff[i, j] = 100 * r.effect.mean
            sig[i, j] = r.verdict in ("better", "worse")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    im = a1.imshow(acc, cmap="viridis", origin="upper")
    fig.colorbar(im, ax=a1, label="test accuracy (%)")
    a1.set_title(f"{variant}: mean test accuracy", fontsize=10)
    lim = np.nanmax(np.abs(diff)) if np.isfinite(diff).any() else 1.0
    im2 = a2.imshow(diff, cmap="RdBu", vmin=-lim, vmax=lim, origin="upper")
    fig.colorbar(im2, ax=a2, label="difference vs baseline (percentage points)")
    for i in range(len(rvals)):
        for j in range(len(cvals)):
            if np.isfinite(diff[i, j]) and not sig[i, j]:
                a2.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.4"))
    a2.set_title(f"{variant}: paired difference vs baseline (hatched: not significant)", fontsize=10)
    for ax in (a1, a2):
        ax.set_xlabel(ca)
        ax.set_ylabel(ra)
        step = max(1, len(cvals) // 10)
        ax.set_xticks(range(0, len(cvals), step), [str(v) for v in cvals[::step]])
        ax.set_yticks(range(0, len(rvals), max(1, len(rvals) // 10)), [str(v) for v in rvals[::max(1, len(rvals) // 10)]])
    fig.tight_layout()
    return fig


def sweep_line(rows: list[Row], variant: str, axis: str, train: dict[str, list[float]]):
    """1-D sweep: test (and train) accuracy vs the swept value, mean ± 95 % CI."""
    pts = sorted((r for r in rows if r.variant == variant), key=lambda r: r.point[axis])
    xs = [r.point[axis] for r in pts]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.errorbar(xs, [100 * r.mean for r in pts], yerr=[100 * np.nan_to_num(r.half_width) for r in pts],
                marker="o", capsize=3, label="test")
    tr = [t_interval(train.get(r.label, [])) for r in pts]
    ax.errorbar(xs, [100 * m for m, _ in tr], yerr=[100 * np.nan_to_num(h) for _, h in tr], marker="s",
                capsize=3, label="train")
    if all(isinstance(x, (int, float)) and x > 0 for x in xs) and max(xs) / min(xs) > 50:
        ax.set_xscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel("final accuracy (%)")
    ax.set_title(f"{variant}: accuracy vs {axis}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def throughput(packs: list[tuple[str, int, float]]):
    """Training images/s per pack (label, K, aggregate images/s)."""
    fig, ax = plt.subplots(figsize=(6.5, max(2.0, 0.35 * len(packs) + 1)))
    labels = [f"{lab} (K={k})" for lab, k, _ in packs]
    ax.barh(range(len(packs)), [v for _, _, v in packs], color="tab:green")
    ax.set_yticks(range(len(packs)), labels, fontsize=8)
    ax.set_xlabel("training images/s (all members of the pack)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
