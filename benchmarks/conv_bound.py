"""What bounds a convolutional pack against the plain loop: FLOPs, the core's matrix rate, the layout.

A pack of K members on T threads runs one member per thread (``packing.cpu_members``: shards of one
intra-op thread each); the plain loop trains one member on all T threads. So a pack's speed-up over the
plain loop is T × (one member's rate on one thread) / (the plain loop's rate on T threads), and it can
exceed 2.5 only if one member on one core runs 2.5 / T times the plain loop's per-core FLOP rate. This
script measures, for LeNet-5 and ``mnist_cnn`` as ``torch.nn`` layers (benchmarks/peers.py), batch 128,
Adam: the FLOPs of a training step (``torch.utils.flop_counter``), the plain loop's rate on T threads,
one member's rate on one thread in NCHW and in channels-last memory format, and the machine's sgemm
rate on 1 and T threads; then the speed-ups those allow.

    .venv/bin/python benchmarks/conv_bound.py [--steps 30] [--threads T]   (random images: no data set needed)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from peers import plain_cnn, plain_lenet5, sgemm_peak

BATCH = 128


def step_flops(make) -> int:
    """FLOPs of one training step (forward, backward) at ``BATCH`` images."""
    model, x, y = make(), torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def rate(make, threads: int, layout: torch.memory_format, steps: int) -> float:
    """Training images/s of one member on ``threads`` threads (the best of three windows of ``steps``)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = make().to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    x = torch.rand(BATCH * 8, 1, 28, 28).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (BATCH * 8,))
    best = 0.0
    for window in range(4):  # the first warms up
        t = time.perf_counter()
        for s in range(steps):
            i = (s % 8) * BATCH
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x[i:i + BATCH]), y[i:i + BATCH]).backward()
            opt.step()
        if window:
            best = max(best, steps * BATCH / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    T = args.threads
    peak1, peakT = sgemm_peak(1), sgemm_peak(T)
    torch.set_num_threads(T)
    print(f"sgemm peak: {peak1 / 1e9:.0f} GFLOP/s on 1 thread, {peakT / 1e9:.0f} on {T}")
    for name, make in (("LeNet-5", plain_lenet5), ("mnist_cnn", plain_cnn)):
        per_image = step_flops(make) / BATCH
        plain = rate(make, T, torch.contiguous_format, args.steps)
        nchw = rate(make, 1, torch.contiguous_format, args.steps)
        nhwc = rate(make, 1, torch.channels_last, args.steps)
        torch.set_num_threads(T)
        gf = lambda r: r * per_image / 1e9  # noqa: E731
        print(f"{name}: {per_image / 1e6:.2f} MFLOP per training image; plain loop on {T} threads {plain:,.0f} img/s "
              f"({gf(plain):.0f} GFLOP/s, {100 * gf(plain) * 1e9 / peakT:.0f} % of the {T}-thread sgemm rate); one member "
              f"on one thread: NCHW {nchw:,.0f} img/s ({gf(nchw):.0f} GFLOP/s), channels last {nhwc:,.0f} "
              f"({gf(nhwc):.0f} GFLOP/s)")
        print(f"  a pack of one member per thread: {T * nchw / plain:.2f}x the plain loop (NCHW), "
              f"{T * max(nchw, nhwc) / plain:.2f}x (the faster layout); at one thread's sgemm rate on every FLOP: "
              f"{T * peak1 / per_image / plain:.2f}x")


if __name__ == "__main__":
    main()
