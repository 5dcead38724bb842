"""Throughput of petri's population engine against a plain PyTorch loop, on real MNIST.

Run: PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/throughput.py [--quick]

The plain loop is what a careful user writes: data as resident float tensors,
``torch.randperm`` batches, ``nn.Sequential``, ``torch.optim.Adam(foreach=True)``,
train loss / accuracy accumulated on the device (no per-step sync), test
accuracy per epoch. Both sides measure training images/s without evaluation,
in the same process, with the same thread settings.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import petri.data
from petri.models import MLP, MnistCNN
from petri.train import Member, Recipe, train_pack
from petri.treatments import parse_treatment


def plain_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def plain_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def plain_loop(make, ds, epochs, batch, seed, max_steps=None):
    """Returns (training images/s, final test accuracy)."""
    torch.manual_seed(seed)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    x = ds.train_x.float().div_(255)
    y = ds.train_y
    tx, ty = ds.test_x.float().div_(255), ds.test_y
    n, seen, train_time, acc = len(y), 0, 0.0, 0.0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        loss_sum, hits = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        steps = range(0, n, batch) if max_steps is None else range(0, max_steps * batch, batch)
        for i in steps:
            idx = perm[i:i + batch]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            hits += (out.argmax(1) == y[idx]).sum()
            seen += len(idx)
        float(loss_sum), int(hits)  # the epoch log syncs once
        train_time += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            acc = sum((model(tx[i:i + 1000]).argmax(1) == ty[i:i + 1000]).sum().item()
                      for i in range(0, len(ty), 1000)) / len(ty)
    return seen / train_time, acc


def petri_run(model, ds, epochs, batch, seeds, train_size=None):
    recipe = Recipe(model=model, batch_size=batch, epochs=epochs, train_size=train_size, device="cpu")
    results = train_pack(ds, recipe, [Member(s) for s in seeds])
    per_member = sum(e["images_per_s"] for e in results[0].epochs) / len(results[0].epochs)
    return per_member * len(seeds), [r.epochs[-1]["test_acc"] for r in results]


def treatment_costs(ds, K=32, n=10000, reps=5):
    """Each treatment's cost inside the training loop: a K-member mlp [64] pack (batch 100) trains one
    epoch on n images without and then with it, ``reps`` times; the median of the paired relative
    differences is reported (adjacent runs: the machine's drift cancels). Returns the median
    untreated step (ms) and per treatment (name, extra ms per step, fraction of the untreated step):
    what the treatment adds to a step as the loop runs it (shards, threads, caches shared with
    training), not an isolated kernel time."""
    specs = {
        "invert": {"name": "invert"}, "sparsify": {"name": "sparsify", "threshold": 0.5},
        "standardize": {"name": "standardize"},
        "window_keep": {"name": "window_keep", "size": 9, "row": 10, "col": 10},
        "window_drop": {"name": "window_drop", "size": 9, "row": 10, "col": 10},
        "label_noise": {"name": "label_noise", "p": 0.1}, "permute_pixels": {"name": "permute_pixels"},
        "shuffle_pixels": {"name": "shuffle_pixels"}, "gaussian_images": {"name": "gaussian_images"},
        "crop": {"name": "crop", "pad": 4}, "flip": {"name": "flip"},
    }
    recipe = Recipe(model=MLP(hidden=[64]), batch_size=100, epochs=1, train_size=n, device="cpu")

    def step_ms(treatments):
        r = train_pack(ds, recipe, [Member(s, treatments) for s in range(K)])
        return 100 / r[0].epochs[-1]["images_per_s"] * 1e3

    bases, extra = [], {name: [] for name in specs}
    for _ in range(reps):
        for name, spec in specs.items():
            base = step_ms([])
            extra[name].append(step_ms([parse_treatment(spec)]) / base - 1)
            bases.append(base)
    base = _median(bases)
    return base, [(name, _median(f) * base, _median(f)) for name, f in extra.items()]


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 epoch, 1 round (smoke run)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved plain/petri rounds; medians are reported")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    ds = petri.data.load("mnist")
    epochs = 1 if args.quick else 4
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, MNIST, batch 100, Adam 1e-3; "
          f"{rounds} interleaved round(s), medians")

    singles = []
    for r in range(rounds):  # plain and petri alternate so machine noise hits both alike
        plain_ips, plain_acc = plain_loop(plain_mlp, ds, epochs, 100, r)
        petri_ips, petri_acc = petri_run(MLP(hidden=[64]), ds, epochs, 100, [r])
        singles.append(petri_ips / plain_ips)
        print(f"  round {r + 1}: mlp [64] single, {epochs} epochs: plain {plain_ips:,.0f} img/s "
              f"(test acc {plain_acc:.4f}); petri {petri_ips:,.0f} img/s (test acc {petri_acc[0]:.4f}); "
              f"ratio {singles[-1]:.2f}")
    single = _median(singles)

    K, pops = 32, []
    for r in range(rounds):
        seq_ips = sum(plain_loop(plain_mlp, ds, 1, 100, s)[0] for s in range(2)) / 2  # one after another
        pop_ips, pop_acc = petri_run(MLP(hidden=[64]), ds, 1 if args.quick else 2, 100, list(range(K)))
        pops.append(pop_ips / seq_ips)
        print(f"  round {r + 1}: mlp [64] population K={K}: petri aggregate {pop_ips:,.0f} img/s "
              f"(mean test acc {sum(pop_acc) / K:.4f}); plain one-by-one {seq_ips:,.0f} img/s; ratio {pops[-1]:.2f}")
    population = _median(pops)

    cnn_plain, _ = plain_loop(plain_cnn, ds, 1, 128, 0, max_steps=15)
    cnn = {}
    for k in (1, 8):
        cnn[k], _ = petri_run(MnistCNN(), ds, 1, 128, list(range(k)), train_size=128 * (15 if k == 1 else 4))
    print(f"mnist_cnn batch 128: plain {cnn_plain:,.0f} img/s; petri K=1 {cnn[1]:,.0f} img/s "
          f"(ratio {cnn[1] / cnn_plain:.2f}); K=8 aggregate {cnn[8]:,.0f} img/s (ratio {cnn[8] / cnn_plain:.2f})")

    step_ms, rows = treatment_costs(ds, reps=1 if args.quick else 5)
    print(f"treatment cost in the loop, 32-member mlp [64] pack, batch 100 (untreated step {step_ms:.2f} ms):")
    for name, ms, frac in rows:
        print(f"  {name:16s} {ms:+7.3f} ms per step  {100 * frac:+6.1f} %")
    print(f"single_mlp_ratio={single:.2f}")
    print(f"population_mlp_ratio={population:.2f}")
    print(f"cnn_k1_ratio={cnn[1] / cnn_plain:.2f}")
    print(f"cnn_k8_ratio={cnn[8] / cnn_plain:.2f}")


if __name__ == "__main__":
    main()
