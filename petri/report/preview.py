"""What a study's treatments do to images: a few training and test images of each variant, treated as
its first cell sees them (its first sweep point and seed, epoch 1), drawn as a grid."""

from __future__ import annotations

import numpy as np
import torch

from ..data import load
from ..train.splits import make_splits
from ..treatments.pipeline import Pipeline
from .figures import subplots


def treated_images(study, variant: str, n: int = 8) -> dict[str, np.ndarray]:
    """{"train", "test"} -> float [n, C, H, W]: the first ``n`` images of each split the variant's first
    cell uses, after its treatments (training images as in epoch 1, test images as evaluated)."""
    cell = next(c for c in study.cells if c.variant == variant)
    ds = load(cell.data, allow_download=False)
    device = torch.device("cpu")
    train, _, test = make_splits(ds, cell.recipe, device)
    n = min(n, len(train.y), len(test.y))
    pipe = Pipeline([list(cell.treatments)], [cell.seeds], ds.spec.shape, len(ds.spec.classes), train.x,
                    ds.train_y, device, reader_cache={})
    pos = torch.arange(n)[None, None]  # [step, member, image]: positions 0..n-1 of the training split, member 0
    buf = torch.empty(max(n * pipe.reader.image_bytes, 1 << 16), dtype=torch.uint8)
    raw = pipe.reader.read(pos, train.ids[:n][None, None], 1, buf).unflatten(0, (1, n))  # as epoch 1 reads them
    out = {"train": pipe.images(raw, train.ids[:n][None], "train", 1)[0],
           "test": pipe.images(test.x[:n], test.ids[:n], "test", 0)[0]}
    return {k: v.detach().numpy() for k, v in out.items()}


def preview(study, variants: list[str] | None = None, n: int = 8):
    """A grid: for each variant, a row of treated training images and a row of test images. Values are
    shown on a fixed gray scale from 0 to 1 (a standardized image's values beyond it are clipped)."""
    variants = variants or list(study.variants)
    rows = [(v, split, imgs) for v in variants for split, imgs in treated_images(study, v, n).items()]
    cols = max(len(imgs) for _, _, imgs in rows)
    fig, axes = subplots(len(rows), cols, figsize=(1.1 * cols + 1.6, 1.2 * len(rows) + 0.4), squeeze=False)
    for r, (variant, split, imgs) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                img = imgs[c]
                shown = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
                ax.imshow(np.clip(shown, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(f"{variant}\n{split}", fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig
