"""What eval-mode train accuracy costs: the share of a pack's wall time spent evaluating the first
2,000 training images at each epoch's end (32 `mlp` [64] members, 2 epochs of MNIST).

    PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/train_eval_cost.py
"""

import time

import petri.data
from petri.models import MLP
from petri.train import Member, Recipe, loop, train_pack


def main() -> None:
    mnist = petri.data.load("mnist")
    spent = [0.0]
    evaluate = loop.evaluate

    def timed(net, pipe, split, batch_size, logits=None):
        t = time.perf_counter()
        out = evaluate(net, pipe, split, batch_size, logits)
        if len(split.y) == loop.TRAIN_EVAL:
            spent[0] += time.perf_counter() - t
        return out

    loop.evaluate = timed
    t = time.perf_counter()
    train_pack(mnist, Recipe(model=MLP(hidden=[64]), epochs=2, device="cpu"), [Member(s) for s in range(32)])
    total = time.perf_counter() - t
    print(f"32-member mlp [64], 2 epochs: {total:.2f} s; eval-mode train accuracy {spent[0]:.3f} s "
          f"({100 * spent[0] / total:.1f} %)")


if __name__ == "__main__":
    main()
