"""Evaluation against training, per image: a pack of the `mlp` [64] (K = 32), LeNet-5 as a layer list
(K = 8) and the Keras `mnist_cnn` (K = 8) trains a few epochs on an MNIST subset; each epoch's
training seconds per member-image (training images / its images/s) and evaluation seconds per
member-image (the rest of the pack's epoch seconds over the test and training images it evaluates) are
compared. Medians over the epochs after the first and over ``--rounds`` rounds.

    PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/eval_cost.py [--rounds 3] [--nets mlp lenet5 mnist_cnn]

Only ``images_per_s`` and ``seconds`` of the epoch rows are read, so the same script times any
version of the loop (run it with another checkout first on PYTHONPATH for a before / after).
"""

from __future__ import annotations

import argparse
import statistics

import petri.data
from petri.models import parse_model
from petri.train import Member, Recipe, train_pack
from petri.train.shard import TRAIN_EVAL

LENET5 = [{"name": "conv2d", "filters": 6, "kernel": 5, "padding": 2}, "tanh", {"name": "avg_pool"},
          {"name": "conv2d", "filters": 16, "kernel": 5}, "tanh", {"name": "avg_pool"}, "flatten",
          {"name": "dense", "units": 120}, "tanh", {"name": "dense", "units": 84}, "tanh",
          {"name": "dense", "units": "classes"}]
# name: (model, K, batch, training images, test images)
NETS = {"mlp": ("mlp", 32, 100, 10000, 5000), "lenet5": (LENET5, 8, 128, 5000, 2000),
        "mnist_cnn": ("mnist_cnn", 8, 128, 1024, 1000)}


def per_image(mnist, name: str, epochs: int = 3) -> list[tuple[float, float]]:
    """(training, evaluation) seconds per member-image of each epoch after the first."""
    model, K, batch, n, n_test = NETS[name]
    recipe = Recipe(model=parse_model(model), epochs=epochs, batch_size=batch, train_size=n, test_size=n_test,
                    device="cpu")
    results = train_pack(mnist, recipe, [Member(s) for s in range(K)])
    out = []
    for epoch in range(1, epochs):
        rows = [r.epochs[epoch] for r in results]
        train = n / rows[0]["images_per_s"]  # the pack's training seconds
        whole = max(e["seconds"] for e in rows)  # (each shard's row: its own end; the pack's is the last)
        out.append((train / (K * n), (whole - train) / (K * (n_test + TRAIN_EVAL))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    args = ap.parse_args()
    mnist = petri.data.load("mnist")
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in args.nets}
    for r in range(args.rounds):  # the networks alternate, so the machine's drift touches each alike
        for name in args.nets:
            got[name] += per_image(mnist, name)
    for name, rows in got.items():
        train, evaluation = (statistics.median(x) for x in zip(*rows))
        ratios = sorted(e / t for t, e in rows)
        print(f"{name} K={NETS[name][1]}: training {1e6 * train:,.1f} µs per member-image, evaluation "
              f"{1e6 * evaluation:,.1f} µs; evaluation / training {statistics.median(ratios):.2f} "
              f"({ratios[0]:.2f}–{ratios[-1]:.2f} over {len(ratios)} epochs)")


if __name__ == "__main__":
    main()
