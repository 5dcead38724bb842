"""Where a 32-member mlp [64] pack's training step spends its time, op by op, against the FLOPs of each
GEMM and the machine's own single-thread sgemm rate (each shard of a pack runs on one thread).

Run: PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/profile_step.py [--images 20000]
Under another kernel family: ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 (same command).

On two cores a 32-member pack trains as two shards of 16, each on its own thread (train/loop.py, train/shard.py);
this profiles one such shard: 16 members on one thread, so every op runs in the profiled thread.
torch.profiler records each aten op of one epoch of ``--images`` images (after a warm-up epoch;
evaluation of 100 test and 2,000 training images included, a few per cent); a GEMM's rate is its
FLOPs (``with_flops``) over its self time.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager

import torch
from torch.profiler import ProfilerActivity, profile

import petri.data
import petri.train.loop as loop
from petri.models import MLP
from petri.train import Member, Recipe, train_pack

from peers import sgemm_peak  # (the script's folder is on sys.path when it runs)


@contextmanager
def _in_this_thread(n: int):
    """The loop's shards run one after another in this thread (the profiler records this thread's ops;
    with one intra-op thread the pool would run them one at a time on a worker anyway)."""
    yield lambda fn, shards: [fn(s) for s in shards]


FLOP = 2 * (784 * 64 + 64 * 10) * 2 + 2 * 64 * 10  # per training image of an mlp [64] (throughput.py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20000, help="training images in the profiled epoch")
    ap.add_argument("--members", type=int, default=16, help="members of the one shard profiled")
    args = ap.parse_args()
    torch.set_num_threads(1)
    loop.shard_runner = _in_this_thread
    ds = petri.data.load("mnist")
    recipe = Recipe(model=MLP(hidden=[64]), batch_size=100, epochs=1, train_size=args.images, test_size=100,
                    device="cpu")
    members = [Member(s) for s in range(args.members)]
    train_pack(ds, recipe, members)  # warm-up: allocations, MKL's kernels
    peak = sgemm_peak(1, sizes=(512, 1024))
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        r = train_pack(ds, recipe, members)
    wall = time.perf_counter() - t0
    ips = r[0].epochs[-1]["images_per_s"] * args.members
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, capability "
          f"{torch.backends.cpu.get_cpu_capability()}, MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', '-')}")
    print(f"one-thread sgemm {peak / 1e9:.1f} GFLOP/s; one shard of {args.members} members on one thread, "
          f"{args.images:,} images: {ips:,.0f} img/s aggregate (training only; roofline "
          f"{peak / FLOP:,.0f}), {wall:.2f} s wall with evaluation and profiling")
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{'op':34s} {'calls':>7s} {'self ms':>9s} {'share':>6s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:18]:
        rate = e.flops / (e.self_cpu_time_total * 1e-6) if e.flops else 0.0
        print(f"{e.key[:34]:34s} {e.count:7d} {e.self_cpu_time_total / 1e3:9.1f} "
              f"{100 * e.self_cpu_time_total / total:5.1f}% " + (f"{rate / 1e9:8.1f} {100 * rate / peak:6.0f}%"
                                                                 if rate else ""))
    gemm = sum(e.self_cpu_time_total for e in events if e.flops)
    print(f"GEMMs: {100 * gemm / total:.0f} % of the ops' self time; everything else {100 - 100 * gemm / total:.0f} %")


if __name__ == "__main__":
    main()
