"""Reading training images from the resident uint8 data set; a leading crop and flip are done by the read.

Without them, a batch is one ``index_select`` of whole images (rows of C·H·W bytes) from the
``[N, C·H·W]`` data set. When a member's image treatments start with ``crop`` and/or ``flip``,
every image plane is read instead from a copy of the data set whose planes are padded by the
largest crop pad P on every side (per crop mode in the pack), or from that copy's mirror image. The
crop's shifts and the flip pick the copy and where the crop's first pixel lies:

* if they fit in ``SHIFTED_BYTES``, each copy is kept as its 2P + 1 horizontal crops (planes
  H + 2P rows of W bytes), and a crop is H·W contiguous bytes: read and converted like an
  untreated image (MNIST, crop pad 4 and flip: 18 copies, 1.1 GB);
* else one copy W + 2P wide, and a crop is the window of bytes from its first pixel to its last,
  rows W + 2P apart: a strided view that the uint8 -> float conversion reads, row by row.

The copies are made once per pack and shared by its shards, so these two treatments cost one
index per image plane instead of passes over every pixel of the float batch.

The draws are ``Crop``'s and ``Flip``'s own, and pixels are only moved, so an image comes out
exactly as if the treatments had run on the batch (tested).
"""

from __future__ import annotations

import torch

from .augment import Crop, Flip, resolve
from .base import Treatment


def leading_reads(steps: list[tuple]) -> int:
    """How many of a member's first image treatments (``(treatment, key, state)`` each) the read
    does: at most one crop and one flip, in either order."""
    seen: set[type] = set()
    for t, *_ in steps:
        if not isinstance(t, (Crop, Flip)) or type(t) in seen:
            break
        seen.add(type(t))
    return len(seen)


SHIFTED_BYTES = 2 << 30  # the most memory a pack spends on per-shift copies of its training images


class Reader:
    """Reads the training images of a shard's members, doing their leading crop / flip."""

    def __init__(self, x: torch.Tensor, leads: list[list[tuple[Treatment, int]]], shared: dict):
        """``x`` uint8 [N, C, H, W], the training split; ``leads[k]``: member k's treatments done by
        the read, with their keys; ``shared``: the pack's cache of padded copies."""
        self.N, self.shape = x.shape[0], tuple(x.shape[1:])
        C, H, W = self.shape
        self.flat = x.reshape(self.N, -1)
        crops = [t for lead in leads for t, _ in lead if isinstance(t, Crop)]
        self.mirror = any(isinstance(t, Flip) for lead in leads for t, _ in lead)
        self.windows = None
        self.image_bytes = C * H * W  # bytes read per image
        if not crops and not self.mirror:
            return
        self.P = P = max((c.pad for c in crops), default=0)
        self.modes = sorted({c.mode for c in crops}) or ["reflect"]
        variants = len(self.modes) * (2 if self.mirror else 1)
        # One copy per horizontal shift, if they fit: a crop is then H·W contiguous bytes (a plain
        # uint8 -> float conversion); else one copy W + 2P wide, read as a strided view (rows of W).
        self.shifts = 2 * P + 1 if variants * (2 * P + 1) * x.numel() * (H + 2 * P) // H <= SHIFTED_BYTES else 1
        key = (x.data_ptr(), tuple(x.shape), P, tuple(self.modes), self.mirror, self.shifts)
        if key not in shared:
            shared[key] = _copies(x, P, self.modes, self.mirror, self.shifts)
        planes = shared[key]  # uint8 [copies · N · C, H + 2P, width]
        self.width = planes.shape[-1]
        self.plane = (H + 2 * P) * self.width  # bytes per padded plane
        self.window = (H - 1) * self.width + W  # bytes from a crop's first pixel to its last
        self.image_bytes = C * self.window
        self.windows = planes.view(-1).as_strided((planes.numel() - self.window + 1, self.window), (1, 1))
        groups: dict[tuple, list[int]] = {}
        for k, lead in enumerate(leads):  # members with the same steps and parameters draw together
            groups.setdefault(tuple(t.model_dump_json() for t, _ in lead), []).append(k)
        self.groups = [(torch.tensor(ks, device=x.device), [t for t, _ in leads[ks[0]]],
                        [torch.tensor([leads[k][i][1] for k in ks]) for i in range(len(leads[ks[0]]))])
                       for ks in groups.values()]

    def read(self, pos: torch.Tensor, ids: torch.Tensor, epoch: int, out: torch.Tensor) -> torch.Tensor:
        """``pos``, ``ids`` [S, K, B]: the images' positions in the split and their indices in the full
        split (the draws' keys) -> uint8 [S·K·B, C, H, W] read into ``out`` (a strided view after a crop)."""
        n = pos.numel()
        C, H, W = self.shape
        if self.windows is None:
            return torch.index_select(self.flat, 0, pos.reshape(-1), out=out[:n * C * H * W].view(n, -1)).view(n, C, H, W)
        S, K, B = pos.shape
        P = self.P
        by_member = ids.permute(1, 0, 2).reshape(K, S * B)  # the draws take [members, images]
        dy = torch.zeros(K, S * B, dtype=torch.int64, device=pos.device)
        dx, copy = torch.zeros_like(dy), torch.zeros_like(dy)
        for members, steps, keys in self.groups:
            every = len(members) == K
            idx = by_member if every else by_member[members]
            g_dy = g_dx = g_copy = 0
            cropped = False
            for t, key in zip(steps, keys):
                if isinstance(t, Crop):
                    ry, rx = Crop.draws(key, idx, epoch, t.pad)
                    g_dy, g_dx, cropped = ry - t.pad, rx - t.pad, True
                    g_copy = g_copy + self.modes.index(t.mode) * (2 if self.mirror else 1)
                else:  # a flip after the crop mirrors the window: it starts at P - dx in the mirror copy
                    flipped = Flip.flips(key, idx, epoch, t.p)
                    g_copy = g_copy + flipped
                    if cropped:  # (flip first: crop(flip x) keeps dx)
                        g_dx = torch.where(flipped, -g_dx, g_dx)
            for whole, part in ((dy, g_dy), (dx, g_dx), (copy, g_copy)):
                if every:
                    whole += part
                else:
                    whole[members] += part
        dy, dx, copy = (t.view(K, S, B).transpose(0, 1) for t in (dy, dx, copy))  # [S, K, B]
        if self.shifts > 1:  # the shift's own copy, from its first column
            copy, col = copy * self.shifts + dx + P, 0
        else:  # the one copy, from column P + dx
            col = dx + P
        first = ((copy * self.N + pos) * (C * self.plane)).add_((dy + P) * self.width + col)  # channel 0's crop
        starts = first[..., None] + torch.arange(0, C * self.plane, self.plane, device=pos.device)  # [S, K, B, C]
        dst = out[:starts.numel() * self.window].view(-1, self.window)
        torch.index_select(self.windows, 0, starts.reshape(-1), out=dst)
        return dst.as_strided((n, C, H, W), (C * self.window, self.window, self.width, 1))


def _copies(x: torch.Tensor, P: int, modes: list[str], mirror: bool, shifts: int) -> torch.Tensor:
    """The images' planes padded by P on every side in each mode (each followed by its mirror image),
    stacked: uint8 [copies · N · C, H + 2P, W + 2P]; with ``shifts`` = 2P + 1, each of those cut
    into its 2P + 1 horizontal crops instead, [copies · shifts · N · C, H + 2P, W]."""
    N, C, H, W = x.shape
    parts = []
    for mode in modes:
        rows, row_in = resolve(torch.arange(-P, H + P), H, mode)
        cols, col_in = resolve(torch.arange(-P, W + P), W, mode)
        padded = x.index_select(2, rows.to(x.device)).index_select(3, cols.to(x.device))
        if mode == "constant":
            padded *= (row_in[:, None] & col_in).to(x.device, torch.uint8)
        for copy in [padded, padded.flip(-1)] if mirror else [padded]:
            parts += [copy] if shifts == 1 else [copy[..., s:s + W] for s in range(shifts)]
    return torch.cat(parts).view(-1, H + 2 * P, parts[0].shape[-1])
