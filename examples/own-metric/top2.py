"""A metric of your own: top-2 accuracy, computed on each cell's test set when the cell finishes.
A study names this file as a plugin and may compare on it:

    plugins = ["top2.py"]
    [analysis]
    metric = "top2_acc"
"""

import petri


def top2(logits, labels):
    """share of test images whose label is among the two highest logits"""
    # logits [N, C] float, labels [N] int64: one cell's whole test set
    return (logits.topk(2, dim=-1).indices == labels[:, None]).any(-1).float().mean().item()


petri.register_metric("top2_acc", top2)  # a name ending in _acc: shown in %, differences in percentage points
